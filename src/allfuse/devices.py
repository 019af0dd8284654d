"""Devices for inference: parse a device name a user typed, and bf16 autocast by the device's type.

Nothing here names a particular device type: a pipeline moved to CUDA, MPS or any other backend torch
knows autocasts for that backend, and where torch has no autocast for it (e.g. "meta") runs unautocast.
"""

from __future__ import annotations

import contextlib

import torch


def parse_device(name: str | torch.device) -> torch.device:
    """A torch.device from "cpu", "cuda", "cuda:1", "mps", ...; one this machine lacks is a ValueError."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {name}: not a device name (cpu, cuda, cuda:1, mps, ...)") from None
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if device.type == "mps":
        available = torch.backends.mps.is_available
    if callable(available) and not available():
        raise ValueError(
            f"device {name}: this machine has no {device.type} device (torch {torch.__version__})"
        )
    count = getattr(backend, "device_count", None)
    if device.index is not None and callable(count) and device.index >= count():
        raise ValueError(f"device {name}: this machine has {count()} {device.type} device(s)")
    return device


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device's own backend; a no-op when disabled or where torch has none."""
    if not enabled or not torch.amp.is_autocast_available(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
