"""`allfuse fuse`: fuse images into one PNG, or every pair of a dataset folder into a folder (batch).

Every user error is a `CliError`: one line, exit status 2. The checks run cheapest first, so a mistake is
reported before any model loads: the flags, the prompt, the output path, the input files (pixel limit,
sizes), the model folder's config.json; only then do the weights load and the fusion run. In batch mode a
problem with one pair is reported and the others go on; the exit status is 1 when any pair failed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import get_args

import numpy as np

from allfuse.config import SamplerKind
from allfuse.io import ImageError, Pair, check_same_size, max_pixels_limit, read_image, write_image
from allfuse.types import TASKS


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def add_fuse_parser(sub: argparse._SubParsersAction) -> None:
    """The `fuse` subcommand and its flags."""
    p = sub.add_parser("fuse", help="fuse two or more images (a demo pair when none are given)")
    p.add_argument("images", nargs="*", type=Path, help="source images, in order (e.g. IR VIS)")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="output PNG (default fused.png), or output folder with --data",
    )
    p.add_argument("--data", type=Path, default=None, help="batch mode: fuse every pair of a dataset folder")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="batch mode: leave pairs whose output PNG exists (resumes an interrupted run)",
    )
    p.add_argument("--model", default=None, help="allfuse-reg (default), allfuse-fm or a model folder")
    p.add_argument("--method", default=None, help="use a classical method instead of a model")
    p.add_argument("--prompt", default=None, help="instruction for the model, e.g. 'remove the haze'")
    p.add_argument("--task", default="auto", choices=["auto", *TASKS], help="fusion task (default: guess)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (flow-matching models), >= 1")
    p.add_argument("--sampler", default=None, choices=get_args(SamplerKind), help="flow-matching sampler")
    p.add_argument(
        "--cfg-text",
        type=float,
        default=None,
        help="JointDiT models: text guidance scale (default: the model's; 1 = no guidance)",
    )
    p.add_argument(
        "--cfg-image",
        type=float,
        default=None,
        help="JointDiT models: image guidance scale (default: the model's; 1 = no guidance)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print what the model understood of the prompt"
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="latent window of tiled inference, >= 4 (default: the training crop; 0 = whole image)",
    )
    p.add_argument(
        "--work-side",
        type=int,
        default=None,
        help="run the latent model at most at this long side, px, the refiner restoring full size "
        "(faster); 0 = full size; default: the model's own (refiner.json)",
    )
    p.add_argument(
        "--tile-pixels",
        type=int,
        default=None,
        help="images of more pixels run the model on overlapping tiles, in bounded memory "
        "(default 1048576 = 1024x1024; 0 = never)",
    )
    p.add_argument(
        "--no-deblock",
        action="store_true",
        default=None,
        help="skip the model's JPEG deblocking stage (its deblock.json): keep a low-quality JPEG's blocks",
    )
    p.add_argument(
        "--no-destripe",
        action="store_true",
        default=None,
        help="skip the model's stripe-removal stage (its destripe.json): keep the inputs' column and row "
        "stripes",
    )
    p.add_argument(
        "--no-denoise",
        action="store_true",
        default=None,
        help="skip the model's denoising stages (its denoise.json and impulse.json): leave a noisy input's "
        "grain and specks to the model",
    )
    p.add_argument(
        "--no-exposure",
        action="store_true",
        default=None,
        help="skip the model's exposure stage (its exposure.json): keep an under-exposed pair as dark as "
        "it is",
    )
    p.add_argument(
        "--no-deblur",
        action="store_true",
        default=None,
        help="skip the model's blind deblurring stage (its deblur.json): fuse the inputs as they are",
    )
    p.add_argument(
        "--no-correct",
        action="store_true",
        default=None,
        help="skip the model's input corrector (its corrector.json, multi-exposure and multi-focus pairs): "
        "keep a clear scene without dark pixels (a gray page, a close-up of sand or sky), which its haze "
        "prior can read as veiled, as it is",
    )
    p.add_argument(
        "--no-gate",
        action="store_true",
        default=None,
        help="always fuse with the model, also when its clean-input gate (gate.json) would hand a clean "
        "pair to the teacher's classical rule",
    )
    p.add_argument(
        "--no-mirror",
        action="store_true",
        default=None,
        help="run the model once: skip the second pass on the left-right mirrored inputs whose fusion is "
        "averaged with the first (about half the model's time, slightly lower quality)",
    )
    p.add_argument(
        "--no-pick",
        action="store_true",
        default=None,
        help="keep the model's own fine detail: skip the pick of the teacher's classical rule's detail "
        "where it is stronger (allfuse.pick)",
    )
    p.add_argument(
        "--no-washout",
        action="store_true",
        default=None,
        help="infrared + visible: keep the fusion's own fine detail where the visible image is near white "
        "instead of moving it toward the infrared image's (allfuse.washout)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="where the model runs: cpu (default), cuda, cuda:1, mps, ...",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="refuse larger inputs, checked before decoding (default: $ALLFUSE_MAX_PIXELS or 100000000; "
        "0 = no limit)",
    )
    p.add_argument("--bits", type=int, default=8, choices=[8, 16], help="PNG bit depth")
    p.set_defaults(func=cmd_fuse)


# --------------------------------------------------------------------------------------------- checks


def check_fuse_args(args: argparse.Namespace) -> None:
    """Every check that needs neither the images nor the model; resolves args.max_pixels."""
    from allfuse.pipeline import MIN_TILE, check_prompt, check_work_side
    from allfuse.tiled import check_tile_pixels

    if args.method and args.model:
        raise CliError("give --model or --method, not both")
    if args.data is not None and args.images:
        raise CliError("give either images or --data, not both")
    if args.skip_existing and args.data is None:
        raise CliError("--skip-existing resumes a batch: give it with --data")
    if args.images and len(args.images) < 2:
        raise CliError("fuse needs at least two images (or none, for the demo pair)")
    if args.steps is not None and args.steps < 1:
        raise CliError(f"--steps {args.steps}: give at least 1 sampler step")
    if args.tile is not None and args.tile != 0 and args.tile < MIN_TILE:
        raise CliError(
            f"--tile {args.tile}: give a window of at least {MIN_TILE} latents, or 0 = the whole image"
        )
    try:
        check_work_side(args.work_side, full_size_ok=True)
    except ValueError:
        raise CliError(
            f"--work-side {args.work_side}: give a long side of at least 16 px, or 0 = full size"
        ) from None
    try:
        check_tile_pixels(args.tile_pixels)
    except ValueError as e:
        raise CliError(f"--{e}".replace("tile_pixels", "tile-pixels", 1)) from None
    args.max_pixels = check_device_and_pixels(args)
    if args.prompt is not None:
        if args.method:
            raise CliError("--prompt needs a model (--model); classical methods take no instructions")
        try:
            check_prompt(args.prompt)
        except ValueError as e:
            raise CliError(f"--prompt {args.prompt!r}: {e}") from None


def check_output_file(out: Path, inputs: Sequence[Path]) -> None:
    """-o must name a .png file (not a folder, not an input) in a folder this process can write."""
    if out.is_dir():
        raise CliError(f"-o {out}: is a folder; give a file name such as {out / 'fused.png'}")
    if out.suffix.lower() != ".png":
        raise CliError(f"-o {out}: the output must be a .png file")
    if any(p.resolve() == out.resolve() for p in inputs):
        raise CliError(f"-o {out}: the output would overwrite an input image")
    check_writable_folder(out.parent, f"-o {out}")


def check_writable_folder(folder: Path, label: str) -> None:
    """The folder, or the nearest existing folder it would be created in, must be writable."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CliError(f"{label}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"{label}: the folder {existing} is not writable")


