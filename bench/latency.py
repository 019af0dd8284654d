"""End-to-end seconds per fused image at 512² and 1024²: allfuse-reg, allfuse-fm (5 steps), the
restore-then-fuse chains. Inputs are the demo pair resized (content does not change the cost).

    python bench/latency.py [--sizes 512,1024] [--repeats 2] [--work-side 512] [--out FILE.md]

Each model runs with its defaults (a model folder may set a default work side: refiner.json); a model
with an input corrector for the task also runs without it (`correct=False`), one with a deblurring stage
also without that (`deblur=False`; the demo pair upscaled to 1024² measures as blurred, so there the stage
deconvolves both inputs, at 512² it only measures them: allfuse.deblur), and one with a clean-input gate
also with it off (`gate=False`, the latent path whatever the gate measures; the rows without a stage and
the --work-side row turn the gate off too, so they time the latent path; the table is followed by what
the gate chose for the pair at each size: allfuse.gate), and that latent path once more without its
mirrored second pass (`mirror=False`: allfuse.pipeline.MIRROR) and without the detail pick after it
(`pick=False`: allfuse.pick). With
--work-side N, reg also runs with its latent path at that long side (FusionPipeline's work_side: the
refiner brings the result back to full size; 0 = full size); bench/quality.py --work-side measures what
that costs in quality. The last column counts the minor page faults of one run at the largest size (Unix:
resource.getrusage), what glibc's malloc costs when it unmaps freed blocks (allfuse.devices; run with
ALLFUSE_MALLOC=0 to see the default). The lines after the table time the classical stages alone: the
rows fuse as multi-focus pairs, where the stripe-removal stage does not run and the denoising stage only
reads colour noise (the demo pair has none), and the demo pair is neither a JPEG nor made of pixel blocks,
so the deblocking stage only measures it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from machine import machine_line

from allfuse import baselines
from allfuse.demo import demo_pair
from allfuse.devices import keep_freed_memory
from allfuse.tasks import CLASSICAL_DEFAULT

CHAINS = ("nlm", "dcp", "rl", "wiener", "upsample")


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where resource.getrusage does not exist)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall time of `repeats` runs after one warm-up, and the mean minor page faults per run."""
    fn()
    times, faults = [], minor_faults()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), (minor_faults() - faults) / repeats


def deblur_cost(pairs: dict[int, list[np.ndarray]], task: str, repeats: int) -> list[str]:
    """The deblurring stage alone (allfuse.deblur, allfuse-reg's settings) on the pair at each size, fused
    as `task`: measuring the blur, and measuring plus deconvolving both inputs (by the kernel estimated
    blind where the settings say so: allfuse.blindpsf); whole-pipeline rows differ by less than their
    run-to-run spread, so the stage's own cost is timed directly."""
    from allfuse.deblur import deblur_inputs, input_kernels, pair_psf, psf_axes
    from allfuse.model_folder import load_deblur, resolve_model_folder

    cfg, cells = load_deblur(resolve_model_folder("allfuse-reg")), []
    for size, ims in pairs.items():
        psf = pair_psf(ims, cfg, task)
        measure = best_time(lambda ims=ims: pair_psf(ims, cfg, task), repeats)[0]
        whole = best_time(lambda ims=ims: deblur_inputs(ims, cfg, task), repeats)[0]
        major, minor, _ = psf_axes(psf)
        kernel = input_kernels(ims, [psf] * len(ims), cfg, task)[0] if major > 0 else None
        found = f"PSF std {major:.2f} x {minor:.2f} px" if major > 0 else ""
        if kernel is not None:
            found += f", blind kernel {kernel.shape[0]} x {kernel.shape[1]} px"
        what = f"deconvolving too ({found}) {whole:.3f} s" if found else "measured as sharp"
        cells.append(f"{size}²: measuring {measure:.3f} s, {what}")
    return [
        f"Deblurring stage alone (allfuse-reg's settings, the same pairs as {task}): "
        + "; ".join(cells)
        + "."
    ]


