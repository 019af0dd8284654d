"""The stripe-removal stage: it finds and removes an infrared camera's column and row offsets, and leaves
clean, noisy and textured images untouched (a false alarm costs more than a stripe left in)."""

import json

import numpy as np
import pytest
from photos import resized_photo
from stage_folder import check_stage_file

from allfuse.destripe import DestripeConfig, destripe_image, destripe_inputs, stripe_levels
from allfuse.model_folder import load_destripe, save_destripe
from allfuse.pipeline import FusionPipeline

CFG = DestripeConfig()


def _photo(name: str = "camera", side: int = 320) -> np.ndarray:
    return resized_photo(name, side)


def _striped(x: np.ndarray, col: float, row: float = 0.0, seed: int = 0) -> np.ndarray:
    """Column offsets that wander slowly down the frame, plus row offsets (std in 1/255 steps)."""
    rng = np.random.default_rng(seed)
    h, w = x.shape[:2]
    wobble = 1.0 + 0.4 * np.sin(np.linspace(0.0, 2.0 * np.pi, h) + rng.uniform(0, 6.3))
    offset = rng.normal(0, col / 255, (1, w)) * wobble[:, None] + rng.normal(0, row / 255, (h, 1))
    if x.ndim == 3:
        offset = offset[..., None]
    return np.clip(x + offset, 0, 1).astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.mark.parametrize("name", ["camera", "astronaut", "brick", "coffee"])
def test_clean_photos_come_back_untouched(name: str) -> None:
    x = _photo(name)
    out, axes = destripe_image(x, CFG)
    assert axes == ()
    np.testing.assert_array_equal(out, x)


def test_isotropic_noise_is_not_taken_for_stripes() -> None:
    x = _photo()
    noisy = np.clip(x + np.random.default_rng(1).normal(0, 12 / 255, x.shape), 0, 1).astype(np.float32)
    cols, rows = stripe_levels(noisy, CFG)
    assert cols > 1.0 and rows > 1.0  # the noise does reach the estimates ...
    assert destripe_image(noisy, CFG)[1] == ()  # ... on both axes alike: no stripes


@pytest.mark.parametrize(("col", "row", "axes", "gain_db"), [(4, 0, (1,), 3.0), (10, 4, (1, 0), 6.0)])
def test_column_and_row_stripes_are_found_and_removed(
    col: float, row: float, axes: tuple, gain_db: float
) -> None:
    x = _photo()
    s = _striped(x, col, row)
    out, found = destripe_image(s, CFG)
    assert found == axes
    assert _psnr(out, x) > _psnr(s, x) + gain_db
    levels = stripe_levels(out, CFG)
    assert levels[0] < CFG.floor and levels[1] < CFG.floor  # nothing left the detector would find


def test_row_stripes_alone_are_left_alone() -> None:
    """Rows are tested only behind column stripes: alone, row structure is what clean and noisy infrared
    frames show more of (module doc)."""
    x = _photo()
    s = np.ascontiguousarray(_striped(x.T, 8).T)  # column stripes of the transpose: row stripes
    assert stripe_levels(s, CFG)[1] > CFG.floor
    out, found = destripe_image(s, CFG)
    assert found == ()
    np.testing.assert_array_equal(out, s)


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (3, 3), (31, 200), (200, 31, 3)])
def test_images_too_small_to_tell_stripes_from_content_pass_untouched(shape: tuple) -> None:
    x = np.random.default_rng(0).random(shape).astype(np.float32) * 0.8
    x[:, ::2] += 0.1  # every other column brighter: stripy, even so
    out, found = destripe_image(x, CFG)
    assert found == ()
    np.testing.assert_array_equal(out, x)


def test_colour_images_get_the_same_change_on_every_channel() -> None:
    x = _photo("astronaut")
    s = _striped(x, 8)
    out, found = destripe_image(s, CFG)
    assert found == (1,)
    change = out - s
    inside = ((s > 0) & (s < 1) & (out > 0) & (out < 1)).all(axis=2)  # no channel clipped
    np.testing.assert_allclose(change[inside][:, 0], change[inside][:, 2], atol=1e-5)
    assert _psnr(out, x) > _psnr(s, x) + 3.0


def test_only_the_infrared_input_and_only_the_listed_tasks() -> None:
    ir, vis = _striped(_photo(), 8), _striped(_photo("astronaut"), 8, seed=2)
    out = destripe_inputs([ir, vis], "vif", CFG)
    assert not np.array_equal(out[0], ir) and out[1] is vis
    both = destripe_inputs([ir, vis], "vif", DestripeConfig(infrared_only=False))
    assert not np.array_equal(both[1], vis)
    assert all(a is b for a, b in zip(destripe_inputs([ir, vis], "mff", CFG), [ir, vis], strict=True))


def test_config_is_checked_and_round_trips(tmp_path) -> None:
    with pytest.raises(ValueError, match="destripe"):
        DestripeConfig(floor=0)
    with pytest.raises(ValueError, match="destripe"):
        DestripeConfig(tasks=("sharpen",))
    with pytest.raises(ValueError, match="odd window"):
        DestripeConfig(window=8)
    cfg = DestripeConfig(floor=3.5, tasks=("vif", "mff"))
    assert DestripeConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    bad = '{"destripe": {"floor": "high"}}'
    check_stage_file(tmp_path, cfg, load_destripe, save_destripe, "destripe.json", bad)


def test_shipped_models_destripe_the_infrared_input_before_the_gate_and_the_model() -> None:
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    assert pipe.destripe is not None and "vif" in pipe.destripe.tasks
    ir, vis = _striped(_photo(), 10), _photo("camera")
    seen = pipe.gate_inputs([ir, vis], "vif")[0]
    assert stripe_levels(seen, CFG)[0] < stripe_levels(ir, CFG)[0] / 3
    kept = pipe.gate_inputs([ir, vis], "vif", destripe=False)[0]
    assert stripe_levels(kept, CFG)[0] > CFG.floor


def test_a_saved_pipeline_keeps_its_stage(tmp_path) -> None:
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    pipe.destripe = DestripeConfig(floor=4.0)
    again = FusionPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    assert again.destripe == DestripeConfig(floor=4.0)


def test_the_command_line_reports_and_can_skip_the_stage(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    write_image(ir, _striped(_photo(), 10, 4))
    write_image(vis, _photo("astronaut"))
    outs = {flag: tmp_path / f"out{i}.png" for i, flag in enumerate(("-v", "--no-destripe"))}
    for flag, out in outs.items():
        assert main(["fuse", str(ir), str(vis), "-o", str(out), "--task", "vif", flag]) == 0
    assert "stripe removal (vif): input 1: column and row stripes removed" in capsys.readouterr().out
    on, off = (read_image(out).astype(np.float32).mean(axis=2) / 255 for out in outs.values())
    assert stripe_levels(on, CFG)[0] < stripe_levels(off, CFG)[0] / 2  # the fusion keeps fewer stripes
