"""The scalar log of a training run: an append-only CSV (and TensorBoard when it is installed)."""

from __future__ import annotations

import csv
import math
from pathlib import Path


class ScalarLog:
    """Append-only CSV of logged scalars (TensorBoard too when it is installed)."""

    def __init__(self, path: Path, after: int | None = None) -> None:
        """`after`: the step a run resumes from; rows logged past it by the interrupted run go (their steps
        are run again), so the CSV has each step once."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if after is not None and path.is_file():
            self.drop_after(after)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(path.parent / "tb"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def drop_after(self, step: int) -> None:
        """Rewrite the CSV (atomically) without its rows of steps past `step`; header lines stay."""
        from allfuse.io import atomic_write_text

        kept = []
        for line in self.path.read_text().splitlines(keepends=True):
            head = line.split(",", 1)[0]
            if not head.isdigit() or int(head) <= step:
                kept.append(line)
        atomic_write_text(self.path, "".join(kept))

    def write(self, row: dict[str, float]) -> None:
        """Append one row; a new column set starts a new header line."""
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()}
            )
        if self.tb is not None:
            for k, v in row.items():
                if k != "step":
                    self.tb.add_scalar(k, v, row["step"])
