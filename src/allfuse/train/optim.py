"""AdamW with the cautious mask (Liang et al. 2024, "Cautious Optimizers") and a warmup + cosine schedule."""

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


class CautiousAdamW(torch.optim.Optimizer):
    """AdamW whose update is zeroed where it disagrees in sign with the current gradient.

    Cautious Optimizers, Alg. 1: m = 1[u * g > 0]; the surviving entries are rescaled by numel / sum(m)
    so the mean step size is kept. MMAIF trains with this optimizer (Sect. 4.2).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        cautious: bool = True,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "cautious": cautious}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One optimisation step over every parameter with a gradient."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                u = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt_().add_(group["eps"]))
                if group["cautious"]:
                    mask = (u * g > 0).to(u.dtype)
                    u = u * mask * (mask.numel() / (mask.sum() + 1.0))
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(u.to(p.dtype), alpha=-group["lr"])
        return loss


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int, floor: float = 0.0) -> LambdaLR:
    """Linear warmup over `warmup` steps, then cosine decay to `floor` x base lr at `total` steps."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def optimizer_step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, sched, ema, step: int, clip: float
) -> float:
    """Clip gradients, step optimizer and schedule, clear gradients, update the EMA; return the grad norm."""
    norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    ema.update(model, step)
    return norm
