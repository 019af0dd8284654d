"""bench/cases.py's identity photos: the acceptance check's 10 and the wide set (`--identity-set wide`)."""

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # cases imports its bench neighbours (degrade)
from test_bench_degrade import load_bench_module  # noqa: E402

C = load_bench_module(BENCH / "cases.py")


def test_the_wide_set_adds_gray_photos_and_every_multi_focus_crop(shared_data: Path) -> None:
    base = dict(C.identity_photos(shared_data, 512))
    wide = dict(C.identity_photos(shared_data, 512, wide=True))
    assert len(base) == 10 and set(base) < set(wide)  # the acceptance photos, unchanged, among them
    for name in base:
        np.testing.assert_array_equal(base[name], wide[name])
    assert set(C.WIDE_PHOTOS) <= set(wide) and not set(C.WIDE_PHOTOS) & set(C.IDENTITY_PHOTOS)
    crops = [n for n in wide if n.endswith("in-focus crop")]
    assert len(crops) == 20 and all(n.startswith("MFI-WHU/") for n in crops)  # every MFF validation pair
    assert len(wide) == len(C.IDENTITY_PHOTOS) + len(C.WIDE_PHOTOS) + 20
    for name, x in wide.items():
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0 and max(x.shape[:2]) <= 512, name
        if name in crops:
            assert x.shape[:2] == (256, 256), name
    gray = [n for n in C.WIDE_PHOTOS if wide[n].ndim == 2]
    assert {"brick", "gravel", "page", "text", "moon"} <= set(gray)
