"""Objectives: regression and flow losses with a dummy decoder, the pixel fusion loss, time sampling."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from allfuse.config import ModelConfig, ObjectiveConfig
from allfuse.flow import sample_time
from allfuse.models import build_model
from allfuse.models.dit import DiTOutput
from allfuse.objectives import LatentBatch, compute_loss, flow_loss, fusion_pixel_loss
from allfuse.objectives.regression import refeed_inputs
from allfuse.ops import sobel_magnitude

MICRO = dict(latent_channels=4, hidden=32, depth=2, heads=2, expert_hidden=16, lora_rank=8, text_dim=8)


def decode(z: Tensor) -> Tensor:
    """Dummy f=8 decoder: first 3 channels, nearest upsampling, squashed to [0, 1]."""
    return torch.sigmoid(F.interpolate(z[:, :3], scale_factor=8.0, mode="nearest"))


def make_batch(b: int = 2, h: int = 5, w: int = 6) -> LatentBatch:
    g = torch.Generator().manual_seed(0)
    return LatentBatch(
        conds=[torch.randn(b, 4, h, w, generator=g) for _ in range(2)],
        target=torch.randn(b, 4, h, w, generator=g),
        prompt=torch.randn(b, 3, 8, generator=g),
        prompt_mask=torch.ones(b, 3, dtype=torch.bool),
        sources=[torch.rand(b, 1, 8 * h, 8 * w, generator=g), torch.rand(b, 3, 8 * h, 8 * w, generator=g)],
    )


@pytest.mark.parametrize(
    "cfg",
    [
        ObjectiveConfig(kind="regression", aux_weight=0.1),
        ObjectiveConfig(kind="flow", aux_weight=0.1, time_sampling="uniform"),
        ObjectiveConfig(kind="flow", prior="mean", bridge_sigma=0.5, aux_weight=0.1, aux_mode="max"),
        ObjectiveConfig(kind="flow", prior="first"),
    ],
)
def test_losses_backprop_and_log(cfg: ObjectiveConfig) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(**MICRO, timestep=cfg.kind == "flow"))
    loss, logs = compute_loss(model, make_batch(), cfg, decode, torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and {"loss", "mse", "balance"} <= logs.keys()
    assert ("aux" in logs) == (cfg.aux_weight > 0)
    expected = logs["mse"] + cfg.balance_weight * logs["balance"] + cfg.aux_weight * logs.get("aux", 0.0)
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    assert model.final.linear.weight.grad.abs().max() > 0


class Oracle(nn.Module):
    """A 'model' that returns the exact flow target Z1 - Z0, recovering Z0 from Z_t with a known prior."""

    def __init__(self, z1: Tensor) -> None:
        super().__init__()
        self.z1 = z1

    def forward(self, conds, prompt=None, prompt_mask=None, x=None, t=None) -> DiTOutput:
        tt = t.view(-1, 1, 1, 1)
        z0 = (x - tt * self.z1) / (1 - tt)  # invert Z_t = (1 - t) Z0 + t Z1
        return DiTOutput(self.z1 - z0, torch.zeros(()))


def test_flow_time_convention_zero_loss_for_the_exact_velocity() -> None:
    batch = make_batch()
    cfg = ObjectiveConfig(kind="flow", balance_weight=0.0, time_sampling="uniform")
    loss, _ = flow_loss(Oracle(batch.target), batch, cfg, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-8


def test_fusion_pixel_loss_values() -> None:
    x = torch.rand(1, 3, 16, 16)
    assert fusion_pixel_loss(x, [x, x]).item() == pytest.approx(0.0)
    y = torch.zeros_like(x)
    # |x - x| + |x - 0| plus the gradient terms: sum over the two sources.
    expected = x.mean() + sobel_magnitude(x).mean()
    assert fusion_pixel_loss(x, [x, y]).item() == pytest.approx(expected.item(), rel=1e-5)
    assert fusion_pixel_loss(torch.maximum(x, y), [x, y], mode="max").item() == pytest.approx(0.0)


def test_texture_loss_asks_for_the_strongest_source_edge() -> None:
    from allfuse.objectives.pixel import texture_loss

    sharp = (torch.arange(16) >= 8).float().expand(2, 3, 16, 16)  # a vertical edge
    soft = F.avg_pool2d(F.pad(sharp, (2, 2, 0, 0), mode="replicate"), (1, 5), stride=1)  # the same, blurred
    gray = torch.full((2, 1, 16, 16), 0.4)  # a flat gray source, broadcast over the channels
    assert texture_loss(sharp, [gray, sharp]).item() < 1e-6  # the sharp source's edge, at its strength
    assert texture_loss(soft, [gray, sharp]).item() > 0.1  # a softened edge falls short of it
    assert texture_loss(sharp, [soft, sharp]).item() > 0  # the max is per pixel: soft's wider support
    per_sample = texture_loss(torch.cat([sharp[:1], soft[:1]]), [gray, sharp], weights=torch.ones(2))
    assert texture_loss(torch.cat([sharp[:1], soft[:1]]), [gray, sharp], torch.tensor([1.0, 0.0])) < 1e-6
    assert per_sample.item() == pytest.approx(texture_loss(soft, [gray, sharp]).item() / 2)


def test_sobel_of_a_ramp() -> None:
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)  # +1 per column
    g = sobel_magnitude(ramp)
    assert g[0, 0, 3, 3] == 8.0  # Sobel x of a unit ramp: 2 * (1 + 2 + 1)


def test_time_sampling_ranges() -> None:
    g = torch.Generator().manual_seed(0)
    for kind in ("uniform", "logit_normal"):
        t = sample_time(ObjectiveConfig(time_sampling=kind), 1000, g)
        assert t.min() > 0 and t.max() < 1 and abs(t.mean().item() - 0.5) < 0.05


def test_objective_config_validation() -> None:
    with pytest.raises(ValueError):
        ObjectiveConfig(kind="diffusion")
    with pytest.raises(ValueError):
        ObjectiveConfig(prior="gaussian", bridge_sigma=0.5)
    with pytest.raises(ValueError):
        compute_loss(
            build_model(ModelConfig(**MICRO, timestep=False)),
            make_batch(),
            ObjectiveConfig(kind="regression", aux_weight=1.0),
        )


class DataOracle(nn.Module):
    """An x-prediction 'model' (cfg.predict = "data") that returns the clean latent Z1 itself."""

    cfg = ModelConfig(**MICRO, predict="data")

    def __init__(self, z1: Tensor) -> None:
        super().__init__()
        self.z1 = z1

    def forward(self, conds, prompt=None, prompt_mask=None, x=None, t=None) -> DiTOutput:
        return DiTOutput(self.z1.clone(), torch.zeros(()))


def test_x_prediction_derives_the_velocity() -> None:
    batch = make_batch()
    cfg = ObjectiveConfig(kind="flow", balance_weight=0.0, time_sampling="uniform")
    # (Z1 - Z_t) / (1 - t) = Z1 - Z0 exactly on the straight path (t < 1 - 0.05 almost surely here).
    loss, _ = flow_loss(DataOracle(batch.target), batch, cfg, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-8
    wrong = DataOracle(batch.target + 0.1)
    assert flow_loss(wrong, batch, cfg, generator=torch.Generator().manual_seed(0))[0].item() > 1e-3
    with pytest.raises(ValueError, match="straight path"):
        flow_loss(
            DataOracle(batch.target), batch, ObjectiveConfig(kind="flow", prior="mean", bridge_sigma=0.5)
        )


def test_refeed_validation() -> None:
    with pytest.raises(ValueError, match="refeed"):
        ObjectiveConfig(kind="regression", refeed=1.5)
    with pytest.raises(ValueError, match="regression"):
        ObjectiveConfig(kind="flow", refeed=0.5)


class Doubler(nn.Module):
    """A regression 'model' whose output is twice its first input: easy to follow through a refeed."""

    def forward(self, conds, prompt=None, prompt_mask=None) -> DiTOutput:
        return DiTOutput(2 * conds[0], torch.zeros(()))


def test_refeed_feeds_the_models_own_output_as_every_input() -> None:
    batch = make_batch(b=6)
    model = Doubler()
    none, picked = refeed_inputs(model, batch, 0.0, torch.Generator().manual_seed(0))
    assert none is batch.conds and not picked.any()
    every, picked = refeed_inputs(model, batch, 1.0, torch.Generator().manual_seed(0))
    assert all(torch.equal(c, 2 * batch.conds[0]) for c in every) and picked.all()
    some, picked = refeed_inputs(model, batch, 0.5, torch.Generator().manual_seed(1))
    fed = torch.tensor([torch.equal(some[0][i], 2 * batch.conds[0][i]) for i in range(6)])
    kept = torch.tensor([torch.equal(some[1][i], batch.conds[1][i]) for i in range(6)])
    assert 0 < int(fed.sum()) < 6 and torch.equal(fed, ~kept)  # a sample is fed back whole, or kept whole
    assert torch.equal(fed, picked)  # the mask names the fed-back samples
    assert torch.equal(some[0][fed], some[1][fed])
    again, _ = refeed_inputs(model, batch, 0.5, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(some, again, strict=True))  # same draw


def test_refeed_loss_trains_on_the_second_pass() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(**MICRO, timestep=False))
    batch, cfg = make_batch(), ObjectiveConfig(kind="regression", refeed=1.0)
    loss, _ = compute_loss(model, batch, cfg, decode, torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = model(batch.conds, batch.prompt, batch.prompt_mask).sample
        second = model([z, z], batch.prompt, batch.prompt_mask)
    expected = (second.sample - batch.target).pow(2).mean() + cfg.balance_weight * second.balance_loss
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert model.final.linear.weight.grad.abs().max() > 0


def test_refeed_marks_the_second_pass_with_the_pass_condition() -> None:
    """With ModelConfig.pass_cond, refed samples train the later-pass call: the loss is the one of
    f(z, mean of the inputs, P, later_pass=True), and the pass condition gets a gradient (only from those
    samples)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(**MICRO, timestep=False, pass_cond=True))
    with torch.no_grad():  # a trained model: adaLN projections and the pass condition are not 0
        for q in model.parameters():
            q.add_(0.05 * torch.randn_like(q))
        model.pass_cond.normal_()
    batch, cfg = make_batch(), ObjectiveConfig(kind="regression", refeed=1.0)
    loss, _ = compute_loss(model, batch, cfg, decode, torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = model(batch.conds, batch.prompt, batch.prompt_mask).sample
        mean = (batch.conds[0] + batch.conds[1]) / 2
        marked = model([z, mean], batch.prompt, batch.prompt_mask, later_pass=True)
        plain = model([z, mean], batch.prompt, batch.prompt_mask)
    expected = (marked.sample - batch.target).pow(2).mean() + cfg.balance_weight * marked.balance_loss
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert not torch.allclose(marked.sample, plain.sample)
    loss.backward()
    assert model.pass_cond.grad.abs().max() > 0
    model.zero_grad()
    loss, _ = compute_loss(model, batch, ObjectiveConfig(kind="regression"), decode)
    loss.backward()
    assert model.pass_cond.grad is None or model.pass_cond.grad.abs().max() == 0  # first passes: unmarked
