"""LoRA: a fresh adapter is the identity, training moves only adapters, merging keeps outputs, state dicts
round-trip; on a micro JointDiT (whose KV cache still agrees with LoRA layers in it)."""

import pytest
import torch
from torch import nn

from allfuse.models.joint import JointConfig, JointDiT
from allfuse.models.lora import (
    LoRALinear,
    add_lora,
    load_lora_state_dict,
    lora_parameters,
    lora_state_dict,
    merge_lora,
)
from allfuse.objectives.joint import joint_flow_loss

MICRO = JointConfig(latent_channels=4, hidden=32, depth=2, heads=2, ffn_hidden=64, text_dim=8, lora_rank=8)


def micro() -> JointDiT:
    """A micro JointDiT with random weights everywhere (zero-init gates would hide the blocks)."""
    torch.manual_seed(0)
    model = JointDiT(MICRO).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def inputs() -> dict:
    g = torch.Generator().manual_seed(1)
    return dict(
        conds=[torch.randn(2, 4, 4, 6, generator=g) for _ in range(2)],
        text=torch.randn(2, 3, 8, generator=g),
        text_mask=torch.tensor([[True, True, True], [True, False, False]]),
        x_t=torch.randn(2, 4, 4, 6, generator=g),
        t=torch.rand(2, generator=g),
    )


def train_lora(model: JointDiT, steps: int = 3) -> None:
    """A few AdamW steps of the flow loss on the adapters alone."""
    args = inputs()
    opt = torch.optim.AdamW(lora_parameters(model), lr=1e-2)
    for step in range(steps):
        loss = joint_flow_loss(
            model, args["conds"], args["text"], args["text_mask"], args["x_t"],
            generator=torch.Generator().manual_seed(step),
        )  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_a_fresh_adapter_leaves_the_output_unchanged():
    model = micro()
    with torch.no_grad():
        before = model(**inputs())
    names = add_lora(model, rank=4, alpha=8)
    assert len(names) == 4 * MICRO.depth  # qkv, proj, w_in, w_out per block
    with torch.no_grad():
        assert torch.equal(model(**inputs()), before)


def test_training_moves_only_the_adapters():
    model = micro()
    add_lora(model, rank=4, dropout=0.1)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    lora_b = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("lora_b")}
    assert all(not p.requires_grad for n, p in model.named_parameters() if n in frozen)
    model.train()
    train_lora(model)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert all(not torch.equal(p, lora_b[n]) for n, p in model.named_parameters() if n in lora_b)


def test_merged_model_gives_the_unmerged_output_with_plain_linears():
    model = micro()
    keys = set(model.state_dict())
    add_lora(model, rank=4, alpha=16)
    train_lora(model)
    model.eval()
    args = inputs()
    with torch.no_grad():
        unmerged = model(**args)
        merge_lora(model)
        merged = model(**args)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == keys  # loads like the base model again
    with torch.no_grad():  # and its condition cache still agrees with the full sequence
        cache = model.encode_condition(args["conds"], args["text"], args["text_mask"])
        torch.testing.assert_close(
            model.forward_cached(cache, args["x_t"], args["t"]), merged, atol=1e-5, rtol=1e-5
        )


def test_lora_state_dict_round_trips():
    model = micro()
    add_lora(model, rank=4)
    train_lora(model)
    state = lora_state_dict(model)
    assert state and all(k.endswith(("lora_a", "lora_b")) for k in state)
    other = micro()
    add_lora(other, rank=4)
    load_lora_state_dict(other, state)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(**inputs()), model(**inputs()), atol=0, rtol=0)
    with pytest.raises(KeyError, match="missing"):
        load_lora_state_dict(other, {k: v for k, v in state.items() if ".0." not in k})


def test_targets_are_name_patterns():
    model = micro()
    assert add_lora(model, rank=2, targets=("blocks.0.attn.*",)) == [
        "blocks.0.attn.qkv",
        "blocks.0.attn.proj",
    ]
    with pytest.raises(ValueError, match="already"):
        add_lora(model, rank=2)
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        add_lora(micro(), rank=2, targets=("nothing",))
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2, bias=False))
    assert add_lora(net, rank=2, targets=("0", "2")) == ["0", "2"]
    assert len(lora_parameters(net)) == 4 and net(torch.randn(7, 3)).shape == (7, 2)
