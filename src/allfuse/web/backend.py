"""What the web demo does on each click, without any web library: read the uploads, fuse, write a PNG.

Every problem a user can cause (too few or unreadable files, different sizes, a bad prompt, a prompt for
a classical method, a model that is not installed) is a `DemoError` with a one-line message that names
uploads by their file name only; the app shows it as a message, never a traceback.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from allfuse.io import ImageError, check_same_size, read_image, write_image
from allfuse.types import TASKS, Image

TASK_NAMES = {"vif": "infrared + visible (VIF)", "mef": "multi-exposure (MEF)", "mff": "multi-focus (MFF)"}
PREVIEW_SIDE = 2048  # px: longest side of the images sent to the browser (the PNG is full size)
KEEP_OUTPUTS = 20  # fused PNGs kept for download; older ones are removed


class DemoError(Exception):
    """A user error, shown in the page as one line."""


@dataclass(frozen=True)
class Fused:
    """The result of one click: inputs and output (previews), the task, the PNG, what ran and how long."""

    inputs: list[np.ndarray]  # uint8 previews, (h, w) or (h, w, 3)
    output: np.ndarray  # uint8 preview
    task: str
    guessed: bool
    method: str
    png: Path
    size: tuple[int, int]  # (W, H) of the full-size output
    seconds: float
    notes: list[str]

    def status(self) -> str:
        """One line of Markdown: the detected task, what ran, the size and the time."""
        how = "detected" if self.guessed else "chosen"
        w, h = self.size
        parts = [
            f"**Task: {TASK_NAMES[self.task]}** ({how})",
            f"{len(self.inputs)} inputs, {w}x{h}",
            self.method,
            f"{self.seconds:.1f} s",
        ]
        return " · ".join(parts + self.notes)


class DemoBackend:
    """Fuse uploaded files with a model (loaded once, on first use) or a classical method."""

    def __init__(
        self,
        models: Sequence[str],
        methods: Sequence[str],
        out_dir: Path,
        device: str | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.models, self.methods = list(models), list(methods)
        self.out_dir, self.device, self.max_pixels = Path(out_dir), device, max_pixels
        self.pipes: dict = {}
        self.lock = threading.Lock()  # one fusion at a time: the CPU is the bottleneck

    @property
    def choices(self) -> list[str]:
        """Models first, then the classical methods."""
        return self.models + self.methods

    def pipeline(self, model: str):
        """The FusionPipeline of a model, loaded on first use."""
        from allfuse.pipeline import FusionPipeline

        if model not in self.pipes:
            try:
                self.pipes[model] = FusionPipeline.from_pretrained(model, device=self.device)
            except (OSError, ValueError) as e:
                raise DemoError(f"{model}: cannot load ({e})") from None
        return self.pipes[model]

    def fuse(
        self,
        paths: Sequence[str | Path] | None,
        task: str = "auto",
        method: str = "allfuse-reg",
        prompt: str | None = None,
        steps: int = 0,
        seed: int = 0,
    ) -> Fused:
        """Fuse the uploaded files; steps 0 = the model's own sampler."""
        paths = [Path(p) for p in paths or []]
        if len(paths) < 2:
            raise DemoError(f"upload at least 2 images of one scene (got {len(paths)})")
        if task != "auto" and task not in TASKS:
            raise DemoError(f"unknown task {task!r}; choose auto or one of {', '.join(TASKS)}")
        if method not in self.choices:
            raise DemoError(f"unknown model or method {method!r}; choose from {', '.join(self.choices)}")
        prompt = prompt if prompt and prompt.strip() else None
        if prompt is not None and method in self.methods:
            raise DemoError(f"{method} is a classical method and takes no prompt: clear it or pick a model")
        t0 = time.perf_counter()
        with self.lock:
            try:
                images = [read_image(p, max_pixels=self.max_pixels) for p in paths]
                check_same_size(paths, images)
                fused, chosen, notes = self._run(images, task, method, prompt, steps, seed)
                png = self._write(fused)
            except (ImageError, ValueError) as e:
                raise DemoError(_short(str(e), paths)) from None
        return Fused(
            [preview(x) for x in images],
            preview(fused),
            chosen,
            task == "auto",
            method,
            png,
            (fused.shape[1], fused.shape[0]),
            time.perf_counter() - t0,
            notes,
        )

    def _run(
        self, images: list[Image], task: str, method: str, prompt: str | None, steps: int, seed: int
    ) -> tuple[Image, str, list[str]]:
        """(fused, task, notes) by a model or a classical method."""
        from allfuse.tasks import guess_task

        chosen = guess_task(images) if task == "auto" else task
        if method in self.methods:
            from allfuse import baselines

            return baselines.fuse(method, images, chosen), chosen, []
        pipe = self.pipeline(method)
        flow = pipe.cfg.flow
        notes = [] if flow or not steps else [f"steps ignored: {method} makes one forward pass"]
        if len(images) > pipe.slots():
            notes.append(f"{len(images)} inputs fused in steps of {pipe.slots()}")
        steps_arg = steps if flow and steps else None
        weight = pipe.gate_choice(images, chosen)[2] if getattr(pipe, "gate", None) is not None else 0.0
        if weight > 0:
            seen = pipe.stages.restore_gain(pipe.prepare(images, chosen)[0], chosen)
            rule = pipe.rule_label(seen.rule_weight, chosen)
            notes.append(
                f"clean inputs: fused by the classical rule {rule} (the model's gate)"
                if weight >= 1
                else f"the model's fusion mixed with {weight:.0%} of the classical rule {rule}'s (its gate)"
            )
        fused = pipe(images, prompt=prompt, task=chosen, steps=steps_arg, seed=int(seed))
        return fused, chosen, notes

    def _write(self, fused: Image) -> Path:
        """Write the fused PNG into its own folder (so it downloads as fused.png); prune old ones."""
        folder = self.out_dir / uuid.uuid4().hex
        png = write_image(folder / "fused.png", fused)
        old = sorted(self.out_dir.glob("*/fused.png"), key=lambda p: p.stat().st_mtime)[:-KEEP_OUTPUTS]
        for p in old:
            p.unlink(missing_ok=True)
            p.parent.rmdir()
        return png


def preview(x: Image, side: int = PREVIEW_SIDE) -> np.ndarray:
    """uint8 copy of an image for the browser, area-downscaled to a long side of at most `side`."""
    import cv2

    h, w = x.shape[:2]
    if max(h, w) > side:
        s = side / max(h, w)
        x = cv2.resize(x, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def _short(message: str, paths: Sequence[Path]) -> str:
    """A message with the uploads' temporary folders left out: `near.png: ...`."""
    for p in sorted(paths, key=lambda p: -len(str(p))):
        message = message.replace(str(p), p.name)
    return message
