"""LoRA (Hu et al. 2021) for fine-tuning a base model: low-rank updates on chosen nn.Linear layers.

DiTFuse Eq. (3) adapts "all linear layers in the transformer blocks" as W' = W + (alpha / r) B A with
A (r, in) and B (out, r); B starts at zero, so a fresh adapter leaves the model unchanged. `add_lora`
freezes the base model and wraps the layers whose names match; `merge_lora` folds the update into the
base weights and restores plain nn.Linear layers, so a merged model costs nothing extra at inference.
Load base weights before `add_lora` (wrapping renames `qkv.weight` to `qkv.base.weight`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The joint DiT's block linears (attention qkv/proj, SwiGLU in/out); the adaLN projections stay frozen.
DEFAULT_TARGETS = ("qkv", "proj", "w_in", "w_out")


class LoRALinear(nn.Module):
    """y = W0 x + b + (alpha / r) B A dropout(x), with the base layer W0, b frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError("LoRA rank must be >= 1")
        self.base, self.rank, self.scale = base, rank, alpha / rank
        w = base.weight
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=w.device, dtype=w.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear (and the LoRA reference code)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        base.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in) -> (..., out)."""
        # LoRA Eq. (3) / DiTFuse Eq. (3): h = W0 x + (alpha / r) B A x
        return self.base(x) + F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b) * self.scale

    def merged(self) -> nn.Linear:
        """The base layer with B A alpha / r folded into its weight (computed in float32)."""
        delta = (self.lora_b.float() @ self.lora_a.float()) * self.scale  # (out, in)
        with torch.no_grad():
            self.base.weight.copy_((self.base.weight.float() + delta).to(self.base.weight.dtype))
        return self.base


def matches(name: str, targets: Sequence[str]) -> bool:
    """True when a dotted module name matches a pattern: a glob on the whole name ("blocks.*.attn.qkv") or
    on its last parts ("qkv", "attn.*")."""
    return any(fnmatchcase(name, pat) or fnmatchcase(name, f"*.{pat}") for pat in targets)


def add_lora(
    model: nn.Module,
    rank: int = 8,
    alpha: float | None = None,
    targets: Sequence[str] = DEFAULT_TARGETS,
    dropout: float = 0.0,
) -> list[str]:
    """Freeze `model` and wrap every nn.Linear whose name matches `targets` in a LoRALinear (alpha defaults to
    rank: scale 1); returns the wrapped names. Raises when nothing matches or a layer has LoRA already."""
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("the model has LoRA layers already (merge_lora first)")
    names = [name for name, m in model.named_modules() if type(m) is nn.Linear and matches(name, targets)]
    if not names:
        raise ValueError(f"no nn.Linear matches {list(targets)}")
    alpha = float(rank) if alpha is None else alpha
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, LoRALinear(getattr(owner, child), rank, alpha, dropout))
    model.requires_grad_(False)
    for p in lora_parameters(model):
        p.requires_grad_(True)
    return names


def lora_layers(model: nn.Module) -> Iterator[tuple[str, LoRALinear]]:
    """(name, layer) of every LoRALinear in the model."""
    return ((name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear))


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The A and B matrices of every adapter: what the optimizer trains."""
    return [p for _, m in lora_layers(model) for p in (m.lora_a, m.lora_b)]


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The adapters alone ("<layer>.lora_a", "<layer>.lora_b"), detached copies: a small checkpoint."""
    out = {}
    for name, m in lora_layers(model):
        out[f"{name}.lora_a"] = m.lora_a.detach().clone()
        out[f"{name}.lora_b"] = m.lora_b.detach().clone()
    return out


def load_lora_state_dict(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy adapters saved by `lora_state_dict` into a model with the same LoRA layers; keys must match."""
    own = {
        f"{name}.{part}": getattr(m, part) for name, m in lora_layers(model) for part in ("lora_a", "lora_b")
    }
    if set(own) != set(state):
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise KeyError(f"LoRA keys differ: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for key, param in own.items():
            param.copy_(state[key])


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put the plain nn.Linear back (in place; returns model).
    The model stays frozen as add_lora left it: `requires_grad_(True)` to train it whole."""
    for name, m in list(lora_layers(model)):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, m.merged())
    return model
