"""bench/degrade_c.py, the third cross-check's degradations (ImageNet-C's common corruptions): seeded,
shape/range-keeping, strength-ordered, routed, independent of allfuse, and each corruption doing what the
paper's formula does."""

import sys
from pathlib import Path

import numpy as np
import pytest
from test_bench_degrade import (
    check_contract,
    check_mix_plans,
    gray,
    imported_modules,
    load_bench_module,
    mse,
    rgb,
)

BENCH = Path(__file__).resolve().parents[1] / "bench"
PATH = BENCH / "degrade_c.py"
sys.path.insert(0, str(BENCH))  # degrade_c imports degrade, as the bench scripts do
G = load_bench_module(PATH)
__all__ = ["gray", "rgb"]  # the bench generator's test images, as fixtures here too


def test_does_not_import_allfuse():
    assert not [n for n in imported_modules(PATH) if n.startswith("allfuse")]


@pytest.mark.parametrize("family", G.FAMILIES)
@pytest.mark.parametrize("channels", ["gray", "rgb"])
def test_contract(family, channels, rgb, gray):
    if channels == "gray" and family == "saturate":  # a gray image has no saturation to change
        for s in G.STRENGTHS:
            assert mse(G.apply(gray, family, s, 7), gray) < 1e-5
        return
    check_contract(G.apply, rgb if channels == "rgb" else gray, family, 1e-4)


@pytest.mark.parametrize(
    "family",
    [
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "speckle_noise",
        "gaussian_blur",
        "glass_blur",
        "defocus_blur",
        "zoom_blur",
        "contrast",
        "brightness",
        "pixelate",
        "jpeg",
    ],
)
def test_strong_is_worse(family, rgb):
    errors = {s: np.mean([mse(G.apply(rgb, family, s, seed), rgb) for seed in range(3)]) for s in G.STRENGTHS}
    assert errors["strong"] > errors["mild"]


def test_noise_levels_follow_the_paper(gray):
    flat = np.full((64, 64), 0.5, np.float32)
    assert np.std(G.apply(flat, "gaussian_noise", "mild", 1)) == pytest.approx(0.08, rel=0.1)
    assert np.std(G.apply(flat, "speckle_noise", "strong", 1)) == pytest.approx(0.5 * 0.35, rel=0.1)
    # shot noise: Poisson counts of 12 photons at white (severity 3), so std sqrt(0.5 * 12) / 12 at 0.5
    assert np.std(G.apply(flat, "shot_noise", "strong", 1)) == pytest.approx(np.sqrt(6) / 12, rel=0.1)
    out = G.apply(gray, "impulse_noise", "strong", 2)
    hit = np.abs(out - gray) > 2 / 255
    assert 0.06 < hit.mean() < 0.10  # 9 % of the values salt or pepper, less those already at 0 or 1
    assert set(np.unique(out[hit])) <= {0.0, 1.0}


def test_contrast_pulls_each_channel_to_its_mean(rgb):
    out = G.apply(rgb, "contrast", "strong", 0)  # severity 3: 0.2 of the contrast kept
    assert np.allclose(out.mean(axis=(0, 1)), rgb.mean(axis=(0, 1)), atol=2 / 255)
    spread = [np.std(x - x.mean(axis=(0, 1))) for x in (out, rgb)]
    assert spread[0] == pytest.approx(0.2 * spread[1], rel=0.1)


def test_brightening_and_veiling_families_brighten(rgb):
    for family in ("brightness", "snow"):
        assert G.apply(rgb, family, "mild", 1).mean() > rgb.mean() + 0.05
    # fog: the fractal added, then everything scaled by max / (max + weight): flatter, not brighter
    out = G.apply(rgb, "fog", "strong", 1)
    assert np.std(out) < np.std(rgb)


def test_kernels_are_normalized_and_motion_is_one_sided():
    disc = G.disc_kernel(6, 0.5)
    assert disc.sum() == pytest.approx(1.0) and disc.shape[0] % 2 == 1
    streak = G.streak_kernel(15, 8, 0.0)
    assert streak.sum() == pytest.approx(1.0, abs=1e-6)
    r = streak.shape[0] // 2
    assert streak[r, r:].sum() > 0.99  # all weight on the streak's side, along the angle's direction
    fractal = G.plasma_fractal(64, 2.0, np.random.default_rng(0))
    assert fractal.min() == 0.0 and fractal.max() == 1.0


def test_routing(rgb, gray):
    ir, vis = gray, rgb
    out, steps = G.degrade_pair([ir, vis], "vif", "fog", "strong", seed=3)
    assert steps == ["fog:strong"]
    assert out[0].tobytes() == ir.tobytes() and mse(out[1], vis) > 1e-4  # fog: the visible image only
    out, _ = G.degrade_pair([ir, vis], "vif", "gaussian_noise", "mild", seed=3)
    assert mse(out[0], ir) > 1e-4 and mse(out[1], vis) > 1e-4
    out, _ = G.degrade_pair([rgb, rgb], "mef", "snow", "mild", seed=3)
    assert all(mse(o, rgb) > 1e-4 for o in out)
    assert out[0].tobytes() != out[1].tobytes()  # two captures, two realizations


def test_mix_plans_two_or_three_families_in_order(rgb):
    check_mix_plans(G, rgb)
