"""Exponential moving average of a network's weights (wraps only the network)."""

import copy

import torch
from torch import nn


class EMA:
    """Keeps `shadow`, a frozen copy of the model whose weights trail the live ones: s = d*s + (1-d)*w."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Blend the live weights in; early steps use a shorter horizon, min(decay, (1+t)/(10+t))."""
        d = self.decay if step is None else min(self.decay, (1 + step) / (10 + step))
        for s, w in zip(self.shadow.parameters(), model.parameters(), strict=True):
            s.lerp_(w.detach().to(s.dtype), 1 - d)
        for s, w in zip(self.shadow.buffers(), model.buffers(), strict=True):
            s.copy_(w)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The shadow weights."""
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the shadow weights."""
        self.shadow.load_state_dict(state)
