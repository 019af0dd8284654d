"""Solvers on analytic velocity fields: exactness, convergence order, call counts, SDE/bridge correctness."""

import math

import pytest
import torch

from allfuse.config import ModelConfig, SamplerConfig
from allfuse.flow import prior_latent
from allfuse.models import build_model
from allfuse.sampling import bridge, euler, midpoint, midpoint_reuse, sample_latent, solve, stochastic


def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx/dt = x cos(2 t) + t: smooth, time-dependent, nonlinear in t."""
    tt = t.view(-1, *[1] * (x.dim() - 1)).to(x.dtype)
    return x * torch.cos(2 * tt) + tt


def solve_exact(x0: torch.Tensor) -> torch.Tensor:
    """High-accuracy reference by RK4 with many steps (float64)."""
    x, n = x0.clone(), 4000
    h = 1.0 / n
    for i in range(n):
        t = torch.full((x.shape[0],), i * h, dtype=torch.float64)
        k1 = field(x, t)
        k2 = field(x + h / 2 * k1, t + h / 2)
        k3 = field(x + h / 2 * k2, t + h / 2)
        k4 = field(x + h * k3, t + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def observed_order(solver, x0: torch.Tensor, exact: torch.Tensor) -> float:
    errs = [(solver(field, x0, n).x - exact).abs().max().item() for n in (16, 32, 64)]
    return math.log2(errs[1] / errs[2])


def test_euler_first_order_midpoints_second_order() -> None:
    x0 = torch.linspace(-1, 1, 5, dtype=torch.float64).view(5, 1)
    exact = solve_exact(x0)
    assert 0.85 < observed_order(euler, x0, exact) < 1.15
    assert 1.85 < observed_order(midpoint, x0, exact) < 2.15
    assert 1.7 < observed_order(midpoint_reuse, x0, exact) < 2.3


def test_algorithm1_with_g0_is_euler_on_half_steps() -> None:
    x0 = torch.randn(4, 2, dtype=torch.float64)
    no_reuse = stochastic(field, x0, 8, g=0.0, reuse_velocity=False)
    torch.testing.assert_close(no_reuse.x, euler(field, x0, 16).x)  # Eq. (12): two half steps
    reuse = stochastic(field, x0, 8, g=0.0, reuse_velocity=True)
    torch.testing.assert_close(reuse.x, euler(field, x0, 8).x)  # v(2) := v(1)


@pytest.mark.parametrize("solver", [euler, midpoint, midpoint_reuse])
def test_solvers_exact_on_constant_field(solver) -> None:
    x0 = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    c = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    out = solver(lambda x, t: c.expand_as(x), x0, 7)
    torch.testing.assert_close(out.x, x0 + c)


def test_call_counts() -> None:
    x0, v = torch.zeros(2, 3), lambda x, t: torch.ones_like(x)
    assert euler(v, x0, 10).nfe == 10
    assert midpoint(v, x0, 10).nfe == 20
    assert midpoint_reuse(v, x0, 5).nfe == 5  # velocity reuse: calls = steps
    assert stochastic(v, x0, 5, g=1.0, reuse_velocity=True).nfe == 5
    assert stochastic(v, x0, 5, g=1.0, reuse_velocity=False).nfe == 10
    assert bridge(v, x0, 6, sigma=0.5).nfe == 6


def gaussian_velocity(mu: float, s: float):
    """Exact v(z, t) = E[Z1 - Z0 | Z_t = z] for Z0 ~ N(0, 1), Z1 ~ N(mu, s^2), Z_t = (1 - t) Z0 + t Z1."""

    def v(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.view(-1, 1).to(z.dtype)
        var = (1 - t) ** 2 + t**2 * s**2
        return mu + (t * s**2 - (1 - t)) / var * (z - t * mu)

    return v


@pytest.mark.parametrize("reuse", [False, True])
def test_stochastic_sampler_keeps_the_marginals(reuse: bool) -> None:
    mu, s = 1.5, 0.5
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    out = stochastic(gaussian_velocity(mu, s), x0, 200, g=1.0, reuse_velocity=reuse, generator=gen)
    assert abs(out.x.mean().item() - mu) < 0.03
    assert abs(out.x.std().item() - s) < 0.03
    ode = midpoint(gaussian_velocity(mu, s), x0, 50).x
    assert not torch.allclose(out.x, ode)  # the path really is stochastic


def test_bridge_reaches_the_target_with_an_exact_model() -> None:
    gen = torch.Generator().manual_seed(0)
    z1, prior = torch.randn(2, 4, 3, 3, generator=gen), torch.randn(2, 4, 3, 3, generator=gen)
    out = bridge(lambda x, t: z1 - prior, prior, 10, sigma=1.0, generator=gen)
    torch.testing.assert_close(out.x, z1)


def test_priors_and_config_dispatch() -> None:
    a, b = torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 3, 3)
    torch.testing.assert_close(prior_latent("mean", [a, b]), torch.full_like(a, 0.5))
    assert prior_latent("second", [a, b]) is b
    assert prior_latent("gaussian", [a, b]).std() > 0
    v = lambda x, t: torch.ones_like(x)  # noqa: E731
    for method in ("euler", "midpoint", "midpoint_reuse", "stochastic", "bridge"):
        prior = "mean" if method == "bridge" else "gaussian"
        out = solve(SamplerConfig(method=method, steps=4, prior=prior), v, a)
        torch.testing.assert_close(out.x, a + 1)
    with pytest.raises(ValueError):
        SamplerConfig(method="heun")
    with pytest.raises(ValueError):
        SamplerConfig(method="bridge", prior="gaussian")
    with pytest.raises(ValueError):
        SamplerConfig(method="stochastic", g=1.0, prior="mean")


def test_sample_latent_with_a_tiny_model() -> None:
    small = dict(latent_channels=4, hidden=32, depth=1, heads=2, expert_hidden=16, lora_rank=8, text_dim=8)
    conds = [torch.randn(1, 4, 5, 6) for _ in range(2)]
    flow = build_model(ModelConfig(**small))
    out = sample_latent(flow, conds, cfg=SamplerConfig(method="midpoint_reuse", steps=3))
    assert out.x.shape == (1, 4, 5, 6) and out.nfe == 3
    reg = build_model(ModelConfig(**small, timestep=False))
    assert sample_latent(reg, conds).nfe == 1


def test_regression_passes_feed_the_output_back_as_both_inputs() -> None:
    small = dict(latent_channels=4, hidden=32, depth=1, heads=2, expert_hidden=16, lora_rank=8, text_dim=8)
    torch.manual_seed(0)
    reg = build_model(ModelConfig(**small, timestep=False)).eval()
    torch.nn.init.normal_(reg.final.linear.weight, std=0.1)  # a trained model's output is not 0
    conds = [torch.randn(1, 4, 5, 6) for _ in range(2)]
    with torch.no_grad():
        one = sample_latent(reg, conds).x
        two = sample_latent(reg, conds, cfg=SamplerConfig(passes=2))
        assert two.nfe == 2
        assert torch.allclose(two.x, reg([one, one]).sample)
        assert not torch.allclose(two.x, one)
    with pytest.raises(ValueError, match="passes"):
        SamplerConfig(passes=0)


def test_later_passes_carry_the_pass_condition() -> None:
    small = dict(latent_channels=4, hidden=32, depth=1, heads=2, expert_hidden=16, lora_rank=8, text_dim=8)
    torch.manual_seed(0)
    reg = build_model(ModelConfig(**small, timestep=False, pass_cond=True)).eval()
    for q in reg.parameters():  # a trained model: adaLN projections and output layer are not 0
        q.data.add_(0.05 * torch.randn_like(q))
    conds = [torch.randn(1, 4, 5, 6) for _ in range(2)]
    with torch.no_grad():
        one = sample_latent(reg, conds).x
        assert torch.equal(one, reg(conds).sample)  # zero pass condition until trained
        reg.pass_cond.normal_()
        assert torch.equal(sample_latent(reg, conds).x, one)  # the first pass never carries it
        two = sample_latent(reg, conds, cfg=SamplerConfig(passes=2)).x
        mean = (conds[0] + conds[1]) / 2  # a later pass sees the last output and the inputs' mean
        assert torch.allclose(two, reg([one, mean], later_pass=True).sample)
        assert not torch.allclose(two, reg([one, mean]).sample)
        assert not torch.allclose(two, reg([one, one], later_pass=True).sample)
    with pytest.raises(ValueError, match="pass_cond"):
        ModelConfig(pass_cond=True)  # a flow model (timestep) has no later passes


def test_x_prediction_model_samples_its_clean_prediction() -> None:
    """A data-predicting flow model that ignores Z_t lands exactly on its prediction with any solver."""
    small = dict(latent_channels=4, hidden=32, depth=1, heads=2, expert_hidden=16, lora_rank=8, text_dim=8)
    torch.manual_seed(0)
    model = build_model(ModelConfig(**small, predict="data"))
    conds = [torch.randn(1, 4, 5, 6) for _ in range(2)]
    with torch.no_grad():
        model.x_embed.weight.view(32, 4, -1)[:, :, :4] = 0  # blind to Z_t (patch 2: 4 pixels x 4 channels)
        torch.nn.init.zeros_(model.t_embed.mlp[-1].weight)
        torch.nn.init.zeros_(model.t_embed.mlp[-1].bias)
        z1 = model(conds, x=torch.zeros(1, 4, 5, 6), t=torch.zeros(1)).sample
    for method, steps in (("euler", 4), ("midpoint_reuse", 5), ("midpoint", 2)):
        out = sample_latent(model, conds, cfg=SamplerConfig(method=method, steps=steps)).x
        torch.testing.assert_close(out, z1, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="bridge"):
        sample_latent(model, conds, cfg=SamplerConfig(method="bridge", prior="mean", bridge_sigma=0.5))
