"""Devices for inference: parse a device name a user typed, bf16 autocast by the device's type, and the
host allocator's settings for full-resolution CPU work.

Nothing here names a particular device type: a pipeline moved to CUDA, MPS or any other backend torch
knows autocasts for that backend, and where torch has no autocast for it (e.g. "meta") runs unautocast.

bf16 autocast pays only where the hardware multiplies bf16: on a CPU, oneDNN has bf16 kernels from AVX-512
on (AVX512-BF16 and AMX natively); on a CPU without AVX-512 it emulates them. Measured with torch 2.13 on an
AVX2-only AMD EPYC (one thread, 1024 x 1024 matmul): fp32 86 GFLOP/s, bf16 under autocast 0.95, so a
fusion at 512 x 512 took 32 s in bf16 and 2.8 s in fp32. `bf16_pays` asks oneDNN (torch's own tests skip
bf16 on the same check) and `autocast` runs fp32 where the answer is no; ALLFUSE_BF16=0 or 1 decides instead.

glibc's malloc serves every block above 32 MiB (its largest automatic mmap threshold) with a fresh mmap and
returns it to the kernel on free, so each such block is page-faulted in again, page by page, the next time: at
1024 x 1024 px many of a fusion's intermediate tensors are that large, and one fusion takes about 100,000 page
faults (bench/latency.py's last column, with ALLFUSE_MALLOC=0; 1,000 to 3,000 without). `keep_freed_memory`
raises the mmap and trim thresholds (mallopt, M_MMAP_THRESHOLD and M_TRIM_THRESHOLD, glibc's malloc.h) so
freed blocks stay in the heap for the next one (PyTorch's CPU performance guide recommends a caching
allocator, jemalloc or tcmalloc, for the same reason).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (glibc malloc.h)
MMAP_THRESHOLD = 64 << 20  # blocks below this come from the heap (a 1024 x 1024 fusion needs up to 40 MiB)
TRIM_THRESHOLD = 128 << 20  # free memory kept at the heap's top for reuse; more is returned to the system
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
_kept = False


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


BF16_ENV = "ALLFUSE_BF16"  # "0": never autocast to bf16, "1": always (where torch has an autocast)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU's own instructions (AVX-512, AVX512-BF16, AMX) rather than
    emulating them; True when this torch cannot say (a build without oneDNN's check)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return True


def bf16_pays(device_type: str) -> bool:
    """Whether bf16 autocast is used on this device type (module doc): ALLFUSE_BF16 if set to 0 or 1, else
    on the CPU where it has bf16 kernels, and on every other device type."""
    env = os.environ.get(BF16_ENV, "").strip()
    if env in ("0", "1"):
        return env == "1"
    return device_type != "cpu" or cpu_has_bf16()


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device's own backend; a no-op when disabled, where torch has none, or where
    bf16 does not pay (`bf16_pays`: a CPU without bf16 kernels runs fp32)."""
    if not enabled or not torch.amp.is_autocast_available(device.type) or not bf16_pays(device.type):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast computes in on this device type now; None when it is off or has none there."""
    try:
        return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    except RuntimeError:  # a backend torch has no autocast for (e.g. "meta")
        return None


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks below 64 MiB for reuse instead of unmapping them (module doc);
    True when the setting is in effect. Once per process; nothing is done where the C library is not
    glibc, when ALLFUSE_MALLOC=0, or when the user set malloc's own environment variables (theirs win)."""
    global _kept
    if _kept:
        return True
    if os.environ.get("ALLFUSE_MALLOC", "1") == "0" or any(k in os.environ for k in MALLOC_ENV):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: a trim threshold alone also freezes the mmap threshold at its 128 KiB
    # start, which makes every block above that an mmap (measured: 10x the page faults)
    _kept = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _kept
