"""The step loop shared by the runs that train one small network alone (the refiner, the input corrector):
optimiser with the cautious AdamW, warmup + cosine, EMA, exact resume, the CSV log, checkpoints and a
validation hook, around a `train_step(step) -> (loss, logs)` the caller supplies."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from allfuse.train import checkpoint as ckpt
from allfuse.train.ema import EMA
from allfuse.train.log import ScalarLog
from allfuse.train.optim import CautiousAdamW, optimizer_step, warmup_cosine

StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]  # step -> (loss, logs)


class Stage:
    """A network's optimiser, schedule and EMA, resumed from `cfg.out_dir`'s latest checkpoint if any.

    `cfg` has out_dir, lr, warmup, max_steps, ema_decay, clip, log_every, ckpt_every, val_every and
    to_dict() (stored in every checkpoint)."""

    def __init__(self, net: torch.nn.Module, cfg: Any) -> None:
        self.net, self.cfg, self.out = net, cfg, Path(cfg.out_dir)
        self.ema = EMA(net, cfg.ema_decay)
        self.opt = CautiousAdamW(net.parameters(), lr=cfg.lr)
        self.sched = warmup_cosine(self.opt, cfg.warmup, cfg.max_steps)
        self.step = ckpt.resume(self.out, net, self.ema, self.opt, self.sched)

    def run(
        self,
        train_step: StepFn,
        validate: Callable[[torch.nn.Module, int], object],
        desc: str,
        until: int | None,
    ) -> Path:
        """Train to cfg.max_steps (or stop, checkpointed, at `until`); validate(ema network, step) every
        val_every steps and at the end."""
        cfg, step = self.cfg, self.step
        logger = ScalarLog(self.out / "log.csv", after=step)
        bar = tqdm(total=cfg.max_steps, initial=step, desc=desc, dynamic_ncols=True)
        t0, t_step = time.perf_counter(), step
        stop = min(cfg.max_steps, until or cfg.max_steps)
        while step < stop:
            self.net.train()
            loss, logs = train_step(step)
            loss.backward()
            logs["grad_norm"] = optimizer_step(self.net, self.opt, self.sched, self.ema, step, cfg.clip)
            step += 1
            if step % cfg.log_every == 0 or step == stop:
                rate = (step - t_step) / max(1e-9, time.perf_counter() - t0)
                logger.write({"step": step, "lr": self.sched.get_last_lr()[0], "it_s": rate, **logs})
                bar.set_postfix(loss=f"{logs['loss']:.4f}", it_s=f"{rate:.2f}")
            bar.update(1)
            if step % cfg.ckpt_every == 0 or step == stop:
                state = ckpt.training_state(step, self.opt, self.sched)
                weights, ema = self.net.state_dict(), self.ema.state_dict()
                ckpt.save_checkpoint(self.out, step, weights, cfg.to_dict(), state, ema=ema)
            if cfg.val_every and (step % cfg.val_every == 0 or step == cfg.max_steps):
                validate(self.ema.shadow, step)
        bar.close()
        self.step = step
        return self.out
