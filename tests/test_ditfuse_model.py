"""The shipped DiTFuse model (allfuse-ditfuse): it loads offline as a JointPipeline, lists what it was trained
for, follows brightness instructions, draws a [SEG] overlay on its mask only, and the fusion-only models
point a user to it."""

import numpy as np
import pytest

from allfuse.cli import main as cli_main
from allfuse.color import to_gray
from allfuse.data.m3 import m3_pair
from allfuse.data.prompts import CONTROL_TAGS, phrases, tagged_prompt
from allfuse.data.seg import synthetic_scene
from allfuse.demo import demo_pair
from allfuse.io import write_image
from allfuse.joint_pipeline import JointPipeline
from allfuse.pipeline import FusionPipeline

MODEL = "allfuse-ditfuse"


@pytest.fixture(scope="module")
def pipe() -> JointPipeline:
    out = FusionPipeline.from_pretrained(MODEL)
    assert isinstance(out, JointPipeline)
    return out


@pytest.fixture(scope="module")
def pair() -> list[np.ndarray]:
    """A 128 x 160 crop of the multi-exposure demo pair (one sampling window high: fast)."""
    return [x[:128, :160] for x in demo_pair("mef")]


def test_it_states_what_it_was_trained_for(pipe: JointPipeline) -> None:
    assert {"FUSION", "CONTROL", "SEG", "MULTI-MODALITIES", *CONTROL_TAGS} <= set(pipe.cfg.tags)


def test_brightness_follows_the_level_asked(pipe: JointPipeline, pair: list[np.ndarray]) -> None:
    def mean(level: str | None) -> float:
        prompt = None if level is None else tagged_prompt("CONTROL", level, phrases("control", level)[0])
        out = pipe(pair, prompt, task="mef")
        assert out.shape == pair[0].shape and 0 <= out.min() and out.max() <= 1
        return float(to_gray(out).mean())

    darkest, base, brightest = mean("LIGHT--"), mean(None), mean("LIGHT++")
    assert darkest < base - 0.03 and brightest > base + 0.03
    assert float(to_gray(pipe(pair, "make it a lot brighter", task="mef")).mean()) > base + 0.03  # words


def test_a_control_paraphrase_acts_as_its_level(pipe: JointPipeline, pair: list[np.ndarray]) -> None:
    """An untagged paraphrase never used in training is read as its level, and the model gets the same
    prompt, so the same output, as the level's tagged training phrasing."""
    for level in CONTROL_TAGS:
        held = phrases("control", level, "held_out")[0]
        assert held not in phrases("control", level)
        intent = pipe.understand(held, "mef")
        assert (intent.task, intent.subtag, intent.source) == ("CONTROL", level, "words")
        tagged = tagged_prompt("CONTROL", level, phrases("control", level)[0])
        assert pipe.prompt_for(intent, "mef") == pipe.prompt_for(pipe.understand(tagged, "mef"), "mef")
    level = "CONTRAST+"
    tagged = tagged_prompt("CONTROL", level, phrases("control", level)[0])
    held = phrases("control", level, "held_out")[1]
    np.testing.assert_array_equal(pipe(pair, held, task="mef"), pipe(pair, tagged, task="mef"))


def test_seg_draws_its_overlay_only_on_its_mask(pipe: JointPipeline) -> None:
    """A [SEG] prompt returns the plain fusion with the overlay on the predicted mask and nowhere else (how
    well the mask covers the class is measured by bench/seg.py, not asserted: this model is weak at it)."""
    image, _, _ = synthetic_scene(np.random.default_rng(7), (128, 128), held_out=True)
    a, b, _ = m3_pair(image, np.random.default_rng(8))
    res = pipe.run([a, b], "segment the circle", task="vif")
    plain = pipe([a, b], task="vif")
    assert res.intent.task == "SEG" and res.intent.target == "circle"
    assert res.mask is not None and res.mask.shape == (128, 128) and res.image.shape == (128, 128, 3)
    np.testing.assert_allclose(res.image[~res.mask], plain[~res.mask], atol=1e-6)


def test_fusion_models_refuse_control_and_name_this_model(tmp_path, capsys) -> None:
    a, b = demo_pair("mef")
    write_image(tmp_path / "a.png", a[:64, :64])
    write_image(tmp_path / "b.png", b[:64, :64])
    argv = ["fuse", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "f.png")]
    assert cli_main([*argv, "--prompt", "[CONTROL]. <LIGHT+>. brighter"]) == 2
    assert f"use --model {MODEL}" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()
