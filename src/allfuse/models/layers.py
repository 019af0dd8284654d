"""FusionDiT building blocks (MMAIF Sect. 3.3.2): 2D RoPE, per-block PE, value-residual attention, NAFBlock,
LoRA-factorised adaLN and the timestep embedder. The MoE lives in `moe.py`."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def sinusoidal_features(x: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Map scalars (N,) to cos/sin features (N, dim) with geometric frequencies 1 .. 1/max_period."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = x.float()[:, None] * freqs[None]  # (N, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def sincos_2d(h: int, w: int, dim: int, device: torch.device | None = None) -> Tensor:
    """Fixed 2D sin-cos absolute PE of the original DiT, (h*w, dim); used when RoPE and block PE are off."""
    rows = sinusoidal_features(torch.arange(h, device=device), dim // 2)  # (h, dim/2)
    cols = sinusoidal_features(torch.arange(w, device=device), dim // 2)  # (w, dim/2)
    pe = torch.cat([rows[:, None].expand(h, w, -1), cols[None].expand(h, w, -1)], dim=-1)
    return rearrange(pe, "h w d -> (h w) d")


# MMAIF Sect. 3.3.2 (RoPE): 1D RoPE [36] extended to 2D. Half of every head's channels rotate with the
# row index, the other half with the column index, so q.k depends only on the (row, column) offset.
def rope_2d_angles(h: int, w: int, head_dim: int, base: float = 2000.0, n_text: int = 0) -> Tensor:
    """Rotation angles (n_text + h*w, head_dim/2) for a row-major h x w grid; text tokens get angle 0."""
    axis_dim = head_dim // 2  # channels per axis
    inv_freq = base ** (-torch.arange(0, axis_dim, 2, dtype=torch.float32) / axis_dim)  # (head_dim/4,)
    rows = torch.arange(h, dtype=torch.float32)[:, None] * inv_freq  # (h, head_dim/4)
    cols = torch.arange(w, dtype=torch.float32)[:, None] * inv_freq  # (w, head_dim/4)
    grid = torch.cat([rows[:, None].expand(h, w, -1), cols[None].expand(h, w, -1)], dim=-1)
    grid = rearrange(grid, "h w f -> (h w) f")  # (h*w, head_dim/2)
    return torch.cat([grid.new_zeros(n_text, grid.shape[1]), grid], dim=0)


Rope = tuple[Tensor, Tensor]  # (cos, sin) of the angles, each (S, head_dim/2)


def rope_2d(h: int, w: int, head_dim: int, base: float = 2000.0, n_text: int = 0) -> Rope:
    """(cos, sin) tables of `rope_2d_angles`, computed once per forward and shared by all layers."""
    angles = rope_2d_angles(h, w, head_dim, base, n_text)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, rope: Rope) -> Tensor:
    """Rotate consecutive channel pairs of x (B, H, S, D) by the angles whose (cos, sin) are (S, D/2)."""
    cos, sin = rope
    pairs = rearrange(x.float(), "b h s (f two) -> b h s f two", two=2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return rearrange(out, "b h s f two -> b h s (f two)").type_as(x)


class BlockPE(nn.Module):
    """MMAIF Eq. (5): pe = BroadcastAdd(MLP_h([0..h-1]), MLP_w([0..w-1])), shared by all blocks."""

    def __init__(self, dim: int, features: int = 64) -> None:
        super().__init__()
        self.features = features
        self.mlp_h = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.mlp_w = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, h: int, w: int) -> Tensor:
        """Return the PE of an h x w grid, (h*w, dim); indices enter the MLPs as Fourier features."""
        device = self.mlp_h[0].weight.device
        pe_h = self.mlp_h(sinusoidal_features(torch.arange(h, device=device), self.features, 1000.0))
        pe_w = self.mlp_w(sinusoidal_features(torch.arange(w, device=device), self.features, 1000.0))
        return rearrange(pe_h[:, None] + pe_w[None], "h w d -> (h w) d")  # (h*w, dim)


class Attention(nn.Module):
    """Multi-head self-attention on SDPA with 2D RoPE and the value residual of MMAIF Eq. (6)."""

    def __init__(self, dim: int, heads: int, value_residual: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        # eta of Eq. (6), initialised to 0 and learnable; absent when the switch is off.
        self.eta = nn.Parameter(torch.zeros(())) if value_residual else None

    def forward(
        self, x: Tensor, rope: Rope | None, mask: Tensor | None, v_prev: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """x (B, S, D), rope (S, Dh/2) x 2, mask (B, 1, 1, S) bool -> (out (B, S, D), v (B, H, S, Dh))."""
        q, k, v = self.project(x, rope, v_prev)
        return self.attend(q, k, v, mask), v

    # project and attend are apart so a caller can attend to keys/values it kept (the joint DiT's cache).
    def project(self, x: Tensor, rope: Rope | None, v_prev: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, S, D) -> q, k, v (B, H, S, Dh): RoPE on q and k, the value residual on v."""
        q, k, v = rearrange(self.qkv(x), "b s (three h d) -> three b h s d", three=3, h=self.heads)
        # MMAIF Eq. (6): V_l = (1 - eta) W_V X + eta V_{l-1}
        if self.eta is not None and v_prev is not None:
            v = torch.lerp(v, v_prev.to(v.dtype), self.eta.to(v.dtype))
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        return q, k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """q (B, H, Sq, Dh), k and v (B, H, Sk, Dh), mask broadcastable to (B, H, Sq, Sk) -> (B, Sq, D)."""
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, Sq, Dh)
        return self.proj(rearrange(out, "b h s d -> b s (h d)"))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map, as in NAFNet."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each pixel's channel vector."""
        return rearrange(self.norm(rearrange(x, "b c h w -> b h w c")), "b h w c -> b c h w")