def destripe_cost(pairs: dict[int, list[np.ndarray]], repeats: int) -> list[str]:
    """The stripe-removal stage alone (allfuse.destripe, default settings) on the first input at each
    size: testing it as it is (the demo is not striped: what every infrared + visible pair pays), and
    testing plus removing on a copy with column stripes of 6/255 (what a striped infrared image pays)."""
    from allfuse.destripe import DestripeConfig, destripe_image

    cfg, cells = DestripeConfig(), []
    for size, ims in pairs.items():
        x = ims[0]
        offsets = np.random.default_rng(0).normal(0, 6 / 255, (1, x.shape[1]))
        striped = np.clip(x + (offsets[..., None] if x.ndim == 3 else offsets), 0, 1).astype(np.float32)
        axes = destripe_image(striped, cfg)[1]
        test = best_time(lambda x=x: destripe_image(x, cfg), repeats)[0]
        both = best_time(lambda s=striped: destripe_image(s, cfg), repeats)[0]
        cells.append(f"{size}²: testing {test:.3f} s, testing and removing (axes {axes}) {both:.3f} s")
    return ["Stripe-removal stage alone (default settings, the first input): " + "; ".join(cells) + "."]


def stage_cost(
    pairs: dict[int, list[np.ndarray]],
    repeats: int,
    degrade: Callable[[list[np.ndarray], int], list[np.ndarray]],
    run: Callable[[list[np.ndarray]], tuple[list, list]],
    action: str,
) -> list[str]:
    """A measure-then-apply stage alone at each size: `run` (inputs -> (outputs, per-input amounts; 0 =
    left alone)) on the pair as it is (what every pair pays) and on `degrade(pair, size)` (what a pair
    the stage acts on pays)."""
    cells = []
    for size, ims in pairs.items():
        bad = degrade(ims, size)
        used = run(bad)[1]
        test = best_time(lambda ims=ims: run(ims), repeats)[0]
        both = best_time(lambda b=bad: run(b), repeats)[0]
        done = f"{sum(u > 0 for u in used)} of {len(used)} inputs"
        cells.append(f"{size}²: measuring {test:.3f} s, measuring and {action} ({done}) {both:.3f} s")
    return ["; ".join(cells) + "."]


def impulse_cost(pairs: dict[int, list[np.ndarray]], repeats: int) -> list[str]:
    """The impulse-noise stage alone (allfuse.impulse, allfuse-reg's settings) at each size: measuring both
    inputs as they are (what every pair pays), and measuring plus filtering a copy with salt and pepper
    over 3 % of the pixels (what a speckled pair pays)."""
    from allfuse.impulse import impulse_inputs
    from allfuse.model_folder import load_impulse, resolve_model_folder

    cfg = load_impulse(resolve_model_folder("allfuse-reg"))

    def speckled(ims: list[np.ndarray], size: int) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        out = []
        for x in ims:
            hit = rng.random(x.shape[:2]) < 0.03
            value = (rng.random(x.shape[:2]) < 0.5).astype(np.float32)
            if x.ndim == 3:
                hit, value = hit[..., None], value[..., None]
            out.append(np.where(hit, value, x))
        return out

    def run(ims: list[np.ndarray]) -> tuple[list, list]:
        out, fractions = impulse_inputs(ims, "mff", cfg)
        return out, [f if f >= cfg.fire else 0.0 for f in fractions]

    cells = stage_cost(pairs, repeats, speckled, run, "filtering")
    return ["Impulse-noise stage alone (allfuse-reg's settings): " + cells[0]]


def denoise_cost(pairs: dict[int, list[np.ndarray]], repeats: int) -> list[str]:
    """The denoising stage alone (allfuse.denoise, allfuse-reg's settings: luminance and, for a colour
    input, chroma noise; run as for an infrared + visible pair) at each size: measuring both inputs as they
    are (the demo is clean: what every such pair pays), and
    measuring plus denoising a copy with Gaussian noise that measures about 8/255 where the stage measures
    it, at a long side of 512 px (std 8/255 x side / 512 at full size: what a noisy pair pays)."""
    from allfuse.denoise import denoise_inputs
    from allfuse.model_folder import load_denoise, load_denoiser, resolve_model_folder

    def noisy(ims: list[np.ndarray], size: int) -> list[np.ndarray]:
        rng, std = np.random.default_rng(0), 8 / 255 * max(1.0, size / 512)
        return [np.clip(x + rng.normal(0, std, x.shape), 0, 1).astype(np.float32) for x in ims]

    folder = resolve_model_folder("allfuse-reg")
    cfg, net = load_denoise(folder), load_denoiser(folder)
    cells = stage_cost(pairs, repeats, noisy, lambda ims: denoise_inputs(ims, "vif", cfg, net), "denoising")
    return ["Denoising stage alone (allfuse-reg's settings, the pair as infrared + visible): " + cells[0]]


