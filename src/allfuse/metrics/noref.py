"""No-reference quality: BRISQUE and NIQE, offline, from models vendored in allfuse/metrics/data.

The models are plain float64 arrays (.npz, read without pickle); the repository's
tools/vendor_iqa_models.py rebuilds them from the original PyPI releases and data/NOTICE.txt gives their
origins and licences. Lower is better for all three scores.

- BRISQUE: the pre-trained epsilon-SVR of the `brisque` package (0.2.0; models/svm.txt and the
  feature scaling of models/normalize.pickle). The model was fitted on that package's own feature
  code, so the features here reproduce it (zero-padded 7x7 MSCN, AGGD shape solved exactly, second
  scale by cv2 bicubic x0.5); the RBF SVR is evaluated in numpy. Equals the package's score to ~1e-4.
- NIQE (`niqe`): the pristine model of `absolutely-not-scikit-video` (1.1.12;
  skvideo/measure/data/niqe_image_params.mat). That file is scikit-video's own fit, not the MATLAB
  release's modelparameters.mat: its diagonal-pair features repeat beta_left, exactly as
  scikit-video's feature code does (pop_cov has rank 32). The features here therefore follow
  scikit-video's niqe (zero-padded MSCN, Pillow bicubic half scale, 96 px patches), and match it to
  ~1e-3. Scores run higher than MATLAB NIQE (~8-12 for clean photos, not ~3-6).
- NIQE, MATLAB (`niqe_matlab`): the pristine model of LIVE's NIQE release (modelparameters.mat, as
  mirrored in basicsr 1.4.2) with the release's computequality.m pipeline: the NIQE of published
  tables (~3-6 for clean photos). Checked against that MATLAB code's scores which pyiqa records for
  its calibration images (ResultsCalibra/results_original.csv): I04.bmp 3.65492152353770 is
  reproduced to 1e-13; images with flat (saturated) areas differ by up to 0.6 % (I08.bmp: 3.2020
  vs 3.1840), where MATLAB's features depend on its filter's round-off (see `_mscn_matlab`). Within
  1.3e-4 of basicsr's calculate_niqe, which runs in float32.
"""

import functools
import math
from importlib import resources

import cv2
import numpy as np
from PIL import Image
from scipy import special

from allfuse.metrics.nss import Convention, aggd_fit_grid, aggd_fit_root, mscn


@functools.cache
def vendored_model(name: str) -> dict[str, np.ndarray]:
    """The arrays of data/<name>.npz, read once (allow_pickle=False: plain arrays only)."""
    with (resources.files("allfuse.metrics") / "data" / f"{name}.npz").open("rb") as fh:
        npz = np.load(fh, allow_pickle=False)
        return {k: npz[k] for k in npz.files}


