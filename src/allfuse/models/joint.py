"""JointDiT: DiTFuse's joint text + image sequence DiT (Li et al., DiTFuse Sect. III-A) over VAE latents.

One token sequence per sample, DiTFuse Sect. III-A2 / SPEC Sect. 7:

    [ null t_1..t_L | <img> input 1 </img> | ... | <img> input N </img> | timestep | noisy target ]
      segment 0       segment 1                    segment N               N + 1      N + 2

DiTFuse's hybrid mask (Sect. III-A3): causal ACROSS segments (a token sees its own segment and the
earlier ones), bidirectional INSIDE a segment (an image, the text); the target sees everything. So the
condition (text + inputs) never sees the timestep or the target: its keys and values do not depend on
x_t or t. `encode_condition` runs it through the layers once and keeps every layer's K and V; each
sampling step then runs only the timestep + target tokens against them (`forward_cached`), as a
decoder-only language model keeps the cache of its prompt.

Positions: 2D RoPE (MMAIF Sect. 3.3.2, `layers.rope_2d_angles`) on image tokens with ONE grid for every
input and the target, so a pixel location lines up across images; text, boundary and timestep tokens are
not rotated (MiniLM's embeddings already carry word order). Roles: learned segment embeddings (text,
input slot k plus a shared "input", timestep, target) and <img> / </img> boundary tokens. adaLN
(LoRA-factorised, MMAIF Eq. 7) is conditioned per segment: condition segments on their segment embedding
only (independent of t, or the cache would not hold), timestep and target on segment + timestep embedding.
Classifier-free guidance: a learned null token is always the first text token, so "no text" masks the
others; "no images" puts a learned null token at every position of every input image.

The network knows nothing about noise: the flow-matching loss with guidance dropout is in
`allfuse.objectives.joint`, the cached, guided sampler in `allfuse.sampling.joint`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from allfuse.config import Prediction, _validate_literals, build_config, known_fields
from allfuse.devices import autocast_dtype
from allfuse.models.dit import FinalLayer, init_dit_weights
from allfuse.models.layers import Attention, Modulation, Rope, TimestepEmbedder, modulate, rope_2d_angles
from allfuse.models.moe import GLU


@dataclass(frozen=True)
class JointConfig:
    """JointDiT hyper-parameters; field names shared with ModelConfig mean the same thing."""

    latent_channels: int = 16  # z of the f=8 tokenizer
    patch_size: int = 2
    hidden: int = 256
    depth: int = 8
    heads: int = 4
    ffn_hidden: int = 768  # SwiGLU width (3 x hidden)
    max_inputs: int = 4  # input images with their own slot embedding; 1..max_inputs per call
    text_dim: int = 384  # all-MiniLM-L6-v2 token embeddings
    rope_base: float = 2000.0
    value_residual: bool = True  # MMAIF Eq. (6)
    lora_adaln: bool = True  # MMAIF Eq. (7): adaLN through rank lora_rank
    lora_rank: int = 64
    predict: Prediction = "velocity"  # or "data": Z1, from which v = (Z1 - Z_t) / (1 - t)
    # A segmentation head on the input images' last hidden states (`MaskHead`): the mask of what the
    # prompt names, trained with a direct mask loss beside the flow loss (allfuse.objectives.joint).
    mask_head: bool = False
    # With mask_head: the label set of a dense, LSeg-style head (`LabelHead`) instead, first "background":
    # every pixel scored against the text of each label, cross-entropy over the set in training, argmax
    # over it (plus the class a prompt names) at inference.
    mask_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _validate_literals(self)
        if self.hidden % self.heads or (self.hidden // self.heads) % 4:
            raise ValueError("hidden / heads must be a multiple of 4 (2D RoPE: two axes x complex pairs)")
        if self.max_inputs < 1:
            raise ValueError("max_inputs must be >= 1")
        if self.mask_labels and (not self.mask_head or self.mask_labels[0] != "background"):
            raise ValueError("mask_labels needs mask_head=True and 'background' as its first label")
        object.__setattr__(self, "mask_labels", tuple(self.mask_labels))  # JSON / YAML give lists

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], strict: bool = True) -> JointConfig:
        """From `to_dict`'s form; unknown keys are errors, or warnings with strict=False (a model folder
        written by newer code)."""
        if not strict:
            values, unknown = known_fields(cls, values)
            if unknown:
                warnings.warn(
                    f"ignoring JointConfig keys this version does not know: {unknown}", stacklevel=2
                )
        return build_config(cls, values)


JOINT_PRESETS: dict[str, JointConfig] = {
    # 8.1M parameters; 2 CPU cores train it at 128-256 px crops.
    "tiny": JointConfig(),
}


class ConditionCache(NamedTuple):
    """Every layer's keys and values of the condition tokens, which no later token changes."""

    keys: list[Tensor]  # depth x (B, H, Sc, Dh), RoPE applied
    values: list[Tensor]  # depth x (B, H, Sc, Dh), value residual applied
    valid: Tensor  # (B, Sc) bool: False on padded or dropped text tokens
    grid: tuple[int, int]  # token grid (h, w) of every image


