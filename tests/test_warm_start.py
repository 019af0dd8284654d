"""Warm start across objectives: a regression FusionDiT becomes an x-prediction flow model that starts
out predicting exactly what the regression model predicts."""

import pytest
import torch

from allfuse.config import ModelConfig, SamplerConfig
from allfuse.models import build_model
from allfuse.sampling import sample_latent
from allfuse.train.warm import warm_start

SMALL = dict(latent_channels=4, hidden=32, depth=2, heads=2, expert_hidden=16, lora_rank=8, text_dim=8)


def test_regression_to_x_prediction_flow_is_exact() -> None:
    torch.manual_seed(0)
    reg = build_model(ModelConfig(**SMALL, timestep=False))
    for q in reg.parameters():  # move away from the zero-initialised output so the check means something
        q.data.add_(0.05 * torch.randn_like(q))
    flow = build_model(ModelConfig(**SMALL, predict="data"))
    notes = warm_start(flow, reg.state_dict())
    reg.eval(), flow.eval()  # MoE routing noise is a training-mode thing
    assert any("x_embed" in n for n in notes) and any("t_embed" in n for n in notes)
    conds = [torch.randn(1, 4, 6, 8) for _ in range(2)]
    prompt = torch.randn(1, 3, 8)
    with torch.no_grad():
        want = reg(conds, prompt).sample
        assert want.abs().max() > 1e-3
        for method, steps in (("euler", 3), ("midpoint_reuse", 5)):
            got = sample_latent(flow, conds, prompt, cfg=SamplerConfig(method=method, steps=steps)).x
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_same_architecture_copies_everything() -> None:
    a, b = (build_model(ModelConfig(**SMALL)) for _ in range(2))
    assert warm_start(b, a.state_dict()) == []
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])


def test_mismatches_are_errors() -> None:
    reg = build_model(ModelConfig(**SMALL, timestep=False))
    with pytest.raises(ValueError, match="lacks"):
        warm_start(build_model(ModelConfig(**SMALL, timestep=False, moe=False)), reg.state_dict())
    wide = build_model(ModelConfig(**{**SMALL, "hidden": 64}, timestep=False))
    with pytest.raises(ValueError):
        warm_start(wide, reg.state_dict())
    flow = build_model(ModelConfig(**SMALL))
    with pytest.raises(ValueError, match="this model lacks"):
        warm_start(reg, flow.state_dict())


def test_a_model_gains_a_pass_condition_and_still_computes_the_same() -> None:
    torch.manual_seed(0)
    reg = build_model(ModelConfig(**SMALL, timestep=False))
    for q in reg.parameters():
        q.data.add_(0.05 * torch.randn_like(q))
    two = build_model(ModelConfig(**SMALL, timestep=False, pass_cond=True))
    with torch.no_grad():
        two.pass_cond.fill_(1.0)
    assert any("pass_cond" in n for n in warm_start(two, reg.state_dict()))
    assert torch.equal(two.pass_cond, torch.zeros_like(two.pass_cond))
    reg.eval(), two.eval()
    conds = [torch.randn(1, 4, 6, 8) for _ in range(2)]
    with torch.no_grad():
        want = reg([conds[0], conds[0]]).sample
        torch.testing.assert_close(two([conds[0], conds[0]], later_pass=True).sample, want)


def test_widened_experts_compute_the_same_and_their_new_units_learn() -> None:
    torch.manual_seed(0)
    narrow = build_model(ModelConfig(**SMALL, timestep=False))
    for q in narrow.parameters():
        q.data.add_(0.05 * torch.randn_like(q))
    wide = build_model(ModelConfig(**{**SMALL, "expert_hidden": 40}, timestep=False))
    notes = warm_start(wide, narrow.state_dict())
    assert any("widened to 40" in n and "2 blocks" in n for n in notes)
    narrow.eval(), wide.eval()
    conds = [torch.randn(1, 4, 6, 8) for _ in range(2)]
    prompt = torch.randn(1, 3, 8)
    with torch.no_grad():
        want = narrow(conds, prompt).sample
        assert want.abs().max() > 1e-3
        torch.testing.assert_close(wide(conds, prompt).sample, want, atol=1e-5, rtol=1e-5)
    ffn = wide.blocks[0].ffn
    assert ffn.w_out[:, 16:].abs().max() == 0 and ffn.w_in[:, :, 16:40].abs().max() > 0
    wide(conds, prompt).sample.square().mean().backward()
    assert ffn.w_out.grad[:, 16:].abs().max() > 0  # the new units' down rows are trained
    assert ffn.shared.w_out.weight.grad[:, 16:].abs().max() > 0
    with pytest.raises(ValueError):  # narrowing is not a warm start
        warm_start(narrow, wide.state_dict())
