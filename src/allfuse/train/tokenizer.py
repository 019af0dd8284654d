"""Train our KL-VAE tokenizer: `train_tokenizer(cfg)`, and the `allfuse train-tokenizer` subcommand.

Loss (per batch of random crops): L1 + ssim_weight * (1 - SSIM) + grad_weight * |grad x^ - grad x|_1
+ kl_weight * KL (per latent element; small, so the latent stays informative). AdamW, linear warmup then
cosine decay, gradient clipping, bf16 autocast (about 3x faster than fp32 on a CPU with AMX; fp32 where
the CPU has no bf16 kernels, `allfuse.devices.bf16_pays`).
Checkpoints (``out_dir/ckpt.safetensors`` + ``ckpt.json``: weights, optimizer moments, all RNG states) are
written every ``ckpt_every`` steps and training resumes from them exactly. At every checkpoint the model
is also exported, with the latent scale/shift fitted on training crops, to ``out_dir/tokenizer.*``: the
same format as the shipped default, loadable with ``load_tokenizer(out_dir / "tokenizer.safetensors")``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from allfuse.devices import autocast
from allfuse.io import atomic_write_text
from allfuse.ops import ssim
from allfuse.tokenizer.data import CropSampler, heldout_crops, training_images
from allfuse.tokenizer.klvae import fit_latent_stats, save_vae
from allfuse.tokenizer.losses import gradient_l1, kl_per_element, psnr
from allfuse.tokenizer.vae import KLVAE, VAEConfig


@dataclass
class TrainTokenizerConfig:
    """Everything a tokenizer training run depends on; CLI flags override fields one by one."""

    out_dir: str = "runs/tokenizer"
    data_root: str = "../shared/data"  # missing folder -> scikit-image images only
    latent_channels: int = 16
    widths: tuple[int, ...] = (48, 96, 192)
    enc_blocks: tuple[int, ...] = (2, 2, 1)
    dec_blocks: tuple[int, ...] = (3, 3, 2)
    steps: int = 20000
    batch_size: int = 16
    crop: int = 128
    lr: float = 5e-4
    warmup: int = 500
    min_lr_ratio: float = 0.05
    decay_frac: float = 0.3
    weight_decay: float = 0.0
    clip: float = 1.0
    ssim_weight: float = 0.2
    grad_weight: float = 0.5
    kl_weight: float = 2e-6
    gray_fraction: float = 0.15
    bf16: bool = True
    threads: int = 0  # 0 = adaptive: re-pick 1 or 2 threads by measured speed (the CPU is shared)
    seed: int = 0
    log_every: int = 50
    eval_every: int = 1000
    ckpt_every: int = 500

    def vae_config(self) -> VAEConfig:
        """The architecture part of this config."""
        return VAEConfig(
            self.latent_channels, tuple(self.widths), tuple(self.enc_blocks), tuple(self.dec_blocks)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


class ThreadTuner:
    """Re-picks torch's thread count by timing: on a shared 2-core machine, 2 threads can be 4x slower
    than 1 when another process holds a core (threads spin at barriers), and faster when the CPU is free.
    Every `period` steps it times `probe` steps with each candidate and keeps the faster one."""

    def __init__(self, candidates: tuple[int, ...] = (1, 2), period: int = 300, probe: int = 6):
        self.candidates, self.period, self.probe = candidates, period, probe
        self.times: dict[int, float] = {}
        self.current = candidates[-1]

    def before_step(self, step: int) -> None:
        """Set the thread count for this step (a probe phase or the chosen one)."""
        phase = step % self.period
        k = phase // self.probe
        if k < len(self.candidates):
            torch.set_num_threads(self.candidates[k])
            if phase % self.probe == 0:
                self.times[self.candidates[k]] = 0.0
        else:
            torch.set_num_threads(self.current)
        self._t = time.perf_counter()

    def after_step(self, step: int) -> None:
        """Accumulate probe timings; pick the faster candidate after the last probe."""
        phase = step % self.period
        k = phase // self.probe
        if k < len(self.candidates) and phase % self.probe > 0:  # skip each probe's first (warm-up) step
            self.times[self.candidates[k]] += time.perf_counter() - self._t
        if phase == len(self.candidates) * self.probe - 1:
            self.current = min(self.times, key=self.times.get)


def lr_at(step: int, cfg: TrainTokenizerConfig) -> float:
    """Warmup-stable-decay: linear warmup to cfg.lr, constant, then cosine decay to lr * min_lr_ratio over
    the last `decay_frac` of the steps. The constant phase is what lets a run be shortened on resume
    (``--steps`` may change while the run is still before its decay phase)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    decay_start = cfg.steps - int(cfg.decay_frac * cfg.steps)
    if step < decay_start:
        return cfg.lr
    t = min(1.0, (step - decay_start) / max(1, cfg.steps - decay_start))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def tokenizer_loss(
    model: KLVAE, x: torch.Tensor, cfg: TrainTokenizerConfig, gen: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss on a batch (B, 3, H, W) and its parts."""
    with autocast(x.device, cfg.bf16):
        y, mean, logvar = model(x, generator=gen)
    y = y.float()
    l1 = (y - x).abs().mean()
    s = ssim(y, x).mean()
    g = gradient_l1(y, x)
    kl = kl_per_element(mean, logvar)
    loss = l1 + cfg.ssim_weight * (1 - s) + cfg.grad_weight * g + cfg.kl_weight * kl
    parts = {"l1": l1.item(), "ssim": s.item(), "grad": g.item(), "kl": kl.item()}
    return loss, parts


@torch.inference_mode()
def evaluate(model: KLVAE, crops: torch.Tensor, bf16: bool, batch: int = 8) -> dict[str, float]:
    """Mean PSNR / SSIM of posterior-mean reconstructions of `crops` (N, 3, H, W)."""
    model.eval()
    ps, ss = [], []
    for i in range(0, len(crops), batch):
        x = crops[i : i + batch].contiguous(memory_format=torch.channels_last)
        with autocast(x.device, bf16):
            y = model.decoder(model.moments(x)[0]).float()
        ps.append(psnr(y, x))
        ss.append(ssim(y.clamp(0, 1), x))
    model.train()
    return {"psnr": torch.cat(ps).mean().item(), "ssim": torch.cat(ss).mean().item()}


# ----------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(out: Path, model: KLVAE, opt: torch.optim.Optimizer, step: int, state: dict) -> None:
    """Write ckpt.safetensors (weights, optimizer moments, torch RNG) and ckpt.json, atomically."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, p in enumerate(model.parameters()):
        st = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq"):
            if name in st:
                tensors[f"opt.{i}.{name}"] = st[name].contiguous()
    tensors["rng.torch"] = state.pop("torch_rng")
    tensors["meta.step"] = torch.tensor([step])
    tmp = out / "ckpt.safetensors.tmp"
    save_file(tensors, str(tmp))
    opt_steps = [float(opt.state[p]["step"]) if p in opt.state else 0.0 for p in model.parameters()]
    doc = {"step": step, "opt_steps": opt_steps, **state}
    tmp.replace(out / "ckpt.safetensors")
    atomic_write_text(out / "ckpt.json", json.dumps(doc) + "\n")


def load_checkpoint(out: Path, model: KLVAE, opt: torch.optim.Optimizer) -> dict:
    """Restore weights and optimizer from out/ckpt.*; returns the JSON state (with 'torch_rng' added)."""
    tensors = load_file(str(out / "ckpt.safetensors"))
    doc = json.loads((out / "ckpt.json").read_text())
    if int(tensors["meta.step"][0]) != doc["step"]:
        raise RuntimeError(f"{out}: ckpt.safetensors and ckpt.json disagree on the step")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    for i, p in enumerate(model.parameters()):
        if f"opt.{i}.exp_avg" in tensors:
            opt.state[p] = {
                "step": torch.tensor(doc["opt_steps"][i]),
                "exp_avg": tensors[f"opt.{i}.exp_avg"].clone(),
                "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"].clone(),
            }
    doc["torch_rng"] = tensors["rng.torch"]
    return doc


