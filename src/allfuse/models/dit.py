"""FusionDiT: MMAIF's modernised DiT (Sect. 3.3.2, Fig. 3c) over VAE latents.

Inputs: 2..max_inputs condition latents (the degraded sources), optional prompt tokens + mask, and, for a
flow model, a noisy latent x and time t (the network does not know what t means; objectives do).

Multi-input conditioning: inputs fill `max_inputs` fixed slots in order; missing slots are zeros and a
presence flag channel per slot tells the network which are real. A model trained on pairs takes pairs
unchanged; more inputs than slots is an error (fuse sequentially, or train with a larger max_inputs).
The slots (+ flags) are concatenated per token (Sect. 3.3.2 "concatenation of the degraded latent pairs"),
embedded once, and feed (a) every block's LoRA adaLN as the per-token condition c (plus the timestep
embedding), and (b) the input token embedding (with x when present; regression has nothing else to read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from allfuse.config import ModelConfig
from allfuse.models.layers import (
    Attention,
    BlockPE,
    Modulation,
    NAFBlock,
    Rope,
    TimestepEmbedder,
    modulate,
    rope_2d,
    sincos_2d,
)
from allfuse.models.moe import DenseFFN, MoEGLU


class DiTOutput(NamedTuple):
    """The predicted latent (B, C, H, W) and the mean MoE load-balancing loss over blocks (scalar)."""

    sample: Tensor
    balance_loss: Tensor


class FusionBlock(nn.Module):
    """MMAIF Eq. (4) with a NAFBlock before attention, value-residual attention and a MoE-GLU FFN."""

    def __init__(self, cfg: ModelConfig, first: bool = False) -> None:
        super().__init__()
        d = cfg.hidden
        self.naf = NAFBlock(d, cfg.naf_expand) if cfg.naf else None
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        # The first layer has no previous value, hence no eta.
        self.attn = Attention(d, cfg.heads, cfg.value_residual and not first)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        if cfg.moe:
            self.ffn: nn.Module = MoEGLU(d, cfg.expert_hidden, cfg.experts, cfg.top_k, cfg.shared_experts)
        else:
            self.ffn = DenseFFN(d, cfg.dense_hidden or (cfg.shared_experts + cfg.top_k) * cfg.expert_hidden)
        self.mod = Modulation(d, 6, cfg.lora_rank if cfg.lora_adaln else None)

    def forward(
        self,
        x: Tensor,  # (B, L + h*w, D): prompt tokens then the image grid, row-major
        c: Tensor,  # (B, L + h*w, D) per-token condition
        grid: tuple[int, int],
        rope: Rope | None,  # (cos, sin), each (L + h*w, Dh/2)
        mask: Tensor | None,  # (B, 1, 1, L + h*w) bool
        valid: Tensor | None,  # (B, L + h*w) bool
        v_prev: Tensor | None,  # (B, H, L + h*w, Dh)
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Return (x, this layer's value for the next layer's residual, balance loss)."""
        if self.naf is not None:
            h, w = grid
            n_text = x.shape[1] - h * w
            img = rearrange(x[:, n_text:], "b (h w) d -> b d h w", h=h, w=w)
            img = rearrange(self.naf(img), "b d h w -> b (h w) d")
            x = torch.cat([x[:, :n_text], img.to(x.dtype)], dim=1)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.mod(c)
        a, v = self.attn(modulate(self.norm1(x), shift1, scale1), rope, mask, v_prev)
        x = x + gate1 * a
        f, aux = self.ffn(modulate(self.norm2(x), shift2, scale2), valid)
        return x + gate2 * f, v, aux


class FinalLayer(nn.Module):
    """adaLN (shift, scale) + LayerNorm + linear to patch pixels; zero-initialised like DiT."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mod = Modulation(d, 2, cfg.lora_rank if cfg.lora_adaln else None)
        self.linear = nn.Linear(d, cfg.patch_size**2 * cfg.latent_channels)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """(B, S, D) -> (B, S, p*p*C)."""
        shift, scale = self.mod(c)
        return self.linear(modulate(self.norm(x), shift, scale))


def init_dit_weights(model: nn.Module, out: nn.Linear, zero_adaln: bool = True) -> None:
    """DiT init: xavier linears and zero biases, then (zero_adaln) the last projection of every adaLN
    Modulation zeroed so each block starts as the identity, and the output layer `out` zeroed."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if zero_adaln:
        for m in model.modules():
            if isinstance(m, Modulation):
                m.zero_init()
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)


