"""FusionDiT: shapes, identity init, gradient flow, switches, multi-input slots, presets and counts."""

import pytest
import torch

from allfuse.config import PRESETS, ModelConfig, model_config, override
from allfuse.models import build_model
from allfuse.models.dit import FusionDiT

SWITCHES = ["moe", "rope", "block_pe", "value_residual", "naf", "lora_adaln", "prompt"]
MICRO = dict(
    latent_channels=4, hidden=32, depth=2, heads=2, expert_hidden=16, lora_rank=8, text_dim=8, pe_features=8
)


def micro(**changes: object) -> FusionDiT:
    torch.manual_seed(0)
    return build_model(ModelConfig(**{**MICRO, **changes}))


def inputs(h: int, w: int, b: int = 2, n: int = 2, c: int = 4) -> dict:
    conds = [torch.randn(b, c, h, w) for _ in range(n)]
    mask = torch.ones(b, 5, dtype=torch.bool)
    mask[1, 3:] = False
    return dict(conds=conds, prompt=torch.randn(b, 5, 8), prompt_mask=mask)


def randomize_zero_inits(model: FusionDiT) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() == 0:
                p.normal_(0, 0.05)


@pytest.mark.parametrize("h,w", [(8, 8), (9, 13), (7, 4), (1, 3)])
def test_output_shape_matches_input_including_odd_and_non_square(h: int, w: int) -> None:
    model = micro()
    randomize_zero_inits(model)
    out = model(**inputs(h, w), x=torch.randn(2, 4, h, w), t=torch.rand(2))
    assert out.sample.shape == (2, 4, h, w) and torch.isfinite(out.sample).all()
    reg = micro(timestep=False)
    assert reg(**inputs(h, w)).sample.shape == (2, 4, h, w)


def test_blocks_are_identity_at_init_and_output_is_zero() -> None:
    model = micro()
    x, c = torch.randn(2, 5 + 12, 32), torch.randn(2, 5 + 12, 32)
    for block in model.blocks:
        y, _, _ = block(x, c, (3, 4), None, None, None, None)
        torch.testing.assert_close(y, x)
    out = model(**inputs(6, 8), x=torch.randn(2, 4, 6, 8), t=torch.rand(2))
    assert out.sample.abs().max() == 0


def test_gradients_reach_every_parameter() -> None:
    model = micro()
    randomize_zero_inits(model)
    out = model(**inputs(6, 6), x=torch.randn(2, 4, 6, 6), t=torch.rand(2))
    (out.sample.square().mean() + out.balance_loss).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert not dead, dead


@pytest.mark.parametrize("switch", SWITCHES)
def test_model_trains_a_step_with_each_switch_off(switch: str) -> None:
    model = micro(**{switch: False})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch, x, t = inputs(5, 7), torch.randn(2, 4, 5, 7), torch.rand(2)
    target = torch.randn(2, 4, 5, 7)
    losses = []
    for _ in range(3):
        out = model(**batch, x=x, t=t)
        loss = (out.sample - target).square().mean() + 0.01 * out.balance_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_all_switches_off_is_a_dense_dit() -> None:
    model = micro(**dict.fromkeys(SWITCHES, False))
    out = model(**inputs(4, 6), x=torch.randn(2, 4, 4, 6), t=torch.rand(2))
    assert out.sample.shape == (2, 4, 4, 6) and out.balance_loss == 0


def test_multi_input_slots_and_prompt_padding() -> None:
    model = micro(max_inputs=3)
    randomize_zero_inits(model)
    model.eval()
    x, t = torch.randn(2, 4, 6, 6), torch.rand(2)
    two, three = inputs(6, 6, n=2), inputs(6, 6, n=3)
    assert model(**two, x=x, t=t).sample.shape == model(**three, x=x, t=t).sample.shape
    stacked = torch.stack(three["conds"], dim=1)  # (B, N, C, H, W) form
    torch.testing.assert_close(
        model(**{**three, "conds": stacked}, x=x, t=t).sample, model(**three, x=x, t=t).sample
    )
    with pytest.raises(ValueError):
        model(**inputs(6, 6, n=4), x=x, t=t)
    # Padded prompt tokens are masked out: changing them does not change the image output.
    changed = dict(two)
    prompt = two["prompt"].clone()
    prompt[1, 3:] = 100.0
    changed["prompt"] = prompt
    torch.testing.assert_close(model(**two, x=x, t=t).sample, model(**changed, x=x, t=t).sample)


def test_timestep_contract() -> None:
    with pytest.raises(ValueError):
        micro()(**inputs(4, 4))  # flow model without x, t
    with pytest.raises(ValueError):
        micro(timestep=False)(**inputs(4, 4), x=torch.randn(2, 4, 4, 4), t=torch.rand(2))


def test_config_overrides_and_choices() -> None:
    assert model_config("tiny", depth=3).depth == 3
    with pytest.raises(KeyError):
        model_config("tiny", dpeth=3)
    with pytest.raises(KeyError):
        model_config("huge")
    with pytest.raises(ValueError):
        override(PRESETS["tiny"], heads=5)


def test_mmaif_preset_parameter_counts() -> None:
    with torch.device("meta"):
        model = build_model("mmaif")
    total, active = model.num_params()
    assert abs(total / 282e6 - 1) < 0.03, total
    assert abs(active / 185e6 - 1) < 0.05, active
    cfg = model.cfg
    assert (cfg.depth, cfg.hidden, cfg.heads, cfg.lora_rank) == (16, 576, 12, 128)
    assert (cfg.experts, cfg.top_k, cfg.shared_experts) == (4, 2, 1)


def test_tiny_and_small_presets_build_on_meta() -> None:
    for name in ("tiny", "small"):
        with torch.device("meta"):
            total, active = build_model(name).num_params()
        assert active < total
    with torch.device("meta"):
        assert 5e6 < build_model("tiny").num_params()[0] < 10e6


def test_gradient_checkpointing_matches() -> None:
    model = micro()
    randomize_zero_inits(model)
    batch, x, t = inputs(4, 6), torch.randn(2, 4, 4, 6), torch.rand(2)
    ref = model(**batch, x=x, t=t).sample
    model.gradient_checkpointing = True
    out = model(**batch, x=x, t=t).sample
    torch.testing.assert_close(out, ref)
    out.sum().backward()


def test_bf16_autocast_forward_backward() -> None:
    model = micro()
    randomize_zero_inits(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**inputs(5, 6), x=torch.randn(2, 4, 5, 6), t=torch.rand(2))
        loss = out.sample.float().square().mean() + out.balance_loss
    loss.backward()
    assert out.sample.shape == (2, 4, 5, 6) and torch.isfinite(loss)
