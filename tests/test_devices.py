"""Any device: nothing in the source pins autocast to the CPU, a pipeline moved to another device runs every
network there (checked on PyTorch's "meta" device, which has no data: the run goes through every layer and
stops only when the result is copied out), and `--device` is checked before any model loads."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import allfuse
import allfuse.devices
from allfuse.cli import main
from allfuse.devices import BF16_ENV, MALLOC_ENV, autocast, bf16_pays, parse_device
from allfuse.objectives import LatentBatch
from allfuse.pipeline import FusionPipeline
from allfuse.tokenizer.base import autocast as tokenizer_autocast

SRC = Path(allfuse.__file__).parent


def test_no_autocast_is_hard_coded_to_the_cpu() -> None:
    pinned = re.compile(r"""autocast\(\s*(device_type\s*=\s*)?["']cpu["']""")
    hits = [
        f"{p.relative_to(SRC)}:{i}"
        for p in sorted(SRC.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pinned.search(line)
    ]
    assert not hits, f"autocast pinned to the CPU at {hits}"


def test_parse_device() -> None:
    assert parse_device("cpu") == torch.device("cpu") and parse_device("meta").type == "meta"
    with pytest.raises(ValueError, match="device bogus: not a device name"):
        parse_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device cuda: this machine has no cuda device"):
            parse_device("cuda")
    assert isinstance(autocast(torch.device("meta")), contextlib.nullcontext)  # torch has none there


def test_the_pipeline_runs_every_network_on_the_device_it_was_moved_to(monkeypatch) -> None:
    pipe = FusionPipeline.from_pretrained("allfuse-reg", device="meta")
    assert pipe.device.type == "meta" and pipe.to("meta") is pipe
    autocasts: list[str] = []

    def spy(device_type: str, **kwargs) -> contextlib.AbstractContextManager:
        autocasts.append(device_type)
        return contextlib.nullcontext()

    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: True)
    monkeypatch.setattr(torch, "autocast", spy)
    bincount = torch.bincount

    def even_counts(x: torch.Tensor, weights=None, minlength: int = 0) -> torch.Tensor:
        """Meta tensors hold no data: the MoE's routing counts (its one data-dependent step) come out even."""
        if x.device.type != "meta":
            return bincount(x, weights, minlength)
        n, k = x.numel(), max(minlength, 1)
        return torch.tensor([n // k + (i < n % k) for i in range(k)])

    monkeypatch.setattr(torch, "bincount", even_counts)
    seen: dict[str, set[str]] = {}

    def record(name: str):
        def hook(module, args) -> None:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            tensors += [
                t for a in args if isinstance(a, list | tuple) for t in a if isinstance(t, torch.Tensor)
            ]
            seen.setdefault(name, set()).update(t.device.type for t in tensors)

        return hook

    pipe.model.register_forward_pre_hook(record("dit"))
    pipe.refiner.register_forward_pre_hook(record("refiner"))
    pipe.tok.model.encoder.register_forward_pre_hook(record("encoder"))
    pipe.tok.model.decoder.register_forward_pre_hook(record("decoder"))
    pipe.corrector.enc1.register_forward_pre_hook(record("corrector"))
    x = np.random.default_rng(0).random((64, 96, 3), dtype=np.float32)
    pipe.noise_guard = {}  # random pixels measure as strong noise, which would skip the refiner
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        pipe([x, x[::-1].copy()], task="mff", prompt="fuse the two images")  # stops after the corrector
    assert seen == {"corrector": {"meta"}}
    seen.clear()
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        pipe([x, x[::-1].copy()], task="mff", prompt="fuse the two images", correct=False)
    assert seen == {k: {"meta"} for k in ("dit", "refiner", "encoder", "decoder")}
    assert autocasts and set(autocasts) == {"meta"}  # the DiT's and the refiner's, by the device's type


def test_bf16_autocast_only_where_the_cpu_has_bf16_kernels(monkeypatch) -> None:
    """A CPU without bf16 kernels (oneDNN emulates them: about 90 times slower than fp32 on an AVX2 CPU) runs
    fp32; ALLFUSE_BF16 decides instead when set; other device types autocast as before."""
    cpu = torch.device("cpu")
    monkeypatch.delenv(BF16_ENV, raising=False)
    for has, kind in ((False, contextlib.nullcontext), (True, torch.autocast)):
        monkeypatch.setattr(allfuse.devices, "cpu_has_bf16", lambda has=has: has)
        assert bf16_pays("cpu") is has and bf16_pays("cuda")
        assert isinstance(autocast(cpu), kind) and isinstance(tokenizer_autocast("bf16", cpu), kind)
        assert isinstance(autocast(cpu, enabled=False), contextlib.nullcontext)
        assert isinstance(tokenizer_autocast("fp32", cpu), contextlib.nullcontext)
        for env in ("0", "1"):
            monkeypatch.setenv(BF16_ENV, env)
            assert bf16_pays("cpu") is bf16_pays("cuda") is (env == "1")
            assert isinstance(autocast(cpu), torch.autocast if env == "1" else contextlib.nullcontext)
        monkeypatch.delenv(BF16_ENV)
    with autocast(cpu):  # in effect: a matmul comes out in bf16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    monkeypatch.setattr(allfuse.devices, "cpu_has_bf16", lambda: False)
    with autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_a_fusion_on_a_cpu_without_bf16_kernels_runs_in_fp32(monkeypatch) -> None:
    """Every network of a fusion (tokenizer, DiT, refiner, corrector) computes in fp32 there, and in bf16
    where the CPU has the kernels."""
    monkeypatch.delenv(BF16_ENV, raising=False)
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    dtypes: set[torch.dtype] = set()

    def hook(module, args, out) -> None:
        dtypes.add(out.dtype)

    nets = [pipe.model, pipe.refiner, pipe.tok.model, pipe.corrector]
    layers = (m for net in nets for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear))
    for layer in layers:
        layer.register_forward_hook(hook)
    rng = np.random.default_rng(0)
    x = cv_smooth(rng.random((64, 96, 3), dtype=np.float32))
    for has, want in ((False, {torch.float32}), (True, {torch.bfloat16})):
        monkeypatch.setattr(allfuse.devices, "cpu_has_bf16", lambda has=has: has)
        dtypes.clear()
        out = pipe([x, x[::-1].copy()], task="mff", gate=False)
        assert out.shape == x.shape and np.isfinite(out).all()
        assert want <= dtypes and (has or dtypes == want), dtypes


def cv_smooth(x: np.ndarray) -> np.ndarray:
    """A smooth random image (a noiseless pair: the fusion runs its networks rather than a noise rule)."""
    import cv2

    return np.clip(cv2.GaussianBlur(x, (0, 0), 3.0) * 1.5 - 0.25, 0.0, 1.0).astype(np.float32)


def test_a_latent_batch_moves_with_the_model() -> None:
    batch = LatentBatch(
        [torch.zeros(1, 4, 2, 2)] * 2, torch.zeros(1, 4, 2, 2), sources=[torch.zeros(1, 3, 8, 8)]
    )
    assert batch.to("cpu").conds[0] is batch.conds[0]  # on the CPU: the same tensors, nothing copied
    moved = batch.to("meta")
    assert {t.device.type for t in (*moved.conds, moved.target, *moved.sources)} == {"meta"}


def test_fuse_device_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.png"
    assert main(["fuse", "--device", "cpu", "-o", str(out)]) == 0 and out.is_file()
    capsys.readouterr()
    for device, message in (("bogus", "not a device name"), ("cuda:x", "not a device name")):
        assert main(["fuse", "--device", device, "-o", str(out)]) == 2
        assert (
            capsys.readouterr().err
            == f"allfuse: error: --device {device}: {message} (cpu, cuda, cuda:1, mps, ...)\n"
        )
    assert main(["fuse", "--method", "gff", "--device", "cpu", "-o", str(out)]) == 2
    assert "--device applies to models" in capsys.readouterr().err


FAULTS = """
import resource, statistics, torch
from allfuse.devices import keep_freed_memory
print(keep_freed_memory())
faults = []
for _ in range(20):  # a 40 MiB tensor, written and freed, again and again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(10 << 20).sum()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(statistics.median(faults[5:]))  # (the heap grows a few times first: an aligned block needs a
"""  # little more than a freed one of the same size)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc settings are glibc's")
def test_freed_large_blocks_are_reused_without_page_faults():
    """keep_freed_memory: a 40 MiB block (the size of a 1024 x 1024 fusion's largest) freed and allocated
    again costs no new page faults (glibc's default unmaps every block above 32 MiB on free: 10,240 faults
    of 4 KiB pages each time); ALLFUSE_MALLOC=0 leaves malloc as it is."""
    runs = {}
    for flag in ("1", "0"):
        env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV} | {"ALLFUSE_MALLOC": flag}
        out = subprocess.run(
            [sys.executable, "-c", FAULTS], env=env, capture_output=True, text=True, check=True
        )
        kept, faults = out.stdout.split()
        runs[flag] = (kept, float(faults))
    assert runs["1"][0] == "True" and runs["0"][0] == "False"
    assert runs["0"][1] >= 5000, runs  # the default: a fresh mapping each time
    assert runs["1"][1] < 1000, runs
