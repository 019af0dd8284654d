"""Classical baselines: real pairs from shared/data (skipped when absent) and synthetic behaviour checks."""

from dataclasses import FrozenInstanceError
from pathlib import Path

import cv2
import numpy as np
import pytest

from allfuse import baselines
from allfuse.baselines.restoration import dark_channel
from allfuse.color import rgb_to_ycbcr, to_gray
from allfuse.io import read_image
from allfuse.types import TASKS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# One real pair per task (first image, second image); MEF pairs where one shot is not already mid-grey.
PAIRS = {
    "vif": ("ivif/RoadScene/ir/FLIR_00211.jpg", "ivif/RoadScene/vi/FLIR_00211.jpg"),
    "mef": ("mef/MEFB/under/Arno.png", "mef/MEFB/over/Arno.png"),
    "mff": ("mff/Lytro/near/lytro-03.jpg", "mff/Lytro/far/lytro-03.jpg"),
    "tno": ("ivif/TNO/ir/01.png", "ivif/TNO/vi/01.png"),
    "mef2": ("mef/MEFB/under/BelgiumHouse.png", "mef/MEFB/over/BelgiumHouse.png"),
}
MAX_SIDE = 160


def load_pair(key: str) -> list[np.ndarray]:
    """Read a shared pair and shrink it to MAX_SIDE px on its long side (tests stay fast)."""
    paths = [DATA / p for p in PAIRS[key]]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"shared data absent ({DATA})")
    out = []
    for p in paths:
        x = read_image(p)
        s = MAX_SIDE / max(x.shape[:2])
        size = (round(x.shape[1] * s), round(x.shape[0] * s))
        out.append(cv2.resize(x, size, interpolation=cv2.INTER_AREA))
    return out


def texture(seed: int, h: int = 96, w: int = 96, channels: int = 0, smooth: float = 1.0) -> np.ndarray:
    """Seeded band-limited noise in [0.05, 0.95]: (H, W) or (H, W, channels)."""
    rng = np.random.default_rng(seed)
    x = rng.random((h, w, max(channels, 1))).astype(np.float32)
    x = cv2.GaussianBlur(x, (0, 0), smooth).reshape(h, w, -1)
    x = (x - x.min()) / (x.max() - x.min())
    x = 0.05 + 0.9 * x
    return x[..., 0] if channels == 0 else x


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with reflected borders, shape kept."""
    return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT).reshape(x.shape)


def gradient_energy(x: np.ndarray) -> float:
    """Spatial frequency sqrt(mean dx^2 + mean dy^2) of the luminance."""
    y = to_gray(x).astype(np.float64)
    return float(np.sqrt(np.mean(np.diff(y, axis=1) ** 2) + np.mean(np.diff(y, axis=0) ** 2)))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error in float64."""
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def check_output(y: np.ndarray, h: int, w: int, colour: bool) -> None:
    """Shape, dtype and range contract of every baseline output."""
    assert y.shape == ((h, w, 3) if colour else (h, w))
    assert y.dtype == np.float32
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0


# ------------------------------------------------------------------------------------- registry


def test_methods_registry_is_explicit_and_complete():
    for name, b in baselines.METHODS.items():
        assert b.name == name and b.kind in ("fusion", "restoration", "chain") and callable(b.fn)
        assert b.tasks and set(b.tasks) <= set(TASKS) and b.description
    assert {"average", "max", "laplacian", "dwt", "gff", "mertens", "focus"} == set(baselines.FUSIONS)
    assert {"nlm", "dcp", "rl", "wiener", "upsample"} == set(baselines.RESTORATIONS)
    assert len(baselines.CHAINS) == len(baselines.FUSIONS) * len(baselines.RESTORATIONS)
    assert baselines.METHODS["dcp+mertens"].tasks == ("mef",)
    with pytest.raises(FrozenInstanceError):
        baselines.METHODS["gff"].name = "x"  # type: ignore[misc]


# ------------------------------------------------------------------------------------- real pairs


@pytest.mark.parametrize("task", ["vif", "mef", "mff"])
@pytest.mark.parametrize("method", list(baselines.FUSIONS))
def test_fusion_on_real_pair(method, task):
    a, b = load_pair(task)
    y = baselines.fuse(method, [a, b], task)
    check_output(y, *a.shape[:2], colour=True)  # RoadScene visible, MEFB and Lytro are RGB
    assert mse(to_gray(y), to_gray(a)) > 0 and mse(to_gray(y), to_gray(b)) > 0  # it fused something


