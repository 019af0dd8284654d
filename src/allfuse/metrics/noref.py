"""No-reference quality: BRISQUE and NIQE, offline, from models shipped in two PyPI packages.

- BRISQUE: the pre-trained epsilon-SVR of the `brisque` package (brisque/models/svm.txt, libsvm text
  format, and normalize.pickle, the feature scaling, read with an unpickler that allows no globals).
  The model was fitted on that package's own feature code, so the features here reproduce it
  (zero-padded 7x7 MSCN, AGGD shape solved exactly, second scale by cv2 bicubic x0.5); the RBF SVR is
  evaluated in numpy, without libsvm. Matches the package's score to ~1e-4. Lower is better.
- NIQE: the pristine model (pop_mu, pop_cov) shipped in `absolutely-not-scikit-video`
  (skvideo/measure/data/niqe_image_params.mat). That file is scikit-video's own fit, not the MATLAB
  release's modelparameters.mat: its diagonal-pair features repeat beta_left, exactly as
  scikit-video's feature code does (pop_cov has rank 32). The features here therefore follow
  scikit-video's niqe (zero-padded MSCN, Pillow bicubic half scale, 96 px patches), and match it to
  ~1e-3. Scores run higher than MATLAB NIQE (~8-12 for clean photos, not ~3-6). Lower is better.

Neither package is imported (brisque needs libsvm; skvideo is not needed): their data files are
located with importlib and read directly, once, then cached.
"""

import functools
import importlib.util
import pickle
from pathlib import Path

import cv2
import numpy as np
import scipy.io
from PIL import Image
from scipy import special

from allfuse.metrics.nss import aggd_fit_grid, aggd_fit_root, mscn


class ModelFileMissing(RuntimeError):
    """A metric's model file (shipped by a PyPI package) could not be found."""


def package_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileMissing(f"package '{package}' is not installed (pip install allfuse pulls it in)")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise ModelFileMissing(f"{path} not found in the installed '{package}' package")
    return path


class _FloatsOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: only dicts, lists, strings and numbers can be built."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _parse_libsvm_model(text: str) -> dict:
    """Header fields, dual coefficients (N,) and dense support vectors (N, D) of a libsvm model file."""
    header, _, body = text.partition("\nSV\n")
    fields = dict(line.split(" ", 1) for line in header.splitlines() if " " in line)
    coefs, rows = [], []
    for line in body.split("\n"):
        tokens = line.split()
        if not tokens:
            continue
        coefs.append(float(tokens[0]))
        rows.append({int(i): float(v) for i, v in (t.split(":") for t in tokens[1:])})
    dim = max(max(r, default=0) for r in rows)
    sv = np.zeros((len(rows), dim))  # libsvm omits zero entries: sparse -> dense
    for n, r in enumerate(rows):
        for i, v in r.items():
            sv[n, i - 1] = v
    return {"fields": fields, "coef": np.array(coefs), "sv": sv}


@functools.lru_cache(maxsize=1)
def brisque_model() -> dict:
    """The `brisque` package's SVR (gamma, rho, coef, sv) and feature range (lo, hi)."""
    model = _parse_libsvm_model(package_file("brisque", "models", "svm.txt").read_text())
    fields = model["fields"]
    if fields.get("svm_type") != "epsilon_svr" or fields.get("kernel_type") != "rbf":
        raise ModelFileMissing(f"unexpected BRISQUE model type: {fields}")
    with package_file("brisque", "models", "normalize.pickle").open("rb") as fh:
        scale = _FloatsOnlyUnpickler(fh).load()
    lo, hi = np.asarray(scale["min_"], dtype=np.float64), np.asarray(scale["max_"], dtype=np.float64)
    if not (lo.shape == hi.shape == (36,) and model["sv"].shape[1] == 36):
        raise ModelFileMissing("BRISQUE model files do not describe 36 features")
    return {
        "gamma": float(fields["gamma"]),
        "rho": float(fields["rho"]),
        "coef": model["coef"],
        "sv": model["sv"],
        "lo": lo,
        "hi": hi,
    }


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
    model = brisque_model()
    f = brisque_features(y)
    x = -1.0 + 2.0 * (f - model["lo"]) / (model["hi"] - model["lo"])  # svm-scale to [-1, 1]
    d2 = np.sum((model["sv"] - x) ** 2, axis=1)
    return float(model["coef"] @ np.exp(-model["gamma"] * d2) - model["rho"])


@functools.lru_cache(maxsize=1)
def niqe_model() -> tuple[np.ndarray, np.ndarray]:
    """scikit-video's pristine NIQE model: mean (36,) and covariance (36, 36) of patch features."""
    mat = scipy.io.loadmat(package_file("skvideo", "measure", "data", "niqe_image_params.mat"))
    return np.ravel(mat["pop_mu"]).astype(np.float64), np.asarray(mat["pop_cov"], dtype=np.float64)


def _patch_features(m: np.ndarray, size: int) -> np.ndarray:
    """18 features per non-overlapping size x size patch of the MSCN map m: (patches, 18)."""
    h, w = m.shape
    blocks = m.reshape(h // size, size, w // size, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    n = blocks.shape[0]
    alpha, bl, br = aggd_fit_grid(blocks.reshape(n, -1))
    cols = [alpha, (bl + br) / 2.0]
    # Neighbour products with wrap-around inside each patch: H, V, D1, D2. The model was fitted with
    # scikit-video's features, which repeat beta_left for the two diagonals; so do we.
    for shift, diagonal in (((0, 1), False), ((1, 0), False), ((1, 1), True), ((1, -1), True)):
        pair = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, bl, br = aggd_fit_grid(pair.reshape(n, -1))
        mean = (br - bl) * special.gamma(2 / alpha) / special.gamma(1 / alpha)
        cols += [alpha, mean, bl, bl if diagonal else br]
    return np.stack(cols, axis=1)


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
    mu_p, cov_p = niqe_model()
    h, w = (y.shape[0] // patch) * patch, (y.shape[1] // patch) * patch
    if h == 0 or w == 0:
        return float("nan")
    img = y[:h, :w]
    full = _patch_features(mscn(img, c=1.0), patch)
    half = _patch_features(mscn(_half_bicubic(img), c=1.0), patch // 2)
    feats = np.concatenate([full, half], axis=1)  # (patches, 36)
    mu_d = feats.mean(axis=0)
    cov_d = np.cov(feats, rowvar=False) if len(feats) > 1 else np.zeros_like(cov_p)
    diff = mu_d - mu_p
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov_d) / 2.0) @ diff))
