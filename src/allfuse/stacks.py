"""More inputs than a model has slots (exposure brackets, focus stacks): fuse them in steps.

The FusionDiT fills `max_inputs` condition slots and the refiner takes `max_inputs` images (2 each for the
shipped models), so a longer list is fused in steps of at most `slots` images, each step's output standing
in for its inputs in the next:

  tree:  consecutive groups level by level, ((a, b), (c, d)), an odd one out joining at the next level;
         every input passes through at most ceil(log2 n) fusions (slots = 2);
  chain: a left fold in input order, (((a, b), c), d): for a bracket sorted by exposure, each step
         extends the accumulated range by the next exposure.

For three inputs both are ((a, b), c). Which one the pipeline uses depends on the task (STACK_ORDER), by
measurement (bench/multi.py, 4-input stacks synthesized from 6 validation pairs per task, Qabf against the
inputs): on exposure brackets the chain scored higher (allfuse-reg 0.617 vs 0.606, allfuse-fm 0.612 vs
0.599; MEF-SSIM too), on focus stacks the tree (0.618 vs 0.608, 0.622 vs 0.614). VIF has no multi-input
data to measure; it takes the tree, which keeps the passes through the model fewest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

from allfuse.types import Image, Task

StackOrder = Literal["tree", "chain"]
STACK_ORDERS: tuple[str, ...] = get_args(StackOrder)
STACK_ORDER: dict[Task, StackOrder] = {"vif": "tree", "mef": "chain", "mff": "tree"}  # measured: module doc


def fuse_stack(
    fuse: Callable[[list[Image]], Image], images: Sequence[Image], slots: int, order: StackOrder = "tree"
) -> Image:
    """Fuse >= 2 images with `fuse`, which takes 2..slots of them, in one step or in steps (module doc)."""
    if slots < 2:
        raise ValueError(f"a fusion step takes at least 2 images, got slots={slots}")
    if order not in STACK_ORDERS:
        raise ValueError(f"unknown stack order {order!r}; choose from {', '.join(STACK_ORDERS)}")
    xs = list(images)
    if len(xs) <= slots:
        return fuse(xs)
    if order == "chain":
        acc, rest = fuse(xs[:slots]), xs[slots:]
        while rest:
            acc, rest = fuse([acc, *rest[: slots - 1]]), rest[slots - 1 :]
        return acc
    while len(xs) > 1:
        groups = [xs[i : i + slots] for i in range(0, len(xs), slots)]
        xs = [g[0] if len(g) == 1 else fuse(g) for g in groups]
    return xs[0]
