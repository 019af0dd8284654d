"""Seconds per 512x512 image of the joint-sequence DiT (DiTFuse, allfuse.models.joint), with and without
the condition KV cache.

    python bench/ditfuse.py [--steps 8] [--size 512] [--repeats 2] [--preset tiny]
        [--model allfuse-ditfuse] [--out bench/results/ditfuse.md]

(prefix OMP_NUM_THREADS=1 for one core).

What runs: the `tiny` preset with random weights (cost does not depend on the values) under bf16 autocast on
the CPU, two input images and a 20-token prompt; a 512² image is a 64x64 latent (f=8), 32x32 = 1024 tokens
per image with patch 2. Euler from noise for --steps steps, without guidance (one branch) and with DiTFuse's
three-branch guidance (text 2.0, image 1.6, one batched forward per step). "cache" encodes text + inputs
once and runs only timestep + target tokens per step; "no cache" runs the whole sequence every step. The DiT
alone: tokenizer encode/decode and the text encoder are not included; the end-to-end rows that follow run a
trained model's whole pipeline (--model, '' skips them) on the demo pair at --size. Best of --repeats after
a warm-up; the figures depend on the load of this shared CPU, so they are figures, never tests. DiTFuse
reports 53.5 s per image on a GPU (its Tab. of costs, 3.8B parameters, 50 steps x 3 branches).
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

from allfuse.flow import randn_like
from allfuse.models.joint import JOINT_PRESETS, JointDiT
from allfuse.sampling.joint import joint_velocity_fn
from allfuse.sampling.solvers import euler

PROMPT_TOKENS = 20
GUIDANCE = (2.0, 1.6)  # DiTFuse's public code: text 2.0, image 1.6


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def random_model(preset: str) -> JointDiT:
    """The preset with every zero-initialised tensor drawn at random (gates open, a non-trivial output)."""
    torch.manual_seed(0)
    model = JointDiT(JOINT_PRESETS[preset]).eval()
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    return model


def end_to_end(model: str, size: int, repeats: int) -> list[str]:
    """Seconds per image of a trained model's whole pipeline (prompt reading, text encoder, tokenizer,
    DiT with its default sampler and guidance, decoder) on the demo pair resized to size x size."""
    from allfuse import FusionPipeline
    from allfuse.demo import demo_pair

    pipe = FusionPipeline.from_pretrained(model)
    pair = [np.clip(cv2.resize(x, (size, size), interpolation=cv2.INTER_CUBIC), 0, 1) for x in demo_pair()]
    lines = [f"End to end, `{model}` (its default steps and guidance), the demo pair at {size}²:", ""]
    lines += ["| prompt | s/img |", "|---|---:|"]
    for prompt in ("[FUSION] multi-focus fusion", "[CONTROL] <LIGHT+> make it brighter"):
        seconds = best_time(lambda p=prompt: pipe(pair, prompt=p, task="mff"), repeats)
        lines.append(f"| `{prompt}` | {seconds:.2f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    """Print (and with --out write) one row per guidance setting: seconds with and without the cache."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=512, help="image side in pixels (latent side = size / 8)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--preset", default="tiny", choices=sorted(JOINT_PRESETS))
    ap.add_argument("--model", default="allfuse-ditfuse", help="end-to-end row for this model ('' skips it)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    model = random_model(args.preset)
    side = args.size // 8
    g = torch.Generator().manual_seed(0)
    conds = [torch.randn(1, model.cfg.latent_channels, side, side, generator=g) for _ in range(2)]
    text = torch.randn(1, PROMPT_TOKENS, model.cfg.text_dim, generator=g)
    mask = torch.ones(1, PROMPT_TOKENS, dtype=torch.bool)
    n_img = (side // model.cfg.patch_size) ** 2
    total = 1 + PROMPT_TOKENS + 2 * (n_img + 2) + 1 + n_img

    def run(scales: tuple[float, float], cache: bool) -> Callable[[], object]:
        def fn() -> object:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                v = joint_velocity_fn(model, conds, text, mask, *scales, cache)
                return euler(v, randn_like(conds[0]), args.steps).x

        return fn

    lines = [
        f"JointDiT `{args.preset}` ({model.num_params() / 1e6:.2f}M parameters, random weights), bf16 "
        f"autocast, torch threads {torch.get_num_threads()}; {args.size}² image = {side}x{side} latent, "
        f"{n_img} tokens per image, 2 inputs + {PROMPT_TOKENS}-token prompt: {total} tokens in the sequence, "
        f"{n_img + 1} per cached step. Euler {args.steps} steps, best of {args.repeats} after a warm-up.",
        "",
        "| guidance | branches | no cache s/img | cache s/img | speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for label, scales, branches in (
        ("none", (1.0, 1.0), 1),
        (f"text {GUIDANCE[0]}, image {GUIDANCE[1]}", GUIDANCE, 3),
    ):
        slow = best_time(run(scales, cache=False), args.repeats)
        fast = best_time(run(scales, cache=True), args.repeats)
        row = f"| {label} | {branches} | {slow:.2f} | {fast:.2f} | {slow / fast:.2f}x |"
        lines.append(row)
        print(row, flush=True)
    if args.model:
        lines += ["", *end_to_end(args.model, args.size, args.repeats)]
    if args.out:
        command = "python bench/ditfuse.py " + " ".join(sys.argv[1:])
        args.out.write_text("\n".join([machine_line(), f"Command: `{command}`.", "", *lines]) + "\n")


if __name__ == "__main__":
    main()