class NAFNames(NamedTuple):
    """State-dict names of a NAFBlock's spatial half. The DiT and the refiner were trained under different
    names for the same parts and their shipped weights keep them, so the names are a parameter."""

    norm: str
    conv_in: str
    conv_dw: str
    conv_out: str


DIT_NAF_NAMES = NAFNames("norm", "conv_in", "conv_dw", "conv_out")


class NAFBlock(nn.Module):
    """A NAFNet block [5] (Chen et al., ECCV 2022, Fig. 3c) on (B, C, H, W):
    x + beta * conv_out(SCA(SimpleGate(conv_dw(conv_in(LN x))))), then with `ffn`
    x + gamma * ffn2(SimpleGate(ffn1(LN2 x))); beta and gamma start at 0, so the block starts as the identity.

    MMAIF puts the spatial half before each attention for a convolutional inductive bias; the MoE already is
    the channel mixer, so the DiT leaves the FFN half out (it would add 3 d^2 per layer, see config.py). The
    refiner uses the whole block (expand 2, LayerNorm eps 1e-5, its own `names`)."""

    def __init__(
        self,
        channels: int,
        expand: int = 1,
        ffn: bool = False,
        eps: float = 1e-6,
        names: NAFNames = DIT_NAF_NAMES,
    ) -> None:
        super().__init__()
        width = channels * expand
        self.names = names
        # Registration order fixes parameter order (optimizer state) and init order (seeded weights).
        self.add_module(names.norm, LayerNorm2d(channels, eps))
        self.norm2 = LayerNorm2d(channels, eps) if ffn else None
        self.add_module(names.conv_in, nn.Conv2d(channels, width, 1))
        self.add_module(names.conv_dw, nn.Conv2d(width, width, 3, padding=1, groups=width))
        self.sca = nn.Conv2d(width // 2, width // 2, 1)  # simplified channel attention
        self.add_module(names.conv_out, nn.Conv2d(width // 2, channels, 1))
        self.ffn1 = nn.Conv2d(channels, 2 * channels, 1) if ffn else None
        self.ffn2 = nn.Conv2d(channels, channels, 1) if ffn else None
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))  # zero: identity at init
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1)) if ffn else None

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, C, H, W)."""
        norm, conv_in, conv_dw, conv_out = (getattr(self, name) for name in self.names)
        a, b = conv_dw(conv_in(norm(x))).chunk(2, dim=1)
        y = a * b  # SimpleGate
        y = y * self.sca(y.mean(dim=(2, 3), keepdim=True))
        x = x + self.beta * conv_out(y)
        if self.gamma is None:
            return x
        a, b = self.ffn1(self.norm2(x)).chunk(2, dim=1)
        return x + self.gamma * self.ffn2(a * b)


class Modulation(nn.Module):
    """adaLN modulation of a per-token condition; MMAIF Eq. (7) factorises it through rank d' (LoRA)."""

    def __init__(self, dim: int, n: int, rank: int | None) -> None:
        super().__init__()
        self.n = n
        if rank is None:  # DiT Eq. (4): one MLP d -> n d
            self.net = nn.Sequential(nn.SiLU(), nn.Linear(dim, n * dim))
        else:  # Eq. (7): MLP2(MLP1(c)), MLP1: d -> d', MLP2: d' -> n d
            self.net = nn.Sequential(nn.SiLU(), nn.Linear(dim, rank), nn.SiLU(), nn.Linear(rank, n * dim))

    def zero_init(self) -> None:
        """Zero the last projection so gates (and shifts/scales) start at 0: each block is the identity."""
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, c: Tensor) -> tuple[Tensor, ...]:
        """c (B, S, D) -> n tensors (B, S, D)."""
        return self.net(c).chunk(self.n, dim=-1)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """MMAIF Eq. (3): AdaLN(X, beta, gamma) = (1 + gamma) LN(X) + beta (DiT's 1 + scale parametrisation)."""
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    """Flow time t in [0, 1] -> (B, D) through sinusoidal features of 1000 t and an MLP."""

    def __init__(self, dim: int, features: int = 256) -> None:
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        """t (B,) -> (B, D)."""
        return self.mlp(sinusoidal_features(1000.0 * t, self.features).to(self.mlp[0].weight.dtype))