def deblock_cost(pairs: dict[int, list[np.ndarray]], repeats: int) -> list[str]:
    """The JPEG deblocking stage alone (allfuse.deblock, allfuse-reg's settings: pixel blocks too) at each
    size: measuring both inputs as they are (the demo is neither a JPEG nor made of pixel blocks: what every
    pair pays), and measuring plus deblocking a copy coded at JPEG quality 30 (what a pair of low-quality
    JPEG files pays); then measuring plus re-interpolating a copy shrunk by 3 and enlarged back by nearest
    neighbour (what a pair made of pixel blocks pays)."""
    from allfuse.deblock import deblock_inputs, encode_decode
    from allfuse.model_folder import load_deblock, resolve_model_folder

    def coded(ims: list[np.ndarray], size: int) -> list[np.ndarray]:
        return [encode_decode(x, 30) for x in ims]

    def blocky(ims: list[np.ndarray], size: int) -> list[np.ndarray]:
        out = []
        for x in ims:
            h, w = x.shape[:2]
            small = cv2.resize(x, (w // 3, h // 3), interpolation=cv2.INTER_AREA)
            out.append(cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST))
        return out

    cfg = load_deblock(resolve_model_folder("allfuse-reg"))

    def run(ims: list[np.ndarray]) -> tuple[list, list]:
        out = deblock_inputs(ims, "mff", cfg)[0]
        return out, [
            float(a is not b) for a, b in zip(out, ims, strict=True)
        ]  # 1: re-coded or re-interpolated

    cells = stage_cost(pairs, repeats, coded, run, "deblocking")
    pixels = stage_cost(pairs, repeats, blocky, run, "re-interpolating")
    return [
        "JPEG deblocking stage alone (allfuse-reg's settings, 64 re-codings per deblocked input): "
        + cells[0],
        "",
        "The same stage on pixel blocks (allfuse.depixel; shrunk by 3, enlarged by nearest neighbour): "
        + pixels[0],
    ]


def measure_cost(pairs: dict[int, list[np.ndarray]], repeats: int) -> list[str]:
    """What the exposure stage's test (allfuse.exposure: the pooled 99.5th percentile) and the refiner's
    noise guard (allfuse.gate.pair_noise) cost on the pair at each size; applying a gain is one multiply."""
    from allfuse.exposure import ExposureConfig, exposure_gain
    from allfuse.gate import pair_noise

    cfg, cells = ExposureConfig(), []
    for size, ims in pairs.items():
        gain = best_time(lambda ims=ims: exposure_gain(ims, "mff", cfg), repeats)[0]
        noise = best_time(lambda ims=ims: pair_noise(ims), repeats)[0]
        cells.append(f"{size}²: exposure test {gain:.3f} s, noise level {noise:.3f} s")
    return ["Exposure stage and noise guard measures alone (the same pairs): " + "; ".join(cells) + "."]


def gate_choices(pipes: list, pairs: dict[int, list[np.ndarray]], task: str, repeats: int) -> list[str]:
    """What each gated pipeline's gate chose for the pair at each size (the default row times that path),
    and what measuring the pair's statistics costs (allfuse.gate.pair_features, the gate's own work)."""
    from allfuse.gate import pair_features

    lines = []
    for pipe in pipes:
        cells = []
        for size, ims in pairs.items():
            _, p, weight = pipe.gate_choice(ims, task)
            path = "the classical rule" if weight >= 1 else "the latent path"
            if 0 < weight < 1:
                path += f" mixed with {weight:.0%} of the rule"
            cells.append(f"{size}² P(clean) {p:.2f}: {path}")
        lines.append(f"{pipe.name}'s gate on these pairs: " + "; ".join(cells) + ".")
    if pipes:
        cost = [
            f"{s}² {best_time(lambda ims=ims: pair_features(ims), repeats)[0]:.3f} s"
            for s, ims in pairs.items()
        ]
        lines.append("The gate's statistics of the pair alone: " + ", ".join(cost) + ".")
    return lines


def main() -> None:
    """Print one row per method with its seconds at each size."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="allfuse-reg,allfuse-fm")
    ap.add_argument(
        "--work-side",
        type=int,
        default=None,
        help="also reg with its latent path at this side (0 = full size)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    task = "mff"
    methods: dict[str, Callable[[list[np.ndarray]], object]] = {}
    gated: list = []  # pipelines with a clean-input gate for the task
    from allfuse.pipeline import FusionPipeline

    for name in (m for m in args.models.split(",") if m):
        try:
            pipe = FusionPipeline.from_pretrained(name)
        except FileNotFoundError as e:
            print(f"skipping {name}: {e}")
            continue
        label = f"{name} (5 steps)" if pipe.cfg.model.timestep else name
        methods[label] = lambda ims, p=pipe: p(ims, task=task, steps=5, sampler="midpoint_reuse")
        if pipe.gate is not None and task in pipe.gate.tasks:  # the latent path, whatever the gate measures
            gated.append(pipe)
            methods[f"{name} (gate=False)"] = lambda ims, p=pipe: p(ims, task=task, gate=False)
            # the latent path without its mirrored second pass (allfuse.pipeline.MIRROR)
            methods[f"{name} (gate=False, mirror=False)"] = lambda ims, p=pipe: p(
                ims, task=task, gate=False, mirror=False
            )
            # the latent path without the detail pick after it (allfuse.pick)
            methods[f"{name} (gate=False, pick=False)"] = lambda ims, p=pipe: p(
                ims, task=task, gate=False, pick=False
            )
        if pipe.corrector is not None and task in pipe.corrector.cfg.tasks:  # what the corrector costs
            methods[f"{name} (correct=False)"] = lambda ims, p=pipe: p(
                ims, task=task, correct=False, gate=False
            )
        if pipe.deblur is not None and task in pipe.deblur.tasks:  # what the deblurring stage costs
            methods[f"{name} (deblur=False)"] = lambda ims, p=pipe: p(
                ims, task=task, deblur=False, gate=False
            )
        if args.work_side is not None and not pipe.cfg.model.timestep:
            side = f"work side {args.work_side}" if args.work_side else "full size"
            methods[f"{name} ({side})"] = lambda ims, p=pipe: p(
                ims, task=task, work_side=args.work_side, gate=False
            )
    default = CLASSICAL_DEFAULT[task]
    methods[default] = lambda ims: baselines.fuse(default, ims, task)
    for r in CHAINS:
        methods[f"{r}+{default}"] = lambda ims, m=f"{r}+{default}": baselines.fuse(m, ims, task)
    kept = "kept for reuse" if keep_freed_memory() else "malloc's default"  # as from_pretrained set it
    lines = [
        f"torch threads: {torch.get_num_threads()}, task {task}, best of {args.repeats} after a warm-up, "
        f"freed memory: {kept}",
        "| method | " + " | ".join(f"{s}² s/img" for s in sizes) + f" | page faults/img at {sizes[-1]}² |",
        "|---|" + "---:|" * (len(sizes) + 1),
    ]
    print("\n".join(lines))
    pairs = {
        s: [np.clip(cv2.resize(x, (s, s), interpolation=cv2.INTER_CUBIC), 0, 1) for x in demo_pair(task)]
        for s in sizes
    }
    for name, fn in methods.items():
        runs = [best_time(lambda s=s, f=fn: f(pairs[s]), args.repeats) for s in sizes]
        cells = [f"{t:.3f}" for t, _ in runs] + [f"{runs[-1][1]:,.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    lines += ["", *deblur_cost(pairs, task, args.repeats), *destripe_cost(pairs, args.repeats)]
    lines += impulse_cost(pairs, args.repeats)
    lines += denoise_cost(pairs, args.repeats)
    lines += deblock_cost(pairs, args.repeats)
    lines += measure_cost(pairs, args.repeats)
    lines += gate_choices(gated, pairs, task, args.repeats)
    print("\n".join(lines[len(methods) + 3 :]))
    if args.out:
        command = "python bench/latency.py " + " ".join(sys.argv[1:])
        args.out.write_text("\n".join([machine_line(), f"Command: `{command}`.", "", *lines]) + "\n")


if __name__ == "__main__":
    main()
