"""The shipped models: they load offline, keep the input size, and actually fuse — on the multi-focus demo
pair (the cat's head sharp in one input, the background in the other) the result is sharper than the
out-of-focus input in each region, and keeps the photograph's brightness."""

import json

import numpy as np
import pytest

from allfuse.demo import _near_mask, _scene, demo_pair
from allfuse.model_folder import CONFIG, EMBEDDED, MODELS_DIR, resolve_model_folder
from allfuse.pipeline import FusionPipeline

# The FusionDiT models (a refiner each); the DiTFuse joint model has tests of its own (test_ditfuse_model.py).
FUSION_MODELS = [
    m for m in EMBEDDED if json.loads((MODELS_DIR / m / CONFIG).read_text())["_class_name"] != "JointPipeline"
]


def _sharpness(x: np.ndarray, region: np.ndarray) -> float:
    """Mean gradient magnitude of the luminance inside a region."""
    gy, gx = np.gradient(x.mean(axis=2))
    return float((np.hypot(gx, gy) * region).sum() / region.sum())


@pytest.fixture(scope="module", params=FUSION_MODELS)
def pipe(request: pytest.FixtureRequest) -> FusionPipeline:
    try:
        resolve_model_folder(request.param)
    except FileNotFoundError:
        pytest.fail(f"{request.param} is not shipped")
    return FusionPipeline.from_pretrained(request.param)


def test_embedded_model_fuses_the_multi_focus_demo(pipe: FusionPipeline) -> None:
    near, far = demo_pair("mff")
    sharp = _scene()
    fused = pipe([near, far], task="mff")
    assert fused.shape == near.shape and fused.dtype == np.float32
    assert np.isfinite(fused).all() and 0 <= fused.min() and fused.max() <= 1
    head = _near_mask(*sharp.shape[:2]) > 0.99  # sharp in `near`, blurred in `far`
    back = _near_mask(*sharp.shape[:2]) < 0.01  # the other way round
    assert _sharpness(fused, head) > _sharpness(far, head)
    assert _sharpness(fused, back) > _sharpness(near, back)
    assert abs(float(fused.mean() - sharp.mean())) < 0.05  # no exposure drift on a clean pair
    assert pipe.refiner is not None


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((x - ref) ** 2)))


def test_refiner_brings_the_fusion_closer_to_the_all_in_focus_photograph(pipe: FusionPipeline) -> None:
    """The mixing refiner takes in-focus content from the inputs: with it the fusion of the demo pair is
    nearer the photograph than the decoded fusion alone, and nearer than the worse input."""
    near, far = demo_pair("mff")
    sharp = _scene()
    refined = _psnr(pipe([near, far], task="mff", gate=False), sharp)  # the latent path, not the gate's rule
    assert refined > _psnr(pipe([near, far], task="mff", refine=False, gate=False), sharp) + 1.0
    assert refined > min(_psnr(near, sharp), _psnr(far, sharp))


def test_work_side_keeps_the_in_focus_detail_at_full_size(pipe: FusionPipeline) -> None:
    """With the latent path at half size, the refiner still takes each region from the in-focus input:
    the full-size result is sharper there than the out-of-focus input."""
    near, far = demo_pair("mff")
    fused = pipe([near, far], task="mff", work_side=max(near.shape[:2]) // 2)
    assert fused.shape == near.shape
    head, back = _near_mask(*near.shape[:2]) > 0.99, _near_mask(*near.shape[:2]) < 0.01
    assert _sharpness(fused, head) > _sharpness(far, head)
    assert _sharpness(fused, back) > _sharpness(near, back)


def test_embedded_model_is_deterministic_and_takes_prompts(pipe: FusionPipeline) -> None:
    near, far = (x[:120, :150] for x in demo_pair("mff"))
    a = pipe([near, far], task="mff", seed=3)
    np.testing.assert_array_equal(a, pipe([near, far], task="mff", seed=3))
    b = pipe([near, far], prompt="fuse the two focus planes and sharpen the result", task="mff", seed=3)
    assert b.shape == a.shape and np.isfinite(b).all()


def test_embedded_model_lifts_a_veil_from_a_hazed_multi_focus_pair(pipe: FusionPipeline) -> None:
    """Haze is a whole-image property the DiT's windows never see whole; the input corrector (every FusionDiT
    model ships one for multi-focus pairs) removes it first. The demo pair under a thick, slightly blue veil
    (transmission 0.45, contrast down to 0.43x) comes back with most of the photograph's contrast, darker
    than the veiled inputs."""
    near, far = demo_pair("mff")
    sharp = _scene()
    airlight = np.array([0.85, 0.87, 0.9], np.float32)
    hazed = [(0.45 * x + 0.55 * airlight).astype(np.float32) for x in (near, far)]
    fused = pipe(hazed, task="mff")
    assert pipe.corrector is not None and "mff" in pipe.corrector.cfg.tasks
    assert fused.mean(axis=2).std() > 0.8 * sharp.mean(axis=2).std()  # the veiled inputs: 0.43x
    assert fused.mean() < hazed[0].mean() - 0.05
