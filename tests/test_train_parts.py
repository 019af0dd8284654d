"""Training parts: cautious AdamW, warmup-cosine schedule, EMA, atomic safetensors checkpoints."""

import os
from pathlib import Path

import pytest
import torch

from allfuse.train import checkpoint as ckpt
from allfuse.train.ema import EMA
from allfuse.train.optim import CautiousAdamW, warmup_cosine


def test_cautious_mask_zeroes_steps_against_the_gradient() -> None:
    p = torch.nn.Parameter(torch.zeros(4))
    opt = CautiousAdamW([p], lr=0.1)
    p.grad = torch.tensor([1.0, 1.0, 1.0, 1.0])
    opt.step()  # momentum now points along +grad everywhere
    before = p.detach().clone()
    p.grad = torch.tensor([-1.0, -1.0, 1.0, 1.0]) * 1e-3  # tiny reversed gradient on the first two
    opt.step()
    moved = (p.detach() - before).abs()
    assert torch.all(moved[:2] == 0) and torch.all(moved[2:] > 0)
    # plain AdamW (cautious=False) would move the first two entries
    q = torch.nn.Parameter(torch.zeros(4))
    plain = CautiousAdamW([q], lr=0.1, cautious=False)
    q.grad = torch.ones(4)
    plain.step()
    q_before = q.detach().clone()
    q.grad = torch.tensor([-1.0, -1.0, 1.0, 1.0]) * 1e-3
    plain.step()
    assert torch.all((q.detach() - q_before)[:2] != 0)


def test_warmup_cosine_shape() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, warmup=4, total=14)
    lrs = []
    for _ in range(15):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[9] == pytest.approx(0.5) and lrs[14] == pytest.approx(0.0, abs=1e-12)


def test_ema_trails_the_weights() -> None:
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9)
    start = ema.shadow.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.shadow.weight, start + 0.1)


def _state(model: torch.nn.Module) -> dict:
    return {"step": 3, "rng": ckpt.rng_state(), "data": {"epoch": 1, "index": 7}}


def test_checkpoint_round_trip_and_rng(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = CautiousAdamW(model.parameters())
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    state = {**_state(model), "optimizer": opt.state_dict()}
    old = os.umask(0o022)
    try:
        weights = model.state_dict()
        path = ckpt.save_checkpoint(tmp_path, 3, weights, {"name": "x"}, state, ema=weights)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o755  # the modes open() / mkdir give, not mkdtemp's private ones
    assert {f.stat().st_mode & 0o777 for f in path.iterdir()} == {0o644}
    expected = torch.rand(3)
    c = ckpt.load_checkpoint(tmp_path)
    ckpt.set_rng_state(c.state["rng"])
    assert torch.equal(torch.rand(3), expected)  # the RNG resumes where it was saved
    assert c.config == {"name": "x"} and c.state["data"] == {"epoch": 1, "index": 7}
    assert all(torch.equal(c.model[k], v) for k, v in model.state_dict().items())
    opt2 = CautiousAdamW(model.parameters())
    opt2.load_state_dict(ckpt.optimizer_state(c.state["optimizer"]))
    assert torch.equal(opt2.state[model.weight]["exp_avg"], opt.state[model.weight]["exp_avg"])


def test_a_crash_during_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    model = torch.nn.Linear(3, 2)
    ckpt.save_checkpoint(tmp_path, 1, model.state_dict(), {}, {"step": 1})

    def dies(*args, **kwargs):
        raise KeyboardInterrupt  # stands in for a kill in the middle of writing

    monkeypatch.setattr(ckpt, "save_file", dies)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 2, model.state_dict(), {}, {"step": 2})
    c = ckpt.load_checkpoint(tmp_path)
    assert c.state["step"] == 1 and c.path.name == "step_00000001"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_pruning_keeps_the_newest(tmp_path: Path) -> None:
    model = torch.nn.Linear(1, 1)
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, step, model.state_dict(), {}, {"step": step}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000003", "step_00000004"]