# --------------------------------------------------------------------------------------------- fusers

Fuser = Callable[[list[np.ndarray], str], tuple[np.ndarray, str]]
MODEL_ONLY = (
    ("--steps", "steps"),
    ("--sampler", "sampler"),
    ("--cfg-text", "cfg_text"),
    ("--cfg-image", "cfg_image"),
    ("--tile", "tile"),
    ("--work-side", "work_side"),
    ("--tile-pixels", "tile_pixels"),
    ("--device", "device"),
    ("--no-deblur", "no_deblur"),
    ("--no-deblock", "no_deblock"),
    ("--no-destripe", "no_destripe"),
    ("--no-exposure", "no_exposure"),
    ("--no-denoise", "no_denoise"),
    ("--no-correct", "no_correct"),
    ("--no-gate", "no_gate"),
    ("--no-mirror", "no_mirror"),
    ("--no-pick", "no_pick"),
    ("--no-washout", "no_washout"),
)


def make_fuser(args: argparse.Namespace) -> Fuser:
    """(images, task) -> (fused, label): a model (--model, else the embedded default) or a classical
    method (--method, or the best classical one for the task when no model is installed)."""
    from allfuse.model_folder import EMBEDDED, resolve_model_folder

    model = args.model
    if model is None and args.method is None:
        try:
            resolve_model_folder(EMBEDDED[0])
            model = EMBEDDED[0]
        except FileNotFoundError:
            model = None  # no trained default installed: the best classical method
    return _model_fuser(args, model) if model is not None else _classical_fuser(args)


