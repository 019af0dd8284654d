"""Shared vocabulary: the fusion tasks and image array conventions."""

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

# One name per task; dataset folders call VIF "ivif" (see allfuse.io.TASK_ALIASES).
Task = Literal["vif", "mef", "mff"]
TASKS: tuple[str, ...] = get_args(Task)

# Images everywhere in allfuse: float32 in [0, 1], shape (H, W) gray or (H, W, 3) RGB.
Image = npt.NDArray[np.float32]
