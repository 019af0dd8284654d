"""Reconstruction quality and speed of the tokenizers, like MMAIF Tab. 1.

    python bench/tokenizer.py [--ours PATH] [--taef2 DIR] [--data ../shared/data] [--json out.json]
        [--out bench/results/tokenizer.md]

Crops: the centre 256x256 of every held-out colour image that is at least 256 px on both sides (the
validation pairs of shared/data/splits.json, which no training run reads, plus scikit-image's astronaut,
chelsea, coffee, rocket and motorcycle_left; see allfuse/tokenizer/data.py). PSNR and SSIM are computed in
float on [0, 1] RGB (SSIM: Gaussian 11x11, sigma 1.5, per channel, averaged), reconstructions clipped to [0,
1]. Speed: wall seconds of encode + decode over all crops (batches of 8), divided by their megapixels, after
one warm-up batch; it depends on the load of this shared CPU, so it is a figure, never a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from machine import machine_line

from allfuse.ops import ssim
from allfuse.tokenizer import load_tokenizer
from allfuse.tokenizer.data import heldout_crops
from allfuse.tokenizer.losses import psnr

REPO = Path(__file__).resolve().parents[1]


def n_params(tok) -> int:
    """Parameter count of a tokenizer's networks (0 for the identity)."""
    mods = [getattr(tok, a) for a in ("model", "encoder", "decoder", "vae") if hasattr(tok, a)]
    return sum(p.numel() for m in mods if isinstance(m, torch.nn.Module) for p in m.parameters())


def score(tok, crops: torch.Tensor, batch: int = 8) -> dict:
    """PSNR, SSIM and encode+decode seconds per megapixel of one tokenizer on the crops."""
    tok.decode(tok.encode(crops[:batch]))  # warm-up (kernel selection)
    ps, ss, seconds = [], [], 0.0
    for i in range(0, len(crops), batch):
        x = crops[i : i + batch]
        t = time.perf_counter()
        y = tok.decode(tok.encode(x), size=x.shape[-2:])
        seconds += time.perf_counter() - t
        ps.append(psnr(y, x))
        ss.append(ssim(y, x))
    mpix = crops.shape[0] * crops.shape[-1] * crops.shape[-2] / 1e6
    return {
        "psnr": torch.cat(ps).mean().item(),
        "ssim": torch.cat(ss).mean().item(),
        "s_per_mp": seconds / mpix,
        "params": n_params(tok),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", default="default", help="our tokenizer: 'default' or a .safetensors path")
    ap.add_argument("--taef2", type=Path, default=REPO.parent / "shared" / "weights")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names, crops = heldout_crops(args.data if args.data.is_dir() else None, 256)
    print(f"{len(names)} held-out 256x256 crops ({crops.shape[0] * 256 * 256 / 1e6:.2f} MP), "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    rows = []
    candidates = [("ours (KL-VAE)", args.ours, "bf16"), ("ours (KL-VAE)", args.ours, "fp32")]
    if (args.taef2 / "taef2_encoder.pth").is_file():
        candidates += [("TAEF2", args.taef2, "fp32"), ("TAEF2", args.taef2, "bf16")]
    candidates.append(("pixel-unshuffle", "pixel-unshuffle", "fp32"))
    for label, where, precision in candidates:
        tok = load_tokenizer(where, precision=precision)  # type: ignore[arg-type]
        r = {"tokenizer": label, "precision": precision, "f": tok.downsample, "z": tok.channels}
        rows.append({**r, **score(tok, crops)})
    lines = [
        f"| {'tokenizer':<16} | prec | f | z   | PSNR (dB) | SSIM   | enc+dec s/MP | params |",
        "|------------------|------|---|-----|-----------|--------|--------------|--------|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tokenizer']:<16} | {r['precision']} | {r['f']} | {r['z']:<3} | {r['psnr']:9.2f} "
            f"| {r['ssim']:.4f} | {r['s_per_mp']:12.3f} | {r['params'] / 1e6:5.2f}M |"
        )
    print("\n".join(lines))
    if args.out:
        command = "python bench/tokenizer.py " + " ".join(sys.argv[1:])
        head = [machine_line(), f"Command: `{command}`.", f"{len(names)} held-out 256x256 crops.", ""]
        args.out.write_text("\n".join(head + lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"crops": names, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
