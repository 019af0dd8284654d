"""Geometric self-ensemble (FusionPipeline.mirror, MIRROR): the decoded fusion is the mean of the latent
path's on the inputs and, mirrored back, on the left-right mirrored inputs, and the refiner runs once on
it; the gate's rule is not mirrored, and `mirror=False` runs the latent path once."""

import numpy as np
import pytest
from photos import resized_photo

from allfuse.pipeline import MIRROR, FusionPipeline


@pytest.fixture(scope="module")
def pipe() -> FusionPipeline:
    return FusionPipeline.from_pretrained("allfuse-reg")


def test_the_decoded_fusion_is_the_mean_of_both_passes(pipe) -> None:
    assert MIRROR and pipe.mirror
    x = resized_photo("astronaut", 96)
    y = 0.6 * resized_photo("astronaut", 96)[..., 1]  # a darker gray second input: no stage measures it
    # the latent path alone, what mirror averages: no refiner, no detail pick after it (allfuse.pick)
    kw = {"task": "vif", "gate": False, "refine": False, "pick": False}
    once = pipe([x, y], mirror=False, **kw)
    back = pipe([x[:, ::-1], y[:, ::-1]], mirror=False, **kw)[:, ::-1]
    both = pipe([x, y], **kw)  # the default
    # not bit-exact on every machine (an AMD EPYC under torch 2.13 puts the default run 5e-4 on average from
    # the mean of two separate runs, whose own difference is 0.03): bounded by a small share of that
    spread = np.abs(once - back).mean()
    assert spread > 1e-4  # the two passes differ, so the mean is not one of them
    assert np.abs(both - (once + back) / 2).mean() < 0.05 * spread
    refined = pipe([x, y], task="vif", gate=False, pick=False)  # the refiner then runs once, on the mean
    assert np.abs(refined - pipe([x, y], task="vif", gate=False, mirror=False, pick=False)).mean() > 1e-4


def test_the_gates_rule_is_not_averaged_with_a_mirrored_pass(pipe) -> None:
    x = resized_photo("astronaut", 128)
    y = x * 0.98
    assert pipe.gate_choice([x, y], "mff")[2] == 1.0  # a clean pair: the teacher's rule alone
    np.testing.assert_array_equal(pipe([x, y], task="mff"), pipe([x, y], task="mff", mirror=False))