def _model_fuser(args: argparse.Namespace, model: str) -> Fuser:
    """Check the sampler flags against the model folder's config.json, then load the model."""
    from allfuse.config import override
    from allfuse.joint_pipeline import check_joint_request
    from allfuse.model_folder import read_model_config, resolve_model_folder
    from allfuse.pipeline import FusionPipeline, check_prompt, check_tags

    try:
        cfg = read_model_config(resolve_model_folder(model))
        if cfg.arch == "joint":  # what the prompt asks, read and checked before the model loads
            scales = (args.cfg_text, args.cfg_image)
            check_joint_request(args.prompt, cfg.tags, model, args.sampler, *scales)
        else:
            check_tags(check_prompt(args.prompt), cfg.tags, model)
    except (OSError, ValueError) as e:  # "cfg_text 2: ..." -> "--cfg-text 2: ..."
        raise CliError(re.sub(r"^(cfg_text|cfg_image|sampler) ", _flag, str(e))) from None
    given = [flag for flag, key in MODEL_ONLY[:2] if getattr(args, key) is not None]
    if given and not cfg.flow:
        raise CliError(
            f"{' and '.join(given)}: {model} is a regression model (one forward pass, no sampler); "
            "steps and samplers apply to flow-matching models such as allfuse-fm"
        )
    guidance = [flag for flag, key in MODEL_ONLY[2:4] if getattr(args, key) is not None]
    if guidance and cfg.arch != "joint":
        raise CliError(
            f"{' and '.join(guidance)}: {model} has no classifier-free guidance; "
            "guidance scales apply to JointDiT (DiTFuse) models"
        )
    for flag, key, stage in (
        ("--no-deblur", "no_deblur", "deblurring stage"),
        ("--no-deblock", "no_deblock", "JPEG deblocking stage"),
        ("--no-destripe", "no_destripe", "stripe-removal stage"),
        ("--no-exposure", "no_exposure", "exposure stage"),
        ("--no-denoise", "no_denoise", "denoising stage"),
        ("--no-correct", "no_correct", "input corrector"),
        ("--no-gate", "no_gate", "gate"),
        ("--no-mirror", "no_mirror", "mirrored pass"),
        ("--no-pick", "no_pick", "detail pick"),
        ("--no-washout", "no_washout", "washed-out visible step"),
    ):
        if getattr(args, key) and cfg.arch == "joint":
            raise CliError(f"{flag}: {model} has no {stage} (allfuse-reg and allfuse-fm have one)")
    changes = {k: v for k, v in (("steps", args.steps), ("method", args.sampler)) if v is not None}
    try:
        override(cfg.sampler, **changes)
    except ValueError as e:
        raise CliError(f"--sampler {args.sampler}: {e}") from None
    try:
        pipe = FusionPipeline.from_pretrained(model, device=args.device)
    except (OSError, ValueError) as e:
        raise CliError(str(e)) from None
    shown: set[str] = set()

    def run_model(images: list[np.ndarray], task: str) -> tuple[np.ndarray, str]:
        if args.verbose and task not in shown:  # once per task (a batch may hold several)
            shown.add(task)
            print(f"prompt ({task}): {pipe.understand(args.prompt, task).describe()}")  # type: ignore[arg-type]
        deblock = not args.no_deblock
        if args.verbose and cfg.arch != "joint" and not args.no_denoise:
            line = impulse_line(pipe, images, task)
            if line:
                print(line)
        if args.verbose and cfg.arch != "joint" and deblock:
            line = deblock_line(pipe, images, task, not args.no_denoise)
            if line:
                print(line)
        if args.verbose and cfg.arch != "joint" and not args.no_destripe:
            line = destripe_line(pipe, images, task, deblock, not args.no_denoise)
            if line:
                print(line)
        if args.verbose and cfg.arch != "joint" and not args.no_denoise:
            line = denoise_line(pipe, images, task, not args.no_destripe, deblock, not args.no_exposure)
            if line:
                print(line)
        if args.verbose and cfg.arch != "joint" and not args.no_exposure:
            line = exposure_line(pipe, images, task, not args.no_destripe, not args.no_denoise, deblock)
            if line:
                print(line)
        if args.verbose and cfg.arch != "joint" and not args.no_deblur:
            before = (not args.no_destripe, not args.no_exposure, not args.no_denoise, deblock)
            line = deblur_line(pipe, images, task, *before)
            if line:
                print(line)
        correct = not args.no_correct
        stages = (
            not args.no_deblur,
            not args.no_destripe,
            not args.no_exposure,
            not args.no_denoise,
            deblock,
        )
        if args.verbose and cfg.arch != "joint" and correct:
            line = corrector_line(pipe, images, task, *stages)
            if line:
                print(line)
        if args.verbose and cfg.arch != "joint" and not args.no_gate:
            print(gate_line(pipe, images, task, *stages, mirror=not args.no_mirror, correct=correct))
        if args.verbose and cfg.arch != "joint" and not args.no_pick:
            line = pick_line(pipe, images, task, *stages, gate=not args.no_gate, correct=correct)
            if line:
                print(line)
        if args.verbose and cfg.arch != "joint" and not args.no_washout:
            line = washout_line(pipe, images, task, *stages)  # the corrector does not run for vif
            if line:
                print(line)
        if args.verbose and cfg.arch != "joint":
            line = guard_line(pipe, images, task, *stages, correct=correct)
            if line:
                print(line)
        joint = {"cfg_text": args.cfg_text, "cfg_image": args.cfg_image}
        extra = (
            joint
            if cfg.arch == "joint"
            else {
                "deblur": not args.no_deblur,
                "destripe": not args.no_destripe,
                "exposure": not args.no_exposure,
                "denoise": not args.no_denoise,
                "deblock": deblock,
                "correct": correct,
                "gate": not args.no_gate,
                "mirror": not args.no_mirror,
                "pick": not args.no_pick,
                "washout": not args.no_washout,
            }
        )
        out = pipe(
            images,
            prompt=args.prompt,
            task=task,
            steps=args.steps,
            sampler=args.sampler,
            seed=args.seed,
            tile=args.tile,
            work_side=args.work_side,
            tile_pixels=args.tile_pixels,
            **extra,
        )
        return out, model

    return run_model


