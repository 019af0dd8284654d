"""JointDiT (DiTFuse): config, shapes, the hybrid attention mask, the condition KV cache, CFG and the loss."""

import json

import pytest
import torch

from allfuse.flow import randn_like
from allfuse.models.joint import JOINT_PRESETS, JointConfig, JointDiT
from allfuse.objectives.joint import guidance_dropout, joint_flow_loss, mask_loss
from allfuse.sampling.joint import (
    combine_guidance,
    guidance_branches,
    guided_velocity,
    joint_velocity_fn,
    predict_mask,
)
from allfuse.sampling.solvers import euler

MICRO = JointConfig(
    latent_channels=4, hidden=32, depth=2, heads=2, ffn_hidden=64, max_inputs=3, text_dim=8, lora_rank=8
)


def micro(**changes: object) -> JointDiT:
    """A micro JointDiT with every parameter random (the zero-init gates would make blocks the identity)."""
    torch.manual_seed(0)
    model = JointDiT(JointConfig(**{**MICRO.to_dict(), **changes})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3 if p.dim() < 2 else 0.2)
    return model


def batch(b: int = 2, n: int = 2, h: int = 6, w: int = 8, length: int = 4) -> dict:
    """Inputs of a micro model: N latents, a padded prompt (sample 1 has 2 real tokens), x_t and t."""
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[-1, 2:] = False
    return dict(
        conds=[torch.randn(b, 4, h, w, generator=g) for _ in range(n)],
        text=torch.randn(b, length, 8, generator=g),
        text_mask=mask,
        x_t=torch.randn(b, 4, h, w, generator=g),
        t=torch.rand(b, generator=g),
    )


def tiny_param_count() -> int:
    """Parameter count of the `tiny` preset (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        return JointDiT(JOINT_PRESETS["tiny"]).num_params()


def changed(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when a and b differ by more than rounding; False when equal to rounding (asserts no middle)."""
    diff = float((a - b).detach().abs().max())
    assert diff <= 1e-6 or diff > 1e-4, f"ambiguous difference {diff}"
    return diff > 1e-4


def test_tiny_preset_has_8_to_10_million_parameters():
    assert 8e6 <= tiny_param_count() <= 10e6


def test_config_round_trips_through_json_and_rejects_unknown_keys():
    cfg = JointConfig(hidden=64, heads=4, predict="data")
    assert JointConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(KeyError):
        JointConfig.from_dict({**cfg.to_dict(), "future_field": 1})
    with pytest.warns(UserWarning, match="future_field"):
        assert JointConfig.from_dict({**cfg.to_dict(), "future_field": 1}, strict=False) == cfg
    with pytest.raises(ValueError):
        JointConfig(predict="noise")  # type: ignore[arg-type]


@pytest.mark.parametrize("n,h,w", [(1, 4, 4), (2, 6, 8), (3, 10, 2)])
def test_output_is_the_target_size_for_any_even_size_and_input_count(n: int, h: int, w: int):
    model = micro()
    args = batch(n=n, h=h, w=w)
    out = model(**args)
    assert out.shape == (2, 4, h, w) and torch.isfinite(out).all()
    assert model(**{**args, "text": None, "text_mask": None}).shape == (2, 4, h, w)


def test_bad_inputs_are_refused():
    model = micro()
    with pytest.raises(ValueError, match=r"1\.\.3"):
        model(**batch(n=4))
    with pytest.raises(ValueError, match="multiples"):
        model(**batch(h=5))
    args = batch()
    with pytest.raises(ValueError, match="alike"):
        model(**{**args, "conds": [args["conds"][0], args["conds"][1][..., :4]]})


def test_fresh_model_is_the_identity_stack_and_outputs_zero():
    model = JointDiT(MICRO)
    with torch.no_grad():
        assert float(model(**batch()).abs().max()) == 0.0


# The hybrid mask (DiTFuse Sect. III-A3), probed by perturbing tokens and watching hidden states.


