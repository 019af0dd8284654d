"""The exposure stage: an under-exposed pair gets back the gain its headroom asks for; clean pairs, a dark
bracket member of a multi-exposure pair and infrared + visible pairs are left as they are; a multi-exposure
bracket whose brightest member is dark is lifted by a gamma curve where the config asks for it."""

import itertools
import json

import numpy as np
import pytest
from photos import resized_photo
from stage_folder import check_stage_file

from allfuse.exposure import ExposureConfig, expose_inputs, exposure_gain, headroom, lift_gamma, mean_luma
from allfuse.io import find_pairs
from allfuse.model_folder import load_exposure, save_exposure
from allfuse.pipeline import FusionPipeline

CFG = ExposureConfig()


def _photo(name: str = "astronaut", side: int = 256) -> np.ndarray:
    return resized_photo(name, side)


def _under(x: np.ndarray, k: float) -> np.ndarray:
    """Under-exposed by k in linear light (gamma 2.2), the way a shorter exposure darkens a capture."""
    return np.clip((x**2.2 * k) ** (1 / 2.2), 0, 1).astype(np.float32)


@pytest.mark.parametrize("task", ["mef", "mff"])
def test_an_under_exposed_pair_gets_its_headroom_back(task: str) -> None:
    clean = [_photo(), _photo("coffee")]
    dark = [_under(x, 0.1) for x in clean]  # about 0.35x in display values
    out, gain = expose_inputs(dark, task, CFG)
    assert gain > 2.0
    assert headroom(out, CFG.percentile) == pytest.approx(CFG.target, abs=0.02)
    for a, b in zip(out, clean, strict=True):  # a gain in display values undoes a gain in linear light
        assert np.abs(a - b).mean() < np.abs(_under(b, 0.1) - b).mean() / 5


def test_clean_pairs_and_a_dark_bracket_member_get_no_gain() -> None:
    photos = [_photo(), _photo("coffee"), _photo("chelsea")]
    for task in ("mef", "mff"):
        out, gain = expose_inputs(photos[:2], task, CFG)
        assert gain == 1.0 and all(a is b for a, b in zip(out, photos, strict=False))
    bracket = [_under(photos[0], 0.05), np.clip(photos[0] * 1.6, 0, 1)]  # under- and over-exposed members
    assert exposure_gain(bracket, "mef", CFG) == 1.0


def test_infrared_visible_pairs_are_not_in_the_shipped_stage() -> None:
    night = [_under(_photo("camera"), 0.05), _under(_photo(), 0.05)]
    assert "vif" not in CFG.tasks and exposure_gain(night, "vif", CFG) == 1.0


def test_the_gain_ramps_in_without_a_jump_and_is_bounded() -> None:
    x = [_photo(), _photo("coffee")]
    ks = np.linspace(0.02, 1.0, 200)
    gains = [exposure_gain([_under(im, k) for im in x], "mff", CFG) for k in ks]
    assert max(gains) == pytest.approx(CFG.max_gain) and gains[-1] == 1.0
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(gains))  # darker: never less gain
    steps = np.abs(np.diff(np.log(gains)))
    assert steps.max() < 0.25  # no threshold where a slightly darker pair jumps to the full gain


@pytest.mark.parametrize(("task", "folders"), [("mef", ["mef/MEFB"]), ("mff", ["mff/Lytro", "mff/MFI-WHU"])])
def test_no_clean_benchmark_pair_gets_a_gain(task: str, folders: list[str], shared_data) -> None:
    """The module doc's calibration: `high` sits below every clean pair of the shared benchmark."""
    for folder in folders:
        for pair in find_pairs(shared_data / folder)[::3]:
            assert exposure_gain(pair.load()[0], task, CFG) == 1.0, pair.name


LIFT = ExposureConfig(lift={"mef": 0.45})


def _bracket(x: np.ndarray) -> list[np.ndarray]:
    """A multi-exposure pair of one scene: an under- and an over-exposed member."""
    return [_under(x, 0.15), np.clip(x * 1.3, 0, 1).astype(np.float32)]


def test_a_bracket_darkened_by_a_tone_curve_is_lifted_and_a_clean_one_is_not() -> None:
    clean = _bracket(_photo("chelsea"))
    assert max(map(mean_luma, clean)) > LIFT.lift["mef"]  # its over-exposed member is bright
    out, gain = expose_inputs(clean, "mef", LIFT)
    assert gain == 1.0 and all(np.array_equal(a, b) for a, b in zip(out, clean, strict=True))
    dark = [x**2.5 for x in clean]  # the whole bracket through a gamma: its white point hardly moves
    g = lift_gamma(dark, "mef", LIFT)
    assert LIFT.min_gamma < g < 1
    out, _ = expose_inputs(dark, "mef", LIFT)
    # the brightest member's mean reaches about the target; both members move toward the clean bracket
    assert max(map(mean_luma, out)) == pytest.approx(LIFT.lift["mef"], abs=0.08)
    err = [(np.abs(a - c).mean(), np.abs(b - c).mean()) for a, b, c in zip(out, dark, clean, strict=True)]
    assert err[0][0] < 0.95 * err[0][1] and err[1][0] < 0.8 * err[1][1]
    assert lift_gamma(dark, "mff", LIFT) == 1.0 and lift_gamma(dark, "mef", CFG) == 1.0  # only where set


