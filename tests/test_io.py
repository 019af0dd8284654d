"""allfuse.io: formats, modes, bit depths, orientation, channel policy, pairing and its errors."""

import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from allfuse.io import (
    MAX_PIXELS_ENV,
    ImageError,
    find_pairs,
    image_size,
    read_image,
    remove_stale_temp_files,
    scan_pairs,
    write_image,
)

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (12, 20, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_rgb_formats_round_trip_exactly(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"x{ext}"
    kwargs = {"lossless": True} if ext == ".webp" else {}
    PILImage.fromarray(RGB8).save(path, **kwargs)
    x = read_image(path)
    assert x.dtype == np.float32 and x.shape == (12, 20, 3)
    np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8), RGB8)


def test_jpeg_reads_close_to_original(tmp_path: Path) -> None:
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(16, axis=0)
    PILImage.fromarray(smooth).save(tmp_path / "x.jpg", quality=95)
    x = read_image(tmp_path / "x.jpg", channels="rgb")
    assert np.abs(x * 255 - smooth).max() < 8


def test_16bit_gray_and_colour_keep_precision(tmp_path: Path) -> None:
    g16 = RNG.integers(0, 65536, (8, 9), dtype=np.uint16)
    c16 = RNG.integers(0, 65536, (8, 9, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), g16)
    cv2.imwrite(str(tmp_path / "c.tif"), c16[..., ::-1])  # OpenCV writes BGR
    cv2.imwrite(str(tmp_path / "c.png"), c16[..., ::-1])
    np.testing.assert_allclose(read_image(tmp_path / "g.png"), g16 / 65535.0, atol=1e-7)
    for name in ("c.tif", "c.png"):
        np.testing.assert_allclose(read_image(tmp_path / name), c16 / 65535.0, atol=1e-7)


def test_modes_and_channel_policy(tmp_path: Path) -> None:
    rgba = np.dstack([RGB8, np.full(RGB8.shape[:2], 7, np.uint8)])
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(tmp_path / "a.png"), RGB8 / 255.0, atol=1e-7)  # alpha dropped
    PILImage.fromarray(RGB8).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (12, 20, 3)
    gray3 = np.repeat(RGB8[..., :1], 3, axis=2)  # TNO style: gray stored as RGB
    PILImage.fromarray(gray3).save(tmp_path / "g3.png")
    assert read_image(tmp_path / "g3.png").shape == (12, 20)
    assert read_image(tmp_path / "g3.png", channels="rgb").shape == (12, 20, 3)
    gray = read_image(tmp_path / "a.png", channels="gray")
    np.testing.assert_allclose(gray, (RGB8 / 255.0) @ [0.299, 0.587, 0.114], atol=1e-6)
    PILImage.fromarray(RGB8[..., 0] > 128).save(tmp_path / "b.png")  # 1-bit
    assert set(np.unique(read_image(tmp_path / "b.png"))) <= {0.0, 1.0}


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = PILImage.fromarray(RGB8)
    exif = im.getexif()
    exif[0x0112] = 6  # stored rotated: displayed after a 90-degree clockwise turn
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    x = read_image(tmp_path / "o.jpg")
    assert x.shape == (20, 12, 3)
    raw = np.asarray(PILImage.open(tmp_path / "o.jpg"), dtype=np.float32) / 255.0  # as stored
    np.testing.assert_array_equal(x, np.rot90(raw, -1))  # displayed = stored turned clockwise


def test_unreadable_truncated_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(ImageError, match=r"bad\.png"):
        read_image(bad)
    good = tmp_path / "t.jpg"
    PILImage.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"trunc\.jpg.*truncated"):
        read_image(trunc)
    with pytest.raises(ImageError, match=r"nope\.png"):
        read_image(tmp_path / "nope.png")


def test_write_is_atomic_png_8_and_16_bit(tmp_path: Path) -> None:
    x = RNG.random((5, 7, 3)).astype(np.float32)
    write_image(tmp_path / "o8.png", x)
    write_image(tmp_path / "o16.png", x, bits=16)
    np.testing.assert_allclose(read_image(tmp_path / "o8.png"), x, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(read_image(tmp_path / "o16.png"), x, atol=0.5 / 65535 + 1e-7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o16.png", "o8.png"]  # no temp file left
    old = os.umask(0o022)
    try:  # the mode a plain open() gives (the temp file's 0600 must not leak into outputs)
        write_image(tmp_path / "m.png", x)
        assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
    with pytest.raises(ImageError, match="NaN"):
        write_image(tmp_path / "n.png", np.full((2, 2), np.nan))
    assert not (tmp_path / "n.png").exists()


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height 8-bit gray pixels but holds only 100 bytes of them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(100)))
        + chunk(b"IEND", b"")
    )


