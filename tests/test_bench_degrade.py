"""bench/degrade.py, the bench's own degradations: seeded, shape/range-keeping, strength-ordered, routed."""

import ast
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

PATH = Path(__file__).resolve().parents[1] / "bench" / "degrade.py"


def load_bench_module(path: Path):
    """Import a bench script by path (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look modules up here
    spec.loader.exec_module(module)
    return module


D = load_bench_module(PATH)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return cv2.resize(data.astronaut(), (64, 48), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def gray(rgb) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


def imported_modules(path: Path) -> list[str]:
    """The modules a Python file imports, by name."""
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return names + [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]


def test_does_not_import_the_training_generator():
    assert not [n for n in imported_modules(PATH) if n.startswith("allfuse")]


def check_contract(degrade, x: np.ndarray, family: str, min_mse: float) -> None:
    """A generator's one-image function, degrade(x, family, strength, seed), at both strengths: seeded, the
    image's shape, float32 in [0, 1], and a change of at least min_mse."""
    for strength in D.STRENGTHS:
        a = degrade(x, family, strength, 7)
        b = degrade(x, family, strength, 7)
        assert a.tobytes() == b.tobytes()  # same seed, same bytes
        assert a.shape == x.shape and a.dtype == np.float32
        assert 0.0 <= a.min() and a.max() <= 1.0
        assert mse(a, x) > min_mse, f"{family}:{strength} left the image unchanged"


def check_mix_plans(generator, rgb: np.ndarray) -> None:
    """A cross-check generator's `mix`: 2-3 of its families in its physical order, never all of its exclusive
    ones; a family it does not define is refused."""
    for seed in range(20):
        out, steps = generator.degrade_pair([rgb, rgb], "mff", "mix", None, seed=seed)
        fams = [s.split(":")[0] for s in steps]
        assert 2 <= len(fams) <= 3 and fams == [f for f in generator.ORDER if f in fams]
        assert not generator.EXCLUSIVE <= set(fams)
        assert out[0].shape == rgb.shape
    with pytest.raises(ValueError, match="not defined"):
        generator.degrade_pair([rgb, rgb], "mff", "ir_stripes", "mild", seed=0)


@pytest.mark.parametrize("family", D.FAMILIES)
@pytest.mark.parametrize("channels", ["gray", "rgb"])
def test_contract(family, channels, rgb, gray):
    check_contract(D.degrade, rgb if channels == "rgb" else gray, family, 1e-5)


@pytest.mark.parametrize("family", D.FAMILIES)
def test_strong_deviates_more_than_mild(family, rgb):
    for seed in range(3):
        mild = mse(D.degrade(rgb, family, "mild", seed), rgb)
        strong = mse(D.degrade(rgb, family, "strong", seed + 100), rgb)
        assert strong > mild, f"{family} seed {seed}: strong {strong:.2e} <= mild {mild:.2e}"


def test_routing_vif(rgb, gray):
    seed = D.seed_for("pair", "ir_stripes", "strong")
    (ir, vi), steps = D.degrade_pair([gray, rgb], "vif", "ir_stripes", "strong", seed)
    assert steps == ["ir_stripes:strong"]
    assert mse(ir, gray) > 1e-5 and np.array_equal(vi, rgb)  # stripes on the IR image only
    for family in sorted(D.VISIBLE_ONLY):
        (ir, vi), _ = D.degrade_pair([gray, rgb], "vif", family, "strong", 1)
        assert np.array_equal(ir, gray) and mse(vi, rgb) > 1e-5, family
    with pytest.raises(ValueError, match="not defined"):
        D.degrade_pair([rgb, rgb], "mef", "ir_stripes", "mild", 1)


def test_shared_parameters_independent_realizations(rgb):
    (a, b), _ = D.degrade_pair([rgb, rgb], "mff", "motion", "strong", 3)
    assert np.array_equal(a, b)  # one PSF for both sources
    (a, b), _ = D.degrade_pair([rgb, rgb], "mef", "noise", "strong", 3)
    assert not np.array_equal(a, b)  # noise drawn per source


def test_mix(gray, rgb):
    for seed in range(8):
        out, steps = D.degrade_pair([gray, rgb], "vif", D.MIX, None, seed)
        again, _ = D.degrade_pair([gray, rgb], "vif", D.MIX, None, seed)
        fams = [s.split(":")[0] for s in steps]
        assert 2 <= len(steps) <= 3 and not D.EXCLUSIVE <= set(fams)
        assert fams == [f for f in D.ORDER if f in fams]
        assert all(x.tobytes() == y.tobytes() for x, y in zip(out, again, strict=True))