def _check_resumable(saved: dict, cfg: TrainTokenizerConfig, step: int) -> None:
    """Resume only with the same config; `steps` may change while the run has not started decaying."""
    now = cfg.to_dict()
    changed = sorted(k for k in now if saved.get(k) != now[k])
    if changed and changed != ["steps"]:
        raise ValueError(f"checkpoint was written with a different config ({changed}); use a new out_dir")
    if changed:
        old = TrainTokenizerConfig(**{**now, "steps": saved["steps"]})
        first_decay = min(
            cfg.steps - int(cfg.decay_frac * cfg.steps), old.steps - int(old.decay_frac * old.steps)
        )
        if step > first_decay:
            raise ValueError(f"cannot change steps at step {step}: the learning rate has started to decay")


def _truncate_log(path: Path, step: int) -> None:
    """Keep only the log records up to `step`, so a resumed run's log has no repeated steps."""
    if path.is_file():
        lines = [s for s in path.read_text().splitlines() if s and json.loads(s)["step"] <= step]
        atomic_write_text(path, "".join(s + "\n" for s in lines))


def export(out: Path, model: KLVAE, sampler: CropSampler, cfg: TrainTokenizerConfig, meta: dict) -> Path:
    """Fit the latent scale/shift on fixed training crops and write out/tokenizer.{safetensors,json}."""
    rng_state = sampler.state()
    sampler.rng = np.random.default_rng(cfg.seed + 12345)  # fixed crops, training RNG untouched
    batches = [sampler.batch(16) for _ in range(16)]
    sampler.set_state(rng_state)
    model.eval()
    fit_latent_stats(model, batches, "bf16" if cfg.bf16 else "fp32")
    model.train()
    return save_vae(model, out / "tokenizer", meta)