def test_pixel_limit_is_checked_from_the_header_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png_header(10000, 10000))  # a decode would fail as truncated: the limit comes first
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not surface either
        monkeypatch.setenv(MAX_PIXELS_ENV, "50000000")
        with pytest.raises(
            ImageError, match=r"big\.png: 10000x10000 is 100 MP, more than the pixel limit of 50 MP"
        ):
            read_image(big)
        with pytest.raises(ImageError, match="truncated"):
            read_image(big, max_pixels=0)  # the argument wins over the environment; 0 = no limit
        monkeypatch.delenv(MAX_PIXELS_ENV)
        near = tmp_path / "near.png"
        near.write_bytes(png_header(10000, 9000))  # 90 MP: under our default 100 MP, over Pillow's warning
        with pytest.raises(ImageError, match="truncated"):
            read_image(near)
        with pytest.raises(ImageError, match=r"pixel limit of 1e-05 MP"):
            read_image(near, max_pixels=10)
    write_image(tmp_path / "ok.png", np.zeros((4, 4), np.float32))
    for value in ("lots", "-5"):
        monkeypatch.setenv(MAX_PIXELS_ENV, value)
        with pytest.raises(ImageError, match=f"^{MAX_PIXELS_ENV}='?{value}'?: give"):
            read_image(tmp_path / "ok.png")


def test_a_decompression_bomb_header_is_a_one_line_error(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(60000, 60000))  # 3600 MP: Pillow itself refuses it while opening
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            ImageError, match=r"bomb\.png: the header says 3600 MP, more than the pixel limit of 100"
        ):
            read_image(bomb)
        with pytest.raises(ImageError, match=r"bomb\.png: the header says 3600 MP, more than Pillow decodes"):
            read_image(bomb, max_pixels=0)
        with pytest.raises(ImageError, match=r"bomb\.png: the header says 3600 MP"):
            image_size(bomb)


def test_stale_temp_files_of_atomic_writes_are_removed(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.zeros((2, 2), np.float32))
    # what write_image leaves behind when its process is killed between writing and renaming
    fd, stale = tempfile.mkstemp(prefix=".b.png.", suffix=".tmp", dir=tmp_path)
    os.close(fd)
    keep = [tmp_path / n for n in (".hidden", "c.tmp", ".c.png.tmp", ".c.png.TOOLONG12.tmp")]
    for p in keep:
        p.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path) == [Path(stale)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.png", *(p.name for p in keep)])
    assert remove_stale_temp_files(tmp_path / "absent") == []


def _make_dataset(root: Path, a: str, b: str, names_a: list[str], names_b: list[str]) -> None:
    for folder, names in ((a, names_a), (b, names_b)):
        (root / folder).mkdir(parents=True)
        for n in names:
            PILImage.fromarray(RGB8).save(root / folder / n)


def test_pairs_by_stem_with_aliases_and_task(tmp_path: Path) -> None:
    _make_dataset(tmp_path / "set1", "Infrared", "Visible", ["1.png", "2.JPG"], ["1.PNG", "2.jpg"])
    pairs = find_pairs(tmp_path / "set1")
    assert [p.name for p in pairs] == ["1", "2"] and pairs[0].task == "vif"
    assert pairs[1].sources[0].name == "2.JPG" and pairs[1].sources[1].name == "2.jpg"
    _make_dataset(tmp_path / "mef" / "set2", "A", "B", ["x.png"], ["x.png"])  # task from path
    assert find_pairs(tmp_path / "mef" / "set2")[0].task == "mef"
    _make_dataset(tmp_path / "set3", "under", "over", ["x.png"], ["x.png"])
    (tmp_path / "set3" / "gt").mkdir()
    PILImage.fromarray(RGB8).save(tmp_path / "set3" / "gt" / "x.png")
    (pair,) = find_pairs(tmp_path / "set3")
    sources, ref = pair.load()
    assert pair.task == "mef" and ref is not None and ref.shape == sources[0].shape


def test_missing_partner_and_size_mismatch_name_the_file(tmp_path: Path) -> None:
    _make_dataset(tmp_path / "d", "near", "far", ["a.png", "lonely.png"], ["a.png"])
    scan = scan_pairs(tmp_path / "d")
    assert len(scan.pairs) == 1 and len(scan.problems) == 1 and "lonely.png" in scan.problems[0]
    with pytest.raises(ImageError, match=r"lonely\.png: missing partner"):
        find_pairs(tmp_path / "d")
    PILImage.fromarray(RGB8[:6]).save(tmp_path / "d" / "far" / "lonely.png")
    pair = next(p for p in find_pairs(tmp_path / "d") if p.name == "lonely")
    with pytest.raises(ImageError, match=r"far/lonely\.png: size mismatch, 20x6 but lonely\.png is 20x12"):
        pair.load()
    with pytest.raises(ImageError, match="no known pair layout"):
        find_pairs(tmp_path / "d" / "near")


def test_real_dataset_folders_pair_completely(shared_data: Path) -> None:
    counts = {
        "ivif/TNO": 25,
        "ivif/RoadScene": 221,
        "ivif/MSRS": 16,
        "mef/MEFB": 98,
        "mff/Lytro": 20,
        "mff/MFI-WHU": 120,
    }
    for rel, n in counts.items():
        scan = scan_pairs(shared_data / rel)
        assert len(scan.pairs) == n and not scan.problems
        assert scan.pairs[0].task == {"ivif": "vif", "mef": "mef", "mff": "mff"}[rel.split("/")[0]]
