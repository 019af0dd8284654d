"""Training the learned denoiser (allfuse.models.denoiser) on synthetic noise over clean images.

    allfuse train-denoiser RUN_DIR data='[FOLDER, ...]' [max_steps=N batch_size=B denoiser.width=32 ...]
    allfuse export RUN_DIR MODEL_FOLDER      # adds denoiser.safetensors + denoiser.json to the folder

Clean material: every image file under the `data` folders (validation pairs named by a splits.json left
out, as for every training run: allfuse.data.sources.ImagePool) that measures clean (the gate's noise
estimate, allfuse.gate.noise_std, below `clean_noise` at half size, where a camera's own grain shows)
and not too dark to carry a signal (mean above `min_mean`). Each sample is a random crop of such an image
at a random scale (long side `scales`), flipped at random, then one noise drawn by `synth_noise`. The
loss is the L1 distance to the clean crop. Every sample is drawn from a generator seeded by (seed, step,
index), so a resumed run sees the batches an unbroken one would have. Checkpoints, exact resume, EMA and
the CSV log are those of the other single-network runs (allfuse.train.stage).

The noise model is wide on purpose, so the network meets the noise of cameras and pipelines it was not
written for (the benchmark's noise is drawn by its own code, bench/degrade.py; the held-out sets by
others'). With probabilities NOISE_KINDS:
- white Gaussian noise, std log-uniform in 1.5-35/255;
- Poisson-Gaussian noise on the sRGB values (Foi et al. 2008, variance a x + b^2), a log-uniform in
  2e-4-1e-2 and b uniform in 0.5-15/255;
- the same in linear light (gamma 2.2), a log-uniform in 5e-4-3e-2 and b log-uniform in 1e-3-2e-2, after
  an exposure gain of 0.1-0.6 in 40 % of the samples (a dark capture; the target is the dark clean
  image: the denoiser removes noise, the exposure stage sets the brightness);
- spatially correlated noise (white noise blurred by a Gaussian of std 0.4-1 px, as demosaicing and
  in-camera filtering leave it), std log-uniform in 2-25/255;
- none (the identity on clean content).
Colour samples get noise partly shared by the channels (correlation 0-0.8); gray samples (35 %, a gray
image in three equal channels) get one noise for all three. 30 % of the crops are first darkened by a
gamma of 1-2.5, and 80 % of the noisy images are quantized to 8 bits, as files are.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from allfuse.data.sources import ImagePool
from allfuse.devices import autocast
from allfuse.gate import noise_std
from allfuse.models.denoiser import Denoiser, DenoiserConfig
from allfuse.train.stage import Stage
from allfuse.types import Image

VAL_SEED_OFFSET = 7_919  # validation samples come from a stream the training never draws
NOISE_KINDS = {"white": 0.25, "poisson": 0.2, "linear": 0.3, "correlated": 0.15, "none": 0.1}
GRAY_SHARE = 0.35
DARKEN_SHARE = 0.3
QUANTIZE_SHARE = 0.8


@dataclass(frozen=True)
class DenoiseTrainConfig:
    """A denoiser run: where its clean images come from and how it is trained."""

    data: list[str] = field(default_factory=list)  # folders of clean images (pair folders work)
    out_dir: str = "runs/denoiser"
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    size: int = 96  # crop size, px
    scales: tuple[int, int] = (320, 1024)  # an image's long side is drawn from this range before cropping
    clean_noise: float = 1.5  # an image measuring noisier than this (1/255 steps, at half size) is left out
    min_mean: float = 0.08  # and one darker than this
    max_steps: int = 5000
    batch_size: int = 12
    lr: float = 1e-3
    warmup: int = 100
    clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    threads: int = 0
    log_every: int = 10
    ckpt_every: int = 250
    val_every: int = 500
    val_samples: int = 48
    bf16: bool = True  # the network under bf16 autocast

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % Denoiser.MULTIPLE or not 0 < self.scales[0] <= self.scales[1]:
            raise ValueError(f"need size >= 16 a multiple of {Denoiser.MULTIPLE}, 0 < scales[0] <= scales[1]")

    def to_dict(self) -> dict:
        """JSON-ready form (stored in checkpoints as {"kind": "denoiser", ...})."""
        return {"kind": "denoiser", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> DenoiseTrainConfig:
        """Inverse of to_dict."""
        values = {k: v for k, v in values.items() if k != "kind"}
        values["scales"] = tuple(values.get("scales", cls.scales))
        return cls(**{**values, "denoiser": DenoiserConfig.from_dict(values.get("denoiser", {}))})


def clean_images(cfg: DenoiseTrainConfig) -> list[Image]:
    """The clean images of cfg.data (module doc), float32, long side at most cfg.scales[1]."""
    if not cfg.data:
        raise ValueError("data: give the folders of clean images to train on, e.g. data='[../shared/data]'")
    pool = ImagePool(cfg.data)
    if not pool.paths:
        raise FileNotFoundError(f"data: no image files under {', '.join(cfg.data)}")
    out = []
    for i in range(len(pool)):
        x = np.asarray(pool.load(i), np.float32)
        s = cfg.scales[1] / max(x.shape[:2])
        if s < 1:
            x = cv2.resize(x, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        gray = x.mean(axis=2) if x.ndim == 3 else x
        half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        if 255.0 * noise_std(half) < cfg.clean_noise and gray.mean() > cfg.min_mean:
            out.append(x)
    if not out:
        raise ValueError(f"data: none of {len(pool)} images measures clean (clean_noise={cfg.clean_noise})")
    return out


def random_crop(images: list[Image], size: int, scales: tuple[int, int], rng: np.random.Generator) -> Image:
    """A (size, size, 3) crop of a random image at a random scale, flipped left-right half the time."""
    x = images[rng.integers(len(images))]
    s = min(1.0, rng.uniform(*scales) / max(x.shape[:2]))
    if s < 1:
        x = cv2.resize(x, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    h, w = x.shape[:2]
    if h < size or w < size:
        x = cv2.resize(x, (max(w, size), max(h, size)), interpolation=cv2.INTER_CUBIC)
        h, w = x.shape[:2]
    y0, x0 = rng.integers(h - size + 1), rng.integers(w - size + 1)
    c = x[y0 : y0 + size, x0 : x0 + size]
    c = np.repeat(c[..., None], 3, axis=2) if c.ndim == 2 else c
    return np.ascontiguousarray(c[:, ::-1] if rng.random() < 0.5 else c)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def synth_noise(x: Image, rng: np.random.Generator) -> tuple[Image, Image]:
    """(noisy, clean) from a clean (H, W, 3) crop (module doc)."""
    gray = rng.random() < GRAY_SHARE
    if gray:
        x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < DARKEN_SHARE:
        x = x ** rng.uniform(1.0, 2.5)
    kinds = list(NOISE_KINDS)
    kind = kinds[rng.choice(len(kinds), p=list(NOISE_KINDS.values()))]
    shape = (*x.shape[:2], 1 if gray else 3)
    n = rng.standard_normal(shape, dtype=np.float32)
    if not gray:  # partly shared by the channels
        rho = rng.uniform(0.0, 0.8)
        n = rho * rng.standard_normal((*shape[:2], 1), dtype=np.float32) + np.sqrt(1.0 - rho**2) * n
    if kind == "white":
        y = x + log_uniform(rng, 1.5, 35.0) / 255.0 * n
    elif kind == "poisson":
        a, b = log_uniform(rng, 2e-4, 1e-2), rng.uniform(0.5, 15.0) / 255.0
        y = x + np.sqrt(a * x + b * b) * n
    elif kind == "linear":
        lin = x**2.2
        if rng.random() < 0.4:
            lin = lin * rng.uniform(0.1, 0.6)
            x = lin ** (1.0 / 2.2)
        a, b = log_uniform(rng, 5e-4, 3e-2), log_uniform(rng, 1e-3, 2e-2)
        y = np.clip(lin + np.sqrt(a * lin + b * b) * n, 0.0, None) ** (1.0 / 2.2)
    elif kind == "correlated":
        m = cv2.GaussianBlur(n, (0, 0), rng.uniform(0.4, 1.0)).reshape(shape)
        y = x + log_uniform(rng, 2.0, 25.0) / 255.0 * m / (m.std() + 1e-6)
    else:
        y = x
    y = np.clip(y, 0.0, 1.0)
    if rng.random() < QUANTIZE_SHARE:
        y = np.round(y * 255.0) / 255.0
    return y.astype(np.float32), x.astype(np.float32)


def sample_batch(
    images: list[Image], cfg: DenoiseTrainConfig, seed: int, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, clean) (B, 3, size, size) for one step, each sample from its own (seed, step, i) stream."""
    pairs = []
    for i in range(cfg.batch_size):
        rng = np.random.default_rng([seed, step, i])
        pairs.append(synth_noise(random_crop(images, cfg.size, cfg.scales, rng), rng))
    noisy, clean = (np.stack([p[k] for p in pairs]) for k in (0, 1))
    return torch.from_numpy(noisy).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(clean).permute(
        0, 3, 1, 2
    ).contiguous()


