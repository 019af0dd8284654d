"""The impulse-noise stage: isolated outliers (salt and pepper, dead and hot pixels) are found per channel and
replaced by their 3 x 3 median on an input that measures speckled; every other value, clean inputs, thin
lines and tasks the stage is not configured for are left exactly as they are."""

import json

import numpy as np
import pytest
from photos import resized_photo
from stage_folder import check_stage_file

from allfuse.impulse import ImpulseConfig, impulse_fraction, impulse_inputs, impulse_mask, remove_impulses
from allfuse.io import find_pairs
from allfuse.model_folder import load_impulse, save_impulse
from allfuse.pipeline import FusionPipeline

CFG = ImpulseConfig()


def _speckled(x: np.ndarray, amount: float, seed: int = 0, per_channel: bool = False) -> np.ndarray:
    """Salt and pepper over `amount` of the pixels (of the values when per_channel), half each."""
    rng = np.random.default_rng(seed)
    shape = x.shape if per_channel or x.ndim == 2 else x.shape[:2]
    hit = rng.random(shape) < amount
    salt = rng.random(shape) < 0.5
    if not per_channel and x.ndim == 3:
        hit, salt = hit[..., None], salt[..., None]
    return np.where(hit, salt.astype(np.float32), x).astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.mark.parametrize(("name", "per_channel"), [("camera", False), ("astronaut", False), ("coffee", True)])
def test_salt_and_pepper_is_found_and_removed(name: str, per_channel: bool) -> None:
    clean = resized_photo(name, 256)
    noisy = _speckled(clean, 0.03, per_channel=per_channel)
    assert impulse_fraction(noisy) >= CFG.fire > impulse_fraction(clean)
    out, fractions = impulse_inputs([noisy], "vif", CFG)
    assert fractions[0] >= CFG.fire
    assert _psnr(out[0], clean) > _psnr(noisy, clean) + 10
    assert _psnr(out[0], clean) > 28


def test_only_flagged_values_change() -> None:
    noisy = _speckled(resized_photo("astronaut", 200), 0.02)
    out = remove_impulses(noisy)
    masks = np.stack([impulse_mask(noisy[..., c], CFG.threshold) for c in range(3)], axis=2)
    assert masks.any()
    np.testing.assert_array_equal(out[~masks], noisy[~masks])
    assert not np.array_equal(out[masks], noisy[masks])


def test_a_thin_line_stays_and_isolated_specks_go() -> None:
    x = np.full((40, 40), 0.3, np.float32)
    x[20, 5:35] = 0.9  # a horizontal line one pixel wide
    x[24:36, 12] = 0.05  # a dark vertical one
    x[30, 30] = 1.0  # a lone hot pixel
    x[8, 25:27] = 0.0  # two dead pixels side by side
    mask = impulse_mask(x, CFG.threshold)
    specks = [(30, 30), (8, 25), (8, 26)]
    ends = [(20, 5), (20, 34), (24, 12), (35, 12)]  # a line's end pixel has one like neighbour only
    assert sorted(zip(*np.nonzero(mask), strict=True)) == sorted(specks + ends)
    out = remove_impulses(x)
    assert all(out[p] == pytest.approx(0.3) for p in specks)
    np.testing.assert_array_equal(out[20, 6:34], x[20, 6:34])
    np.testing.assert_array_equal(out[25:35, 12], x[25:35, 12])


def test_a_large_image_is_measured_on_bands_of_rows() -> None:
    """Above MEASURE_PIXELS the fraction comes from STRIPS bands of rows: close to the whole image's."""
    from allfuse.impulse import MEASURE_PIXELS, STRIPS

    noisy = _speckled(resized_photo("astronaut", 1100), 0.02, seed=3)
    assert noisy.shape[0] * noisy.shape[1] > 4 * MEASURE_PIXELS and STRIPS > 1
    whole = float(np.mean([impulse_mask(noisy[..., c], CFG.detect).mean() for c in range(3)]))
    assert impulse_fraction(noisy) == pytest.approx(whole, rel=0.1)


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "chelsea", "immunohistochemistry"])
def test_a_clean_photo_is_returned_as_it_is(name: str) -> None:
    clean = resized_photo(name, 256)
    out, fractions = impulse_inputs([clean], "mff", CFG)
    assert fractions[0] < CFG.fire
    assert out[0] is clean


def test_tasks_outside_the_config_are_left_alone() -> None:
    noisy = _speckled(resized_photo("camera", 128), 0.05)
    out, fractions = impulse_inputs([noisy], "mef", ImpulseConfig(tasks=("vif",)))
    assert out[0] is noisy and fractions == [0.0]


def test_no_clean_benchmark_input_fires(shared_data) -> None:
    """The module doc's calibration at the benches' long side of 512 (every fourth pair of each set)."""
    from allfuse.gate import shrink

    for folder in ("ivif/TNO", "ivif/RoadScene", "ivif/MSRS", "mef/MEFB", "mff/Lytro", "mff/MFI-WHU"):
        for pair in find_pairs(shared_data / folder)[::4]:
            images = [shrink(x) for x in pair.load()[0]]
            assert max(impulse_inputs(images, pair.task, CFG)[1]) < CFG.fire, pair.name


def test_config_is_checked_and_round_trips(tmp_path) -> None:
    for bad in ({"threshold": 0}, {"detect": 1.5}, {"fire": 0}, {"tasks": ("sharpen",)}):
        with pytest.raises(ValueError, match="impulse"):
            ImpulseConfig(**bad)
    cfg = ImpulseConfig(threshold=0.25, detect=0.35, fire=0.01, tasks=("mef", "mff"))
    assert ImpulseConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    check_stage_file(tmp_path, cfg, load_impulse, save_impulse, "impulse.json", '{"impulse": {"level": 2}}')


@pytest.mark.parametrize("name", ["allfuse-reg", "allfuse-fm"])
def test_shipped_models_remove_specks_first_and_keep_the_stage_when_saved(name: str, tmp_path) -> None:
    pipe = FusionPipeline.from_pretrained(name)
    assert pipe.impulse == CFG
    clean = [resized_photo("camera", 128), resized_photo("coffee", 128)]
    noisy = [_speckled(x, 0.03, seed=i) for i, x in enumerate(clean)]
    seen = pipe.gate_inputs(noisy, "mff", deblur=False)
    kept = pipe.gate_inputs(noisy, "mff", deblur=False, denoise=False)  # `denoise` asks for both noise stages
    for s, k, c in zip(seen, kept, clean, strict=True):
        assert _psnr(s, c) > _psnr(k, c) + 10
    again = FusionPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    assert again.impulse == pipe.impulse


def test_the_command_line_reports_and_can_skip_the_stage(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    a, b = resized_photo("astronaut", 128), resized_photo("coffee", 128)
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    write_image(paths[0], _speckled(a, 0.03))
    write_image(paths[1], b)
    outs = {flag: tmp_path / f"out{i}.png" for i, flag in enumerate(("-v", "--no-denoise"))}
    for flag, out in outs.items():
        assert main(["fuse", *map(str, paths), "-o", str(out), "--task", "mff", "--no-gate", flag]) == 0
    said = capsys.readouterr().out
    assert "impulse noise (mff, from 0.25%): input 1: " in said
    assert "replaced by their median; input 2: 0." in said and said.count("kept") >= 1
    on, off = (read_image(out) for out in outs.values())
    assert impulse_fraction(on, CFG.threshold) < impulse_fraction(off, CFG.threshold)
