"""More inputs than a model's slots: the step orders, the pipeline's fallback (and native use of more
slots), and `allfuse fuse a b c`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import TINY

from allfuse.cli import main
from allfuse.io import read_image, write_image
from allfuse.models import FusionDiT
from allfuse.pipeline import FusionPipeline, save_pretrained
from allfuse.stacks import fuse_stack
from allfuse.train.config import load_train_config


def _recorder(calls: list[int]):
    """A 'fuser' of strings, ['a', 'b'] -> '(a,b)', that records how many it got each step."""

    def fuse(xs: list[str]) -> str:
        calls.append(len(xs))
        return "(" + ",".join(xs) + ")"

    return fuse


@pytest.mark.parametrize(
    ("n", "slots", "order", "result"),
    [
        (2, 2, "tree", "(a,b)"),
        (3, 2, "tree", "((a,b),c)"),
        (3, 2, "chain", "((a,b),c)"),
        (4, 2, "tree", "((a,b),(c,d))"),
        (4, 2, "chain", "(((a,b),c),d)"),
        (5, 2, "tree", "(((a,b),(c,d)),e)"),
        (5, 3, "tree", "((a,b,c),(d,e))"),
        (5, 3, "chain", "((a,b,c),d,e)"),
        (3, 4, "chain", "(a,b,c)"),
    ],
)
def test_stack_orders(n: int, slots: int, order: str, result: str) -> None:
    calls: list[int] = []
    names = list("abcdefgh"[:n])
    assert fuse_stack(_recorder(calls), names, slots, order) == result  # type: ignore[arg-type]
    assert all(2 <= k <= slots for k in calls) and len(calls) == result.count("(")


def test_stack_order_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 images"):
        fuse_stack(_recorder([]), ["a", "b"], 1)
    with pytest.raises(ValueError, match="unknown stack order 'zigzag'"):
        fuse_stack(_recorder([]), ["a", "b", "c"], 2, "zigzag")  # type: ignore[arg-type]


def _folder(tmp_path: Path, name: str, extra: list[str]) -> Path:
    cfg = load_train_config("tiny-reg", [*TINY, "text_encoder=none", "model.prompt=false", *extra])
    torch.manual_seed(0)
    return save_pretrained(FusionDiT(cfg.model), cfg, tmp_path / name)


def test_pipeline_fuses_three_inputs_in_steps(tmp_path: Path) -> None:
    pipe = FusionPipeline.from_pretrained(_folder(tmp_path, "two", []))
    assert pipe.slots() == 2
    rng = np.random.default_rng(0)
    a, b, c = (rng.random((24, 40, 3), dtype=np.float32) for _ in range(3))
    # the stack order, without the detail pick (allfuse.pick), which runs once, on the whole stack's rule
    three = pipe([a, b, c], task="mef", pick=False)
    nested = pipe([pipe([a, b], task="mef", pick=False), c], task="mef", pick=False)
    np.testing.assert_array_equal(three, nested)  # ((a, b), c)
    assert pipe([a, b, c], task="mef").shape == (24, 40, 3)
    assert three.shape == (24, 40, 3)
    gray = pipe([a[..., 0], b[..., 0], c[..., 0], a[..., 1]], task="mff")
    assert gray.shape == (24, 40) and gray.dtype == np.float32  # gray in, gray out, any count


def test_the_pipeline_picks_the_measured_order_per_task(tmp_path: Path, monkeypatch) -> None:
    import allfuse.pipeline as pipeline_module

    pipe = FusionPipeline.from_pretrained(_folder(tmp_path, "m", []))
    orders = []
    real = pipeline_module.fuse_stack
    monkeypatch.setattr(pipeline_module, "fuse_stack", lambda *a: orders.append(a[3]) or real(*a))
    xs = list(np.random.default_rng(3).random((4, 16, 16), dtype=np.float32))
    for task in ("vif", "mef", "mff"):
        pipe(xs, task=task)
    assert orders == ["tree", "chain", "tree"]


def test_a_model_with_more_slots_takes_them_at_once(tmp_path: Path) -> None:
    pipe = FusionPipeline.from_pretrained(_folder(tmp_path, "three", ["model.max_inputs=3"]))
    assert pipe.slots() == 3
    seen: list[int] = []
    pipe.model.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))
    x = np.random.default_rng(1).random((16, 24), dtype=np.float32)
    pipe([x, x[::-1].copy(), x[:, ::-1].copy()], task="mff", mirror=False)
    assert seen == [3]  # one pass with three condition latents, no fallback
    pipe([x, x[::-1].copy(), x[:, ::-1].copy()], task="mff")
    assert seen == [3, 3, 3]  # by default the latent path runs again on the mirrored inputs (MIRROR)


def test_cli_fuses_three_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _folder(tmp_path, "m", [])
    rng = np.random.default_rng(2)
    paths = [write_image(tmp_path / f"{i}.png", rng.random((20, 30, 3), dtype=np.float32)) for i in range(3)]
    out = tmp_path / "f.png"
    assert main(["fuse", *map(str, paths), "--model", str(folder), "--task", "mef", "-o", str(out)]) == 0
    assert "fused 3 images (mef" in capsys.readouterr().out
    assert read_image(out).shape[:2] == (20, 30)
