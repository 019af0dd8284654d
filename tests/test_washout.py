"""Washed-out visible image (allfuse.washout): an infrared + visible fusion takes the infrared image's fine
detail where the visible image is near white and the infrared image has detail of its own; a dark visible
image, a flat infrared image beside bright detail, and other tasks are left alone."""

import cv2
import numpy as np
import pytest
from photos import resized_photo

from allfuse.exposure import dark_floor
from allfuse.pipeline import WASHOUT, FusionPipeline
from allfuse.washout import (
    BAND_SIGMA,
    BRIGHT,
    FLOOR,
    infrared_detail,
    washed_level,
    washed_share,
    washout_weight,
)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma)


def band(x: np.ndarray) -> np.ndarray:
    """The detail band the step works on, of the luminance."""
    y = x if x.ndim == 2 else x.mean(axis=2)
    return y - cv2.GaussianBlur(y, (0, 0), BAND_SIGMA)


def whitened(x: np.ndarray, floor: float = 0.85) -> np.ndarray:
    """A visible image washed toward white: its contrast squeezed into [floor, 1]."""
    return (floor + (1.0 - floor) * x).astype(np.float32)


def test_a_washed_out_visible_image_gets_the_infrared_detail() -> None:
    ir = resized_photo("camera", 128)  # a detailed thermal stand-in
    vis = whitened(resized_photo("astronaut", 128), BRIGHT[1])
    soft = cv2.GaussianBlur((ir[..., None] + vis) / 2.0, (0, 0), 2.0)  # a pale, soft fusion
    out = infrared_detail(soft, [ir, vis])
    assert washout_weight(vis).min() == 1.0 and washed_share(vis) == 1.0 and washed_level(vis) == 1.0
    before = np.abs(band(soft) - band(ir)).mean()
    assert np.abs(band(out) - band(ir)).mean() < 0.3 * before  # the infrared's fine detail
    # coarser than the band the fusion stays: brightness and colour
    coarse = 3 * BAND_SIGMA
    assert np.abs(blur(out, coarse) - blur(soft, coarse)).mean() < 0.02
    assert out.shape == soft.shape and out.min() >= 0 and out.max() <= 1
    # a visible image of ordinary brightness: the fusion is returned as it came
    dark = 0.6 * resized_photo("astronaut", 128)
    assert washout_weight(dark).max() == 0.0
    np.testing.assert_array_equal(infrared_detail(soft, [ir, dark]), soft)
    # bright in part, but with its dark values where they were (a daylight scene, no washout): the same
    day = np.clip(1.4 * resized_photo("astronaut", 128), 0, 1)
    assert washed_share(day) > 0.1 and washed_level(day) == 0.0
    np.testing.assert_array_equal(infrared_detail(soft, [ir, day]), soft)


def test_the_floor_ramps_the_step_without_a_jump() -> None:
    ir = resized_photo("camera", 96)
    base = resized_photo("astronaut", 96)
    soft = cv2.GaussianBlur(ir, (0, 0), 2.0)
    floors, moved = [], []
    for lift in np.linspace(0.3, 0.75, 10):
        vis = (lift + (1.0 - lift) * base).astype(np.float32)
        floors.append(dark_floor(vis))
        moved.append(float(np.abs(infrared_detail(soft, [ir, vis]) - soft).mean()))
    assert floors == sorted(floors) and floors[0] < FLOOR[0] and floors[-1] > FLOOR[1]
    assert moved[0] == 0.0 and moved[-1] > 0.01 and moved == sorted(moved)
    assert max(np.diff(moved)) < 0.5 * moved[-1]  # no jump between two neighbouring lifts


def test_bright_visible_detail_beside_a_flat_infrared_image_is_kept() -> None:
    sign = np.full((96, 96), 242, np.uint8)
    cv2.putText(sign, "AB", (10, 70), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 190, 4)  # lettering on a white sign
    vis = sign.astype(np.float32) / 255.0
    ir = np.full((96, 96), 0.4, np.float32) + np.random.default_rng(0).normal(0, 1e-3, (96, 96)).astype(
        np.float32
    )
    out = infrared_detail(vis, [ir, vis])
    assert washed_share(vis) > 0.8
    assert np.abs(out - vis).max() < 0.01  # the infrared has no detail there: the lettering stays