# ---------------------------------------------------------------------------------------------- main


def train_tokenizer(cfg: TrainTokenizerConfig) -> Path:
    """Train (or resume) a KL-VAE tokenizer; returns the path of the exported tokenizer weights."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tuner = ThreadTuner() if cfg.threads == 0 else None
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    data_root = Path(cfg.data_root) if Path(cfg.data_root).is_dir() else None
    entries = training_images(data_root)
    sampler = CropSampler(entries, cfg.crop, cfg.gray_fraction, seed=cfg.seed)
    _, val = heldout_crops(data_root, 256)
    model = KLVAE(cfg.vae_config()).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed = 0, 0.0
    if (out / "ckpt.json").is_file():
        doc = load_checkpoint(out, model, opt)
        _check_resumable(doc["cfg"], cfg, doc["step"])
        step, elapsed = doc["step"], doc["elapsed"]
        sampler.set_state(doc["sampler_rng"])
        gen.set_state(doc["torch_rng"])
        _truncate_log(out / "log.jsonl", step)  # drop records written after the checkpoint
        print(f"resumed from step {step}", flush=True)
    nparams = sum(p.numel() for p in model.parameters())
    print(
        f"{len(entries)} training images, {len(val)} held-out crops, {nparams / 1e6:.2f}M params", flush=True
    )
    atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    log = (out / "log.jsonl").open("a")
    t0 = time.perf_counter() - elapsed
    model.train()
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        if tuner:
            tuner.before_step(step)
        x = sampler.batch(cfg.batch_size).contiguous(memory_format=torch.channels_last)  # (B, 3, c, c)
        loss, parts = tokenizer_loss(model, x, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip).item()
        opt.step()
        if tuner:
            tuner.after_step(step)
        step += 1
        rec: dict[str, Any] = {}
        if step % cfg.log_every == 0:
            rec = {"loss": loss.item(), **parts, "gnorm": gnorm, "lr": lr_at(step - 1, cfg)}
            rec["threads"] = torch.get_num_threads()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            rec.update({f"val_{k}": v for k, v in evaluate(model, val, cfg.bf16).items()})
        if rec:
            rec = {"step": step, "time": round(time.perf_counter() - t0, 1), **rec}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(
                " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()),
                flush=True,
            )
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            state = {"cfg": cfg.to_dict(), "elapsed": time.perf_counter() - t0}
            state.update(sampler_rng=sampler.state(), torch_rng=gen.get_state())
            save_checkpoint(out, model, opt, step, state)
            meta = {"steps": step, "train_seconds": round(time.perf_counter() - t0), "train": cfg.to_dict()}
            export(out, model, sampler, cfg, meta)
    log.close()
    return out / "tokenizer.safetensors"


# ----------------------------------------------------------------------------------------------- CLI


def add_train_tokenizer_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `train-tokenizer`: one flag per TrainTokenizerConfig field (tuples as 48,96,192)."""
    p = sub.add_parser("train-tokenizer", help="train our KL-VAE tokenizer (resumes from out_dir)")
    defaults = TrainTokenizerConfig()
    for f in dataclasses.fields(TrainTokenizerConfig):
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            p.add_argument(flag, type=_parse_bool, default=value, metavar="{true,false}")
        elif isinstance(value, tuple):
            p.add_argument(flag, type=_parse_ints, default=value, metavar="N,N,...")
        else:
            p.add_argument(flag, type=type(value), default=value)
    p.set_defaults(func=cmd_train_tokenizer)
    return p


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    """Run `train_tokenizer` with the parsed flags."""
    names = {f.name for f in dataclasses.fields(TrainTokenizerConfig)}
    cfg = TrainTokenizerConfig(**{k: v for k, v in vars(args).items() if k in names})
    path = train_tokenizer(cfg)
    print(f"exported {path}")
    return 0


def _parse_ints(s: str) -> tuple[int, ...]:
    """'48,96,192' -> (48, 96, 192)."""
    return tuple(int(v) for v in s.split(","))


def _parse_bool(s: str) -> bool:
    """'true'/'false' (and 1/0, yes/no) -> bool."""
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def main(argv: list[str] | None = None) -> int:
    """`python -m allfuse.train.tokenizer ...`: the subcommand without the allfuse CLI."""
    parser = argparse.ArgumentParser(prog="python -m allfuse.train.tokenizer")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_tokenizer_parser(sub)
    args = parser.parse_args(["train-tokenizer", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