def test_the_lift_ramps_in_without_a_jump_and_is_bounded() -> None:
    x = _bracket(_photo("chelsea"))
    gammas = [lift_gamma([im**k for im in x], "mef", LIFT) for k in np.linspace(1.0, 12.0, 300)]
    assert gammas[0] == 1.0 and min(gammas) == pytest.approx(LIFT.min_gamma)
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(gammas))  # darker: never less lift
    assert np.abs(np.diff(np.log(gammas))).max() < 0.05


def test_config_is_checked_and_round_trips(tmp_path) -> None:
    with pytest.raises(ValueError, match="exposure"):
        ExposureConfig(high={"mef": 0.5}, low={"mef": 0.6})
    with pytest.raises(ValueError, match="exposure"):
        ExposureConfig(high={"sharpen": 0.5}, low={"sharpen": 0.4})
    with pytest.raises(ValueError, match="exposure"):
        ExposureConfig(high={"mef": 0.9}, low={"mff": 0.4})
    for bad_lift in ({"mef": 1.2}, {"sharpen": 0.4}):
        with pytest.raises(ValueError, match="exposure"):
            ExposureConfig(lift=bad_lift)
    with pytest.raises(ValueError, match="exposure"):
        ExposureConfig(min_gamma=0.0)
    cfg = ExposureConfig(high={"vif": 0.5}, low={"vif": 0.3}, max_gain=2.0, lift={"mef": 0.4}, min_gamma=0.5)
    assert ExposureConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.tasks == ("mef", "vif")
    # an exposure.json written before the lift existed loads without one
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("lift", "min_gamma")}
    assert ExposureConfig.from_dict(old).lift == {}
    bad = '{"exposure": {"gain": 2}}'
    check_stage_file(tmp_path, cfg, load_exposure, save_exposure, "exposure.json", bad)


@pytest.mark.parametrize("name", ["allfuse-reg", "allfuse-fm"])
def test_shipped_models_expose_before_the_gate_and_keep_it_when_saved(name: str, tmp_path) -> None:
    pipe = FusionPipeline.from_pretrained(name)
    assert pipe.exposure is not None and set(pipe.exposure.tasks) == {"mef", "mff"}
    dark = [_under(_photo(), 0.1), _under(_photo("coffee"), 0.1)]
    seen = pipe.gate_inputs(dark, "mff", deblur=False)
    kept = pipe.gate_inputs(dark, "mff", deblur=False, exposure=False)
    assert np.mean(seen[0]) > 1.8 * np.mean(kept[0])
    assert pipe.exposure_gain(dark, "mff") == pytest.approx(exposure_gain(dark, "mff", pipe.exposure))
    # a multi-exposure bracket darkened by a tone curve is lifted before the gate sees it
    bracket = [x**2.5 for x in _bracket(_photo("chelsea"))]
    gain, gamma = pipe.exposure_curve(bracket, "mef")
    assert gain == pytest.approx(exposure_gain(bracket, "mef", pipe.exposure))
    assert gamma < 1 and gamma == pytest.approx(
        lift_gamma(expose_inputs(bracket, "mef", CFG)[0], "mef", pipe.exposure)
    )
    seen = pipe.gate_inputs(bracket, "mef", deblur=False)
    kept = pipe.gate_inputs(bracket, "mef", deblur=False, exposure=False)
    assert np.mean(seen[1]) > 1.15 * np.mean(kept[1])
    again = FusionPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    assert again.exposure == pipe.exposure


def test_the_command_line_reports_and_can_skip_the_stage(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    clean = _photo(side=192)
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for p in paths:
        write_image(p, _under(clean, 0.1))
    outs = {flag: tmp_path / f"out{i}.png" for i, flag in enumerate(("-v", "--no-exposure"))}
    for flag, out in outs.items():
        assert main(["fuse", *map(str, paths), "-o", str(out), "--task", "mff", flag]) == 0
    assert "exposure (mff): under-exposed, gain" in capsys.readouterr().out
    for i, member in enumerate(_bracket(_photo("chelsea", side=192))):
        write_image(paths[i], member**2.5)
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "mef.png"), "--task", "mef", "-v"]) == 0
    assert "dark bracket, lifted by x ** 0." in capsys.readouterr().out
    on, off = (read_image(out).astype(np.float32) / 255 for out in outs.values())
    assert np.abs(on - clean).mean() < np.abs(off - clean).mean()
