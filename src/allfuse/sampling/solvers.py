"""Flow samplers as plain functions of a velocity function v(x, t) (MMAIF Sect. 3.4.2, Algorithm 1).

Time convention (`allfuse.flow`, shared with the objective): t = 0 is the prior p0, t = 1 the data,
Z_t = (1 - t) Z0 + t Z1 and v = dZ/dt = Z1 - Z0. Every solver returns the sample and its count of
velocity (network) calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from typing import NamedTuple

import torch
from torch import Tensor

from allfuse.flow import data_from_start, gaussian_score, randn_like

VelocityFn = Callable[[Tensor, Tensor], Tensor]  # v(x (B, ...), t (B,)) -> (B, ...)


class Sample(NamedTuple):
    """A solver's result: the final state and the number of velocity calls (NFE)."""

    x: Tensor
    nfe: int


class CountingVelocity:
    """Wrap a velocity function, broadcast scalar times to (B,), and count the calls."""

    def __init__(self, v: VelocityFn) -> None:
        self.v, self.calls = v, 0

    def __call__(self, x: Tensor, t: float) -> Tensor:
        """Evaluate v at state x and scalar time t."""
        self.calls += 1
        return self.v(x, torch.full((x.shape[0],), float(t), device=x.device))


def time_grid(steps: int, t0: float = 0.0, t1: float = 1.0) -> list[float]:
    """Uniform grid of steps + 1 times from t0 to t1 (Algorithm 1, line 1)."""
    return torch.linspace(t0, t1, steps + 1, dtype=torch.float64).tolist()


def euler(v: VelocityFn, x: Tensor, steps: int) -> Sample:
    """Explicit Euler from t = 0 to 1: one call per step, first order."""
    f, ts = CountingVelocity(v), time_grid(steps)
    for t, t_next in pairwise(ts):
        x = x + f(x, t) * (t_next - t)
    return Sample(x, f.calls)


def midpoint(v: VelocityFn, x: Tensor, steps: int) -> Sample:
    """MMAIF Eq. (12): explicit midpoint, two calls per step, second order."""
    f, ts = CountingVelocity(v), time_grid(steps)
    for t, t_next in pairwise(ts):
        dt = t_next - t
        x_mid = x + f(x, t) * (dt / 2)
        x = x + f(x_mid, t + dt / 2) * dt
    return Sample(x, f.calls)


def midpoint_reuse(v: VelocityFn, x: Tensor, steps: int) -> Sample:
    """Midpoint with velocity reuse, one call per step: the half step to the midpoint reuses the previous
    step's midpoint velocity, the full step uses the fresh one; the first step, with nothing to reuse, is
    an Euler step from (x0, t0), so each velocity is evaluated at a state that matches its time.

    The stale velocity is O(dt) off, so the midpoint state is O(dt^2) off and the scheme stays second order
    (checked in tests). MMAIF's literal reuse v(2) := v(1) reduces a deterministic step to Euler; that form
    is `stochastic(..., reuse_velocity=True)`."""
    f, ts = CountingVelocity(v), time_grid(steps)
    v_mid: Tensor | None = None
    for t, t_next in pairwise(ts):
        dt = t_next - t
        if v_mid is None:  # one local O(dt^2) error, the global error stays O(dt^2)
            v_mid = f(x, t)
        else:
            v_mid = f(x + v_mid * (dt / 2), t + dt / 2)
        x = x + v_mid * dt
    return Sample(x, f.calls)


def stochastic(
    v: VelocityFn,
    x: Tensor,
    steps: int,
    g: float,
    reuse_velocity: bool = True,
    generator: torch.Generator | None = None,
) -> Sample:
    """MMAIF Algorithm 1 (literal): per step, a half step to t_mid with v(1) = v(x, t), then a half step on
    the SDE dZ = (v + kappa score) dt + sqrt(2 kappa) dW, kappa = g sin^2(pi t), which has the ODE's
    marginals for a Gaussian prior.

    Line 12 as printed is garbled; implemented as Z_t2 = Z_mid + (v_mid + kappa score(Z_mid, t_mid)) dt
    + sqrt(2 kappa dt) eps, dt the half step. reuse_velocity: v_mid := v(1), 1 call/step, else 2 calls.
    Note Eq. (12) / Algorithm 1 take two half steps, not the classical midpoint: with g = 0 this is Euler
    with 2 * steps half steps (or Euler with `steps` steps when reusing), i.e. first order."""
    f, ts = CountingVelocity(v), time_grid(steps)
    for t, t_next in pairwise(ts):
        t_mid, dt = (t + t_next) / 2, (t_next - t) / 2
        v1 = f(x, t)
        x_mid = x + v1 * dt
        v_mid = v1 if reuse_velocity else f(x_mid, t_mid)
        kappa = g * math.sin(math.pi * t_mid) ** 2  # diffusion coefficient, 0 at both ends
        eps = randn_like(x, generator)
        drift = v_mid + kappa * gaussian_score(x_mid, v_mid, t_mid)
        x = x_mid + drift * dt + math.sqrt(2 * kappa * dt) * eps
    return Sample(x, f.calls)


def bridge(
    v: VelocityFn, prior: Tensor, steps: int, sigma: float, generator: torch.Generator | None = None
) -> Sample:
    """I2SB-style bridge sampler [22] from a latent prior Zp (e.g. the mean of the input latents).

    Trained marginal: Z_t = (1 - t) Zp + t Z1 + sigma sqrt(t (1 - t)) eps with target v = Z1 - Zp, so
    Z1_hat = Zp + v(Z_t, t); each step draws Z_t' from the Brownian bridge between (t, Z_t) and
    (1, Z1_hat): mean Z_t + (t' - t) / (1 - t) (Z1_hat - Z_t), variance sigma^2 (t' - t)(1 - t') / (1 - t)."""
    f, ts = CountingVelocity(v), time_grid(steps)
    x = prior
    for t, t_next in pairwise(ts):
        x1_hat = data_from_start(prior, f(x, t))
        frac = (t_next - t) / (1 - t)
        std = sigma * math.sqrt(max((t_next - t) * (1 - t_next) / (1 - t), 0.0))
        eps = randn_like(x, generator)
        x = x + frac * (x1_hat - x) + std * eps
    return Sample(x, f.calls)
