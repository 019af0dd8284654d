"""Fuzzing the image loader: random bytes and mutated PNG / JPEG / TIFF / BMP files either read as a valid
image or fail with allfuse.io.ImageError, one line naming the file; never any other exception."""

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from allfuse.io import ImageError, image_size, read_image

# Deterministic and bounded: fixed examples, no example database written into the repository.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LIMIT = 1 << 20  # a mutated header may claim a large size: refuse it rather than decode it (test speed)
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"BM", b"RIFF", b"GIF89a"]


def _encode(array: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    """A small valid file of one format, in memory."""
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _seeds() -> dict[str, tuple[str, bytes]]:
    """name -> (suffix, bytes) of small valid images whose headers get mutated."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    return {
        "png": (".png", _encode(rgb, "PNG")),
        "png16": (".png", _encode(g16, "PNG")),
        "jpeg": (".jpg", _encode(rgb, "JPEG", quality=90)),
        "tiff": (".tif", _encode(rgb, "TIFF")),
        "tiff16": (".tif", _encode(g16, "TIFF")),
        "tiff_float": (".tif", _encode(rng.random((9, 11)).astype(np.float32), "TIFF")),
        "bmp": (".bmp", _encode(rgb, "BMP")),
    }


SEEDS = _seeds()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _read_or_image_error(path: Path, data: bytes) -> None:
    """Write `data` to `path` and read it: a valid image or a one-line ImageError naming the file."""
    path.write_bytes(data)
    try:
        x = read_image(path, max_pixels=LIMIT)
    except ImageError as e:
        message = str(e)
        assert "\n" not in message and message.startswith(str(path)), message
    else:
        assert x.dtype == np.float32 and x.ndim in (2, 3) and x.size > 0
        assert np.isfinite(x).all() and 0.0 <= x.min() and x.max() <= 1.0
    try:
        image_size(path)
    except ImageError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path))


@FUZZ
@given(
    prefix=st.sampled_from(MAGIC),
    body=st.binary(max_size=600),
    suffix=st.sampled_from([".png", ".jpg", ".tif"]),
)
def test_random_bytes_are_an_image_error(scratch: Path, prefix: bytes, body: bytes, suffix: str) -> None:
    _read_or_image_error(scratch / f"random{suffix}", prefix + body)


@pytest.mark.filterwarnings("error")
@FUZZ
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 95), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 1000)),
)
def test_mutated_headers_are_an_image_error(
    scratch: Path, seed: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    suffix, data = SEEDS[seed]
    mutated = bytearray(data)
    for pos, byte in edits:  # header bytes: sizes, depths, offsets, tag counts
        if pos < len(mutated):
            mutated[pos] = byte
    _read_or_image_error(scratch / f"mutated{suffix}", bytes(mutated[:cut]))


def test_the_unmutated_seeds_read(scratch: Path) -> None:
    for name, (suffix, data) in SEEDS.items():
        (scratch / f"{name}{suffix}").write_bytes(data)
        assert read_image(scratch / f"{name}{suffix}").shape[:2] == (9, 11), name
