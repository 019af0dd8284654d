"""Input corrector: a whole-image photometric restoration of each input, before the latent path.

Beyond the papers (SPEC; issue "restoration on unseen scenes"): haze, low light and over-exposure are, in
the low-frequency band, a smooth per-pixel affine map of the scene radiance J:
  haze (Koschmieder):   I = J t + A (1 - t)     so  J = I / t - A (1 - t) / t
  exposure:             I = g J (+ a clip)      so  J = I / g
and their parameters are global or slowly varying (airlight, exposure, a depth-driven transmission), so
they are best estimated from the whole image, which the DiT's 256 px latent windows never see. The DiT
removes about half of a uniform veil even inside one window (measured, allfuse-reg card), while the
classical chains that win the haze cells (`dcp+...`) invert exactly this model with a whole-image airlight.

The corrector works on a thumbnail of the whole image (long side `thumb` px), with the mean of all inputs'
thumbnails and the fusion task as context (a multi-exposure source is dark on purpose; a visible image of
an infrared pair is not), and predicts maps on a coarse grid that are applied at full resolution (HDRNet,
Gharbi et al. 2017, and the Fast Guided Filter, He & Sun 2015, apply coefficients predicted at low
resolution to the full image the same way). Two stages, both affine in I:

1. Dark-channel dehazing with a learned strength. On the thumbnail, the dark channel prior (He, Sun & Tang,
   CVPR 2009) gives the airlight A (Eq. 5 and Sect. 4.4: the mean colour of the 0.1 % pixels with the
   brightest dark channel) and a transmission t_dcp = 1 - dark(I / A) (Eq. 12); DCP itself uses
   t = 1 - 0.95 (1 - t_dcp). Here the network predicts the strength per cell,
     t = max(t_min, 1 - w (1 - t_dcp)),  w = sigmoid(z) in (0, 1),   D = (I - A) / t + A   (Eq. 22)
   so it can lift a veil where the prior is right and leave alone what the prior gets wrong (bright sky,
   white walls, an infrared image, an over-exposed bracket member, a clean photo). A free-form gain and
   offset learned from scratch did not get there: across a mixed batch the gradients of hazy and clear
   samples cancel, and the gain of hazy validation inputs stayed at 1.0 for 500 steps (measured).
2. A gain and offset about the local mean, for exposure and contrast:
     out = a (D - m) + m + d,   a = M ** tanh(u),  d = M tanh(v)
   with M = max_gain and m the 2 x 2 area mean of the dehazed thumbnail (one value per grid cell): a gain
   changes contrast without moving brightness (in the form a D + b every gain step must be paired with
   an offset step, a narrow valley that first-order training crawls along). u = v = 0 at init.

Each cell's gain and offset (the whole map is affine in I) are bilinearly upsampled from the grid. The
strength starts at w = omega_init (0.5): an image whose dark channel is zero (t_dcp = 1) passes through
unchanged at init, and a clean, well-exposed input should pass through after training too
(bench/quality.py "identity"). Training also tells the strength which inputs were hazed
(allfuse.train.correct, `haze_weight`): without that label the dark channel alone did not separate hazy
inputs from gray or pale clear ones.
Noise, blur and detail are left to the DiT and refiner: the maps are smooth by construction.

The network is a small U-Net (strided 3x3 convolutions, a pooled whole-image vector added back at the
coarsest level) over [thumbnail, its dark and bright channels, t_dcp, A, mean thumbnail of the inputs, task
one-hot]. The dark channel (the minimum over colours and a 5 x 5 window; He et al. 2009) is near zero in
a clear image and rises with haze as A (1 - t); the bright channel (the maximum) bounds exposure.
DehazeNet (Cai et al. 2016) feeds a CNN the same haze-relevant features. Applying the coefficients goes
by bands of rows (separable bilinear weights), so a 12 MP image needs no full-size coefficient maps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CORRECT_TASKS = ("vif", "mef", "mff")  # the task one-hot's order
APPLY_ROWS = 256  # rows per band when applying the coefficients
HEAD_SCALE = 0.1  # the gain/offset logits are scaled so one optimiser step moves a gain by a few percent
PRIOR_WINDOW = 5  # px of the thumbnail: window of the dark and bright channels
AIRLIGHT_TOP = 0.001  # He et al. 2009, Sect. 4.4: the brightest 0.1 % of the dark channel give A
IN_CHANNELS = 3 + 2 + 1 + 3 + 3 + len(CORRECT_TASKS)  # thumb, dark/bright, t_dcp, A, mean thumb, task


@dataclass(frozen=True)
class CorrectorConfig:
    """Width of the corrector U-Net, its thumbnail size and the bound on its gains and offsets."""

    width: int = 32
    thumb: int = 128  # long side of the thumbnail it sees, px (smaller images are seen at their size)
    max_gain: float = 8.0  # M: gains in [1/M, M], offsets in [-M, M]
    omega_init: float = 0.5  # dehazing strength w at init
    t_min: float = 0.1  # lower bound of the transmission (He et al. 2009: t0)
    # The tasks the pipeline runs it for (`allfuse export --tasks`): chosen by measurement, per task.
    tasks: tuple[str, ...] = CORRECT_TASKS

    def __post_init__(self) -> None:
        if self.width < 4 or self.thumb < 16 or self.max_gain <= 1.0:
            raise ValueError(f"corrector needs width >= 4, thumb >= 16 and max_gain > 1, got {self}")
        if not (0 < self.omega_init < 1 and 0 < self.t_min < 1):
            raise ValueError(f"corrector needs omega_init and t_min in (0, 1), got {self}")
        if not set(self.tasks) <= set(CORRECT_TASKS):
            raise ValueError(f"corrector tasks must be some of {', '.join(CORRECT_TASKS)}, got {self.tasks}")

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> CorrectorConfig:
        """Inverse of to_dict."""
        return cls(**{**values, "tasks": tuple(values.get("tasks", CORRECT_TASKS))})


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution and GELU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GELU())


class Corrector(nn.Module):
    """Per-input gain/offset maps from whole-image thumbnails; `forward(images, task) -> corrected`."""

    def __init__(self, cfg: CorrectorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or CorrectorConfig()
        w = cfg.width
        self.enc1 = nn.Sequential(conv(IN_CHANNELS, w, 2), conv(w, w))  # 1/2 of the thumbnail
        self.enc2 = nn.Sequential(conv(w, 2 * w, 2), conv(2 * w, 2 * w))  # 1/4
        self.enc3 = nn.Sequential(conv(2 * w, 4 * w, 2), conv(4 * w, 4 * w))  # 1/8
        self.globe = nn.Sequential(nn.Linear(8 * w, 4 * w), nn.GELU(), nn.Linear(4 * w, 4 * w))
        self.dec2 = nn.Sequential(conv(6 * w, 2 * w), conv(2 * w, 2 * w))  # 1/4
        self.dec1 = nn.Sequential(conv(3 * w, w), conv(w, w))  # 1/2: the coefficient grid
        self.head = nn.Conv2d(w, 7, 3, 1, 1)  # (u_rgb, v_rgb, z)
        for m in self.modules():  # He init: without normalisation layers, PyTorch's default init shrinks
            if isinstance(m, nn.Conv2d | nn.Linear):  # the activations ~3x per layer (measured: std 0.3 ->
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # 0.01 at 1/8), which stalls training
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def thumbnails(self, images: Sequence[Tensor]) -> Tensor:
        """N x (B, 3, H, W) -> (B, N, 3, h, w): area-downscaled to long side <= thumb, as is."""
        h, w = images[0].shape[-2:]
        s = min(1.0, self.cfg.thumb / max(h, w))
        size = (max(1, round(h * s)), max(1, round(w * s)))
        th = torch.stack([F.interpolate(x.float(), size=size, mode="area") for x in images], dim=1)
        return th

    def coefficients(self, images: Sequence[Tensor], task: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """(B, N, 13, gh, gw) per grid cell: the logits (u, v), the local mean m of the dehazed image, the
        transmission t and the airlight A (module doc), and the thumbnail size (h, w) the grid covers (the
        thumbnail, padded up to a multiple of 8, at half size)."""
        coef, thumb, _ = self.predict(images, task)
        return coef, thumb

    def predict(self, images: Sequence[Tensor], task: Tensor) -> tuple[Tensor, tuple[int, int], Tensor]:
        """`coefficients` and the dehazing strength w per cell, (B, N, gh, gw)."""
        th = self.thumbnails(images)  # (B, N, 3, h, w)
        b, n, _, h, w = th.shape
        flat = th.flatten(0, 1)  # (B N, 3, h, w)
        air, t_dcp = dark_channel_prior(flat)  # (B N, 3), (B N, 1, h, w)
        mean = th.mean(dim=1, keepdim=True).expand(-1, n, -1, -1, -1).flatten(0, 1)
        onehot = F.one_hot(task.long(), len(CORRECT_TASKS)).to(th)  # (B, T)
        onehot = onehot[:, None, :].expand(-1, n, -1).flatten(0, 1)[:, :, None, None].expand(-1, -1, h, w)
        x = torch.cat(
            [flat, dark_bright(flat), t_dcp, air[:, :, None, None].expand(-1, -1, h, w), mean, onehot], 1
        )
        x = F.pad(x, (0, -w % 8, 0, -h % 8), mode="replicate")  # (B N, IN_CHANNELS, h + ph, w + pw)
        f1 = self.enc1(x)
        f2 = self.enc2(f1)
        f3 = self.enc3(f2)
        g = self.globe(torch.cat([f3.mean(dim=(2, 3)), f3.amax(dim=(2, 3))], dim=1))
        f3 = f3 + g[:, :, None, None]  # the whole image's summary at every cell
        up = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up, f2], dim=1))
        up = F.interpolate(d2, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([up, f1], dim=1))
        out = self.head(d1).float()  # (B N, 7, (h + ph) / 2, (w + pw) / 2)
        out = torch.cat([HEAD_SCALE * out[:, :6], out[:, 6:]], dim=1)
        cfg = self.cfg
        omega = torch.sigmoid(out[:, 6:7] + math.log(cfg.omega_init / (1 - cfg.omega_init)))
        t = (1 - omega * (1 - F.avg_pool2d(x[:, 5:6].float(), 2))).clamp(min=cfg.t_min)
        a = air[:, :, None, None].float().expand(-1, -1, *t.shape[-2:])
        local = (F.avg_pool2d(x[:, :3].float(), 2) - a) / t + a  # m: 2 x 2 means of the dehazed thumbnail
        coef = torch.cat([out[:, :6], local, t, a], dim=1).unflatten(0, (b, n))
        return coef, (h, w), omega[:, 0].unflatten(0, (b, n))

    def gain_offset(self, coef: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 13, ...) cells (u, v, m, t, A) -> gain and offset, each (B, 3, ...), of the whole map
        I -> a (D - m) + m + d with D = (I - A) / t + A, i.e. gain a / t, offset a (A - A / t - m) + m + d."""
        big = self.cfg.max_gain
        u, v, m, t, air = coef[:, :3], coef[:, 3:6], coef[:, 6:9], coef[:, 9:10], coef[:, 10:13]
        a, d = torch.exp(math.log(big) * torch.tanh(u)), big * torch.tanh(v)
        return a / t, a * (air - air / t - m) + m + d

    def forward(self, images: Sequence[Tensor], task: Tensor) -> list[Tensor]:
        """N x (B, 3, H, W) in [0, 1] and the task index per sample (CORRECT_TASKS) -> N corrected images,
        unclamped (training scores them so; `correct` clamps)."""
        return self.forward_with_strength(images, task)[0]

    def forward_with_strength(self, images: Sequence[Tensor], task: Tensor) -> tuple[list[Tensor], Tensor]:
        """`forward` and the image-mean dehazing strength of each input, (B, N)."""
        coef, thumb, omega = self.predict(images, task)
        outs = [apply_coefficients(x, coef[:, i], thumb, self) for i, x in enumerate(images)]
        return outs, omega.mean(dim=(-2, -1))

    @torch.no_grad()
    def correct(self, images: Sequence[Tensor], task: str) -> list[Tensor]:
        """Inference: N x (1, 3, H, W) -> N corrected images clamped to [0, 1], applied by bands of rows."""
        t = torch.tensor([CORRECT_TASKS.index(task)], device=images[0].device)
        coef, thumb = self.coefficients(images, t)
        outs = [apply_coefficients(x, coef[:, i], thumb, self, APPLY_ROWS) for i, x in enumerate(images)]
        return [y.clamp(0, 1) for y in outs]