def test_strength_bands_and_errors() -> None:
    rng = np.random.default_rng(1)
    ir = cv2.GaussianBlur(rng.random((203, 157)).astype(np.float32), (0, 0), 1.0)
    vis = whitened(rng.random((203, 157, 3)).astype(np.float32), 0.8)
    out = cv2.GaussianBlur(rng.random((203, 157, 3)).astype(np.float32), (0, 0), 3.0)
    full, half = infrared_detail(out, [ir, vis]), infrared_detail(out, [ir, vis], strength=0.5)
    assert 0.4 < np.abs(half - out).mean() / np.abs(full - out).mean() < 0.6
    np.testing.assert_array_equal(infrared_detail(out, [ir, vis], strength=0.0), out)
    np.testing.assert_allclose(infrared_detail(out, [ir, vis], band_pixels=157 * 40), full, atol=1e-5)
    with pytest.raises(ValueError, match="takes \\(infrared, visible\\), got 3 images"):
        infrared_detail(out, [ir, vis, vis])
    with pytest.raises(ValueError, match="differ in size"):
        infrared_detail(out, [ir[:100], vis])


@pytest.fixture(scope="module")
def pipe() -> FusionPipeline:
    return FusionPipeline.from_pretrained("allfuse-reg")


def test_the_pipeline_takes_the_infrared_detail_for_a_washed_out_pair_only(pipe) -> None:
    assert WASHOUT and pipe.washout
    ir = resized_photo("camera", 128)
    vis = np.clip(1.2 * resized_photo("astronaut", 128) + 0.6, 0, 1)  # over-exposed (a flat one is stretched)
    on, off = pipe([ir, vis], task="vif"), pipe([ir, vis], task="vif", washout=False)
    assert washed_share(pipe.gate_inputs([ir, vis], "vif")[1]) > 0.5
    assert np.abs(band(on) - band(ir)).mean() < 0.8 * np.abs(band(off) - band(ir)).mean()
    # the same pair read as a multi-focus one, and a visible image of ordinary brightness: no step
    np.testing.assert_array_equal(pipe([ir, vis], task="mff"), pipe([ir, vis], task="mff", washout=False))
    dim = 0.5 * resized_photo("astronaut", 128)
    np.testing.assert_array_equal(pipe([ir, dim], task="vif"), pipe([ir, dim], task="vif", washout=False))


def test_verbose_fuse_says_how_much_of_the_visible_image_is_washed_out(pipe, tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    paths = [tmp_path / "ir.png", tmp_path / "vis.png"]
    write_image(paths[0], resized_photo("camera", 96))
    write_image(paths[1], np.clip(1.2 * resized_photo("astronaut", 96) + 0.6, 0, 1))
    visible = pipe.gate_inputs([read_image(p) for p in paths], "vif")[1]
    share, floor = washed_share(visible), dark_floor(visible)
    args = ["fuse", *map(str, paths), "-o", str(tmp_path / "f.png"), "--task", "vif", "-v"]
    assert main(args) == 0
    line = [s for s in capsys.readouterr().out.splitlines() if s.startswith("washed-out visible (vif)")]
    assert share > 0.5 and floor > FLOOR[1] and line
    assert f"dark-channel floor {floor:.2f} (none up to {FLOOR[0]:g}, full from {FLOOR[1]:g})" in line[0]
    assert f"{share:.0%} of it near white (luminance {BRIGHT[0]:g} to {BRIGHT[1]:g})" in line[0]
    assert "takes 100% of the infrared image's fine detail there" in line[0]
    assert main([*args, "--no-washout"]) == 0
    assert "washed-out visible" not in capsys.readouterr().out
