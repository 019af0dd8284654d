"""Distributed set-up: one process unless torchrun set RANK/WORLD_SIZE (nanoGPT's rule)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the world size and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Rank 0 does all file I/O (checkpoints, logs, samples)."""
        return self.rank == 0


def setup() -> DistInfo:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPU); single process otherwise."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return DistInfo(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        tdist.init_process_group("nccl")
        device = torch.device("cuda", local)
    else:
        tdist.init_process_group("gloo")
        device = torch.device("cpu")
    return DistInfo(rank, world, local, device)


def teardown(info: DistInfo) -> None:
    """Leave the process group (no-op for a single process). All ranks meet first: a rank that tore gloo
    down while rank 0 was still writing its last checkpoint aborted now and then ("terminate called without
    an active exception"), failing the run although every step had finished."""
    if info.world > 1 and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()


def all_mean(value: float, info: DistInfo) -> float:
    """Mean of a scalar over ranks (for logging)."""
    if info.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)  # NCCL reduces GPU tensors only
    tdist.all_reduce(t)
    return float(t.item()) / info.world