class FusionDiT(nn.Module):
    """Latent fusion transformer; `forward(conds, prompt, prompt_mask, x, t) -> DiTOutput`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p, ch = cfg.hidden, cfg.patch_size, cfg.latent_channels
        cond_ch = cfg.max_inputs * (ch + 1)  # latent slots + one presence flag per slot
        self.cond_embed = nn.Linear(p * p * cond_ch, d)
        self.x_embed = nn.Linear(p * p * (cond_ch + (ch if cfg.timestep else 0)), d)
        self.t_embed = TimestepEmbedder(d) if cfg.timestep else None
        if cfg.prompt:
            self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
            self.text_cond = nn.Parameter(torch.zeros(d))  # adaLN condition of prompt tokens (+ t)
        if cfg.pass_cond:  # zero: a warm start from a model without it behaves as before
            self.pass_cond = nn.Parameter(torch.zeros(d))
        self.block_pe = BlockPE(d, cfg.pe_features) if cfg.block_pe else None
        self.blocks = nn.ModuleList(FusionBlock(cfg, first=i == 0) for i in range(cfg.depth))
        self.final = FinalLayer(cfg)
        self.gradient_checkpointing = False
        self.initialize()

    def initialize(self) -> None:
        """DiT init: xavier linears, zero biases, then zero every adaLN projection and the output layer."""
        init_dit_weights(self, self.final.linear)

    def num_params(self) -> tuple[int, int]:
        """(total, active per token) parameter counts; active drops the E - k unused routed experts."""
        total = sum(q.numel() for q in self.parameters())
        inactive = sum(m.inactive_params() for m in self.modules() if isinstance(m, MoEGLU))
        return total, total - inactive

    def stack_conditions(self, conds: Sequence[Tensor] | Tensor) -> Tensor:
        """Fill the fixed input slots: N latents (B, C, H, W) -> (B, max_inputs * (C + 1), H, W)."""
        z = torch.stack(list(conds), dim=1) if not isinstance(conds, Tensor) else conds  # (B, N, C, H, W)
        b, n, _, hh, ww = z.shape
        if not 2 <= n <= self.cfg.max_inputs:
            raise ValueError(f"got {n} condition latents; this model takes 2..{self.cfg.max_inputs}")
        flags = z.new_zeros(b, self.cfg.max_inputs, 1, hh, ww)
        flags[:, :n] = 1.0
        z = F.pad(z, (0, 0, 0, 0, 0, 0, 0, self.cfg.max_inputs - n))  # zero slots
        return rearrange(torch.cat([z, flags], dim=2), "b n c h w -> b (n c) h w")

    def forward(
        self,
        conds: Sequence[Tensor] | Tensor,  # N x (B, C, H, W) or (B, N, C, H, W)
        prompt: Tensor | None = None,  # (B, L, text_dim)
        prompt_mask: Tensor | None = None,  # (B, L) bool, True = real token
        x: Tensor | None = None,  # (B, C, H, W) noisy latent (flow) or None (regression)
        t: Tensor | None = None,  # (B,) or scalar flow time
        later_pass: Tensor | bool = False,  # (B,) bool or one bool: inputs are this model's own output
    ) -> DiTOutput:
        """Predict a latent the size of the inputs (velocity for flow, the fused latent for regression).
        `later_pass` adds the learned pass condition (ModelConfig.pass_cond) to the samples it marks; a
        model without one ignores it."""
        cfg, p = self.cfg, self.cfg.patch_size
        cond = self.stack_conditions(conds)
        b, _, hh, ww = cond.shape
        if cfg.timestep != (x is not None and t is not None):
            raise ValueError("timestep models need x and t; regression models take neither")
        inp = cond if x is None else torch.cat([x.to(cond.dtype), cond], dim=1)
        pad = (0, -ww % p, 0, -hh % p)  # odd sizes: replicate-pad to the patch grid, crop at the end
        cond, inp = F.pad(cond, pad, mode="replicate"), F.pad(inp, pad, mode="replicate")
        h, w = cond.shape[-2] // p, cond.shape[-1] // p
        patches = "b c (h p) (w q) -> b (h w) (p q c)"
        tokens = self.x_embed(rearrange(inp, patches, p=p, q=p))  # (B, h*w, D)
        c = self.cond_embed(rearrange(cond, patches, p=p, q=p))  # (B, h*w, D)
        t_emb = None
        if self.t_embed is not None:
            t_emb = self.t_embed(torch.as_tensor(t, device=cond.device).float().expand(b))  # (B, D)
            c = c + t_emb[:, None]
        tokens, c, valid = self.join_prompt(tokens, c, prompt, prompt_mask, t_emb)
        if cfg.pass_cond:
            flag = torch.as_tensor(later_pass, device=c.device).to(c.dtype).expand(b)
            c = c + flag[:, None, None] * self.pass_cond.to(c.dtype)
        n_text = tokens.shape[1] - h * w
        tokens, balance = self.run_blocks(tokens, c, (h, w), n_text, valid)
        out = self.final(tokens[:, n_text:], c[:, n_text:])  # (B, h*w, p*p*C)
        out = rearrange(out, "b (h w) (p q c) -> b c (h p) (w q)", h=h, w=w, p=p, q=p)
        return DiTOutput(out[..., :hh, :ww], balance)

    def join_prompt(
        self,
        tokens: Tensor,  # (B, h*w, D)
        c: Tensor,  # (B, h*w, D)
        prompt: Tensor | None,  # (B, L, text_dim)
        prompt_mask: Tensor | None,  # (B, L) bool
        t_emb: Tensor | None,  # (B, D)
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Prepend projected prompt tokens (adaLN condition: a learned vector + t) -> tokens, c, valid."""
        if not self.cfg.prompt or prompt is None:
            return tokens, c, None
        b, n_text = prompt.shape[:2]
        text = self.text_proj(prompt.to(tokens.dtype))  # (B, L, D)
        c_text = self.text_cond.expand(b, n_text, -1)
        c_text = c_text if t_emb is None else c_text + t_emb[:, None]
        valid = None
        if prompt_mask is not None:
            grid = prompt_mask.new_ones(b, tokens.shape[1], dtype=torch.bool)
            valid = torch.cat([prompt_mask.bool(), grid], dim=1)  # (B, L + h*w)
        return torch.cat([text, tokens], dim=1), torch.cat([c_text, c], dim=1), valid

    def run_blocks(
        self, tokens: Tensor, c: Tensor, grid: tuple[int, int], n_text: int, valid: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """The block stack with shared PE, RoPE tables and value residual -> (tokens, mean balance loss)."""
        cfg, (h, w) = self.cfg, grid
        mask = None if valid is None else valid[:, None, None, :]  # (B, 1, 1, S)
        pe = self.position_embedding(h, w, n_text, tokens)  # (S, D) or None
        if pe is not None and self.block_pe is None:  # DiT baseline: fixed PE once at the input
            tokens, pe = tokens + pe, None
        rope = None
        if cfg.rope:
            cos, sin = rope_2d(h, w, cfg.hidden // cfg.heads, cfg.rope_base, n_text)
            rope = (cos.to(tokens.device), sin.to(tokens.device))
        v_prev, aux = None, []
        for block in self.blocks:
            if pe is not None:  # MMAIF Eq. (5): the shared PE is added before each block
                tokens = tokens + pe
            args = (tokens, c, grid, rope, mask, valid, v_prev)
            if self.gradient_checkpointing and self.training:
                tokens, v_prev, a = checkpoint(block, *args, use_reentrant=False)
            else:
                tokens, v_prev, a = block(*args)
            v_prev = v_prev if cfg.value_residual else None
            aux.append(a)
        return tokens, torch.stack(aux).mean() if cfg.moe else tokens.new_zeros((), dtype=torch.float32)

    def position_embedding(self, h: int, w: int, n_text: int, ref: Tensor) -> Tensor | None:
        """Absolute PE for [prompt | grid] (zeros on prompt tokens): learnable per-block PE, or DiT's fixed
        2D sin-cos when both RoPE and block PE are off (the dense-DiT baseline), else None."""
        if self.block_pe is not None:
            pe = self.block_pe(h, w)
        elif not self.cfg.rope:
            pe = sincos_2d(h, w, self.cfg.hidden, ref.device)
        else:
            return None
        return torch.cat([pe.new_zeros(n_text, pe.shape[1]), pe], dim=0).to(ref.dtype)