def brisque_features(y: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a gray image in [0, 1]: 18 at full and 18 at half resolution."""
    feats = []
    for img in (y, cv2.resize(y, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)):
        m = mscn(img, c=1.0 / 255.0)
        alpha, _, l2, r2 = aggd_fit_root(m)
        feats += [alpha, (l2 + r2) / 2.0]
        pairs = (
            m[:, :-1] * m[:, 1:],  # horizontal neighbour
            m[:-1, :] * m[1:, :],  # vertical
            m[:-1, :-1] * m[1:, 1:],  # main diagonal
            m[1:, :-1] * m[:-1, 1:],  # secondary diagonal
        )
        for pair in pairs:
            feats += list(aggd_fit_root(pair))
    return np.array(feats)


def brisque(y: np.ndarray) -> float:
    """BRISQUE score of a gray image in [0, 1]; ~0-30 for clean photos, higher when degraded."""
    model = vendored_model("brisque_live")
    f = brisque_features(y)
    x = -1.0 + 2.0 * (f - model["lo"]) / (model["hi"] - model["lo"])  # svm-scale to [-1, 1]
    # libsvm's epsilon-SVR decision function: sum_i coef_i exp(-gamma |sv_i - x|^2) - rho
    d2 = np.sum((model["sv"] - x) ** 2, axis=1)
    return float(model["coef"] @ np.exp(-float(model["gamma"]) * d2) - float(model["rho"]))


def _patch_features(m: np.ndarray, size: int, convention: Convention) -> np.ndarray:
    """18 features per non-overlapping size x size patch of the MSCN map m: (patches, 18)."""
    h, w = m.shape
    blocks = m.reshape(h // size, size, w // size, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    n = blocks.shape[0]
    alpha, bl, br = aggd_fit_grid(blocks.reshape(n, -1), convention)
    cols = [alpha, (bl + br) / 2.0]
    # Neighbour products with wrap-around inside each patch (MATLAB circshift): H, V, D1, D2.
    # scikit-video's model was fitted with features that repeat beta_left for the diagonals; so do we.
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        pair = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, bl, br = aggd_fit_grid(pair.reshape(n, -1), convention)
        mean = (br - bl) * special.gamma(2 / alpha) / special.gamma(1 / alpha)  # NIQE Eq. (8)
        cols += [alpha, mean, bl, bl if convention == "skvideo" and all(shift) else br]
    return np.stack(cols, axis=1)


def _mvg_distance(feats: np.ndarray, mu_p: np.ndarray, cov_p: np.ndarray) -> float:
    """NIQE Eq. (10): distance between the Gaussian fitted to feats (patches, 36) and the pristine one.

    NaN features are left out as MATLAB's nanmean/nancov do (nancov drops every row with a NaN);
    a single patch has a zero covariance. NaN when a feature is NaN on every patch (a flat image).
    """
    if np.isnan(feats).all(axis=0).any():
        return float("nan")
    mu_d = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    cov_d = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_p)
    diff = mu_d - mu_p
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov_d) / 2.0) @ diff))


def _crop_to_patches(y: np.ndarray, patch: int) -> np.ndarray | None:
    """The top-left part of y made of whole patch x patch blocks; None when there is none."""
    h, w = (y.shape[0] // patch) * patch, (y.shape[1] // patch) * patch
    return y[:h, :w] if h and w else None


def _half_bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow bicubic resize to (h // 2, w // 2) of a float32 image (scikit-video's imresize)."""
    h, w = x.shape
    img = Image.fromarray(x.astype(np.float32))
    return np.asarray(img.resize((w // 2, h // 2), resample=Image.Resampling.BICUBIC), dtype=np.float64)


def niqe(y: np.ndarray, patch: int = 96) -> float:
    """NIQE of a gray image on the 0-255 scale (scikit-video model); NaN if under 96 px a side.

    Patches of 96 px at full and 48 px at half resolution, 18 NSS features each; NIQE is the
    Mahalanobis-like distance between the patch-feature Gaussian and the pristine one.
    """
    img = _crop_to_patches(y, patch)
    if img is None:
        return float("nan")
    model = vendored_model("niqe_skvideo")
    full = _patch_features(mscn(img, c=1.0), patch, "skvideo")
    half = _patch_features(mscn(_half_bicubic(img), c=1.0), patch // 2, "skvideo")
    return _mvg_distance(np.concatenate([full, half], axis=1), model["mu"], model["cov"])


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' bicubic kernel with a = -0.5, as MATLAB imresize's `cubic`."""
    a = np.abs(x)
    near = (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
    return near + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))


def matlab_resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """(n_out, n_in) weights of MATLAB `imresize(..., scale)` (bicubic, antialiased) along one axis.

    After imresize.m's `contributions`: the kernel is widened by 1 / scale when shrinking, rows are
    normalised to sum 1, and indices outside the image are mirrored (symmetric padding).
    """
    n_out = math.ceil(n_in * scale)
    k = min(scale, 1.0)
    width = 4.0 / k
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input position of each output
    idx = np.floor(u - width / 2)[:, None] + np.arange(math.ceil(width) + 2)  # (n_out, P), 1-based
    w = k * _cubic(k * (u[:, None] - idx))
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    cols = mirror[(idx.astype(np.int64) - 1) % (2 * n_in)]
    out = np.zeros((n_out, n_in))
    np.add.at(out, (np.broadcast_to(np.arange(n_out)[:, None], cols.shape), cols), w)
    return out


def matlab_imresize(x: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(x, scale)` of a float 2-D image: bicubic, antialiased, rows resized first."""
    rows, cols = matlab_resize_matrix(x.shape[0], scale), matlab_resize_matrix(x.shape[1], scale)
    return (rows @ x) @ cols.T


def _mscn_matlab(img: np.ndarray) -> np.ndarray:
    """MSCN of the NIQE MATLAB release (replicate padding), with round-off in flat areas set to 0.

    In a flat 7x7 area x - mu is exactly 0, but a filter leaves +-1e-12 whose signs alone decide the
    AGGD fit of the patch (and differ between MATLAB, scipy and cv2); exact zeros give the features
    of exact arithmetic, as `filters.sobel` does for edges; genuine values under 1e-9 are vanishingly rare.
    """
    m = mscn(img, c=1.0, border="replicate")
    m[np.abs(m) < 1e-9] = 0.0
    return m


def niqe_matlab(y: np.ndarray, patch: int = 96) -> float:
    """NIQE of a gray image on the 0-255 scale as LIVE's MATLAB release computes it; NaN under 96 px.

    computequality.m with modelparameters.mat: the image rounded to 8-bit levels (MATLAB rgb2gray
    of a uint8 image; basicsr rounds too), replicate-padded MSCN, MATLAB imresize 0.5 for the second
    scale, patches of 96 and 48 px, AGGD fits of estimateaggdparam.m. ~3-6 for clean photos.
    """
    img = _crop_to_patches(np.round(y), patch)
    if img is None:
        return float("nan")
    model = vendored_model("niqe_matlab")
    full = _patch_features(_mscn_matlab(img), patch, "matlab")
    half = _patch_features(_mscn_matlab(matlab_imresize(img, 0.5)), patch // 2, "matlab")
    return _mvg_distance(np.concatenate([full, half], axis=1), model["mu"], model["cov"])