def dark_channel_prior(x: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 3, h, w) -> the airlight (B, 3) and the transmission estimate t_dcp = 1 - dark(I / A) (B, 1, h, w),
    He et al. 2009 Eq. (5), (12) and Sect. 4.4 with a PRIOR_WINDOW window."""
    dark = dark_bright(x)[:, :1].flatten(1)  # (B, h w)
    k = max(1, round(AIRLIGHT_TOP * dark.shape[1]))
    idx = dark.topk(k, dim=1).indices  # (B, k)
    air = torch.gather(x.flatten(2), 2, idx[:, None, :].expand(-1, 3, -1)).mean(dim=2).clamp(min=1e-3)
    t = 1 - dark_bright(x / air[:, :, None, None])[:, :1]
    return air, t.clamp(0, 1)


def dark_bright(x: Tensor) -> Tensor:
    """(B, 3, h, w) -> (B, 2, h, w): the minimum and the maximum over colours and a PRIOR_WINDOW window."""
    k, pad = PRIOR_WINDOW, PRIOR_WINDOW // 2
    lo = -F.max_pool2d(F.pad(-x.amin(dim=1, keepdim=True), (pad,) * 4, mode="replicate"), k, 1)
    hi = F.max_pool2d(F.pad(x.amax(dim=1, keepdim=True), (pad,) * 4, mode="replicate"), k, 1)
    return torch.cat([lo, hi], dim=1)


def linear_weights(pos: Tensor, n: int) -> Tensor:
    """(L,) positions in cell units -> (L, n) linear interpolation weights over n cells, positions clamped
    to [0, n - 1] (the border padding of F.grid_sample, align_corners False)."""
    pos = pos.clamp(0, n - 1)
    i0 = pos.floor().long().clamp(max=n - 1)
    frac = pos - i0
    i1 = (i0 + 1).clamp(max=n - 1)
    w = torch.zeros(pos.shape[0], n, device=pos.device)
    w.scatter_add_(1, i0[:, None], (1 - frac)[:, None])
    return w.scatter_add_(1, i1[:, None], frac[:, None])


def apply_coefficients(
    x: Tensor, coef: Tensor, thumb: tuple[int, int], net: Corrector, rows: int | None = None
) -> Tensor:
    """out = a * x + b with (a, b) = Corrector.gain_offset of the cells `coef` (B, 13, gh, gw), whose grid
    covers the padded thumbnail of size `thumb`; the cells' gain and offset are interpolated bilinearly
    (align_corners False) to x's size, `rows` at a time. Interpolating these six values rather than the
    thirteen cell values measured 3x faster at 1024 x 1024 px; the map is smooth either way. Done as two
    small matrix products (bilinear is separable), it is the numbers of F.grid_sample (a test) at a
    fraction of its cost."""
    hh, ww = x.shape[-2:]
    gh, gw = coef.shape[-2:]
    gain, offset = net.gain_offset(coef.float())
    cells = torch.cat([gain, offset], dim=1)  # (B, 6, gh, gw)
    # the grid cell of index k covers thumbnail pixels [2k, 2k + 2), so thumbnail pixel p sits at cell
    # coordinate p / 2 - 1/2; the image spans thumbnail pixels [0, th)
    th, tw = thumb
    ys = (torch.arange(hh, device=x.device, dtype=torch.float32) + 0.5) * (th / hh) / 2 - 0.5
    xs = (torch.arange(ww, device=x.device, dtype=torch.float32) + 0.5) * (tw / ww) / 2 - 0.5
    wy, wx = linear_weights(ys, gh), linear_weights(xs, gw)  # (H, gh), (W, gw)
    cols = cells @ wx.T  # (B, 6, gh, W): bilinear interpolation is separable, two small matrix products
    out = []
    step = rows or hh
    for y0 in range(0, hh, step):
        band = wy[y0 : y0 + step] @ cols  # (B, 6, h', W)
        out.append(torch.addcmul(band[:, 3:], band[:, :3], x[:, :, y0 : y0 + step].float()))
    return torch.cat(out, dim=2)
