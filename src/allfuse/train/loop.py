"""The training loop: synthesized batches -> frozen tokenizer/text encoder -> DiT -> objective.

Reads top to bottom (nanoGPT style). The network, what the optimizer updates and the loss come from
train.network by `cfg.arch` (FusionDiT, or JointDiT with optional LoRA); everything else is shared.
One process on CPU, or `torchrun --nproc_per_node=N -m allfuse train ...` for DDP (gloo on CPU, nccl on
GPU); rank 0 alone writes checkpoints, logs and samples.
Exact resume: the data stream, the per-step random draws (and the global RNG a network's dropout reads,
seeded per micro-batch) and the EMA horizon are pure functions of (seed, step, rank), and everything else
(weights, EMA, optimizer, schedule) is in the checkpoint.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from allfuse.config import config_to_dict
from allfuse.devices import autocast
from allfuse.train import checkpoint as ckpt
from allfuse.train import dist
from allfuse.train.config import TrainConfig, check_runnable
from allfuse.train.data import EpochDataset, Frozen, StepSampler, step_generator, step_seed, training_dataset
from allfuse.train.ema import EMA
from allfuse.train.log import ScalarLog
from allfuse.train.network import build_trainee
from allfuse.train.optim import CautiousAdamW, optimizer_step, warmup_cosine


def train(cfg: TrainConfig, resume: bool = True, until: int | None = None) -> Path:
    """Run (or continue) training to cfg.max_steps — or stop early at step `until`, checkpointed, so a
    later call continues the same schedule; return the run folder."""
    check_runnable(cfg)
    info = dist.setup()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + info.rank)
    out = Path(cfg.out_dir)
    frozen = Frozen(cfg)
    cfg, model, params, compute_loss = build_trainee(cfg, frozen, info.device, verbose=info.main)
    ema = EMA(model, cfg.ema_decay)
    opt = CautiousAdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = warmup_cosine(opt, cfg.warmup, cfg.max_steps)
    step = 0
    if resume:
        step = ckpt.resume(out, model, ema, opt, sched)
    net = DistributedDataParallel(model) if info.world > 1 else model

    base = training_dataset(cfg, cfg.seed)
    sampler = StepSampler(len(base), cfg.batch_size, info.rank, info.world, cfg.seed, step * cfg.grad_accum)
    loader = DataLoader(
        EpochDataset(base, len(base)),
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.data.workers,
        persistent_workers=cfg.data.workers > 0,
    )
    batches = iter(loader)
    logger = ScalarLog(out / "log.csv", after=step if step else None) if info.main else None
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
            with ctx, global_rng(step_seed(cfg.seed, step, info.rank, micro), info.device):
                with autocast(info.device, cfg.bf16):
                    loss, part = compute_loss(net, lb, gen)
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


@contextlib.contextmanager
def global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch's global generators (dropout's) seeded from `seed`, restored afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed + 1)  # another stream than step_generator's
        yield
