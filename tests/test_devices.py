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
from allfuse.cli import main
from allfuse.devices import MALLOC_ENV, autocast, parse_device
from allfuse.objectives import LatentBatch
from allfuse.pipeline import FusionPipeline

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