@pytest.mark.parametrize("method", ["average", "laplacian", "gff", "mertens"])
def test_gray_pair_stored_as_rgb_fuses_to_gray(method):
    a, b = load_pair("tno")  # TNO stores gray as three equal channels; read_image returns (H, W)
    y = baselines.fuse(method, [np.dstack([a] * 3), b], "vif")
    check_output(y, *a.shape[:2], colour=False)


@pytest.mark.parametrize("method", list(baselines.RESTORATIONS))
def test_restoration_on_real_images(method):
    ir, vi = load_pair("vif")
    for x in (ir, vi):
        y = baselines.restore(method, x)
        check_output(y, *x.shape[:2], colour=x.ndim == 3)


@pytest.mark.parametrize(("chain", "task"), [("nlm+gff", "vif"), ("dcp+mertens", "mef"), ("rl+focus", "mff")])
def test_chains_on_real_pairs(chain, task):
    a, b = load_pair(task)
    check_output(baselines.fuse(chain, [a, b], task), *a.shape[:2], colour=True)


@pytest.mark.parametrize("method", list(baselines.FUSIONS))
def test_vif_keeps_visible_chroma(method):
    ir, vi = load_pair("vif")
    assert ir.ndim == 2 and vi.ndim == 3
    y = baselines.fuse(method, [ir, vi], "vif")
    # Compare chroma where the fused RGB was not clipped (clipping necessarily moves chroma).
    inside = ((y > 0.002) & (y < 0.998)).all(axis=-1)
    got, want = rgb_to_ycbcr(y)[..., 1:], rgb_to_ycbcr(vi)[..., 1:]
    assert inside.mean() > 0.5
    np.testing.assert_allclose(got[inside], want[inside], atol=2e-3)


@pytest.mark.parametrize("key", ["mef", "mef2"])
def test_mertens_picks_well_exposed_parts(key):
    under, over = load_pair(key)
    y = baselines.fuse("mertens", [under, over], "mef")
    # Mertens' own well-exposedness, exp(-(Y - 0.5)^2 / (2 * 0.2^2)), averaged over the image.
    exposedness = [float(np.exp(-((to_gray(x) - 0.5) ** 2) / 0.08).mean()) for x in (y, under, over)]
    assert exposedness[0] > max(exposedness[1:])
    assert abs(y.mean() - 0.5) < min(abs(under.mean() - 0.5), abs(over.mean() - 0.5))


def test_chain_equals_fusion_of_restored_inputs():
    a, b = load_pair("vif")
    expected = baselines.fuse("gff", [baselines.restore("nlm", a), baselines.restore("nlm", b)])
    np.testing.assert_array_equal(baselines.fuse("nlm+gff", [a, b]), expected)


# ------------------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("channels", [0, 3])
def test_average_is_exact_mean(channels):
    a, b = texture(0, channels=channels), texture(1, channels=channels)
    np.testing.assert_array_equal(baselines.fuse("average", [a, b]), (a + b) / 2)


@pytest.mark.parametrize("channels", [0, 3])
@pytest.mark.parametrize("method", list(baselines.FUSIONS))
def test_self_fusion_returns_the_image(method, channels):
    x = texture(2, 64, 80, channels=channels)
    for n in (2, 3):
        np.testing.assert_allclose(baselines.fuse(method, [x] * n), x, atol=1e-5)


@pytest.mark.parametrize("method", list(baselines.FUSIONS))
def test_more_than_two_sources(method):
    xs = [texture(s, 48, 64, channels=3) for s in range(4)]
    check_output(baselines.fuse(method, xs), 48, 64, colour=True)


@pytest.mark.parametrize("n", [2, 3])
def test_focus_picks_the_sharp_parts(n):
    sharp = texture(3, 96, 120, channels=3)
    soft = blur(sharp, 2.5)
    bands = np.array_split(np.arange(sharp.shape[1]), n)  # source k is sharp in vertical band k only
    sources = []
    for cols in bands:
        x = soft.copy()
        x[:, cols] = sharp[:, cols]
        sources.append(x)
    y = baselines.fuse("focus", sources, "mff")
    assert gradient_energy(y) > max(gradient_energy(x) for x in sources)
    assert mse(y, sharp) < 0.1 * min(mse(x, sharp) for x in sources)


def test_dcp_lowers_dark_channel_of_hazy_image():
    clean = texture(4, 96, 96, channels=3, smooth=3.0) ** 2  # dark, colourful: a low dark channel
    t, airlight = 0.55, np.array([0.85, 0.88, 0.9], np.float32)
    hazy = clean * t + airlight * (1 - t)  # atmospheric scattering model, constant depth
    out = baselines.restore("dcp", hazy)
    check_output(out, 96, 96, colour=True)
    assert dark_channel(out).mean() < 0.5 * dark_channel(hazy).mean()
    assert mse(out, clean) < 0.5 * mse(hazy, clean)


