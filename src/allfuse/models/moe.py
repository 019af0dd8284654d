"""Gated-linear-unit FFNs: a dense GLU and the MoE of GLU experts of MMAIF Sect. 3.3.2 (DeepSeek-style:
E routed experts, top-k routing, always-on shared experts, a load-balancing auxiliary loss)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class GLU(nn.Module):
    """SwiGLU FFN: W_down (silu(W_gate x) * W_up x)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w_in = nn.Linear(dim, 2 * hidden, bias=False)  # gate and up, fused
        self.w_out = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., D) -> (..., D)."""
        gate, up = self.w_in(x).chunk(2, dim=-1)
        return self.w_out(F.silu(gate) * up)


class DenseFFN(nn.Module):
    """A dense GLU with the MoE's interface (returns a zero balance loss); the `moe=False` ablation."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.glu = GLU(dim, hidden)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, S, D) -> (y (B, S, D), 0)."""
        return self.glu(x), x.new_zeros((), dtype=torch.float32)


def balance_loss(probs: Tensor, experts_idx: Tensor, n_experts: int, valid: Tensor | None = None) -> Tensor:
    """Switch/DeepSeek load-balancing loss E * sum_e f_e P_e; equals 1 (its minimum) under uniform routing.

    probs (T, E) router probabilities, experts_idx (T, k) chosen experts, valid (T,) bool tokens to count.
    f_e = share of the T*k assignments that went to e, P_e = mean router probability of e."""
    w = probs.new_ones(probs.shape[0]) if valid is None else valid.to(probs.dtype)  # (T,)
    n = w.sum().clamp_min(1.0)
    onehot = F.one_hot(experts_idx, n_experts).to(probs.dtype).sum(dim=1)  # (T, E) counts of picks
    f = (onehot * w[:, None]).sum(0) / (n * experts_idx.shape[1])  # (E,)
    p = (probs * w[:, None]).sum(0) / n  # (E,)
    return n_experts * (f * p).sum()


class MoEGLU(nn.Module):
    """Top-k routed GLU experts plus shared GLU experts; dispatch by sorting token copies per expert."""

    def __init__(self, dim: int, hidden: int, experts: int = 4, top_k: int = 2, shared: int = 1) -> None:
        super().__init__()
        self.experts, self.top_k = experts, top_k
        self.router = nn.Linear(dim, experts, bias=False)
        # Routed experts as stacked weights: gate|up (E, D, 2h) and down (E, h, D).
        self.w_in = nn.Parameter(torch.empty(experts, dim, 2 * hidden))
        self.w_out = nn.Parameter(torch.empty(experts, hidden, dim))
        self.shared = GLU(dim, shared * hidden) if shared > 0 else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear-style uniform init of the stacked expert weights."""
        for w in (self.w_in, self.w_out):
            bound = 1.0 / math.sqrt(w.shape[1])
            nn.init.uniform_(w, -bound, bound)

    def inactive_params(self) -> int:
        """Parameters of the routed experts a single token does not use: (E - k) experts."""
        return (self.experts - self.top_k) * (self.w_in[0].numel() + self.w_out[0].numel())

    def route(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (T, D) -> probs (T, E), top-k expert ids (T, k), their renormalised weights (T, k)."""
        probs = self.router(x).float().softmax(dim=-1)
        weights, idx = probs.topk(self.top_k, dim=-1)
        return probs, idx, weights / weights.sum(dim=-1, keepdim=True)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, S, D), valid (B, S) bool -> (y (B, S, D), balance loss scalar)."""
        b = x.shape[0]
        flat = rearrange(x, "b s d -> (b s) d")  # (T, D)
        probs, idx, weights = self.route(flat)
        # Vectorised dispatch: sort the T*k (token, expert) pairs by expert, run each expert on its
        # contiguous slice (a loop over the E experts, never over tokens), scatter back weighted.
        expert_of = idx.reshape(-1)  # (T*k,)
        order = torch.argsort(expert_of, stable=True)
        token_of = order // self.top_k  # source token of each sorted pair
        counts = torch.bincount(expert_of, minlength=self.experts).tolist()
        chunks = flat[token_of].split(counts)
        outs = []
        for e, chunk in enumerate(chunks):
            gate, up = (chunk @ self.w_in[e].to(chunk.dtype)).chunk(2, dim=-1)
            outs.append((F.silu(gate) * up) @ self.w_out[e].to(chunk.dtype))
        ys = torch.cat(outs) * weights.reshape(-1)[order, None].to(outs[0].dtype)  # (T*k, D)
        y = ys.new_zeros(flat.shape).index_add_(0, token_of, ys)
        if self.shared is not None:
            y = y + self.shared(flat).to(y.dtype)
        keep = None if valid is None else valid.reshape(-1)
        aux = balance_loss(probs, idx, self.experts, keep)
        return rearrange(y, "(b s) d -> b s d", b=b), aux
