"""Pixel-space refiner: a light NAFNet-style U-Net that corrects the decoded fusion from the input images.

Beyond the papers (SPEC, "a measured ceiling"): a latent model's output goes through a lossy f = 8 decoder,
which caps edge metrics (Qabf, VIF) however good the DiT is. The refiner sees the decoded fused image and
the (degraded) inputs at full resolution and predicts a residual, so detail the latent lost can come back
from whichever input still has it, while the DiT keeps the global decisions (what to restore, which input
to trust). Its last convolution starts at zero: an untrained residual-only refiner is the identity. For
speed on a CPU the U-Net runs on pixel-unshuffled maps (space-to-depth, Shi et al. 2016): a 4 x 4 pixel
cell becomes 16 channels, so no pixel is lost while the convolutions run at 1/16 of the pixel count.

With `mix`, the tail also predicts per-pixel blend logits over [decoded fusion, input 1, input 2, ...]:
  R = sum_k softmax(l)_k * S_k + residual,     S_0 = decoded fusion, S_k = input k
so a region the inputs already show well (mild degradation, the in-focus half of a multi-focus pair) can be
copied from them pixel-exactly instead of through the f = 8 latent bottleneck, which the latent path cannot
do (measured: on lightly degraded multi-focus pairs the decoded fusion stays ~10 dB below a
restore-then-fuse chain; bench/quality.py). Blending sources with learned per-pixel weights is the classical
fusion rule (Mertens et al. 2007 for exposures, decision maps for focus); here the weights are predicted
from everything, the decoded fusion included. At init the logits are a constant prior favouring the
decoded fusion (MIX_PRIOR), and missing input slots get no weight.

With `bands = 2` the blend is done per frequency band, as classical multi-scale fusion does (two-scale
guided-filter fusion, Li et al. 2013; Laplacian pyramids, Burt & Adelson 1983): every source splits into a
base B = G_sigma * S (Gaussian low-pass) and a detail S - B, each band with its own weights,
  R = sum_k softmax(l_base)_k * B_k + sum_k softmax(l_detail)_k * (S_k - B_k) + residual,
so the output can take one input's brightness and the other's edges, which one weight per pixel cannot
(the VIF teacher, guided-filter fusion, builds its output exactly so). With both logit sets equal it is
the one-band blend, which is how a one-band refiner is widened (`widen_state_dict`).

With `detail_gain = M > 1` the tail also predicts a per-pixel gain on the blended detail band,
  R = sum_k softmax(l_base)_k * B_k + g * sum_k softmax(l_detail)_k * (S_k - B_k) + residual,
  g = M ** tanh(t)  in [1/M, M],  t = 0 -> g = 1,
because a convex blend can never carry more detail than its most detailed source: where every input lost
contrast or sharpness (low contrast, low light, downsampling, haze) the target's edges are stronger than any
source's (measured: on the VIF bench the shipped refiner's mean Sobel strength was 80-90 % of the target's,
the restore-then-fuse chain's ~100 %). Unsharp masking, x + (g - 1) (x - G * x), is the classical form of
this; here g is predicted per pixel from everything. The gain logit starts at zero, so adding it to a
trained refiner changes nothing (`widen_state_dict`).

With `base_gain = M > 1` the blended base band gets a smooth per-pixel gain too,
  R = b * sum_k softmax(l_base)_k * B_k + g * (detail) + residual,   b = M ** tanh(G_sigma * u),
because the degradations that a blend of the inputs cannot undo are, in the base band, a per-pixel affine
map of the scene: haze is I = J t + A (1 - t) (Koschmieder), so J = I / t - A (1 - t) / t, a gain 1 / t and
an offset; low light and over-exposure are gains and offsets of the radiance too. The residual carries the
offset; the gain, bounded and smoothed at the band's scale so it cannot add detail of its own, carries 1 / t
(or the exposure factor). The refiner's channel attention sees whole-image statistics (also when tiled,
allfuse.tiled), the global cue airlight and exposure need. Its logit starts at zero (gain 1), so widening
a trained refiner with it changes nothing (`widen_state_dict`).

With `fine_gain = M_f > 1` the blended detail band gets one more per-pixel gain on its finest part,
  D = sum_k softmax(l_detail)_k * (S_k - B_k),   F = D - G_{fine_sigma} * D,
  R = (base) + g * (D + (h - 1) * F) + residual,   h = M_f ** tanh(v),
a two-tap equalizer of the detail band: one gain cannot undo a blur, which attenuates fine detail far more
than coarse detail (a Gaussian PSF of sigma s multiplies frequency f by exp(-2 pi^2 s^2 f^2)), nor noise,
which sits mostly in the finest band. h > 1 sharpens like a fixed-kernel Wiener deconvolution would, h < 1
smooths like a denoiser, per pixel, predicted from everything. Its logit comes from a head of its own
(`fine_tail`, on the U-Net's last features) that starts at zero (h = 1), so widening a trained refiner with
it changes nothing (`widen_state_dict`), and the head can be trained alone on a frozen refiner
(allfuse.train.refine, `trainable`), which then keeps everything it did and only learns where to
sharpen or smooth.

With `classical`, one more source joins the blend: the task's classical fusion of the inputs (the rule
that makes the training targets from clean pairs, allfuse.tasks.CLASSICAL_DEFAULT: guided-filter fusion
for VIF, a Laplacian pyramid for MEF, a focus decision map for MFF; `classical_source`),
  S = [decoded fusion, input 1, input 2, ..., classical fusion of the inputs],
because the refiner's own blend of the inputs stays well below that rule where the inputs are clean
(measured on the clean validation pairs: the refined decoded fusion scores Qabf 0.590 / 0.717 / 0.711 for
VIF / MEF / MFF, the rule 0.624 / 0.760 / 0.759, and the refiner fed the rule's output as its decoded
fusion keeps 0.620 / 0.749 / 0.731). Where the inputs are degraded the rule carries the degradation, and
the blend weights, predicted from everything, are meant to keep the DiT's restoration there. Measured so
far, training does not get there: 1,000 steps learnt to give the rule almost no weight and scored below
the refiner it started from (allfuse-reg's model card, "Tried and not kept"); no shipped refiner uses it.
The rule sees the inputs as given to the refiner
(after the input corrector, allfuse.models.correct). Widening a trained refiner gives the source half of
the decoded fusion's weight in each band (their logits equal, each ln 2 lower), so it starts as the
trained refiner with the decoded fusion replaced by its mean with the rule's output. (A widening that
kept the output, the source at a logit of -8, never used it: Adam moves a logit by about lr per step.)

Blocks follow NAFNet (Chen et al., ECCV 2022, "Simple Baselines for Image Restoration"): LayerNorm, 1x1
conv, depthwise 3x3, SimpleGate (x1 * x2), simplified channel attention, 1x1 conv, then a gated FFN; both
branches scaled by learned per-channel factors that start at zero.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from allfuse.denoise import ramp
from allfuse.devices import autocast_dtype
from allfuse.models.layers import NAFBlock, NAFNames
from allfuse.ops import gaussian_blur


@dataclass(frozen=True)
class RefinerConfig:
    """Width and depth of the refiner U-Net; max_inputs condition images, gray ones replicated to RGB."""

    width: int = 32
    blocks: tuple[int, ...] = (1, 2, 2)  # NAF blocks per level, finest first
    max_inputs: int = 2
    unshuffle: int = 4  # pixel (un)shuffle factor: the U-Net runs at 1/unshuffle resolution, losslessly
    mix: bool = False  # also predict per-pixel blend weights over [decoded fusion, inputs] (module doc)
    bands: int = 1  # with mix: 1 = one blend, 2 = separate base / detail blends (module doc)
    band_sigma: float = 3.0  # px, Gaussian splitting base from detail when bands = 2
    detail_gain: float = 0.0  # with bands = 2: M > 1 = per-pixel gain in [1/M, M] on the detail band; 0 = off
    base_gain: float = 0.0  # with bands = 2: M > 1 = smooth per-pixel gain in [1/M, M] on the base; 0 = off
    fine_gain: float = 0.0  # with detail_gain: M > 1 = gain in [1/M, M] on the finest detail; 0 = off
    fine_sigma: float = 1.0  # px, Gaussian splitting the finest detail from the rest of the detail band
    classical: bool = False  # with mix: the task's classical fusion of the inputs is one more source (doc)
    detail_scale: float = 1.0  # with bands = 2: fixed factor on the detail band at inference; 1 = as trained

    def __post_init__(self) -> None:
        if self.width < 4 or not self.blocks or min(self.blocks) < 1 or self.unshuffle < 1:
            raise ValueError(f"bad refiner config: {self}")
        if self.bands not in (1, 2) or (self.bands == 2 and not self.mix) or self.band_sigma <= 0:
            raise ValueError(f"bad refiner config: bands must be 1, or 2 with mix and band_sigma > 0: {self}")
        if self.detail_gain and (self.bands != 2 or self.detail_gain <= 1):
            raise ValueError(f"bad refiner config: detail_gain needs bands = 2 and M > 1 (or 0): {self}")
        if self.base_gain and (self.bands != 2 or self.base_gain <= 1):
            raise ValueError(f"bad refiner config: base_gain needs bands = 2 and M > 1 (or 0): {self}")
        fine_ok = self.detail_gain and self.fine_gain > 1 and 0 < self.fine_sigma < self.band_sigma
        if self.fine_gain and not fine_ok:
            raise ValueError(
                "bad refiner config: fine_gain needs detail_gain, M > 1 and 0 < fine_sigma < band_sigma "
                f"(or 0): {self}"
            )
        if self.classical and not self.mix:
            raise ValueError(f"bad refiner config: classical needs mix: {self}")
        if self.detail_scale <= 0 or (self.detail_scale != 1 and self.bands != 2):
            raise ValueError(f"bad refiner config: detail_scale must be > 0, and 1 unless bands = 2: {self}")

    @property
    def n_sources(self) -> int:
        """Blend slots per band: the decoded fusion, max_inputs inputs and, with `classical`, the rule."""
        return 1 + self.max_inputs + int(self.classical)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RefinerConfig:
        """Inverse of to_dict."""
        return cls(**{**values, "blocks": tuple(values.get("blocks", cls.blocks))})


MIX_PRIOR = 3.0  # initial logit of the decoded fusion (inputs 0): softmax weight 0.91 with two inputs


# The refiner's blocks are NAFNet's whole block (module doc), under the names its weights were saved with.
REFINER_NAF_NAMES = NAFNames("norm1", "pw1", "dw", "pw2")


def refiner_block(width: int) -> NAFBlock:
    """One NAFNet block of the refiner U-Net: expand 2, the gated FFN half, LayerNorm eps 1e-5."""
    return NAFBlock(width, expand=2, ffn=True, eps=1e-5, names=REFINER_NAF_NAMES)


class Refiner(nn.Module):
    """(decoded fused image, input images) -> refined fused image, all (B, 3, H, W) in [0, 1]; without `mix`
    an untrained refiner is the identity."""

    def __init__(self, cfg: RefinerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or RefinerConfig()
        c, s = cfg.width, cfg.unshuffle
        self.head = nn.Sequential(nn.PixelUnshuffle(s), nn.Conv2d(3 * cfg.n_sources * s * s, c, 3, padding=1))
        widths = [c * 2**i for i in range(len(cfg.blocks))]
        self.enc = nn.ModuleList(
            nn.Sequential(*(refiner_block(w) for _ in range(n)))
            for w, n in zip(widths, cfg.blocks, strict=True)
        )
        self.down = nn.ModuleList(nn.Conv2d(w, 2 * w, 2, stride=2) for w in widths[:-1])
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * w, 4 * w, 1), nn.PixelShuffle(2)) for w in widths[:-1]
        )  # 2w -> 4w channels -> (w, 2H, 2W)
        self.dec = nn.ModuleList(refiner_block(w) for w in widths[:-1])
        # residual RGB (+ blend logits per band) (+ detail gain logit) (+ base gain logit)
        out_ch = 3 + (cfg.bands * cfg.n_sources if cfg.mix else 0)
        out_ch += (1 if cfg.detail_gain else 0) + (1 if cfg.base_gain else 0)
        self.tail = nn.Sequential(nn.Conv2d(c, out_ch * s * s, 3, padding=1), nn.PixelShuffle(s))
        nn.init.zeros_(self.tail[0].weight)
        nn.init.zeros_(self.tail[0].bias)
        if cfg.fine_gain:  # the fine gain's logit, a head of its own (module doc)
            self.fine_tail = nn.Sequential(nn.Conv2d(c, s * s, 3, padding=1), nn.PixelShuffle(s))
            nn.init.zeros_(self.fine_tail[0].weight)
            nn.init.zeros_(self.fine_tail[0].bias)

    def forward(self, fused: Tensor, inputs: Sequence[Tensor], classical: Tensor | None = None) -> Tensor:
        """fused (B, 3, H, W) and 1..max_inputs images (B, 1 or 3, H, W); missing slots are zeros. With
        cfg.classical, `classical` (B, 3, H, W) is the task's classical fusion of the inputs
        (`classical_source`), and required."""
        if not 1 <= len(inputs) <= self.cfg.max_inputs:
            raise ValueError(f"refiner takes 1..{self.cfg.max_inputs} input images, got {len(inputs)}")
        if self.cfg.classical and classical is None:
            raise ValueError("this refiner blends the classical fusion of its inputs: pass `classical`")
        h, w = fused.shape[-2:]
        slots = [x.expand(-1, 3, -1, -1) for x in inputs]
        extra = [classical.expand(-1, 3, -1, -1).to(fused.dtype)] if self.cfg.classical else []  # type: ignore[union-attr]
        # the head's input in the dtype its convolution computes in (autocast's), before the copies of
        # cat and unshuffle: the same numbers, half the bytes to move at full resolution
        dtype = autocast_dtype(fused.device.type) or fused.dtype
        empty = [fused.new_zeros(fused.shape, dtype=dtype)] * (self.cfg.max_inputs - len(inputs))
        x = torch.cat([t.to(dtype) for t in (fused, *slots)] + empty + [t.to(dtype) for t in extra], dim=1)
        m = self.cfg.unshuffle * 2 ** (len(self.cfg.blocks) - 1)
        if h % m or w % m:  # (a pad of nothing would still copy the whole input)
            x = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
        y, skips = self.head(x), []
        for i, enc in enumerate(self.enc):
            y = enc(y)
            if i < len(self.down):
                skips.append(y)
                y = self.down[i](y)
        for i in reversed(range(len(self.down))):
            y = self.dec[i](self.up[i](y) + skips[i])
        feat, y = y, shuffle_to(self.tail[0](y), self.cfg.unshuffle, fused.dtype)[..., :h, :w]
        if not self.cfg.mix:
            return fused + y
        n_src = self.cfg.n_sources
        prior = torch.full((n_src,), -torch.inf, dtype=fused.dtype, device=fused.device)
        prior[0], prior[1 : 1 + len(inputs)] = MIX_PRIOR, 0.0  # unused input slots: weight exactly 0
        if self.cfg.classical:
            prior[-1] = 0.0
        used = list(range(1 + len(inputs))) + ([n_src - 1] if extra else [])
        sources = [fused, *slots, *extra]  # the used slots; the others weigh exactly 0
        if torch.is_grad_enabled():  # autograd keeps each source for the weights' gradient; it cannot
            sources = [s.clone() if s.is_inference() else s for s in sources]  # keep inference tensors
        n_logits = self.cfg.bands * n_src
        logits = y[:, 3 : 3 + n_logits].unflatten(1, (self.cfg.bands, -1)) + prior.view(1, 1, -1, 1, 1)
        weights = torch.softmax(logits, dim=2)  # (B, bands, n_src, H, W)
        # Sums over the sources are accumulated in place, one source at a time: at full resolution the
        # blend is memory-bound, and a stacked (B, n, 3, H, W) copy of every source and band made the
        # refiner about 15 % slower at 1024 x 1024.
        if self.cfg.bands == 1:
            return y[:, :3] + weighted_sum(weights[:, 0], used, sources)
        bases = [gaussian_blur(s, self.cfg.band_sigma).to(s.dtype) for s in sources]
        detail = weighted_sum(weights[:, 1], used, [s - b for s, b in zip(sources, bases, strict=True)])
        k = 3 + n_logits  # the gain logits follow the blend logits
        gain = None
        if self.cfg.detail_gain:  # g = M ** tanh(t) (module doc)
            gain = bounded_gain(y[:, k : k + 1], self.cfg.detail_gain)
            k += 1
        blended = weighted_sum(weights[:, 0], used, bases)
        if self.cfg.base_gain:  # b = M ** tanh(G_sigma * u) (module doc)
            u = gaussian_blur(y[:, k : k + 1].float(), self.cfg.band_sigma).to(y.dtype)
            blended = blended * bounded_gain(u, self.cfg.base_gain)
        if self.cfg.fine_gain:  # D + (h - 1) F, F = D - G_fine * D (module doc)
            v = shuffle_to(self.fine_tail[0](feat), self.cfg.unshuffle, fused.dtype)[..., :h, :w]
            fine = detail - gaussian_blur(detail, self.cfg.fine_sigma).to(detail.dtype)
            detail = detail + (bounded_gain(v, self.cfg.fine_gain) - 1) * fine
        if self.cfg.detail_scale != 1:
            gain = self.cfg.detail_scale if gain is None else gain * self.cfg.detail_scale
        if gain is not None:
            return blended.add_(y[:, :3]).addcmul_(detail, gain)
        return blended.add_(y[:, :3]).add_(detail)


class DampedRefiner(nn.Module):
    """A refiner whose change to the decoded fusion is scaled by `weight` in [0, 1]: the pipeline's noise
    guard (refiner.json's `noise_guard`). Its `cfg` is the refiner's."""

    def __init__(self, refiner: Refiner, weight: float) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"refiner weight must be in [0, 1], got {weight}")
        self.refiner, self.weight = refiner, weight

    @property
    def cfg(self) -> RefinerConfig:
        """The wrapped refiner's config."""
        return self.refiner.cfg

    def forward(self, fused: Tensor, inputs: Sequence[Tensor], classical: Tensor | None = None) -> Tensor:
        """fused + weight * (refiner(fused, inputs, classical) - fused)."""
        out = self.refiner(fused, inputs, classical)
        return fused.to(out.dtype) + self.weight * (out - fused.to(out.dtype))


def guard_weight(noise: float, low: float, high: float, floor: float = 0.0) -> float:
    """The refiner's weight under a noise guard (low, high, floor): 1 up to `low`, `floor` from `high` on,
    linear between."""
    return floor + (1.0 - floor) * (1.0 - ramp(noise, low, high))


def classical_source(images: Sequence[np.ndarray], task: str) -> np.ndarray:
    """The task's classical fusion (allfuse.tasks.CLASSICAL_DEFAULT) of 2+ images, (H, W, 3) float32: the
    `classical` source of a refiner. Inputs may mix gray (H, W) and colour (H, W, 3)."""
    from allfuse import baselines  # the baselines import the heavy classical stack only when used
    from allfuse.tasks import CLASSICAL_DEFAULT

    out = np.asarray(baselines.fuse(CLASSICAL_DEFAULT[task], list(images), task), dtype=np.float32)
    return np.repeat(out[..., None], 3, axis=2) if out.ndim == 2 else out


def classical_batch(images: Sequence[Tensor], tasks: Sequence[str]) -> Tensor:
    """`classical_source` of each sample of a batch: N x (B, 3, H, W) and B task names -> (B, 3, H, W)."""
    outs = []
    for i, task in enumerate(tasks):
        xs = [x[i].permute(1, 2, 0).float().cpu().numpy() for x in images]
        outs.append(torch.from_numpy(classical_source(xs, task)).permute(2, 0, 1))
    return torch.stack(outs).to(images[0].device)


def shuffle_to(y: Tensor, s: int, dtype: torch.dtype) -> Tensor:
    """F.pixel_shuffle(y, s).to(dtype) as one copy into the output (pixel_shuffle then a cast moves the
    full-resolution tensor twice): channel c * s * s + i * s + j of pixel (h, w) -> (c, h * s + i,
    w * s + j)."""
    b, c, h, w = y.shape
    out = y.new_empty(b, c // (s * s), h, s, w, s, dtype=dtype)
    out.copy_(y.view(b, c // (s * s), s, s, h, w).permute(0, 1, 4, 2, 5, 3))
    return out.view(b, -1, h * s, w * s)


def weighted_sum(weights: Tensor, used: Sequence[int], sources: Sequence[Tensor]) -> Tensor:
    """sum_j weights[:, used[j]] * sources[j]: weights (B, n, H, W), sources (B, C, H, W) each; one
    accumulator updated in place (in place is safe under autograd: no product needs the sum)."""
    out = weights[:, used[0], None] * sources[0]
    for k, source in zip(used[1:], sources[1:], strict=True):
        out.addcmul_(weights[:, k, None], source)
    return out


def bounded_gain(logit: Tensor, m: float) -> Tensor:
    """M ** tanh(logit): a gain in [1/M, M], 1 at logit 0."""
    return torch.exp(math.log(m) * torch.tanh(logit))


# what widen_state_dict may change
WIDENED = ("bands", "band_sigma", "detail_gain", "base_gain", "fine_gain", "fine_sigma", "classical")


def widen_state_dict(state: dict[str, Tensor], src: RefinerConfig, cfg: RefinerConfig) -> dict[str, Tensor]:
    """Weights of refiner `src` for a wider refiner `cfg`, otherwise equal, that computes what `src` did: a
    one-band mix becomes two bands that both start with its logits, a detail, base or fine gain is added
    with a zero logit (gain 1), exactly; the classical source is added unseen by the U-Net (zero head
    weights), sharing the decoded fusion's blend weight (module doc). Anything else (other widths, depths,
    a part taken away) is a ValueError."""
    wider = src.mix and cfg.bands >= src.bands and cfg.classical >= src.classical
    wider &= not src.detail_gain or src.detail_gain == cfg.detail_gain
    wider &= not src.base_gain or src.base_gain == cfg.base_gain
    wider &= not src.fine_gain or (src.fine_gain == cfg.fine_gain and src.fine_sigma == cfg.fine_sigma)
    same_sigma = src.bands == 1 or src.band_sigma == cfg.band_sigma
    if not (wider and same_sigma) or dataclasses.replace(src, **{k: getattr(cfg, k) for k in WIDENED}) != cfg:
        raise ValueError(f"a refiner of {src} cannot be widened to {cfg}")
    s2, n = cfg.unshuffle**2, src.n_sources
    out = dict(state)
    if cfg.classical and not src.classical:  # the head's input gains the source's 3 x s2 channels, unseen
        w = state["head.1.weight"]
        out["head.1.weight"] = torch.cat([w, w.new_zeros(w.shape[0], 3 * s2, *w.shape[2:])], dim=1)
    for key in ("tail.0.weight", "tail.0.bias"):
        w = state[key]  # pixel-shuffle order: output channel k owns rows k*s2 .. (k+1)*s2 - 1
        logits = w[3 * s2 : (3 + src.bands * n) * s2]
        if cfg.bands == 2 and src.bands == 1:
            logits = torch.cat([logits, logits], dim=0)
        if cfg.classical and not src.classical:  # each band's decoded-fusion weight is split in two
            bands = []
            for band in logits.clone().split(n * s2):
                dec, new = band[:s2], band[:s2].clone()
                if key.endswith("bias"):  # equal logits, each ln 2 lower: the two weights sum to the old one
                    dec -= math.log(2)
                    new += MIX_PRIOR - math.log(2)  # the source's prior is 0, the decoded fusion's MIX_PRIOR
                bands += [band, new]
            logits = torch.cat(bands, dim=0)
        parts, k = [w[: 3 * s2], logits], (3 + src.bands * n) * s2
        for gain in ("detail_gain", "base_gain"):
            if getattr(cfg, gain):
                parts.append(w[k : k + s2] if getattr(src, gain) else torch.zeros_like(w[:s2]))
            k += s2 if getattr(src, gain) else 0
        out[key] = torch.cat(parts, dim=0)
    if cfg.fine_gain and not src.fine_gain:  # its own head, zero: h = 1
        c = state["tail.0.weight"].shape[1]
        out["fine_tail.0.weight"] = state["tail.0.weight"].new_zeros(s2, c, 3, 3)
        out["fine_tail.0.bias"] = state["tail.0.bias"].new_zeros(s2)
    return out
