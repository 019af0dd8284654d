"""Write tests/data/reference_outputs.npz: the shipped models' outputs on the demo pairs, float32.

tests/test_reference_outputs.py compares the current code against it (max abs difference <= 1e-6), so a
refactor that changes what a shipped model returns is caught. Run it again ONLY when a shipped model's
weights change on purpose (the file records each model's weights digest; the test says when they differ):

    python tests/make_reference_outputs.py
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from allfuse import FusionPipeline
from allfuse.demo import demo_pair
from allfuse.model_folder import MODELS_DIR

OUT = Path(__file__).parent / "data" / "reference_outputs.npz"
CASES = (("allfuse-reg", "mff"), ("allfuse-fm", "mef"))  # (model, demo pair): one of each kind


def weights_digest(model: str) -> str:
    """sha256 of a shipped model's weight files and fitted stage configs, so the test can tell a moved code
    path from new weights (a new corrector or gate changes the outputs as much as a new DiT)."""
    h = hashlib.sha256()
    weights = tuple(f"{f}.safetensors" for f in ("model", "refiner", "corrector"))
    stages = ("gate.json", "deblock.json", "deblur.json", "denoise.json", "destripe.json", "exposure.json")
    stages += ("impulse.json", "refiner.json")
    for name in (*weights, *stages):
        path = MODELS_DIR / model / name
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def cpu_kernels() -> str:
    """torch's CPU capability plus the bf16 instruction sets its matmuls may use (AMX, AVX512-BF16): the
    same capability with and without AMX sums bf16 products differently."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    extra = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return "+".join([torch.backends.cpu.get_cpu_capability(), *extra])


def outputs() -> dict[str, np.ndarray]:
    """Each case's fused demo pair (default settings but the gate off, one thread: bf16 sums depend on the
    thread count), its model's weights digest, and the CPU kernel family the numbers come from."""
    arrays: dict[str, np.ndarray] = {"cpu": np.array(cpu_kernels())}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for model, task in CASES:
            pipe = FusionPipeline.from_pretrained(model)
            # the model's own path: its clean-input gate may give a demo pair to the classical rule
            arrays[f"{model}/{task}"] = pipe(demo_pair(task), task=task, gate=False).astype(np.float32)
            arrays[f"{model}/digest"] = np.array(weights_digest(model))
    finally:
        torch.set_num_threads(threads)
    return arrays


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **outputs())
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.1f} MB)")