def impulse_line(pipe, images: list[np.ndarray], task: str) -> str:
    """`-v`'s account of the impulse-noise stage for one set of inputs ("" when it does not run)."""
    from allfuse.impulse import impulse_fraction

    checked, _, task = pipe.prepare(images, task)
    cfg = pipe.impulse
    if cfg is None or task not in cfg.tasks:
        return ""
    fractions = [impulse_fraction(x, cfg.detect) for x in checked]  # the stage's measure, without filtering
    parts = [
        f"input {i + 1}: {f:.2%} of values isolated, "
        + ("replaced by their median" if f >= cfg.fire else "kept")
        for i, f in enumerate(fractions)
    ]
    return f"impulse noise ({task}, from {cfg.fire:.2%}): " + "; ".join(parts)


def impulse_first(pipe, images: list[np.ndarray], task: str, denoise: bool) -> list[np.ndarray]:
    """Checked inputs through the impulse-noise stage, the first of all, when it runs (`denoise`)."""
    from allfuse.impulse import impulse_inputs

    if not denoise or pipe.impulse is None:
        return images
    return impulse_inputs(images, task, pipe.impulse)[0]


def deblock_line(pipe, images: list[np.ndarray], task: str, denoise: bool = True) -> str:
    """`-v`'s account of the JPEG deblocking stage for one set of inputs ("" when it does not run): each
    input's JPEG quality, or the pixel blocks it is made of (allfuse.depixel)."""
    from allfuse.deblock import jpeg_quality, pixel_grids

    checked, _, task = pipe.prepare(images, task)
    cfg = pipe.deblock
    if cfg is None or task not in cfg.all_tasks:
        return ""
    checked = impulse_first(pipe, checked, task, denoise)  # the stage before this one
    parts = []
    for i, (x, grid) in enumerate(zip(checked, pixel_grids(checked, task, cfg), strict=True)):
        if grid is not None:
            size = f"{grid[0].period:.2f} x {grid[1].period:.2f} px"
            parts.append(
                f"input {i + 1}: pixel blocks of {size} (enlarged by nearest neighbour), re-interpolated"
            )
            continue
        if task not in cfg.tasks:
            parts.append(f"input {i + 1}: no pixel blocks found")
            continue
        quality, fit = jpeg_quality(x)
        if fit < cfg.min_fit:
            parts.append(f"input {i + 1}: no JPEG blocks found")
        else:
            done = "deblocked" if quality <= cfg.max_quality else f"kept (above {cfg.max_quality})"
            parts.append(f"input {i + 1}: JPEG quality {quality}, {done}")
    return f"JPEG deblocking ({task}): " + "; ".join(parts)


def destripe_line(
    pipe, images: list[np.ndarray], task: str, deblock: bool = True, denoise: bool = True
) -> str:
    """`-v`'s account of the stripe-removal stage for one set of inputs ("" when it does not run)."""
    from allfuse.destripe import destripe_image, destripe_targets

    checked, _, task = pipe.prepare(images, task)
    cfg = pipe.destripe
    which = destripe_targets(task, len(checked), cfg) if cfg is not None else []
    if not which:
        return ""
    # the stages before this one (impulse noise, JPEG deblocking) and none after it
    checked = impulse_first(pipe, checked, task, denoise)
    checked = pipe.restore_inputs(checked, task, False, False, False, False, False, deblock)
    names = {1: "column", 0: "row"}
    found = []
    for i in which:
        axes = destripe_image(checked[i], cfg)[1]
        if axes:
            found.append(f"input {i + 1}: {' and '.join(names[a] for a in axes)} stripes removed")
    return f"stripe removal ({task}): " + ("; ".join(found) if found else "no stripes found")


def denoise_line(
    pipe, images: list[np.ndarray], task: str, destripe: bool, deblock: bool = True, exposure: bool = True
) -> str:
    """`-v`'s account of the denoising stage for one set of inputs ("" when it does not run)."""
    from allfuse.denoise import chroma_noise, denoise_weights, filter_strength, input_noise, rule_weight
    from allfuse.tasks import CLASSICAL_DEFAULT

    checked, _, task = pipe.prepare(images, task)
    cfg = pipe.denoise
    if cfg is None or task not in cfg.tasks:
        return ""
    # the stages before this one (JPEG deblocking, stripe removal)
    checked = pipe.restore_inputs(checked, task, False, False, destripe, False, False, deblock)
    parts = []
    noises = [input_noise(x) for x in checked]
    chromas = [chroma_noise(x) if cfg.chroma else 0.0 for x in checked]
    gained = pipe.stages.gains(checked, task, exposure)  # a task read on colour noise alone skips these
    weights = denoise_weights(checked, task, cfg, gained)
    strength = filter_strength(weights, cfg)  # the pair's (allfuse.denoise, "Strength")
    for i, (noise, chroma, w) in enumerate(zip(noises, chromas, weights, strict=True)):
        colour = f" (colour {chroma:.1f}/255)" if cfg.chroma else ""
        how = "by the learned denoiser" if cfg.method == "net" else f"h = {strength:.2f} sigma"
        done = f"denoised ({w:.0%}, {how})" if w else "kept"
        parts.append(f"input {i + 1} noise {noise:.1f}/255{colour}, {done}")
    limits = f"from {cfg.low:g}/255" + (f", colour noise from {cfg.chroma_low:g}/255" if cfg.chroma else "")
    if task in cfg.chroma_tasks:  # allfuse.denoise, "Colour noise only"
        cut = f"colour noise from {cfg.chroma_low:g} to {cfg.chroma_cut[1]:g}/255"
        limits = cut + ("; the exposure stage brightens this pair: left to the model" if gained else "")
    share = rule_weight(checked, task, cfg)
    if share > 0:  # the stage's rule for a pair whose inputs are all strongly noisy (allfuse.denoise, "Rule")
        parts.append(
            f"every input noisy ({min(noises):.1f}/255, from {cfg.rule_low:g}): where the teacher's rule "
            f"{CLASSICAL_DEFAULT[task]} would fuse, {cfg.rule} does ({share:.0%})"
        )
    return f"denoising ({task}, {limits}): " + "; ".join(parts)


