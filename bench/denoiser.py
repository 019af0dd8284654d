"""The learned denoiser against non-local means on images it never saw: PSNR to the clean image, and time.

    OMP_NUM_THREADS=1 python bench/denoiser.py [--model allfuse-reg] [--pairs 4] [--max-side 512]
        [--data ../shared/data] [--out bench/results/denoiser.md]

Images: every input of the first --pairs validation pairs of each task (splits.json "val", never trained
on), long side capped at --max-side. Each is degraded alone by the bench's `noise` and `low_light` families
(bench/degrade.py, written apart from the denoiser's training noise, allfuse.train.denoiser) at both
strengths. Against the clean image (for low light: the darkened image without its noise, as the denoiser
removes noise and the exposure stage sets the brightness), PSNR of the noisy input, of non-local means at
the strengths the model's denoise.json gives one noisy input (`strength`) and a noisy pair
(`pair_strength`), and of the model folder's learned denoiser (allfuse.denoise.denoise_net_images).
Seconds per image: one thread unless OMP_NUM_THREADS says otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import degrade
import numpy as np
from cases import SHARED, validation_pairs
from machine import command_line, emit, machine_line

from allfuse.denoise import denoise_images, denoise_net_images
from allfuse.model_folder import load_denoise, load_denoiser, resolve_model_folder

CELLS = [(f, s) for f in ("noise", "low_light") for s in degrade.STRENGTHS]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def clean_target(x: np.ndarray, family: str, params: dict) -> np.ndarray:
    """What a denoiser should return: the image, or for low light the darkened image without its noise."""
    if family == "noise":
        return x
    return np.clip(x**degrade.GAMMA * params["gain"], 0.0, 1.0) ** (1.0 / degrade.GAMMA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="allfuse-reg")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--max-side", type=int, default=512)
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    folder = resolve_model_folder(args.model)
    cfg, net = load_denoise(folder), load_denoiser(folder)
    if cfg is None or net is None:
        raise SystemExit(f"{args.model}: needs denoise.json and a learned denoiser (denoiser.safetensors)")
    methods = [f"nlm h={cfg.strength:g}", f"nlm h={cfg.pair_strength:g}", "learned"]
    lines = [
        "# Learned denoiser vs non-local means",
        "",
        "    " + command_line("bench/denoiser.py"),
        "",
        machine_line() + f" Model folder: {args.model}.",
        "",
        "PSNR (dB) to the clean image; s: seconds per image.",
        "",
        "| task | family | strength | images | input | " + " | ".join(methods) + " | s nlm | s learned |",
        "|---|---|---|---:|---:|" + "---:|" * len(methods) + "---:|---:|",
    ]
    t_start = time.time()
    for task in ("vif", "mef", "mff"):
        pairs = validation_pairs(args.data, task, args.pairs, args.max_side)
        for family, strength in CELLS:
            rows, secs = [], []
            draw, apply = degrade.SPECS[family]
            for pair in pairs:
                for j, x in enumerate(pair.images):
                    rng = np.random.default_rng(degrade.seed_for(pair.name, family, strength, str(j)))
                    params = draw(strength, rng, [x])
                    y = apply(x, params, rng).astype(np.float32)
                    ref = clean_target(x, family, params)
                    t0 = time.perf_counter()
                    nlm = denoise_images([y, y], strengths=[cfg.strength, cfg.pair_strength])
                    t1 = time.perf_counter()
                    learned = denoise_net_images(net, [y])[0]
                    t2 = time.perf_counter()
                    rows.append([psnr(v, ref) for v in (y, *nlm, learned)])
                    secs.append(((t1 - t0) / 2, t2 - t1))
            m, s = np.mean(rows, axis=0), np.mean(secs, axis=0)
            cells = " | ".join(f"{v:.2f}" for v in (*m, *s))
            lines.append(f"| {task} | {family} | {strength} | {len(rows)} | {cells} |")
            print(lines[-1], flush=True)
    lines += ["", f"_{time.time() - t_start:.0f} s_"]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
