"""Degradation ops: contract (pure, replayable, shape/range) and that each moves the image the right way."""

import cv2
import numpy as np
import pytest
from skimage import data

from allfuse.data.degradations import OPS, apply_op
from allfuse.data.depth import HeuristicDepth, disparity_spearman, get_depth_provider
from allfuse.data.severity import OP_NAMES, TABLE, describe_table, resolve, sample_params


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return cv2.resize(data.astronaut(), (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def gray(rgb) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def run(op, x, level=2, seed=0, **params):
    """Apply op at a level, or with some parameters fixed (the rest sampled at that level)."""
    rng = np.random.default_rng(seed)
    spec = {**sample_params(op, level, np.random.default_rng(seed + 1)), **params} if params else level
    return apply_op(op, x, rng, spec)[0]


def hf_energy(x):
    return float(np.var(cv2.Laplacian(np.asarray(x, np.float32), cv2.CV_32F)))


def test_registry_matches_table():
    assert list(OPS) == list(OP_NAMES) == list(TABLE)
    assert {r["op"] for r in describe_table()} == set(OP_NAMES)


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("channels", ["gray", "rgb"])
def test_contract_pure_replayable(op, channels, rgb, gray):
    x = rgb if channels == "rgb" else gray
    before = x.copy()
    y, params = OPS[op](x, np.random.default_rng(3), 2)
    assert y.shape == x.shape and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    np.testing.assert_array_equal(x, before)  # input untouched
    replay, p2 = OPS[op](x, np.random.default_rng(999), params)  # params alone reproduce the output
    np.testing.assert_array_equal(replay, y)
    assert p2 == params
    again, _ = OPS[op](x, np.random.default_rng(3), 2)
    np.testing.assert_array_equal(again, y)


def test_resolve_rejects_missing_params():
    with pytest.raises(ValueError, match="missing"):
        resolve("noise", {"sigma": 0.1}, np.random.default_rng(0))
    with pytest.raises(ValueError):
        sample_params("noise", 4, np.random.default_rng(0))


@pytest.mark.parametrize("op", ["gaussian_blur", "motion_blur", "downsample"])
def test_blur_lowers_high_frequency_energy(op, rgb):
    e0 = hf_energy(rgb)
    assert hf_energy(run(op, rgb, 1)) < 0.8 * e0
    assert hf_energy(run(op, rgb, 3)) < hf_energy(run(op, rgb, 1))


def test_noise_raises_residual_variance(gray):
    smooth = cv2.GaussianBlur(gray, (0, 0), 2.0)  # a flat-ish image makes the residual mostly noise
    resid = lambda x: float(np.var(x - cv2.GaussianBlur(x, (0, 0), 1.0)))  # noqa: E731
    assert resid(run("noise", smooth, 1)) > 2 * resid(smooth)
    assert resid(run("noise", smooth, 3)) > resid(run("noise", smooth, 1))


def dark_channel(x):
    return cv2.erode(x.min(axis=2), np.ones((7, 7), np.uint8))


def test_haze_raises_dark_channel_lowers_contrast(rgb):
    y = run("haze", rgb, 3)
    assert dark_channel(y).mean() > dark_channel(rgb).mean() + 0.1
    assert y.std() < 0.8 * rgb.std()


def test_haze_follows_depth(rgb):
    depth = np.broadcast_to(np.linspace(0, 1, 96, dtype=np.float32)[None, :], (96, 96))  # far on the right
    y, _ = OPS["haze"](rgb, np.random.default_rng(0), 3, depth=depth)
    assert np.abs(y[:, -16:] - rgb[:, -16:]).mean() > 2 * np.abs(y[:, :16] - rgb[:, :16]).mean()


def test_exposure_and_contrast(rgb):
    assert run("low_exposure", rgb, 1).mean() < rgb.mean() - 0.05
    assert run("low_exposure", rgb, 3).mean() < run("low_exposure", rgb, 1).mean()
    assert run("high_exposure", rgb, 1).mean() > rgb.mean() + 0.05
    assert run("low_contrast", rgb, 2).std() < 0.6 * rgb.std()


def test_low_exposure_is_noisy_and_8_bit():
    """A dim capture is a noisy one: Poisson-Gaussian noise whose variance follows the dim signal
    (y / peak + sigma^2), fewer photons the darker the level, then 8-bit codes."""
    flat = np.full((128, 128), 0.6, np.float32)
    for level in (1, 2, 3):
        p = sample_params("low_exposure", level, np.random.default_rng(level))
        y = apply_op("low_exposure", flat, np.random.default_rng(0), p)[0]
        mean = p["gain"] * 0.6 ** p["gamma"]
        expected = np.sqrt(mean / p["peak"] + p["sigma"] ** 2)
        assert abs(y.mean() - mean) < 0.005
        assert 0.8 * expected < y.std() < 1.25 * expected
        assert np.allclose(y * 255.0, np.round(y * 255.0), atol=1e-3)
    clean = {**p, "peak": 1e12, "sigma": 0.0}  # no noise left: only the rounding
    assert apply_op("low_exposure", flat, np.random.default_rng(0), clean)[0].std() == 0.0


def test_ir_stripes_raise_column_mean_variance(gray):
    flat = np.full((96, 96), 0.5, np.float32)
    for x in (gray, flat):
        y = run("ir_stripes", x, 2)
        assert np.var(y.mean(axis=0) - x.mean(axis=0)) > 5e-4  # per-column offsets
        assert np.var((y - x).mean(axis=1)) < 1e-4  # rows stay balanced: stripes are vertical


def blockiness(x):
    """Mean |step| across 8x8 block borders over mean |step| inside blocks (columns and rows)."""
    d = np.abs(np.diff(x, axis=1))
    border = d[:, 7::8].mean()
    inner = np.delete(d, np.s_[7::8], axis=1).mean()
    return border / inner


def test_jpeg_adds_block_artifacts(gray):
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.5)
    y = run("jpeg", smooth, 3, quality=10)
    assert blockiness(y) > 1.3 * blockiness(smooth)


def test_rain_adds_bright_oriented_streaks(gray):
    dark = 0.3 * np.ones((128, 128), np.float32)
    y = run("rain", dark, 3, angle=0.0)
    diff = y - dark
    assert diff.mean() > 0.01 and (diff > 0.1).mean() < 0.5  # brighter, sparse
    along = np.corrcoef(diff[:-4].ravel(), diff[4:].ravel())[0, 1]  # vertical shift, along the streaks
    across = np.corrcoef(diff[:, :-4].ravel(), diff[:, 4:].ravel())[0, 1]
    assert along > 0.5 and along > 2 * across


def test_snow_adds_bright_sparse_flakes(rgb):
    y = run("snow", rgb, 3, veil=0.0)
    diff = (y - rgb).mean(axis=2)
    assert (diff >= -1e-6).all()  # only lightens
    frac = (diff > 0.15).mean()
    assert 0.005 < frac < 0.4


def test_heuristic_depth_orders_stereo_ground_truth():
    assert disparity_spearman(HeuristicDepth(), step=8) > 0.5


def test_depth_provider_specs(rgb):
    d = get_depth_provider()(rgb)
    assert d.shape == rgb.shape[:2] and 0.0 <= d.min() and d.max() <= 1.0
    with pytest.raises(ValueError):
        get_depth_provider("nope")
    with pytest.raises(FileNotFoundError):
        get_depth_provider("depth-anything:/nonexistent")


def test_depth_anything_when_weights_present(rgb):
    import os

    folder = os.environ.get("ALLFUSE_DEPTH_ANYTHING")
    if not folder:
        pytest.skip("set ALLFUSE_DEPTH_ANYTHING to a local Depth-Anything folder to run this test")
    pytest.importorskip("transformers")
    provider = get_depth_provider(f"depth-anything:{folder}")
    assert provider(rgb).shape == rgb.shape[:2]
    assert disparity_spearman(provider, step=8) > 0.5