def exposure_line(
    pipe, images: list[np.ndarray], task: str, destripe: bool, denoise: bool = True, deblock: bool = True
) -> str:
    """`-v`'s account of the exposure stage for one set of inputs ("" when it does not run)."""
    from allfuse.exposure import gained_inputs, pair_plan, stretch_factors

    task = pipe.prepare(images, task)[2]
    if pipe.exposure is None or task not in pipe.exposure.tasks:
        return ""
    gain, gamma = pipe.exposure_curve(images, task, destripe, denoise, deblock)
    line = f"exposure ({task}): " + (f"under-exposed, gain {gain:.2f}" if gain > 1 else "no gain")
    line += f"; dark bracket, lifted by x ** {gamma:.2f}" if gamma < 1 else ""
    checked = pipe.prepare(images, task)[0]
    if task in pipe.exposure.stretch_high:
        # the stages before this one (deblocking, stripe removal, denoising) and the gain, none after it
        before = pipe.restore_inputs(checked, task, False, False, destripe, False, denoise, deblock)
        gained = gained_inputs(before, task, pipe.exposure)[0]
        ks = stretch_factors(gained, task, pipe.exposure)
        parts = [f"input {i} x {k:.2f}" for i, k in enumerate(ks, 1) if k > 1]
        flat = "flat pair" if pair_plan(gained, task, pipe.exposure)[1] > 0 else "flat"
        line += f"; {flat}, contrast stretched: {', '.join(parts)}" if parts else "; no flat input"
    bracket = task in pipe.exposure.bracket_high
    hazy = task in pipe.exposure.dehaze_dark
    if task not in pipe.exposure.veil_dark and not bracket and not hazy:
        return line
    # the veil and bracket stretches and the dehazing run after the corrector (allfuse.exposure, "Veil",
    # "Bracket", "Haze left"): every stage up to them
    seen = pipe.stages.restore_gain(checked, task, True, True, destripe, True, denoise, deblock)
    if bracket:
        k = max(seen.unveiled, default=1.0)
        flat = f"; flat bracket, every input's contrast stretched x {k:.2f}"
        line += flat if k > 1 else "; no flat bracket"
    elif task in pipe.exposure.veil_dark:
        parts = [f"input {i} x {k:.2f}" for i, k in enumerate(seen.unveiled, 1) if k > 1]
        line += f"; veiled, contrast stretched: {', '.join(parts)}" if parts else "; no veiled input"
    if hazy:
        parts = [f"input {i} weight {w:.2f}" for i, w in enumerate(seen.dehazed, 1) if w > 0]
        line += f"; haze left, dehazed: {', '.join(parts)}" if parts else "; no haze left"
    return line


def deblur_line(
    pipe,
    images: list[np.ndarray],
    task: str,
    destripe: bool,
    exposure: bool,
    denoise: bool,
    deblock: bool = True,
) -> str:
    """`-v`'s account of the deblurring stage for one set of inputs ("" when it does not run): the pair's
    edge width and the Gaussian PSF it deconvolves by (allfuse.deblur), or why it keeps the inputs; for a
    task whose inputs are deblurred one by one (`per_input`), each input's."""
    from allfuse.deblock import deblock_choices
    from allfuse.deblur import edge_width, input_psfs, kernel_size, min_widths, pair_psf

    checked, _, task = pipe.prepare(images, task)
    cfg = pipe.deblur
    if cfg is None or task not in cfg.tasks:
        return ""
    # the stages before this one (deblocking, stripe removal, denoising, the exposure stage), none after it
    before = pipe.restore_inputs(checked, task, False, False, destripe, exposure, denoise, deblock)
    coded = [False] * len(checked)
    if deblock and pipe.deblock is not None:
        coded = [q > 0 for q in deblock_choices(checked, task, pipe.deblock)]
    head = f"deblurring ({task}): "

    def kernel(psf) -> int | None:  # the blind kernel's side, where one replaces the Gaussian
        return kernel_size(psf, cfg) if task in cfg.kernel_tasks else None

    if task in cfg.per_input:
        parts = [
            f"input {i}: " + psf_words(edge_width(x), psf, cfg.solo_width, kernel(psf))
            for i, (x, psf) in enumerate(zip(before, input_psfs(before, cfg, task, coded), strict=True), 1)
        ]
        return head + "; ".join(parts)
    limits = min_widths(cfg, len(before), task, coded)
    widths = [(w, t) for w, t in zip((edge_width(x) for x in before), limits, strict=True) if w is not None]
    width, limit = min(widths) if widths else (None, cfg.min_width)
    psf = pair_psf(before, cfg, task, coded)
    return head + psf_words(width, psf, limit, kernel(psf))