def test_nlm_lowers_residual_noise():
    clean = texture(5, 96, 96, smooth=4.0)
    noisy = np.clip(clean + np.random.default_rng(6).normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    out = baselines.restore("nlm", noisy)
    assert np.var(out - clean) < 0.4 * np.var(noisy - clean)


@pytest.mark.parametrize("method", ["rl", "wiener"])
def test_deblur_raises_gradient_energy(method):
    sharp = texture(7, 96, 96, channels=3, smooth=1.5)
    blurred = blur(sharp, 1.5)
    out = baselines.restore(method, blurred)
    assert gradient_energy(out) > 1.2 * gradient_energy(blurred)
    assert mse(out, sharp) < mse(blurred, sharp)


def test_upsample_sharpens_resampled_image():
    from skimage.data import camera

    original = camera().astype(np.float32)[::2, ::2] / 255.0  # 256 x 256
    low = cv2.resize(original, (128, 128), interpolation=cv2.INTER_AREA)
    resampled = np.clip(cv2.resize(low, (256, 256), interpolation=cv2.INTER_CUBIC), 0, 1)
    out = baselines.restore("upsample", resampled)
    assert gradient_energy(out) > gradient_energy(resampled)
    assert mse(out, original) < mse(resampled, original)


def test_restore_chains_several_restorations():
    x = texture(8, 48, 48, channels=3)
    expected = baselines.restore("dcp", baselines.restore("nlm", x))
    np.testing.assert_array_equal(baselines.restore("nlm+dcp", x), expected)
    y = baselines.fuse("nlm+dcp+average", [x, texture(9, 48, 48, channels=3)])
    check_output(y, 48, 48, colour=True)


# ------------------------------------------------------------------------------------- errors


def test_unknown_method_lists_valid_names():
    x = texture(0, 16, 16)
    for name in ("nope", "nope+gff", "nlm+nope", "gff+nlm"):
        with pytest.raises(ValueError, match=r"unknown method.*average.*gff.*nlm"):
            baselines.fuse(name, [x, x])
    with pytest.raises(ValueError, match="unknown restoration"):
        baselines.restore("gff", x)


def test_integer_inputs_are_converted_by_their_range_and_mix_with_float():
    x = texture(0, 16, 16)
    u8 = np.round(x * 255).astype(np.uint8)
    u16 = np.round(x * 65535).astype(np.uint16)
    y = texture(1, 16, 16)
    expected = baselines.fuse("gff", [u8 / 255.0, y])
    np.testing.assert_allclose(baselines.fuse("gff", [u8, y]), expected, atol=1e-6)  # uint8 + float
    np.testing.assert_allclose(baselines.fuse("gff", [u16, y]), baselines.fuse("gff", [x, y]), atol=1e-4)
    np.testing.assert_array_equal(
        baselines.fuse("average", [x[..., None], y]), baselines.fuse("average", [x, y])
    )
    mask = x > 0.5  # bool: 0 / 1
    np.testing.assert_array_equal(baselines.fuse("max", [mask, mask]), mask.astype(np.float32))


def test_size_mismatch_names_the_sizes():
    with pytest.raises(ValueError, match=r"64x64, 32x64"):
        baselines.fuse("average", [texture(0, 64, 64), texture(1, 32, 64)])


def test_bad_inputs_are_refused():
    x = texture(0, 16, 16)
    with pytest.raises(ValueError, match="at least 2"):
        baselines.fuse("gff", [x])
    with pytest.raises(ValueError, match="at least 2"):
        baselines.fuse("gff", np.stack([x, x]))
    with pytest.raises(ValueError, match=r"^images\[1\]: float values must lie in \[0, 1\]"):
        baselines.fuse("average", [x, x * 255])
    nan = x.copy()
    nan[4:8, 4:8] = np.nan
    with pytest.raises(ValueError, match=r"^images\[0\]: 16 NaN or infinite"):
        baselines.fuse("gff", [nan, x])
    with pytest.raises(ValueError, match=r"^images\[1\]: dtype int32 has no known range"):
        baselines.fuse("gff", [x, x.astype(np.int32)])
    with pytest.raises(ValueError, match="restores one image"):
        baselines.fuse("nlm", [x, x])
    with pytest.raises(ValueError, match="unknown task"):
        baselines.fuse("gff", [x, x], task="hdr")  # type: ignore[arg-type]
