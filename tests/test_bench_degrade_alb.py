"""bench/degrade_alb.py, the cross-check's degradations (albumentations): seeded, shape/range-keeping,
strength-ordered, routed, independent of allfuse."""

import ast
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from test_bench_degrade import load_bench_module

BENCH = Path(__file__).resolve().parents[1] / "bench"
PATH = BENCH / "degrade_alb.py"
pytest.importorskip("albumentations")  # in the test extra; a bare install may lack it
sys.path.insert(0, str(BENCH))  # degrade_alb imports degrade, as the bench scripts do
G = load_bench_module(PATH)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return cv2.resize(data.astronaut(), (96, 72), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def gray(rgb) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


def test_does_not_import_allfuse():
    tree = ast.parse(PATH.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.startswith("allfuse")]


@pytest.mark.parametrize("family", G.FAMILIES)
@pytest.mark.parametrize("channels", ["gray", "rgb"])
def test_contract(family, channels, rgb, gray):
    x = rgb if channels == "rgb" else gray
    for strength in G.STRENGTHS:
        a = G.apply(x, family, strength, seed=7)
        b = G.apply(x, family, strength, seed=7)
        assert a.tobytes() == b.tobytes()  # same seed, same bytes
        assert a.shape == x.shape and a.dtype == np.float32
        assert 0.0 <= a.min() and a.max() <= 1.0
        assert mse(a, x) > 1e-4, f"{family}:{strength} left the image unchanged"


@pytest.mark.parametrize("family", ["noise", "gauss_blur", "defocus", "motion", "jpeg", "downscale"])
def test_strong_is_worse(family, rgb):
    errors = {s: np.mean([mse(G.apply(rgb, family, s, seed), rgb) for seed in range(3)]) for s in G.STRENGTHS}
    assert errors["strong"] > errors["mild"]


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
    out, _ = G.degrade_pair([rgb, rgb], "mef", "rain", "mild", seed=3)
    assert all(mse(o, rgb) > 1e-4 for o in out)
    assert out[0].tobytes() != out[1].tobytes()  # two captures, two realizations


def test_mix_plans_two_or_three_families_in_order(rgb):
    for seed in range(20):
        out, steps = G.degrade_pair([rgb, rgb], "mff", "mix", None, seed=seed)
        fams = [s.split(":")[0] for s in steps]
        assert 2 <= len(fams) <= 3 and fams == [f for f in G.ORDER if f in fams]
        assert not G.EXCLUSIVE <= set(fams)
        assert out[0].shape == rgb.shape
    with pytest.raises(ValueError, match="not defined"):
        G.degrade_pair([rgb, rgb], "mff", "ir_stripes", "mild", seed=0)
