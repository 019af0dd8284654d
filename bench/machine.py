"""The machine line every bench report starts with: CPU model, cores, threads, the models' precision,
date."""

import os
import platform
import sys
import time
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (Linux), else the machine type."""
    try:
        return next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        return platform.machine()


def precision() -> str:
    """What the models compute in here: 'bf16 autocast' where the CPU has bf16 kernels, else 'fp32'
    (allfuse.devices.bf16_pays; ALLFUSE_BF16 overrides)."""
    from allfuse.devices import BF16_ENV, bf16_pays, cpu_has_bf16

    if bf16_pays("cpu"):
        return "bf16 autocast"
    return f"fp32 ({BF16_ENV}=0)" if cpu_has_bf16() else "fp32 (no bf16 kernels on this CPU)"


def machine_line() -> str:
    """'Machine: <CPU>, N cores, OMP_NUM_THREADS=T, models in <precision>; YYYY-MM-DD.'"""
    threads = os.environ.get("OMP_NUM_THREADS", "all cores")
    day = time.strftime("%Y-%m-%d")
    return (
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, OMP_NUM_THREADS={threads}, models in {precision()}; "
        f"{day}."
    )


def command_line(script: str) -> str:
    """How this run was started, for its report: one thread, the script and its arguments but --out."""
    args, skip = [], False
    for a in sys.argv[1:]:
        if not skip and not a.startswith("--out"):
            args.append(a)
        skip = a == "--out"  # its value follows
    return " ".join(["OMP_NUM_THREADS=1 python", script, *args])


def emit(lines: list[str], out: Path | None) -> None:
    """Print a report and, with `out`, write it there too."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
