"""FusionDiT cost on this machine: parameters, GFLOPs and forward latency per image, fp32 vs bf16 autocast.

Sizes are image sizes (latent = image / 8, two condition latents, a 32-token prompt, one flow step).
Achieved GFLOP/s is printed next to the measured matmul peak. Run: python bench/model.py [--presets ...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from allfuse.models import build_model
from allfuse.models.dit import FusionDiT
from allfuse.models.layers import Attention


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Measured GFLOP/s of an n x n x n matmul in dtype (best of reps)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    """Wall seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def make_inputs(model: FusionDiT, image: int) -> dict:
    """Random latents for one image of side `image` (latent side image / 8) and a 32-token prompt."""
    cfg, s = model.cfg, image // 8
    return dict(
        conds=[torch.randn(1, cfg.latent_channels, s, s) for _ in range(2)],
        prompt=torch.randn(1, 32, cfg.text_dim),
        x=torch.randn(1, cfg.latent_channels, s, s),
        t=torch.rand(1),
    )


def count_gflops(model: FusionDiT, inputs: dict) -> float:
    """FLOPs of one forward: FlopCounterMode, plus SDPA (not counted on CPU) as 4 S^2 d per attention."""
    seqs: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, args, _out: seqs.append(args[0].shape[1]))
        for m in model.modules()
        if isinstance(m, Attention)
    ]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(**inputs)
    for h in hooks:
        h.remove()
    attn = sum(4 * s * s * model.cfg.hidden for s in seqs)
    return (counter.get_total_flops() + attn) / 1e9


def forward_ms(model: FusionDiT, inputs: dict, bf16: bool, reps: int) -> float:
    """Best-of-reps forward latency in milliseconds (one warm-up call first)."""
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        model(**inputs)
        return 1e3 * min(_timed(lambda: model(**inputs)) for _ in range(reps))


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # Other processes share this CPU: the load average says how much the latencies below can be trusted.
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    threads = torch.get_num_threads()
    print(f"threads {threads}  matmul peak: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s")
    head = "preset  image  tokens  GFLOPs   fp32 ms  GFLOP/s (%peak)   bf16 ms  GFLOP/s (%peak)"
    for name in args.presets:
        model = build_model(name).eval()
        total, active = model.num_params()
        print(f"\n{name}: {total / 1e6:.1f}M parameters, {active / 1e6:.1f}M active per token\n{head}")
        for image in args.sizes:
            inputs = make_inputs(model, image)
            gf = count_gflops(model, inputs)
            reps = 3 if image <= 512 else 1
            row = f"{name:6s} {image:5d} {(image // 16) ** 2:7d} {gf:7.1f}"
            for bf16, peak in ((False, peak32), (True, peak16)):
                ms = forward_ms(model, inputs, bf16, reps)
                rate = gf / (ms / 1e3)
                row += f"  {ms:8.1f}  {rate:6.1f} ({100 * rate / peak:3.0f}%)"
            print(row, flush=True)


if __name__ == "__main__":
    main()
