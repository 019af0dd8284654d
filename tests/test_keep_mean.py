"""Multi-focus fusions keep the restored inputs' mean colour (FusionPipeline.mean_tasks, keep_mean): the
latent path's overall drift is taken out, its detail kept; other tasks and the gate's rule are left as they
were."""

import numpy as np
import pytest
from photos import resized_photo

from allfuse.gate import rule_fusion
from allfuse.pipeline import MEAN_TASKS, FusionPipeline, keep_mean


def test_keep_mean_shifts_each_channel_to_the_inputs_mean() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.6, (32, 40, 3)).astype(np.float32)
    b = rng.uniform(0.3, 0.7, (32, 40)).astype(np.float32)  # gray: three equal channels
    out = rng.uniform(0.1, 0.5, (32, 40, 3)).astype(np.float32)
    kept = keep_mean(out, [a, b])
    want = (a.reshape(-1, 3).mean(0) + b.mean()) / 2
    np.testing.assert_allclose(kept.reshape(-1, 3).mean(0), want, atol=1e-5)
    d = kept - out  # one constant per channel: detail and local contrast untouched
    np.testing.assert_allclose(d, np.broadcast_to(d[:1, :1], d.shape), atol=1e-6)
    bright = keep_mean(np.full((8, 8, 3), 0.9, np.float32), [np.ones((8, 8, 3), np.float32)] * 2)
    assert bright.max() <= 1.0


@pytest.fixture(scope="module")
def pipe() -> FusionPipeline:
    return FusionPipeline.from_pretrained("allfuse-reg")


def test_a_photo_fused_with_itself_keeps_its_mean_only_for_multi_focus(pipe) -> None:
    assert MEAN_TASKS == ("mff",) and pipe.mean_tasks == MEAN_TASKS
    x = resized_photo("immunohistochemistry", 128)
    kept = pipe([x, x], task="mff", gate=False)
    mean = x.reshape(-1, 3).mean(0)
    np.testing.assert_allclose(kept.reshape(-1, 3).mean(0), mean, atol=0.25 / 255)  # up to the clip
    pipe.mean_tasks = ()
    try:
        drift = pipe([x, x], task="mff", gate=False)
        vif = pipe([x, x], task="vif", gate=False)
    finally:
        pipe.mean_tasks = MEAN_TASKS
    inside = (drift > 0.01) & (drift < 0.99) & (kept > 0.01) & (kept < 0.99)  # away from the clip
    d = (kept - drift)[inside.all(axis=2)]
    np.testing.assert_allclose(d, np.broadcast_to(d[:1], d.shape), atol=2e-6)  # a shift per channel only
    np.testing.assert_array_equal(pipe([x, x], task="vif", gate=False), vif)  # other tasks as before


def test_the_gates_rule_is_not_shifted(pipe) -> None:
    x = resized_photo("astronaut", 128)
    y = x * 0.98  # a pair the gate gives to the rule when it measures clean
    assert pipe.gate_choice([x, y], "mff")[2] == 1.0
    rule = rule_fusion(pipe.gate_inputs([x, y], "mff"), "mff")
    np.testing.assert_array_equal(pipe([x, y], task="mff"), rule)
