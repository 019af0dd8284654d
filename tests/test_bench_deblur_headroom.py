"""bench/deblur_headroom.py's deconvolutions: a known PSF is undone (the oracle's Wiener-Hunt filter, the TV
prior); the shipped blind estimate (allfuse.blindpsf) finds a straight shake's direction."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from allfuse.blindpsf import estimate_kernel, wiener_kernel

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the script imports its bench neighbours (degrade, cases, machine)
from test_bench_degrade import load_bench_module  # noqa: E402

H = load_bench_module(BENCH / "deblur_headroom.py")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(data.camera(), (192, 192), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0


def line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A straight shake of `length` px at an angle, on a 15 x 15 grid."""
    k = np.zeros((15, 15))
    t = np.deg2rad(angle_deg)
    for s in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        k[round(7 + s * np.sin(t)), round(7 + s * np.cos(t))] = 1.0
    return k / k.sum()


def blur(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    return cv2.filter2D(x, -1, k[::-1, ::-1], borderType=cv2.BORDER_REFLECT)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def kernel_axes(k: np.ndarray) -> tuple[float, float, float]:
    """A kernel's std across and along its long axis (px) and that axis's angle, degrees in [0, 180)."""
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]] - k.shape[0] // 2
    cov = [[(k * xx * xx).sum(), (k * xx * yy).sum()], [(k * xx * yy).sum(), (k * yy * yy).sum()]]
    w, v = np.linalg.eigh(np.array(cov))
    return float(np.sqrt(w[0])), float(np.sqrt(w[1])), float(np.degrees(np.arctan2(v[1, 1], v[0, 1])) % 180)


def test_known_psf_is_undone(photo):
    k = line_kernel(9, 30.0)
    y = blur(photo, k)
    assert psnr(wiener_kernel(y, k, 0.002), photo) > psnr(y, photo) + 1.0
    g = H.gaussian_kernel(np.diag([2.0, 2.0]))
    y = blur(photo, g)
    assert psnr(H.tv_deconv(y, g), photo) > psnr(y, photo) + 2.0


def test_blind_kernel_finds_a_shake(photo):
    k = line_kernel(11, 30.0)
    y = np.clip(blur(photo, k), 0, 1)
    est = estimate_kernel(y, 21)
    assert est.sum() == pytest.approx(1.0) and est.min() >= 0
    # elongated along the shake
    across, along, angle = kernel_axes(est)
    assert along > 1.5 * across and abs(angle - 30.0) < 15.0
