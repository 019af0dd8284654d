"""Shared vocabulary: the fusion tasks and image array conventions."""

import dataclasses
from typing import Any, Literal, Self, get_args

import numpy as np
import numpy.typing as npt

# One name per task; dataset folders call VIF "ivif" (see allfuse.io.TASK_ALIASES).
Task = Literal["vif", "mef", "mff"]
TASKS: tuple[str, ...] = get_args(Task)

# Images everywhere in allfuse: float32 in [0, 1], shape (H, W) gray or (H, W, 3) RGB.
Image = npt.NDArray[np.float32]


class TaskStageConfig:
    """JSON form of a weightless stage's frozen-dataclass config with a `tasks` tuple (deblur.json,
    destripe.json): subclasses are dataclasses with a `tasks` field."""

    tasks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**dataclasses.asdict(self), "tasks": list(self.tasks)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Inverse of to_dict; unknown keys are a TypeError naming them."""
        return cls(**{**values, "tasks": tuple(values.get("tasks", cls.tasks))})