class Tokens(NamedTuple):
    """Embedded tokens of some segments and what the blocks need to run them."""

    x: Tensor  # (B, S, D)
    c: Tensor  # (B, G, D) adaLN condition of each of the G segments
    seg: Tensor  # (S,) long: each token's segment, 0..G-1
    angles: Tensor  # (S, Dh/2) RoPE angles (0 = not rotated)
    valid: Tensor  # (B, S) bool: which tokens may be attended to


def patchify(z: Tensor, p: int) -> Tensor:
    """Latent (B, C, H, W) -> patch tokens (B, H/p * W/p, p*p*C), row-major."""
    return rearrange(z, "b c (h p) (w q) -> b (h w) (p q c)", p=p, q=p)


def first_positions(seg: Tensor) -> Tensor:
    """Index of the first token of each segment 0, 1, ... of a sorted segment vector (S,)."""
    change = torch.ones_like(seg, dtype=torch.bool)
    change[1:] = seg[1:] != seg[:-1]
    return change.nonzero().flatten()


def segment_mask(q_seg: Tensor, k_seg: Tensor, k_valid: Tensor) -> Tensor:
    """DiTFuse Sect. III-A3: query i may see key j iff seg(j) <= seg(i) and j is valid -> (B, 1, Sq, Sk)."""
    causal = k_seg[None, :] <= q_seg[:, None]  # (Sq, Sk): bidirectional inside, causal across
    return causal[None, None] & k_valid[:, None, None, :]


def attention_bias(mask: Tensor, ref: Tensor) -> Tensor:
    """A boolean mask as an additive one (0 / -inf) in the dtype attention runs in (autocast's, else ref's),
    made once per forward: SDPA would convert a boolean mask in every layer (16 % of a cached step on CPU)."""
    dtype = autocast_dtype(ref.device.type) or ref.dtype
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))


def rope_tables(angles: Tensor, ref: Tensor) -> Rope:
    """(cos, sin) of RoPE angles on ref's device."""
    return angles.cos().to(ref.device), angles.sin().to(ref.device)