def psf_words(width: float | None, psf, limit: float, kernel: int | None = None) -> str:
    """An edge width and what the deblurring stage does with it, in words (deblur_line): the Gaussian PSF
    it deconvolves by, or with `kernel` the side of the kernel it estimates blind instead."""
    from allfuse.deblur import psf_axes

    if width is None:
        return "too few edges to measure, kept"
    head = f"edge width {width:.2f} px"
    if np.ndim(psf) == 0 and not psf:
        return head + f" (below {limit:.2f}), kept"
    if np.ndim(psf) == 0:
        shape = f"round Gaussian, std {float(psf):.2f} px"
    else:
        major, minor, degrees = psf_axes(psf)
        shape = f"elliptic Gaussian, std {major:.2f} x {minor:.2f} px, long axis {degrees:.0f} deg clockwise"
        shape += " from horizontal"
    if kernel:
        article = "an" if shape.startswith("elliptic") else "a"
        fit = f"the edges fit {article} {shape}"
        return head + f", deconvolved by a kernel estimated blind, {kernel} x {kernel} px ({fit})"
    return head + f", deconvolved ({shape})"


def pick_line(
    pipe,
    images: list[np.ndarray],
    task: str,
    deblur: bool,
    destripe: bool,
    exposure: bool,
    denoise: bool = True,
    deblock: bool = True,
    gate: bool = True,
    correct: bool = True,
) -> str:
    """`-v`'s account of the detail pick (allfuse.pick) for one set of inputs ("" when the gate hands the
    pair to the rule alone)."""
    from allfuse.gate import pair_noise
    from allfuse.pick import PICK_GAIN, PICK_NOISE

    stages = (deblur, destripe, exposure, denoise, deblock)
    task, _, weight = pipe.gate_choice(images, task, *stages, correct=correct)
    if gate and weight >= 1:
        return ""
    # the exposure stage's gain times its largest stretch factor, as the pipeline hands it to the pick
    seen = pipe.stages.restore_gain(pipe.prepare(images, task)[0], task, deblur, correct, *stages[1:])
    restored, gain = seen.images, seen.gain
    share = pipe.pick_strength(restored, gain)
    low, high = PICK_NOISE
    return (
        f"detail pick ({task}): pair noise {pair_noise(restored):.1f}/255 (full up to {low:g}, none from "
        f"{high:g}), exposure gain {gain:.2f} (full up to {PICK_GAIN[0]:g}, none from {PICK_GAIN[1]:g}): "
        f"takes {share:.0%} of the rule {pipe.rule_label(seen.rule_weight, task)}'s fine detail where it is "
        "stronger than the model's"
    )


def washout_line(pipe, images: list[np.ndarray], task: str, *stages: bool) -> str:
    """`-v`'s account of the washed-out visible step (allfuse.washout) for an infrared + visible pair (""
    for other tasks); `stages`: the deblurring, stripe-removal, exposure, denoising and deblocking flags,
    as guard_line takes them."""
    from allfuse.exposure import dark_floor
    from allfuse.washout import BRIGHT, FLOOR, washed_level, washed_share

    images, _, task = pipe.prepare(images, task)
    if task != "vif" or len(images) != 2:
        return ""
    seen = pipe.stages.restore_gain(images, task, stages[0], True, *stages[1:])
    visible = seen.images[1]
    weight = washed_level(visible) * pipe.pick_strength(seen.images, seen.gain)
    floor = dark_floor(visible)
    return (
        f"washed-out visible (vif): the visible image's dark-channel floor {floor:.2f} (none up "
        f"to {FLOOR[0]:g}, full from {FLOOR[1]:g}), {washed_share(visible):.0%} of it near white (luminance "
        f"{BRIGHT[0]:g} to {BRIGHT[1]:g}): takes {weight:.0%} of the infrared image's fine detail there, "
        "where it has its own"
    )


