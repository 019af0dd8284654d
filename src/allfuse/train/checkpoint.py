"""Training checkpoints: safetensors weights + JSON, written atomically, resumable exactly.

A checkpoint is a folder `step_00001234/` holding
  model.safetensors, ema.safetensors   network weights (the shippable part)
  config.json                          the run's configuration
  state.safetensors + state.json       optimizer tensors, RNG states / optimizer + scheduler scalars,
                                       step and data position (the resume sidecar)
It is written to a temporary folder, fsynced and renamed into place; only then is `latest.json` replaced
(also by rename). A process killed at any point leaves the previous checkpoint and pointer intact.
Nothing here unpickles: weights and tensors are safetensors, everything else JSON.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from allfuse.io import atomic_write_text, umask_mode
from allfuse.model_folder import LATEST, latest_checkpoint


@dataclass
class Checkpoint:
    """Everything read back from a checkpoint folder."""

    path: Path
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    config: dict[str, Any]
    state: dict[str, Any]  # step, data position, optimizer/scheduler state, RNG states


def _split_tensors(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors in a nested dict/list by {'__tensor__': key}, collecting them in `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {str(k): _split_tensors(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join_tensors(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of _split_tensors."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        return {k: _join_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_tensors(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    """The state of every global random generator (ours use explicit generators; libraries may not)."""
    _, keys, pos, *_ = np.random.get_state()  # noqa: NPY002 - the legacy global state is what we save
    return {
        "torch": torch.get_rng_state(),
        "numpy": keys.tolist(),
        "numpy_pos": int(pos),
        "python": list(random.getstate()[1]),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    torch.set_rng_state(state["torch"])
    keys = np.asarray(state["numpy"], dtype=np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))  # noqa: NPY002
    random.setstate((3, tuple(state["python"]), None))


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: dict[str, torch.Tensor],
    config: dict[str, Any],
    state: dict[str, Any],
    ema: dict[str, torch.Tensor] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint `step` under run_dir atomically, point latest.json at it, prune old ones."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=run_dir))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.items()}, tmp / "model.safetensors")
        if ema is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, tmp / "ema.safetensors")
        tensors: dict[str, torch.Tensor] = {}
        meta = _split_tensors(state, "state", tensors)
        save_file(tensors, tmp / "state.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta))
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(f, umask_mode())  # safetensors writes 0600
        os.chmod(tmp, umask_mode(directory=True))  # mkdtemp makes 0700
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(run_dir / LATEST, json.dumps({"step": step, "path": final.name}) + "\n")
    _prune(run_dir, keep)
    return final


def _prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (never the one latest.json names) and the temporary
    folders of saves that were killed half-way."""
    for stale in run_dir.glob(".step_*"):
        shutil.rmtree(stale, ignore_errors=True)
    latest = json.loads((run_dir / LATEST).read_text())["path"]
    steps = sorted(p for p in run_dir.glob("step_*") if p.is_dir())
    for p in steps[:-keep] if keep > 0 else []:
        if p.name != latest:
            shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint folder (or a run folder, meaning its latest checkpoint)."""
    path = Path(path)
    if (path / LATEST).exists():
        path = latest_checkpoint(path)  # type: ignore[assignment]
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"{path}: not a checkpoint folder (no model.safetensors)")
    ema = load_file(path / "ema.safetensors") if (path / "ema.safetensors").exists() else None
    state: dict[str, Any] = {}
    if (path / "state.json").exists():
        tensors = load_file(path / "state.safetensors")
        state = _join_tensors(json.loads((path / "state.json").read_text()), tensors)
    config = json.loads((path / "config.json").read_text())
    return Checkpoint(path, load_file(path / "model.safetensors"), ema, config, state)


def optimizer_state(saved: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state dict as read from JSON, with its per-parameter keys turned back into ints."""
    return {**saved, "state": {int(k): v for k, v in saved["state"].items()}}


def training_state(step: int, opt: torch.optim.Optimizer, sched: Any) -> dict[str, Any]:
    """The resume sidecar of a training step: step, optimizer, scheduler and RNG states."""
    return {"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state()}


def resume(run_dir: str | os.PathLike, model: torch.nn.Module, ema: Any, opt: Any, sched: Any) -> int:
    """Load the run's latest checkpoint into model, EMA, optimizer and scheduler; return its step
    (0 when the run has no checkpoint yet)."""
    last = latest_checkpoint(run_dir)
    if last is None:
        return 0
    saved = load_checkpoint(last)
    model.load_state_dict(saved.model)
    if saved.ema is not None:
        ema.load_state_dict(saved.ema)
    opt.load_state_dict(optimizer_state(saved.state["optimizer"]))
    sched.load_state_dict(saved.state["scheduler"])
    return int(saved.state["step"])