class JointEmbed(nn.Module):
    """Tokens, roles and positions of the joint sequence (DiTFuse Sect. III-A2)."""

    def __init__(self, cfg: JointConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, patch = cfg.hidden, cfg.patch_size**2 * cfg.latent_channels
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.cond_embed = nn.Linear(patch, d)  # clean input latents
        self.x_embed = nn.Linear(patch, d)  # the noisy target
        self.t_embed = TimestepEmbedder(d)
        # Roles: segment embeddings (added to tokens, and the adaLN condition), boundaries, null tokens.
        self.seg_text, self.seg_input = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.seg_slot = nn.Parameter(torch.zeros(cfg.max_inputs, d))
        self.seg_time, self.seg_target = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.img_open, self.img_close = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.null_text, self.null_image = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        for param in self.parameters(recurse=False):  # the role vectors above
            nn.init.normal_(param, std=0.02)

    def grid_angles(self, h: int, w: int) -> Tensor:
        """RoPE angles (h*w, Dh/2) of one image grid, shared by every input and the target."""
        return rope_2d_angles(h, w, self.cfg.hidden // self.cfg.heads, self.cfg.rope_base)

    def condition(
        self,
        conds: list[Tensor],  # N x (B, C, H, W)
        text: Tensor | None,  # (B, L, text_dim)
        text_mask: Tensor | None,  # (B, L) bool, True = real token
        drop_text: Tensor | None,  # (B,) bool
        drop_image: Tensor | None,  # (B,) bool
    ) -> Tokens:
        """[null t_1..t_L | <img> input 1 </img> | ... ] with segments 0..N."""
        b, d, p = conds[0].shape[0], self.cfg.hidden, self.cfg.patch_size
        h, w = conds[0].shape[-2] // p, conds[0].shape[-1] // p
        dtype = self.cond_embed.weight.dtype
        parts, c, seg, angles, valid = [self.null_text.to(dtype).expand(b, 1, d)], [self.seg_text], [], [], []
        n_text = 1
        keep = torch.ones(b, 1, dtype=torch.bool, device=conds[0].device)
        if text is not None:
            n_text += text.shape[1]
            real = text.new_ones(text.shape[:2], dtype=torch.bool) if text_mask is None else text_mask.bool()
            if drop_text is not None:
                real = real & ~drop_text[:, None]
            parts.append(self.text_proj(text.to(dtype)))
            keep = torch.cat([keep, real], dim=1)
        seg.append(torch.zeros(n_text, dtype=torch.long))
        angles.append(torch.zeros(n_text, self.cfg.hidden // self.cfg.heads // 2))
        valid.append(keep)
        grid = self.grid_angles(h, w)
        for k, z in enumerate(conds):
            tok = self.cond_embed(patchify(z.to(dtype), p))  # (B, h*w, D)
            if drop_image is not None:
                tok = torch.where(drop_image[:, None, None], self.null_image.to(tok.dtype), tok)
            ends = [e.to(tok.dtype).expand(b, 1, d) for e in (self.img_open, self.img_close)]
            parts.append(torch.cat([ends[0], tok, ends[1]], dim=1))
            c.append(self.seg_input + self.seg_slot[k])
            seg.append(torch.full((h * w + 2,), k + 1, dtype=torch.long))
            angles.append(
                torch.cat([grid.new_zeros(1, grid.shape[1]), grid, grid.new_zeros(1, grid.shape[1])])
            )
            valid.append(keep.new_ones(b, h * w + 2))
        cc = torch.stack(c).to(dtype)  # (N + 1, D)
        seg_t = torch.cat(seg).to(conds[0].device)
        x = torch.cat(parts, dim=1) + cc[seg_t]  # segment embeddings
        return Tokens(x, cc.expand(b, -1, -1), seg_t, torch.cat(angles), torch.cat(valid, dim=1))

    def target(self, x_t: Tensor, t: Tensor) -> Tokens:
        """[timestep | noisy target] with segments 0 and 1 (N + 1 and N + 2 of the whole sequence)."""
        b, p = x_t.shape[0], self.cfg.patch_size
        h, w = x_t.shape[-2] // p, x_t.shape[-1] // p
        t_emb = self.t_embed(torch.as_tensor(t, device=x_t.device).float().expand(b))  # (B, D)
        c = torch.stack([t_emb + self.seg_time, t_emb + self.seg_target], dim=1)  # (B, 2, D)
        tok = self.x_embed(patchify(x_t.to(t_emb.dtype), p)) + self.seg_target  # (B, h*w, D)
        x = torch.cat([c[:, :1], tok], dim=1)  # the timestep token is its embedding + role
        seg = torch.cat([torch.zeros(1, dtype=torch.long), torch.ones(h * w, dtype=torch.long)])
        grid = self.grid_angles(h, w)
        angles = torch.cat([grid.new_zeros(1, grid.shape[1]), grid])
        return Tokens(x, c, seg.to(x_t.device), angles, x.new_ones(b, h * w + 1, dtype=torch.bool))


MASK_CELLS = 4  # mask logits per token side: a token of patch 2 on f = 8 latents covers 16 px -> 4 px cells
MASK_DIM = 64  # width of the mask head's pixel and text embeddings


class MaskHead(nn.Module):
    """Mask logits of the class a [SEG] prompt names (beyond DiTFuse, which only draws the overlay into the
    generated image), as LSeg (Li et al. 2022, "Language-driven Semantic Segmentation", Sect. 3) scores
    pixels against a text embedding: the input images' last hidden states, averaged over the inputs, go
    through a 3 x 3 convolution (local context: a shape's outline spans several tokens) to an embedding per
    4 px cell (pixel shuffle), the prompt's last hidden states (their mean over real tokens) to a query,
    and each cell's logit is their scaled dot product plus a bias. Image tokens never see the target, so
    the mask is the same at every sampling step and costs one condition pass."""

    def __init__(self, cfg: JointConfig) -> None:
        super().__init__()
        d, e, cells = cfg.hidden, MASK_DIM, MASK_CELLS
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.pixel = nn.Sequential(
            nn.Conv2d(d, e, 3, padding=1), nn.GELU(), nn.Conv2d(e, e * cells**2, 1), nn.PixelShuffle(cells)
        )
        self.query = nn.Sequential(nn.LayerNorm(d, eps=1e-6), nn.Linear(d, e))
        self.scale = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.full((), -2.0))  # p = 0.12: a new head starts at 'mostly background'

    def forward(self, states: Tensor, grid: tuple[int, int], text: Tensor, valid: Tensor) -> Tensor:
        """(B, N, h*w, D) input-image states, (B, L, D) text states with (B, L) bool validity ->
        (B, 1, h * MASK_CELLS, w * MASK_CELLS) logits."""
        f = rearrange(self.norm(states.mean(dim=1)), "b (h w) d -> b d h w", h=grid[0])
        pix = self.pixel(f)  # (B, E, h * cells, w * cells)
        keep = valid.to(text.dtype)[..., None]
        q = self.query((text * keep).sum(1) / keep.sum(1).clamp(min=1.0))  # (B, E)
        logits = torch.einsum("behw,be->bhw", pix, q.to(pix.dtype)) / MASK_DIM**0.5
        return (self.scale * logits + self.bias)[:, None]


class LabelHead(nn.Module):
    """Dense, LSeg-style segmentation head (Li et al. 2022, "Language-driven Semantic Segmentation",
    Sect. 3): an embedding per 4 px cell, scored against the text embedding of every label of a set by
    cosine similarity times a learned temperature; trained with cross-entropy over the set, read by argmax.

    Cells: the input images' last hidden states (mean over inputs) through a 3 x 3 conv and a pixel
    shuffle to 4 px cells, joined with a small convolutional branch on the input pixels themselves (mean
    and max over inputs, two stride-2 convs): the DiT's states say where things are, the pixels what shape
    and texture they have, which the states alone do not carry. Labels: mean-pooled text-encoder tokens of
    the label's name (MiniLM is trained for mean pooling) through an MLP, so the label set is free text."""

    def __init__(self, cfg: JointConfig, pixel_width: int = 48) -> None:
        super().__init__()
        d, e, cells, w = cfg.hidden, MASK_DIM, MASK_CELLS, pixel_width
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.states = nn.Sequential(
            nn.Conv2d(d, e, 3, padding=1), nn.GELU(), nn.Conv2d(e, e * cells**2, 1), nn.PixelShuffle(cells)
        )
        self.pixels = nn.Sequential(
            nn.Conv2d(6, w, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(w, w, 3, padding=1),
        )
        self.mix = nn.Sequential(
            nn.Conv2d(e + w, e, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(e, e, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(e, e, 1),
        )
        self.query = nn.Sequential(
            nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, e), nn.GELU(), nn.Linear(e, e)
        )
        self.log_scale = nn.Parameter(torch.tensor(2.3))  # temperature exp(2.3) = 10 on cosines

    def cells(self, states: Tensor, grid: tuple[int, int], pixels: Sequence[Tensor]) -> Tensor:
        """(B, N, h*w, D) input-image states and N x (B, 3, H, W) input pixels in [0, 1] -> unit
        embeddings (B, E, 4 h, 4 w); the pixels are read at 4 px per cell (resized unless H = 16 h)."""
        f = rearrange(self.norm(states.mean(dim=1)), "b (h w) d -> b d h w", h=grid[0])
        a = self.states(f)
        px = torch.stack([q.to(a.dtype) for q in pixels], dim=1)  # (B, N, 3, H, W)
        px = torch.cat([px.mean(dim=1), px.amax(dim=1)], dim=1)
        side = (4 * a.shape[-2], 4 * a.shape[-1])  # 4 px per cell: f = 8 latents with patch 2 give it as is
        if px.shape[-2:] != side:
            px = F.interpolate(px, size=side, mode="bilinear", align_corners=False, antialias=True)
        b = self.pixels(px)
        return F.normalize(self.mix(torch.cat([a, b], dim=1)).float(), dim=1)

    def queries(self, text: Tensor, valid: Tensor) -> Tensor:
        """(K, L, text_dim) text-encoder tokens of K label names, (K, L) bool -> unit queries (K, E)."""
        keep = valid.to(text.dtype)[..., None]
        pooled = (text * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return F.normalize(self.query(pooled).float(), dim=-1)

    def forward(
        self, states: Tensor, grid: tuple[int, int], pixels: Sequence[Tensor], text: Tensor, valid: Tensor
    ) -> Tensor:
        """Logits (B, K, 4 h, 4 w) of every cell against K labels (`cells`, `queries`)."""
        cells, q = self.cells(states, grid, pixels), self.queries(text, valid)
        return self.log_scale.exp() * torch.einsum("behw,ke->bkhw", cells, q)


class JointBlock(nn.Module):
    """Pre-norm DiT block: per-segment adaLN-Zero (DiT Eq. 4, rank-factorised as MMAIF Eq. 7), attention
    that may also read kept keys/values, a SwiGLU FFN."""

    def __init__(self, cfg: JointConfig, first: bool) -> None:
        super().__init__()
        d = cfg.hidden
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.heads, cfg.value_residual and not first)  # no V_{l-1} in layer 1
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ffn = GLU(d, cfg.ffn_hidden)
        self.mod = Modulation(d, 6, cfg.lora_rank if cfg.lora_adaln else None)

    def forward(
        self,
        x: Tensor,  # (B, S, D)
        tok: Tokens,  # c (B, G, D), seg (S,)
        rope: Rope,  # (S, Dh/2) x 2
        mask: Tensor,  # (B, 1, S, Sk) bool or additive
        v_prev: Tensor | None,  # (B, H, S, Dh)
        past: tuple[Tensor, Tensor] | None = None,  # kept (K, V), each (B, H, Sk - S, Dh)
        kv_only: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """-> (x, k, v) of these S tokens; with kv_only the keys and values alone (x unchanged)."""
        mods = [m[:, tok.seg] for m in self.mod(tok.c)]  # 6 x (B, S, D): per-segment -> per-token
        shift1, scale1, gate1, shift2, scale2, gate2 = mods
        q, k, v = self.attn.project(modulate(self.norm1(x), shift1, scale1), rope, v_prev)
        if kv_only:
            return x, k, v
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        x = x + gate1 * self.attn.attend(q, keys, values, mask)
        x = x + gate2 * self.ffn(modulate(self.norm2(x), shift2, scale2))
        return x, k, v


class JointDiT(nn.Module):
    """`forward(conds, text, text_mask, x_t, t) -> (B, C, H, W)`, the velocity (or Z1) of the target;
    `encode_condition` + `forward_cached` compute the same with the condition run once."""

    def __init__(self, cfg: JointConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = JointEmbed(cfg)
        self.blocks = nn.ModuleList(JointBlock(cfg, first=i == 0) for i in range(cfg.depth))
        self.final = FinalLayer(cfg)  # type: ignore[arg-type]  # reads the fields JointConfig shares
        self.mask_head: nn.Module | None = None
        if cfg.mask_head:
            self.mask_head = LabelHead(cfg) if cfg.mask_labels else MaskHead(cfg)
        self.initialize()

    def initialize(self) -> None:
        """DiT init (Peebles & Xie 2023, adaLN-Zero): xavier linears, zero biases, zero adaLN projections
        (every block starts as the identity) and a zero output projection (the output starts at 0)."""
        init_dit_weights(self, self.final.linear, zero_adaln=True)

    def num_params(self) -> int:
        """Parameter count."""
        return sum(q.numel() for q in self.parameters())

    def check_inputs(self, conds: Sequence[Tensor] | Tensor, x_t: Tensor | None = None) -> list[Tensor]:
        """N x (B, C, H, W) (from a list or a (B, N, C, H, W) tensor), checked against the config and x_t."""
        conds = list(conds.unbind(1) if isinstance(conds, Tensor) else conds)
        if not 1 <= len(conds) <= self.cfg.max_inputs:
            raise ValueError(f"got {len(conds)} input latents; this model takes 1..{self.cfg.max_inputs}")
        shape = (x_t if x_t is not None else conds[0]).shape
        if any(z.shape != shape for z in conds) or shape[1] != self.cfg.latent_channels:
            raise ValueError(f"inputs and target must all be (B, {self.cfg.latent_channels}, H, W) alike")
        if shape[-2] % self.cfg.patch_size or shape[-1] % self.cfg.patch_size:
            raise ValueError(f"latent sides must be multiples of the patch size {self.cfg.patch_size}")
        return conds

    def hidden_states(
        self,
        conds: Sequence[Tensor] | Tensor,  # N x (B, C, H, W) or (B, N, C, H, W)
        text: Tensor | None,  # (B, L, text_dim)
        text_mask: Tensor | None,  # (B, L) bool, True = real token
        x_t: Tensor,  # (B, C, H, W)
        t: Tensor | float,  # (B,) or scalar
        drop_text: Tensor | None = None,  # (B,) bool: CFG "no text"
        drop_image: Tensor | None = None,  # (B,) bool: CFG "no images"
    ) -> tuple[Tensor, Tokens]:
        """The whole sequence in one pass, no cache -> (last hidden states (B, S, D), its Tokens)."""
        cond = self.embed.condition(self.check_inputs(conds, x_t), text, text_mask, drop_text, drop_image)
        tgt = self.embed.target(x_t, t)
        g = cond.c.shape[1]  # condition segments; the target's come after them
        tok = Tokens(
            torch.cat([cond.x, tgt.x], 1),
            torch.cat([cond.c, tgt.c], 1),
            torch.cat([cond.seg, tgt.seg + g]),
            torch.cat([cond.angles, tgt.angles]),
            torch.cat([cond.valid, tgt.valid], 1),
        )
        x, _, _ = self.run_blocks(tok, segment_mask(tok.seg, tok.seg, tok.valid))
        return x, tok

    def forward(
        self,
        conds: Sequence[Tensor] | Tensor,
        text: Tensor | None,
        text_mask: Tensor | None,
        x_t: Tensor,
        t: Tensor | float,
        drop_text: Tensor | None = None,
        drop_image: Tensor | None = None,
        with_mask: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Velocity (or Z1 with predict="data") of the target, (B, C, H, W); arguments as `hidden_states`.
        with_mask: also the mask head's logits (B, 1, H * MASK_CELLS / p, ...) from the same pass."""
        x, tok = self.hidden_states(conds, text, text_mask, x_t, t, drop_text, drop_image)
        n_target = x_t.shape[-2] * x_t.shape[-1] // self.cfg.patch_size**2
        v = self.output(x[:, -n_target:], tok.c[:, -1:], x_t.shape[-2])
        if not with_mask:
            return v
        n_inputs = len(conds) if not isinstance(conds, Tensor) else conds.shape[1]
        return v, self.mask_logits(x, tok, x_t.shape[-2:], n_inputs)

    def input_states(self, x: Tensor, tok: Tokens, size: Sequence[int], n_inputs: int) -> Tensor:
        """The last hidden states (B, n_inputs, h*w, D) of the input images in x (B, S, D), a sequence
        laid out as `tok` (segments: text, the inputs, then any timestep and target); size: latent (H, W)."""
        p = self.cfg.patch_size
        n = (size[0] // p) * (size[1] // p)
        firsts = [int(i) for i in first_positions(tok.seg)]  # text, each input's <img>, ...
        return torch.stack([x[:, s + 1 : s + 1 + n] for s in firsts[1 : 1 + n_inputs]], dim=1)

    def mask_logits(self, x: Tensor, tok: Tokens, size: Sequence[int], n_inputs: int) -> Tensor:
        """The mask head (`MaskHead`) on the states in x (B, S, D) of the n_inputs images of a sequence
        laid out as `tok`; size: the latent (H, W)."""
        if not isinstance(self.mask_head, MaskHead):
            raise ValueError(
                "this JointDiT has no mask head of a prompt (JointConfig.mask_head without mask_labels)"
            )
        p = self.cfg.patch_size
        grid = (size[0] // p, size[1] // p)
        n_text = int(first_positions(tok.seg)[1])
        states = self.input_states(x, tok, size, n_inputs)
        return self.mask_head(states, grid, x[:, :n_text], tok.valid[:, :n_text])

    def label_logits(
        self,
        conds: Sequence[Tensor] | Tensor,  # N x (B, C, H, W)
        pixels: Sequence[Tensor],  # N x (B, 3, 8 H, 8 W) in [0, 1]: the images the latents encode
        text: Tensor | None,  # (B, L, text_dim): the prompt
        text_mask: Tensor | None,  # (B, L) bool
        label_text: Tensor,  # (K, Lk, text_dim): text-encoder tokens of K label names
        label_mask: Tensor,  # (K, Lk) bool
        grad: bool = False,  # also through the network (else only the head is in the graph)
    ) -> Tensor:
        """`LabelHead` logits (B, K, H * MASK_CELLS / p, ...): the condition (prompt + inputs) through
        every layer once, no target, then every 4 px cell against every label."""
        if not isinstance(self.mask_head, LabelHead):
            raise ValueError("this JointDiT has no label head (JointConfig.mask_labels)")
        conds = self.check_inputs(conds)
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            tok = self.embed.condition(conds, text, text_mask, None, None)
            x, _, _ = self.run_blocks(tok, segment_mask(tok.seg, tok.seg, tok.valid))
            states = self.input_states(x, tok, conds[0].shape[-2:], len(conds))
        p = self.cfg.patch_size
        grid = (conds[0].shape[-2] // p, conds[0].shape[-1] // p)
        return self.mask_head(states, grid, pixels, label_text, label_mask)

    @torch.no_grad()
    def predict_mask(
        self, conds: Sequence[Tensor] | Tensor, text: Tensor | None, text_mask: Tensor | None
    ) -> Tensor:
        """Mask logits (B, 1, H * MASK_CELLS / p, W * MASK_CELLS / p) of the class the text names: the
        condition (text + inputs) through every layer once, no target."""
        conds = self.check_inputs(conds)
        tok = self.embed.condition(conds, text, text_mask, None, None)
        x, _, _ = self.run_blocks(tok, segment_mask(tok.seg, tok.seg, tok.valid))
        return self.mask_logits(x, tok, conds[0].shape[-2:], len(conds))

    @torch.no_grad()
    def encode_condition(
        self,
        conds: Sequence[Tensor] | Tensor,
        text: Tensor | None,
        text_mask: Tensor | None,
        drop_text: Tensor | None = None,
        drop_image: Tensor | None = None,
    ) -> ConditionCache:
        """Run text + inputs through every layer once and keep each layer's K and V (no gradients)."""
        conds = self.check_inputs(conds)
        tok = self.embed.condition(conds, text, text_mask, drop_text, drop_image)
        _, keys, values = self.run_blocks(tok, segment_mask(tok.seg, tok.seg, tok.valid), kv_only_last=True)
        p = self.cfg.patch_size
        grid = (conds[0].shape[-2] // p, conds[0].shape[-1] // p)
        return ConditionCache(keys, values, tok.valid, grid)

    def forward_cached(self, cache: ConditionCache, x_t: Tensor, t: Tensor | float) -> Tensor:
        """As `forward`, running only the timestep + target tokens against the kept condition K/V."""
        p = self.cfg.patch_size
        if (x_t.shape[-2] // p, x_t.shape[-1] // p) != cache.grid or x_t.shape[0] != cache.valid.shape[0]:
            raise ValueError("x_t does not match the batch or size of the cached condition")
        tok = self.embed.target(x_t, t)
        seg_all = torch.full((cache.valid.shape[1],), -1, dtype=torch.long, device=x_t.device)
        # Every condition key is visible to the timestep and target (segment -1 here: "earlier").
        mask = segment_mask(tok.seg, torch.cat([seg_all, tok.seg]), torch.cat([cache.valid, tok.valid], 1))
        x, _, _ = self.run_blocks(tok, mask, cache)
        return self.output(x[:, 1:], tok.c[:, 1:], x_t.shape[-2])

    def run_blocks(
        self, tok: Tokens, mask: Tensor, cache: ConditionCache | None = None, kv_only_last: bool = False
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """The block stack over tok, attending to a cache's K/V too -> (x, every layer's k and v).
        kv_only_last: the last layer's outputs are never read (the condition's): compute its K, V only."""
        bias, rope = attention_bias(mask, tok.x), rope_tables(tok.angles, tok.x)
        x, v_prev, keys, values = tok.x, None, [], []
        for i, block in enumerate(self.blocks):
            past = None if cache is None else (cache.keys[i], cache.values[i])
            x, k, v = block(x, tok, rope, bias, v_prev, past, kv_only_last and i == len(self.blocks) - 1)
            keys.append(k)
            values.append(v)
            v_prev = v if self.cfg.value_residual else None
        return x, keys, values

    def output(self, x: Tensor, c: Tensor, height: int) -> Tensor:
        """Target states (B, h*w, D) and their adaLN condition (B, 1, D) -> final layer -> (B, C, H, W)."""
        p = self.cfg.patch_size
        out = self.final(x, c)  # (B, h*w, p*p*C)
        return rearrange(out, "b (h w) (p q c) -> b c (h p) (w q)", h=height // p, p=p, q=p)