def guard_line(
    pipe,
    images: list[np.ndarray],
    task: str,
    deblur: bool,
    destripe: bool,
    exposure: bool,
    denoise: bool = True,
    deblock: bool = True,
    correct: bool = True,
) -> str:
    """`-v`'s account of the refiner's noise guard for one set of inputs ("" without a guard for the task)."""
    from allfuse.denoise import pair_chroma_noise
    from allfuse.gate import pair_noise
    from allfuse.model_folder import check_noise_guard

    task = pipe.prepare(images, task)[2]
    if task not in pipe.noise_guard or pipe.refiner is None:
        return ""
    restored = pipe.gate_inputs(images, task, deblur, destripe, exposure, denoise, deblock, correct)
    low, high, floor, chroma_low, chroma_high = check_noise_guard(pipe.noise_guard)[task]
    share = pipe.refiner_weight(restored, task)
    least = f" (at least {floor:.0%})" if floor else ""
    chroma = ""
    if chroma_high:
        chroma = f", colour {pair_chroma_noise(restored):.1f}/255 (guard {chroma_low:g}-{chroma_high:g}/255)"
    return (
        f"refiner ({task}): pair noise {pair_noise(restored):.1f}/255, noise guard {low:g}-{high:g}/255"
        f"{chroma}{least}: keeps {share:.0%} of its change"
    )


def corrector_line(pipe, images: list[np.ndarray], task: str, *stages: bool) -> str:
    """`-v`'s account of the input corrector (allfuse.models.correct) for one set of inputs: how much it and
    the exposure stage's steps after it change each input, on average ("" when it does not run);
    `stages`: the deblurring, stripe-removal, exposure, denoising and deblocking flags, as guard_line takes
    them."""
    task = pipe.prepare(images, task)[2]
    if pipe.corrector is None or task not in pipe.corrector.cfg.tasks:
        return ""
    on, off = (pipe.gate_inputs(images, task, *stages, correct=c) for c in (True, False))
    changes = [255.0 * float(np.mean(np.asarray(a) - np.asarray(b))) for a, b in zip(on, off, strict=True)]
    each = ", ".join(f"input {i} {c:+.1f}/255" for i, c in enumerate(changes, 1))
    hint = ""
    if max(abs(c) for c in changes) >= 1.0:  # a change a clear input would not need
        hint = " (a clear scene without dark pixels can read as veiled: --no-correct keeps it)"
    return f"input corrector ({task}): mean change {each}{hint}"


def gate_line(
    pipe,
    images: list[np.ndarray],
    task: str,
    deblur: bool,
    destripe: bool = True,
    exposure: bool = True,
    denoise: bool = True,
    deblock: bool = True,
    mirror: bool = False,
    correct: bool = True,
) -> str:
    """`-v`'s account of the clean-input gate's choice for one set of inputs (and, where the model fuses,
    whether its latent path also runs on the mirrored inputs: allfuse.pipeline.MIRROR)."""
    from allfuse.pipeline import REPAIRED_JPEG, gate_override

    task, p, weight = pipe.gate_choice(images, task, deblur, destripe, exposure, denoise, deblock, correct)
    if p < 0:
        return f"gate ({task}): none, the model fuses"
    checked = pipe.prepare(images, task)[0]
    seen = pipe.stages.restore_gain(checked, task, deblur, correct, destripe, exposure, denoise, deblock)
    limit, rule = pipe.gate.tasks[task].threshold, pipe.rule_label(seen.rule_weight, task)
    head = f"gate ({task}): P(clean) {p:.2f} {'>=' if p >= limit else '<'} {limit:.2f}"
    if weight >= 1:
        return f"{head}: the classical rule {rule} fuses (a clean pair)"
    who = "the model fuses"
    if weight > 0:
        who = f"the model's fusion mixed with {weight:.0%} of the rule {rule}'s"
    else:
        alone = pipe.gate_decision(seen.images, task)[1]  # the gate's own weight, without an override
        reason = gate_override(seen.deblocked, seen.deblurred, alone, seen.corrected)
        if reason == "deblocked":
            who += f" (an input was deblocked, JPEG quality <= {REPAIRED_JPEG}: "
            who += "such a pair is never the rule's)"
        elif reason == "deconvolved":
            who += " (an input was deconvolved: no blend with the rule)"
        elif reason:
            changes = "/".join(f"{c:.1f}" for c in seen.corrected)
            who += f" (the input corrector changed the inputs unevenly, {changes}/255: no blend with the "
            who += "rule)"
    passes = "; its latent path runs on the inputs and on their mirror image (--no-mirror: once)"
    return f"{head}: {who}{passes if mirror else ''}"


def _flag(m: re.Match) -> str:
    """A keyword argument's name as its command-line flag: cfg_text -> --cfg-text."""
    return "--" + m.group(0).replace("_", "-")


def _classical_fuser(args: argparse.Namespace) -> Fuser:
    """A classical method; flags that only a model understands are refused."""
    from allfuse import baselines
    from allfuse.tasks import CLASSICAL_DEFAULT

    if args.prompt is not None:
        raise CliError("--prompt needs a model (--model); classical methods take no instructions")
    for flag, key in MODEL_ONLY:
        if getattr(args, key) is not None:
            raise CliError(f"{flag} applies to models (--model), not to classical methods")
    if args.method:
        try:
            kind = baselines.get_method(args.method).kind
        except ValueError as e:
            raise CliError(f"--method {args.method}: {e}") from None
        if kind == "restoration":
            raise CliError(f"--method {args.method} restores one image: chain it with a fusion, e.g. nlm+gff")

    def run_classical(images: list[np.ndarray], task: str) -> tuple[np.ndarray, str]:
        method = args.method or CLASSICAL_DEFAULT[task]
        return baselines.fuse(method, images, task), method

    return run_classical


