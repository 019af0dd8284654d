"""The training loop: synthesized batches -> frozen tokenizer/text encoder -> FusionDiT -> objective.

Reads top to bottom (nanoGPT style). One process on CPU, or `torchrun --nproc_per_node=N -m allfuse
train ...` for DDP (gloo on CPU, nccl on GPU); rank 0 alone writes checkpoints, logs and samples.
Exact resume: the data stream, the per-step random draws and the EMA horizon are pure functions of
(seed, step, rank), and everything else (weights, EMA, optimizer, schedule) is in the checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from allfuse.models import FusionDiT
from allfuse.objectives import LatentBatch, compute_loss
from allfuse.train import checkpoint as ckpt
from allfuse.train import dist
from allfuse.train.config import TrainConfig, config_to_dict
from allfuse.train.ema import EMA
from allfuse.train.optim import CautiousAdamW, optimizer_step, warmup_cosine


class EpochDataset(Dataset):
    """Index k of an endless stream = item k % n of epoch k // n (each epoch draws new degradations)."""

    def __init__(self, ds: Dataset, n: int) -> None:
        self.ds, self.n = ds, n

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, k: int) -> dict:
        self.ds.set_epoch(k // self.n)  # type: ignore[attr-defined]  # per worker copy: deterministic
        return self.ds[k % self.n]


class StepSampler(Sampler[int]):
    """Sample indices for micro-batches start, start+1, ...: a fresh permutation per epoch, the global
    batch split across ranks. A pure function of (seed, micro-batch), so a resumed run sees the same data."""

    def __init__(self, n: int, batch: int, rank: int, world: int, seed: int, start: int) -> None:
        self.n, self.batch, self.rank, self.world, self.seed, self.start = n, batch, rank, world, seed, start

    def __iter__(self) -> Iterator[int]:
        micro, perms = self.start, {}
        while True:
            first = (micro * self.world + self.rank) * self.batch  # position in the endless stream
            for pos in range(first, first + self.batch):
                epoch = pos // self.n
                if epoch not in perms:
                    perms = {
                        epoch: torch.randperm(
                            self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                        )
                    }
                yield epoch * self.n + int(perms[epoch][pos % self.n])
            micro += 1


def step_generator(seed: int, step: int, rank: int, micro: int) -> torch.Generator:
    """The random stream of one micro-batch (flow times, noise): independent of how the run was split."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1009 + rank) * 17 + micro)


def build_dataset(cfg: TrainConfig, seed: int) -> Dataset:
    """The on-the-fly synthesis dataset of cfg.data (allfuse.data.datasets.SynthDataset)."""
    from allfuse.data.datasets import MixConfig, SynthDataset
    from allfuse.data.pipeline import PipelineConfig

    mix = MixConfig(
        kinds=dict(cfg.data.kinds),
        pipeline=PipelineConfig(
            size=cfg.data.size,
            n_ops=cfg.data.n_ops,
            n_weights=cfg.data.n_weights,
            min_scale=cfg.data.min_scale,
            self_pairs=cfg.data.self_pairs,
            op_weights=dict(cfg.data.op_weights),
        ),
        prompt_style=cfg.data.prompt_style,
    )  # type: ignore[arg-type]
    data = [d for d in cfg.data.data if Path(d).exists()]
    return SynthDataset(data=data, mix=mix, length=cfg.data.length, seed=seed)


class Frozen:
    """The frozen tokenizer and text encoder: batches of images/prompts -> a LatentBatch."""

    def __init__(self, cfg: TrainConfig) -> None:
        from allfuse.text import load_text_encoder
        from allfuse.tokenizer import load_tokenizer

        self.tok = load_tokenizer(cfg.tokenizer, precision="bf16" if cfg.bf16 else "fp32")
        self.text = (
            None
            if cfg.text_encoder == "none" or not cfg.model.prompt
            else load_text_encoder(cfg.text_encoder)
        )

    def model_config(self, cfg: TrainConfig):
        """The network config matched to the tokenizer's channels and the text encoder's width."""
        m = dataclasses.replace(cfg.model, latent_channels=self.tok.channels, prompt=self.text is not None)
        if self.text is not None:
            m = dataclasses.replace(m, text_dim=self.text.dim)
        return m

    @torch.no_grad()
    def latents(self, batch: dict) -> LatentBatch:
        """Encode degraded inputs and target; embed prompts; keep the target image for the pixel loss."""
        # .clone(): the tokenizer encodes in inference mode; autograd may save these tensors
        conds = [self.tok.encode(batch["a"]).clone(), self.tok.encode(batch["b"]).clone()]
        prompt = mask = None
        if self.text is not None:
            prompt, mask = (t.clone() for t in self.text.encode(list(batch["prompt"])))
        target = self.tok.encode(batch["target"]).clone()
        return LatentBatch(conds, target, prompt, mask, sources=[batch["target"]])

    def decode_for_loss(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable decode (frozen weights) for the auxiliary pixel loss, MMAIF Eq. (9)."""
        return self.tok.decode_train(z).to(z.device)  # the tokenizer may sit on another device


def train(cfg: TrainConfig, resume: bool = True, until: int | None = None) -> Path:
    """Run (or continue) training to cfg.max_steps — or stop early at step `until`, checkpointed, so a
    later call continues the same schedule; return the run folder."""
    info = dist.setup()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + info.rank)
    out = Path(cfg.out_dir)
    frozen = Frozen(cfg)
    cfg = dataclasses.replace(cfg, model=frozen.model_config(cfg))
    model = FusionDiT(cfg.model).to(info.device)
    model.gradient_checkpointing = cfg.grad_checkpoint
    ema = EMA(model, cfg.ema_decay)
    opt = CautiousAdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = warmup_cosine(opt, cfg.warmup, cfg.max_steps)
    step = 0
    if cfg.init_from:
        from safetensors.torch import load_file

        from allfuse.pipeline import resolve_model_folder
        from allfuse.train.warm import warm_start

        notes = warm_start(model, load_file(resolve_model_folder(cfg.init_from) / "model.safetensors"))
        if info.main and notes:
            print(f"warm start from {cfg.init_from}: " + "; ".join(notes), flush=True)
        ema = EMA(model, cfg.ema_decay)
    if resume:
        step = ckpt.resume(out, model, ema, opt, sched)
    net = DistributedDataParallel(model) if info.world > 1 else model

    base = build_dataset(cfg, cfg.seed)
    sampler = StepSampler(len(base), cfg.batch_size, info.rank, info.world, cfg.seed, step * cfg.grad_accum)
    loader = DataLoader(
        EpochDataset(base, len(base)),
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.data.workers,
        persistent_workers=cfg.data.workers > 0,
    )
    batches = iter(loader)
    logger = ScalarLog(out / "log.csv") if info.main else None
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not info.main, dynamic_ncols=True)
    t0, t_step = time.perf_counter(), step
    stop = min(cfg.max_steps, until or cfg.max_steps)
    while step < stop:
        model.train()
        logs: dict[str, float] = {}
        for micro in range(cfg.grad_accum):
            lb = frozen.latents(next(batches)).to(info.device)
            gen = step_generator(cfg.seed, step, info.rank, micro)
            sync = micro == cfg.grad_accum - 1 or info.world == 1
            ctx = net.no_sync() if not sync else contextlib.nullcontext()  # type: ignore[union-attr]
            with ctx, torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss, part = compute_loss(net, lb, cfg.objective, frozen.decode_for_loss, gen)
            with ctx:
                (loss / cfg.grad_accum).backward()
            for k, v in part.items():
                logs[k] = logs.get(k, 0.0) + v / cfg.grad_accum
        logs["grad_norm"] = optimizer_step(model, opt, sched, ema, step, cfg.clip)
        step += 1
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            logs = {k: dist.all_mean(v, info) for k, v in logs.items()}
            rate = (step - t_step) / max(1e-9, time.perf_counter() - t0)
            if logger is not None:
                logger.write({"step": step, "lr": sched.get_last_lr()[0], "it_s": rate, **logs})
            bar.set_postfix(
                loss=f"{logs['loss']:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}", it_s=f"{rate:.2f}"
            )
        bar.update(1)
        if info.main and (step % cfg.ckpt_every == 0 or step == stop):
            ckpt.save_checkpoint(
                out,
                step,
                model.state_dict(),
                config_to_dict(cfg),
                ckpt.training_state(step, opt, sched),
                ema=ema.state_dict(),
                keep=cfg.keep_checkpoints,
            )
        if info.main and cfg.val_every and (step % cfg.val_every == 0 or step == cfg.max_steps):
            from allfuse.train.validate import validate

            validate(ema.shadow, frozen, cfg, step, out)
    bar.close()
    dist.teardown(info)
    return out


class ScalarLog:
    """Append-only CSV of logged scalars (TensorBoard too when it is installed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(path.parent / "tb"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def write(self, row: dict[str, float]) -> None:
        """Append one row; a new column set starts a new header line."""
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()}
            )
        if self.tb is not None:
            for k, v in row.items():
                if k != "step":
                    self.tb.add_scalar(k, v, row["step"])
