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
    destripe.json): subclasses are dataclasses with a `tasks` field; their tuple fields are JSON lists."""

    tasks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        values = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Inverse of to_dict; unknown keys are a TypeError naming them."""
        tuples = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}  # type: ignore[arg-type]
        return cls(**{k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in values.items()})