# --------------------------------------------------------------------------------------------- commands


def cmd_fuse(args: argparse.Namespace) -> int:
    """Fuse the given images, or a demo pair synthesized from scikit-image data when none are given."""
    from allfuse.demo import demo_pair
    from allfuse.tasks import guess_task

    check_fuse_args(args)
    if args.data is not None:
        return fuse_folder(args)
    out: Path = args.out or Path("fused.png")
    check_output_file(out, args.images)
    if args.images:  # inputs are checked before the (slow) model load
        images = [read_image(p, max_pixels=args.max_pixels) for p in args.images]
        check_same_size(list(args.images), images)
        task = guess_task(images) if args.task == "auto" else args.task
        fuser = make_fuser(args)
    else:
        task = "mff" if args.task == "auto" else args.task
        images = demo_pair(task)
        fuser = make_fuser(args)
        for i, x in enumerate(images):
            src = out.with_name(f"{out.stem}_demo_input{i + 1}.png")
            _write(src, x, 8)
            print(f"demo input {i + 1}: {src}")
    try:
        fused, method = fuser(images, task)
    except ValueError as e:
        raise CliError(str(e)) from None
    _write(out, fused, args.bits)
    h, w = fused.shape[:2]
    print(f"fused {len(images)} images ({task}, {method}) -> {out} [{w}x{h}]")
    return 0


def _write(path: Path, x: np.ndarray, bits: int) -> None:
    """write_image, with a failure to write as a one-line CliError."""
    try:
        write_image(path, x, bits=bits)  # type: ignore[arg-type]
    except OSError as e:
        raise CliError(f"{path}: cannot write ({e.strerror or e})") from None


def fuse_folder(args: argparse.Namespace) -> int:
    """Batch mode: fuse each pair of a folder into OUT/<stem>.png; report bad pairs and go on."""
    from tqdm import tqdm

    from allfuse.io import remove_stale_temp_files, scan_pairs

    out_dir: Path = args.out or Path("fused")
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"-o {out_dir}: is a file; with --data, -o names the output folder")
    check_writable_folder(out_dir, f"-o {out_dir}")
    scan = scan_pairs(args.data)
    if not scan.pairs and not scan.problems:
        raise CliError(f"--data {args.data}: no pairs to fuse")
    stale = remove_stale_temp_files(out_dir)
    if stale:
        print(f"removed {len(stale)} unfinished file(s) of an interrupted run from {out_dir}")
    todo = [(p, out_dir / f"{p.name}.png") for p in scan.pairs]
    if args.skip_existing:
        todo = [(p, t) for p, t in todo if not t.is_file()]
    skipped = len(scan.pairs) - len(todo)
    fuser = make_fuser(args) if todo else None  # nothing to do: no model load
    failed = []
    for pair, target in tqdm(todo, desc="fuse", unit="pair"):
        problem = _fuse_pair(pair, target, fuser, args)  # type: ignore[arg-type]
        if problem:
            failed.append(problem)
    for problem in [*scan.problems, *failed]:
        print(f"problem: {problem}", file=sys.stderr)
    summary = [f"fused {len(todo) - len(failed)} of {len(scan.pairs)} pairs -> {out_dir}"]
    summary += [f"{skipped} skipped (already fused)"] if skipped else []
    summary += [f"{len(failed)} failed"] if failed else []
    summary += [f"{len(scan.problems)} file(s) without a partner"] if scan.problems else []
    print("; ".join(summary))
    return 1 if failed or scan.problems else 0


def _fuse_pair(pair: Pair, target: Path, fuser: Fuser, args: argparse.Namespace) -> str | None:
    """Fuse one pair into `target`; its problem as one line, or None."""
    from allfuse.tasks import guess_task

    if any(target.resolve() == s.resolve() for s in pair.sources):
        return f"{target}: output would overwrite an input image"
    try:
        images = [read_image(p, max_pixels=args.max_pixels) for p in pair.sources]
        check_same_size(list(pair.sources), images)
        task = (pair.task or guess_task(images)) if args.task == "auto" else args.task
        fused, _ = fuser(images, task)
        write_image(target, fused, bits=args.bits)
    except (ImageError, ValueError) as e:
        return str(e)
    except OSError as e:
        return f"{target}: cannot write ({e.strerror or e})"
    except Exception as e:  # one pair must never end the batch
        return f"{pair.sources[0]}: fusion failed ({type(e).__name__}: {e})"
    return None


def check_device_and_pixels(args: argparse.Namespace) -> int:
    """Check --device and --max-pixels (fuse, serve) before any model loads; returns the pixel limit in
    force (a bad $ALLFUSE_MAX_PIXELS is an ImageError)."""
    from allfuse.devices import parse_device

    if args.device is not None:
        try:
            parse_device(args.device)
        except ValueError as e:
            raise CliError(f"--{e}") from None
    if args.max_pixels is not None and args.max_pixels < 0:
        raise CliError(f"--max-pixels {args.max_pixels}: give a number of pixels >= 0 (0 = no limit)")
    return max_pixels_limit(args.max_pixels)
