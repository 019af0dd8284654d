"""Pixel blocks (allfuse.depixel, run by the deblocking stage): an input enlarged by nearest neighbour is
found along both axes, at its block size, also under noise, and re-interpolated closer to the picture it was
made from; photographs, JPEG files, a linearly enlarged picture and the shared benchmark's clean inputs are
not taken for one."""

import json

import cv2
import numpy as np
import pytest
from photos import resized_photo

from allfuse.deblock import DeblockConfig, deblock_inputs, encode_decode, pixel_grids
from allfuse.depixel import depixelate, is_enlarged, pixel_grid
from allfuse.io import find_pairs
from allfuse.model_folder import load_deblock, resolve_model_folder

SHIPPED = load_deblock(resolve_model_folder("allfuse-reg"))
MIN = SHIPPED.pixel_min


def _photo(name: str = "astronaut", side: int = 384) -> np.ndarray:
    return resized_photo(name, side)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def _enlarged(x: np.ndarray, scale: float, centred: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """x shrunk by `scale` (area) and enlarged back by nearest neighbour: cv2's rule (floor(i / f)) or the
    centred one of other libraries (floor((i + 0.5) / f)); and the small picture."""
    h, w = x.shape[:2]
    small = cv2.resize(x, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    if not centred:
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST), small
    rows = np.minimum((np.arange(h) + 0.5) * small.shape[0] / h, small.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(w) + 0.5) * small.shape[1] / w, small.shape[1] - 1).astype(int)
    return small[rows][:, cols], small


@pytest.mark.parametrize(("scale", "centred"), [(0.5, False), (0.27, False), (1 / 3, True)])
@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_an_enlarged_picture_is_found_and_re_interpolated(name: str, scale: float, centred: bool) -> None:
    x = _photo(name)
    blocky, small = _enlarged(x, scale, centred)
    grid = pixel_grid(blocky)
    assert is_enlarged(grid, MIN)
    for axis, n in ((0, x.shape[1]), (1, x.shape[0])):
        assert grid[axis].period == pytest.approx(n / small.shape[1 - axis], rel=0.01)
    out = depixelate(blocky, grid)
    assert out.shape == x.shape and out.dtype == np.float32
    assert _psnr(out, x) > _psnr(blocky, x) + 1.0
    # about as close as a smooth enlargement of the small picture itself
    smooth = cv2.resize(small, x.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    assert _psnr(out, x) > _psnr(smooth, x) - 1.0  # block centres sit up to half a pixel off at 3.7 px


def test_noise_added_after_the_enlargement_is_averaged_away() -> None:
    x = _photo("coffee")
    blocky = _enlarged(x, 0.5)[0]
    noisy = np.clip(blocky + np.random.default_rng(0).normal(0, 0.02, x.shape), 0, 1).astype(np.float32)
    grid = pixel_grid(noisy)
    assert is_enlarged(grid, MIN)
    assert _psnr(depixelate(noisy, grid), x) > _psnr(noisy, x) + 2.0


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "chelsea", "rocket"])
def test_photos_jpeg_files_and_smooth_enlargements_are_not_taken_for_pixel_blocks(name: str) -> None:
    x = _photo(name)
    assert not is_enlarged(pixel_grid(x), MIN)
    for quality in (15, 40):  # a JPEG's 8 x 8 grid puts a comb at 8, 4, 2.67 and 2 px
        assert not is_enlarged(pixel_grid(encode_decode(x, quality)), MIN)
    small = cv2.resize(x, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    linear = cv2.resize(small, x.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    assert not is_enlarged(pixel_grid(linear), MIN)


def test_a_comb_along_one_axis_only_is_not_pixel_blocks() -> None:
    x = _photo("astronaut")
    doubled = np.repeat(x[::2], 2, axis=0)  # an interlaced video frame's doubled lines
    grid = pixel_grid(doubled)
    assert grid[1].contrast > MIN and not is_enlarged(grid, MIN)


def test_the_deblocking_stage_re_interpolates_only_enlarged_inputs_of_its_tasks() -> None:
    x, y = _photo("astronaut"), _photo("coffee")
    blocky = _enlarged(x, 0.27)[0]
    cfg = DeblockConfig(pixel_tasks=("mff",))
    (out, kept), qualities = deblock_inputs([blocky, y], "mff", cfg)
    assert kept is y and qualities == [0, 0]
    assert _psnr(out, x) > _psnr(blocky, x) + 1.0
    assert pixel_grids([blocky, y], "vif", cfg) == [None, None]  # a task outside pixel_tasks
    assert deblock_inputs([blocky, y], "vif", cfg)[0][0] is blocky
    assert pixel_grids([blocky], "mff", DeblockConfig())[0] is None  # none by default


def test_no_clean_benchmark_input_is_taken_for_pixel_blocks(shared_data) -> None:
    """The module doc's calibration: at native size and at the benches' long side of 512."""
    from allfuse.gate import shrink

    for folder in ("ivif/TNO", "ivif/RoadScene", "ivif/MSRS", "mef/MEFB", "mff/Lytro", "mff/MFI-WHU"):
        for pair in find_pairs(shared_data / folder)[::4]:
            images = pair.load()[0]
            assert pixel_grids(images, pair.task, SHIPPED) == [None] * len(images), pair.name
            small = [shrink(x) for x in images]
            assert pixel_grids(small, pair.task, SHIPPED) == [None] * len(images), pair.name


def test_config_is_checked_and_older_files_keep_their_behaviour() -> None:
    for bad in ({"pixel_tasks": ("sharpen",)}, {"pixel_min": 1.5}, {"pixel_min": 0.0}):
        with pytest.raises(ValueError, match="pixel"):
            DeblockConfig(**bad)
    cfg = DeblockConfig(pixel_tasks=("vif", "mff"), pixel_min=0.8)
    assert DeblockConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.all_tasks == ("vif", "mef", "mff") and DeblockConfig(
        tasks=(), pixel_tasks=("mff",)
    ).all_tasks == ("mff",)
    old = {k: v for k, v in cfg.to_dict().items() if not k.startswith("pixel")}
    assert DeblockConfig.from_dict(old).pixel_tasks == ()
    assert set(SHIPPED.pixel_tasks) == {"vif", "mef", "mff"}


def test_the_command_line_reports_pixel_blocks(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import write_image

    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    write_image(paths[0], _enlarged(_photo(side=192), 0.5)[0])
    write_image(paths[1], _photo("coffee", side=192))
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "f.png"), "--task", "mff", "-v"]) == 0
    said = capsys.readouterr().out
    assert "input 1: pixel blocks of 2.00 x 2.00 px (enlarged by nearest neighbour), re-interpolated" in said
    assert "input 2: no JPEG blocks found" in said
