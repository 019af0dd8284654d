"""The JPEG deblocking stage: an input's JPEG quality is read from its block-DCT lattice; a low-quality JPEG
is re-coded on shifted grids and averaged, each input on its own; uncoded inputs, high-quality JPEGs and
tasks the stage is not configured for are left as they are."""

import json

import numpy as np
import pytest
from photos import resized_photo
from stage_folder import check_stage_file

from allfuse.deblock import (
    LUMA_TABLE,
    DeblockConfig,
    deblock_image,
    deblock_inputs,
    encode_decode,
    jpeg_quality,
    quality_table,
)
from allfuse.gate import blockiness
from allfuse.io import find_pairs
from allfuse.model_folder import load_deblock, save_deblock
from allfuse.pipeline import FusionPipeline

CFG = DeblockConfig()


def _photo(name: str = "astronaut", side: int = 200) -> np.ndarray:
    return resized_photo(name, side)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2))


def test_quality_tables_follow_libjpeg_scaling() -> None:
    np.testing.assert_array_equal(quality_table(50), LUMA_TABLE)
    assert (
        quality_table(75)[0, 0] == 8 and quality_table(75)[0, 1] == 6
    )  # (16 * 50 + 50) // 100, (11 * 50 + 50) // 100
    assert quality_table(10)[0, 0] == 80 and quality_table(100).max() == 1
    assert (np.diff([quality_table(q)[3, 3] for q in range(5, 96)]) <= 0).all()  # coarser as quality falls


@pytest.mark.parametrize("quality", [15, 38, 60, 75])
@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_the_quality_of_a_jpeg_is_read_back(quality: int, name: str) -> None:
    coded = encode_decode(_photo(name), quality)
    found, fit = jpeg_quality(coded)
    assert abs(found - quality) <= 1 and fit >= CFG.min_fit
    # a crop that moves the block grid: the grid's phase is found first
    found, fit = jpeg_quality(coded[3:, 5:])
    assert abs(found - quality) <= 1 and fit >= CFG.min_fit