def states(model: JointDiT, args: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Last hidden states (B, S, D) and segment ids (S,)."""
    with torch.no_grad():
        x, tok = model.hidden_states(**args)
    return x, tok.seg


def poke(args: dict, key: str, index: int | None = None, row: int = 0, col: int = 0) -> dict:
    """A copy of args with one token changed: a 2x2 latent patch of conds[index] or x_t, or text token 0."""
    new = {k: (list(v) if k == "conds" else v) for k, v in args.items()}
    if key == "text":
        new["text"] = args["text"].clone()
        new["text"][:, 0] += torch.randn(8, generator=torch.Generator().manual_seed(2))  # LayerNorm: not 1
    elif key == "t":
        new["t"] = args["t"] + 0.3
    else:
        z = (args["conds"][index] if key == "conds" else args["x_t"]).clone()
        z[:, :, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2] += 1.0
        if key == "conds":
            new["conds"][index] = z
        else:
            new["x_t"] = z
    return new


def test_target_sees_text_and_every_input_image():
    model, args = micro(), batch(n=2)
    out = model(**args)
    for key, index in (("text", None), ("conds", 0), ("conds", 1)):
        assert changed(model(**poke(args, key, index)), out), (key, index)


def test_condition_tokens_never_see_the_target_or_the_time():
    model, args = micro(), batch(n=2)
    x, seg = states(model, args)
    cond = seg <= 2  # text, image 1, image 2 (timestep is 3, target 4)
    for key in ("x_t", "t"):
        y, _ = states(model, poke(args, key, row=1, col=1))
        assert not changed(y[:, cond], x[:, cond]), key
        assert changed(y[:, seg == 4], x[:, seg == 4]), key


def test_tokens_of_one_image_see_each_other_both_ways():
    model, args = micro(), batch(n=2, h=6, w=8)
    x, seg = states(model, args)
    image1 = torch.nonzero(seg == 1).squeeze(1)  # <img>, 12 patch tokens, </img>
    first, last = image1[1], image1[-2]  # the top-left and bottom-right patch tokens
    late, _ = states(model, poke(args, "conds", 0, row=2, col=3))  # bottom-right patch
    early, _ = states(model, poke(args, "conds", 0, row=0, col=0))  # top-left patch
    assert changed(late[:, first], x[:, first]) and changed(early[:, last], x[:, last])


def test_segments_are_causal_across_images_and_text():
    model, args = micro(), batch(n=3)
    x, seg = states(model, args)
    y, _ = states(model, poke(args, "conds", 1))  # image 2 changes
    assert not changed(y[:, seg <= 1], x[:, seg <= 1])  # text and image 1 do not see it
    assert changed(y[:, seg == 3], x[:, seg == 3])  # image 3 does
    y, _ = states(model, poke(args, "conds", 0))  # image 1 changes
    assert not changed(y[:, seg == 0], x[:, seg == 0]) and changed(y[:, seg == 2], x[:, seg == 2])
    y, _ = states(model, poke(args, "text"))  # the text reaches every later segment
    assert all(changed(y[:, seg == s], x[:, seg == s]) for s in range(6))


def test_padded_and_dropped_condition_tokens_are_ignored():
    model, args = micro(), batch()
    out = model(**args)
    padded = dict(args, text=args["text"].clone())
    padded["text"][1, 2:] += 5.0  # sample 1's padding
    assert not changed(model(**padded), out)
    flags = dict(drop_text=torch.tensor([True, True]), drop_image=torch.tensor([True, True]))
    base = model(**args, **flags)
    assert not changed(model(**poke(args, "text"), **flags), base)
    assert not changed(model(**poke(args, "conds", 1), **flags), base)
    assert changed(base, out)


# The condition KV cache.


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("predict", ["velocity", "data"])
def test_cached_forward_equals_the_full_sequence(n: int, predict: str):
    model, args = micro(predict=predict), batch(n=n)
    flags = dict(drop_text=torch.tensor([False, True]), drop_image=torch.tensor([True, False]))
    with torch.no_grad():
        full = model(**args, **flags)
        cache = model.encode_condition(args["conds"], args["text"], args["text_mask"], **flags)
        cached = model.forward_cached(cache, args["x_t"], args["t"])
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cached"):
        model.forward_cached(cache, args["x_t"][..., :4], args["t"])


@pytest.mark.parametrize("scales", [(1.0, 1.0), (2.0, 1.6)])
def test_sampling_with_the_cache_equals_sampling_without(scales: tuple[float, float]):
    model, args = micro(), batch()
    noise = randn_like(args["conds"][0], torch.Generator().manual_seed(3))
    with torch.no_grad():  # Euler from the same Z0, DiTFuse's sampler
        runs = [
            euler(
                joint_velocity_fn(model, args["conds"], args["text"], args["text_mask"], *scales, cache),
                noise,
                4,
            ).x
            for cache in (True, False)
        ]
    assert torch.isfinite(runs[0]).all() and float(runs[0].std()) > 0
    torch.testing.assert_close(runs[0], runs[1], atol=1e-4, rtol=1e-4)


def test_bf16_cached_forward_stays_close_to_the_full_sequence():
    model, args = micro(), batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        full = model(**args).float()
        cache = model.encode_condition(args["conds"], args["text"], args["text_mask"])
        cached = model.forward_cached(cache, args["x_t"], args["t"]).float()
    assert cache.keys[0].dtype == torch.bfloat16
    assert float((cached - full).abs().max()) <= 0.05 * float(full.abs().max())


# Classifier-free guidance with separate text and image scales.


def branches(model: JointDiT, args: dict) -> list[torch.Tensor]:
    """Velocities of the three branches from three separate forwards: full, no text, no text no images."""
    b = args["x_t"].shape[0]
    yes, no = torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)
    with torch.no_grad():
        return [model(**args, drop_text=dt, drop_image=di) for dt, di in ((yes, yes), (no, yes), (no, no))]


def test_guidance_with_unit_scales_is_the_conditional_velocity():
    model, args = micro(), batch()
    cache3 = model.encode_condition(*guidance_branches(args["conds"], args["text"], args["text_mask"]))
    with torch.no_grad():
        v = guided_velocity(model, cache3, args["x_t"], args["t"], 1.0, 1.0)
        plain = model(**args)
    torch.testing.assert_close(v, plain, atol=1e-5, rtol=1e-5)


def test_batched_branches_equal_three_separate_forwards():
    model, args = micro(), batch()
    v_full, v_image, v_uncond = branches(model, args)
    expected = combine_guidance(v_full, v_image, v_uncond, 2.0, 1.6)
    cache3 = model.encode_condition(*guidance_branches(args["conds"], args["text"], args["text_mask"]))
    with torch.no_grad():
        v = guided_velocity(model, cache3, args["x_t"], args["t"], 2.0, 1.6)
    torch.testing.assert_close(v, expected, atol=1e-5, rtol=1e-5)
    assert changed(v_image, v_full) and changed(v_uncond, v_image)


def test_guidance_dropout_is_seeded_with_separate_rates():
    draw = lambda: guidance_dropout(20000, 0.2, 0.05, torch.Generator().manual_seed(0))  # noqa: E731
    (drop_text, drop_image), again = draw(), draw()
    assert torch.equal(drop_text, again[0]) and torch.equal(drop_image, again[1])
    assert bool((drop_text | ~drop_image).all())  # dropping the images drops the text too
    assert abs(float(drop_image.float().mean()) - 0.05) < 0.01
    assert abs(float((drop_text & ~drop_image).float().mean()) - 0.2) < 0.01


# The flow-matching loss.


def test_flow_loss_trains_every_parameter_and_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    model = JointDiT(MICRO)
    args = batch(b=4)
    target = torch.randn_like(args["x_t"])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(25):
        g = torch.Generator().manual_seed(0)  # same t, noise, dropout (2 full, 2 unconditional) each step
        loss = joint_flow_loss(
            model,
            args["conds"],
            args["text"],
            args["text_mask"],
            target,
            p_text=0.3,
            p_image=0.3,
            generator=g,
        )
        opt.zero_grad()
        loss.backward()
        if step == 2:  # adaLN-Zero: the zero output layer, then the zero gates open; then all learn
            assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()] == []
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < 0.7 * losses[0]


# The mask head ([SEG] masks read from the input images' states).


def test_mask_head_follows_the_text_and_inputs_never_the_target():
    model, args = micro(mask_head=True), batch(n=2, h=6, w=8)
    _, logits = model(**args, with_mask=True)
    assert logits.shape == (2, 1, 12, 16)  # 4 x 4 cells per 2 x 2-latent token
    for key, index in (("x_t", None), ("t", None)):
        assert not changed(model(**poke(args, key, index), with_mask=True)[1], logits), key
    for key, index in (("text", None), ("conds", 0), ("conds", 1)):
        assert changed(model(**poke(args, key, index), with_mask=True)[1], logits), (key, index)
    # the condition pass alone gives the same logits (the condition never sees the target)
    alone = model.predict_mask(args["conds"], args["text"], args["text_mask"])
    torch.testing.assert_close(alone, logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no mask head"):
        micro().predict_mask(args["conds"], args["text"], args["text_mask"])


def test_windowed_mask_covers_odd_latents_and_matches_one_window_inside_it():
    model = micro(mask_head=True)
    g = torch.Generator().manual_seed(3)
    conds = [torch.randn(1, 4, 11, 14, generator=g) for _ in range(2)]
    text = torch.randn(1, 3, 8, generator=g)
    whole = predict_mask(model, conds, text, None, window=0)
    windows = predict_mask(model, conds, text, None, window=8)
    assert whole.shape == windows.shape == (1, 1, 22, 28)
    assert float(whole.min()) >= 0 and float(whole.max()) <= 1
    # the top-left corner lies in the first window only, so it is that window's own prediction
    first = torch.sigmoid(model.predict_mask([c[..., :8, :8] for c in conds], text, None))
    torch.testing.assert_close(windows[..., :4, :4], first[..., :4, :4], rtol=1e-5, atol=1e-5)


def test_mask_loss_counts_only_the_kept_samples_and_teaches_the_head():
    logits = torch.zeros(3, 1, 4, 4, requires_grad=True)
    masks = torch.zeros(3, 1, 16, 16)
    masks[0, :, :8] = 1.0
    keep = torch.tensor([True, False, False])
    loss = mask_loss(logits, masks, keep)
    loss.backward()
    assert logits.grad is not None and logits.grad[1:].abs().sum() == 0 and logits.grad[0].abs().sum() > 0
    nothing = mask_loss(logits, masks, torch.zeros(3, dtype=torch.bool))
    assert float(nothing.detach()) == 0.0 and nothing.requires_grad
    # a micro model learns a mask given by its input: the region where input 1 is bright
    torch.manual_seed(0)
    model = JointDiT(JointConfig(**{**MICRO.to_dict(), "mask_head": True}))
    args = batch(b=4, h=8, w=8)
    mask = (args["conds"][0][:, :1] > 0).float()  # (B, 1, 8, 8) latent cells
    mask = torch.nn.functional.interpolate(mask, scale_factor=4)  # at the head's cells
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        flow, seg = joint_flow_loss(
            model, args["conds"], args["text"], args["text_mask"], args["x_t"], p_text=0.0, p_image=0.0,
            generator=torch.Generator().manual_seed(0), masks=mask, has_mask=torch.ones(4, dtype=torch.bool),
        )  # fmt: skip
        opt.zero_grad()
        (flow + seg).backward()
        opt.step()
        losses.append(seg.item())
    assert losses[-1] < 0.5 * losses[0]


if __name__ == "__main__":
    print(f"JointDiT tiny preset: {tiny_param_count():,} parameters")