def train_denoiser(cfg: DenoiseTrainConfig, until: int | None = None) -> Path:
    """Run (or resume) a denoiser run to cfg.max_steps (or stop, checkpointed, at `until`)."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    net = Denoiser(cfg.denoiser)
    stage = Stage(net, cfg)
    images = clean_images(cfg)

    def train_step(step: int) -> tuple[torch.Tensor, dict[str, float]]:
        noisy, clean = sample_batch(images, cfg, cfg.seed, step)
        with autocast(noisy.device, cfg.bf16):
            y = net(noisy)
        loss = F.l1_loss(y.float(), clean)
        return loss, {"loss": loss.item()}

    def validate(ema: torch.nn.Module, step: int) -> None:
        validate_denoiser(ema, images, cfg, step, out)

    return stage.run(train_step, validate, "denoiser", until)


@torch.no_grad()
def validate_denoiser(
    net: Denoiser, images: list[Image], cfg: DenoiseTrainConfig, step: int, out: Path
) -> dict[str, float]:
    """PSNR (dB) of the noisy and of the denoised crops of fixed held-in samples against their clean ones,
    and the mean change the network makes to the samples drawn without noise (1/255 steps: 0 is the
    identity)."""
    net.eval()
    val = dataclasses.replace(cfg, batch_size=cfg.val_samples)
    noisy, clean = sample_batch(images, val, cfg.seed + VAL_SEED_OFFSET, 0)
    y = net(noisy).clamp(0, 1)
    mse_in = ((noisy - clean) ** 2).mean(dim=(1, 2, 3))
    mse_out = ((y - clean) ** 2).mean(dim=(1, 2, 3))
    unchanged = mse_in < (0.5 / 255.0) ** 2  # no noise drawn (8-bit rounding at most)
    row = {
        "psnr_input": float((-10 * torch.log10(mse_in[~unchanged])).mean()),
        "psnr_denoised": float((-10 * torch.log10(mse_out[~unchanged])).mean()),
    }
    if unchanged.any():
        row["change_clean"] = 255.0 * float((y - noisy)[unchanged].abs().mean())
    with open(out / "val.jsonl", "a") as f:
        f.write(json.dumps({"step": step, **row}) + "\n")
    return row