@pytest.mark.parametrize("subsampling", [0, 2])
@pytest.mark.parametrize("quality", [10, 35, 60])
def test_another_encoders_jpeg_is_read_too(quality: int, subsampling: int) -> None:
    """Pillow's libjpeg build, 4:4:4 or 4:2:0 chroma, progressive and optimized: the same luminance tables."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    u8 = np.round(_photo() * 255).astype(np.uint8)
    Image.fromarray(u8).save(
        buf, "JPEG", quality=quality, subsampling=subsampling, progressive=True, optimize=True
    )
    coded = np.asarray(Image.open(io.BytesIO(buf.getvalue()))).astype(np.float32) / 255
    found, fit = jpeg_quality(coded)
    assert abs(found - quality) <= 1 and fit >= CFG.min_fit


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "chelsea"])
def test_an_uncoded_photo_shows_no_lattice(name: str) -> None:
    x = _photo(name, side=256)
    assert jpeg_quality(x)[1] < CFG.min_fit
    assert deblock_inputs([x], "mff", CFG)[0][0] is x


def test_a_low_quality_jpeg_is_deblocked_and_a_clean_input_kept() -> None:
    clean, other = _photo(), _photo("coffee")
    coded = encode_decode(clean, 20)
    out, used = deblock_inputs([other, coded], "mff", CFG)
    assert used == [0, 20]
    assert out[0] is other  # each input is measured on its own
    assert out[1].shape == clean.shape and out[1].dtype == np.float32
    assert _mse(out[1], clean) < 0.95 * _mse(coded, clean)
    gray = lambda x: x.mean(axis=2)  # noqa: E731
    assert blockiness(gray(out[1])) < 0.5 * blockiness(gray(coded))


def test_a_high_quality_jpeg_and_other_tasks_are_left_alone() -> None:
    coded = encode_decode(_photo(), 75)
    assert deblock_inputs([coded], "vif", CFG) == ([coded], [0])
    low = encode_decode(_photo(), 20)
    assert deblock_inputs([low], "mef", DeblockConfig(tasks=("vif",)))[0][0] is low


@pytest.mark.parametrize("gray", [False, True])
def test_fewer_shifts_deblock_less(gray: bool) -> None:
    clean = _photo()
    clean = clean.mean(axis=2) if gray else clean
    coded = encode_decode(clean, 15)
    errors = [_mse(deblock_image(coded, 15, s), clean) for s in (1, 2, 8)]
    assert errors[2] < errors[1] < _mse(coded, clean)
    assert errors[0] == pytest.approx(
        _mse(encode_decode(coded, 15), clean), rel=1e-3
    )  # one coding on the grid


@pytest.mark.parametrize("gray", [False, True])
def test_bands_give_the_whole_images_result(gray: bool) -> None:
    """A tall image is re-coded in bands of rows with margins (bounded memory): the same result."""
    x = resized_photo("coffee", 200)
    x = np.concatenate([x, x[::-1], x], axis=0)[:, :170]  # 600 x 170: odd width, rows not a multiple of 16
    x = x.mean(axis=2) if gray else x
    coded = encode_decode(x, 25)
    whole = deblock_image(coded, 25, 4, band=1024)
    np.testing.assert_array_equal(deblock_image(coded, 25, 4, band=96), whole)
    with pytest.raises(ValueError, match="multiple of 16"):
        deblock_image(coded, 25, 4, band=100)


def test_no_clean_benchmark_input_is_deblocked(shared_data) -> None:
    """The module doc's calibration at the benches' long side of 512: no clean benchmark image is a JPEG
    of quality 60 or less (many are JPEG files of quality 74-75 at their native size)."""
    from allfuse.gate import shrink

    for folder in ("ivif/TNO", "ivif/RoadScene", "ivif/MSRS", "mef/MEFB", "mff/Lytro", "mff/MFI-WHU"):
        for pair in find_pairs(shared_data / folder)[::4]:
            images = [shrink(x) for x in pair.load()[0]]
            assert deblock_inputs(images, pair.task, CFG)[1] == [0] * len(images), pair.name


def test_config_is_checked_and_round_trips(tmp_path) -> None:
    for bad in ({"max_quality": 0}, {"min_fit": 1.5}, {"shifts": 3}, {"tasks": ("sharpen",)}):
        with pytest.raises(ValueError, match="deblock"):
            DeblockConfig(**bad)
    cfg = DeblockConfig(max_quality=50, shifts=4, tasks=("mef", "mff"))
    assert DeblockConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    check_stage_file(tmp_path, cfg, load_deblock, save_deblock, "deblock.json", '{"deblock": {"quality": 2}}')


@pytest.mark.parametrize("name", ["allfuse-reg", "allfuse-fm"])
def test_shipped_models_deblock_first_and_keep_it_when_saved(name: str, tmp_path) -> None:
    pipe = FusionPipeline.from_pretrained(name)
    assert pipe.deblock == DeblockConfig(pixel_tasks=("vif", "mef", "mff"), pixel_min=0.75)
    clean = [_photo("camera"), _photo()]
    coded = [encode_decode(x, 18) for x in clean]
    seen = pipe.gate_inputs(coded, "vif", deblur=False, denoise=False, destripe=False)
    kept = pipe.gate_inputs(coded, "vif", deblur=False, denoise=False, destripe=False, deblock=False)
    for s, k, c in zip(seen, kept, clean, strict=True):
        assert _mse(s, c) < 0.95 * _mse(k, c)
    again = FusionPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    assert again.deblock == pipe.deblock


def test_the_command_line_reports_and_can_skip_the_stage(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    a, b = _photo(), _photo("coffee")
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    write_image(paths[0], encode_decode(a, 20))
    write_image(paths[1], b)
    outs = {flag: tmp_path / f"out{i}.png" for i, flag in enumerate(("-v", "--no-deblock"))}
    for flag, out in outs.items():
        assert main(["fuse", *map(str, paths), "-o", str(out), "--task", "mff", flag]) == 0
    said = capsys.readouterr().out
    assert "JPEG deblocking (mff): input 1: JPEG quality 20, deblocked; input 2: no JPEG blocks found" in said
    on, off = (read_image(out).astype(np.float32) / 255 for out in outs.values())
    assert blockiness(on.mean(axis=2)) < blockiness(off.mean(axis=2))
