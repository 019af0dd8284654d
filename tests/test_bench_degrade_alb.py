"""bench/degrade_alb.py, the cross-check's degradations (albumentations): seeded, shape/range-keeping,
strength-ordered, routed, independent of allfuse."""

import os
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
PATH = BENCH / "degrade_alb.py"
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check against PyPI on import
pytest.importorskip("albumentations")  # in the test extra; a bare install may lack it
sys.path.insert(0, str(BENCH))  # degrade_alb imports degrade, as the bench scripts do
G = load_bench_module(PATH)
__all__ = ["gray", "rgb"]  # the bench generator's test images, as fixtures here too


def test_does_not_import_allfuse():
    assert not [n for n in imported_modules(PATH) if n.startswith("allfuse")]


@pytest.mark.parametrize("family", G.FAMILIES)
@pytest.mark.parametrize("channels", ["gray", "rgb"])
def test_contract(family, channels, rgb, gray):
    check_contract(G.apply, rgb if channels == "rgb" else gray, family, 1e-4)


@pytest.mark.parametrize(
    "family", ["noise", "impulse", "iso_noise", "gauss_blur", "defocus", "motion", "jpeg", "downscale"]
)
def test_strong_is_worse(family, rgb):
    errors = {s: np.mean([mse(G.apply(rgb, family, s, seed), rgb) for seed in range(3)]) for s in G.STRENGTHS}
    assert errors["strong"] > errors["mild"]


def test_impulses_are_black_or_white_pixels(rgb):
    out = G.apply(rgb, "impulse", "strong", 2)
    hit = np.any(np.abs(out - rgb) > 2 / 255, axis=2)
    assert 0.03 < hit.mean() < 0.07  # 4-6 % of the pixels
    assert set(np.unique(out[hit])) <= {0.0, 1.0}


def test_exposure_directions(rgb):
    assert G.apply(rgb, "low_light", "mild", 1).mean() < rgb.mean() - 0.05
    assert G.apply(rgb, "over_exposure", "mild", 1).mean() > rgb.mean() + 0.05


def test_routing(rgb, gray):
    ir, vis = gray, rgb
    out, steps = G.degrade_pair([ir, vis], "vif", "fog", "strong", seed=3)
    assert steps == ["fog:strong"]
    assert out[0].tobytes() == ir.tobytes() and mse(out[1], vis) > 1e-4  # fog: the visible image only
    out, _ = G.degrade_pair([ir, vis], "vif", "noise", "mild", seed=3)
    assert mse(out[0], ir) > 1e-4 and mse(out[1], vis) > 1e-4
    out, _ = G.degrade_pair([ir, vis], "vif", "iso_noise", "mild", seed=3)  # a colour camera's noise
    assert out[0].tobytes() == ir.tobytes() and mse(out[1], vis) > 1e-4
    out, _ = G.degrade_pair([ir, vis], "vif", "impulse", "mild", seed=3)  # dead pixels: any camera
    assert mse(out[0], ir) > 1e-4 and mse(out[1], vis) > 1e-4
    out, _ = G.degrade_pair([rgb, rgb], "mef", "rain", "mild", seed=3)
    assert all(mse(o, rgb) > 1e-4 for o in out)
    assert out[0].tobytes() != out[1].tobytes()  # two captures, two realizations


def test_mix_plans_two_or_three_families_in_order(rgb):
    check_mix_plans(G, rgb)
