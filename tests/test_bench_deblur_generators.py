"""bench/deblur_generators.py: its variants are the ones it reports, and its `peak` anchor moves a one-sided
streak's restoration back where the clean image is (the cause its README paragraph names)."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from allfuse.blindpsf import clean_kernel, wiener_kernel
from allfuse.deblur import DeblurConfig

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the script imports its bench neighbours (degrade, cases, machine)
from test_bench_degrade import load_bench_module  # noqa: E402

G = load_bench_module(BENCH / "deblur_generators.py")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(data.camera(), (192, 192), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0


def streak(length: int = 10, std: float = 3.0) -> np.ndarray:
    """A horizontal one-sided streak, heaviest at its start (the kernel's centre), as ImageNet-C draws it."""
    k = np.zeros((2 * length + 1, 2 * length + 1))
    t = np.arange(length + 1)
    k[length, length + t] = np.exp(-(t**2) / (2 * std**2))
    return k / k.sum()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_variants_are_the_reported_columns():
    stages = G.stage_variants(DeblurConfig(anisotropic=True, kernel_tasks=("mff",), smooth_balance=0.005))
    assert tuple(stages) == G.VARIANTS
    assert stages["gaussian"].kernel_tasks == () and stages["one-balance"].smooth_balance == 0.0
    assert stages["input"] is None and stages["unsharp"] is None


def test_peak_anchor_puts_a_streak_back(photo):
    k = streak()
    y = cv2.filter2D(photo, -1, k[::-1, ::-1], borderType=cv2.BORDER_REFLECT)
    centred = clean_kernel(k)  # the true kernel as the blind estimate would place it: on its centroid
    peak = G.at_peak(centred)
    assert peak.sum() == pytest.approx(1.0)
    c = peak.shape[0] // 2
    smooth = cv2.GaussianBlur(peak.astype(np.float32), (0, 0), 1.0)  # the peak at_peak reads
    assert np.unravel_index(int(np.argmax(smooth)), smooth.shape) == (c, c)
    at_centroid = psnr(wiener_kernel(y, centred, 0.005), photo)
    at_start = psnr(wiener_kernel(y, peak, 0.005), photo)
    assert at_start > at_centroid + 3.0  # the same deconvolution, only its anchor differs


def test_peak_anchor_keeps_a_symmetric_kernel():
    g = cv2.getGaussianKernel(9, 1.5)
    g = g @ g.T
    np.testing.assert_allclose(G.at_peak(g)[:9, :9], g / g.sum(), atol=1e-6)
