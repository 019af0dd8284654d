"""The exposure stage: an under-exposed pair gets back the gain its headroom asks for; clean pairs, a dark
bracket member of a multi-exposure pair and an infrared + visible night pair are left as they are; a
multi-exposure bracket whose brightest member is dark is lifted by a gamma curve where the config asks for it;
a flat (veiled) input gets its contrast stretched back, a clean or merely dark one does not; an infrared +
visible pair flat to both cameras is stretched as a whole, a scene flat to one camera is not; a haze the
corrector leaves is dehazed by the dark channel prior, a clean, gray or over-exposed input is not."""

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from photos import resized_photo
from stage_folder import check_stage_file

from allfuse.exposure import (
    ExposureConfig,
    bracket_plan,
    dark_floor,
    dehaze,
    dehazed_inputs,
    expose_inputs,
    exposure_gain,
    haze_weight,
    headroom,
    lift_gamma,
    luma_levels,
    mean_luma,
    pair_plan,
    stretch_factor,
    stretch_factors,
    stretched_inputs,
    unveiled_inputs,
    veil_plan,
)
from allfuse.io import find_pairs
from allfuse.model_folder import load_exposure, resolve_model_folder, save_exposure
from allfuse.pipeline import FusionPipeline
from allfuse.stages import InputStages

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


def test_infrared_visible_pairs_get_a_gain_only_where_a_config_sets_one() -> None:
    night = [_under(_photo("camera"), 0.05), _under(_photo(), 0.05)]
    assert "vif" not in CFG.tasks and exposure_gain(night, "vif", CFG) == 1.0
    shipped = load_exposure(resolve_model_folder("allfuse-reg"))
    assert exposure_gain(night, "vif", shipped) > 2.0  # both cameras dark: under-exposed
    # a night scene: a dark visible image beside a thermal image whose hot objects reach the top
    assert exposure_gain([_photo("camera"), _under(_photo(), 0.05)], "vif", shipped) == 1.0


def test_the_gain_ramps_in_without_a_jump_and_is_bounded() -> None:
    x = [_photo(), _photo("coffee")]
    ks = np.linspace(0.02, 1.0, 200)
    gains = [exposure_gain([_under(im, k) for im in x], "mff", CFG) for k in ks]
    assert max(gains) == pytest.approx(CFG.max_gain) and gains[-1] == 1.0
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(gains))  # darker: never less gain
    steps = np.abs(np.diff(np.log(gains)))
    assert steps.max() < 0.25  # no threshold where a slightly darker pair jumps to the full gain


BENCHMARK = {
    "mef": ["mef/MEFB"],
    "mff": ["mff/Lytro", "mff/MFI-WHU"],
    "vif": ["ivif/MSRS", "ivif/RoadScene", "ivif/TNO"],
}


@pytest.mark.parametrize("task", ["mef", "mff", "vif"])
def test_no_clean_benchmark_pair_gets_a_gain_or_a_stretch(task: str, shared_data) -> None:
    """The module doc's calibration: `high` and `stretch_high` sit below every clean pair of the shared
    benchmark (checked here on every third pair, at native size)."""
    cfg = load_exposure(resolve_model_folder("allfuse-reg"))
    for folder in BENCHMARK[task]:
        for pair in find_pairs(shared_data / folder)[::3]:
            images = pair.load()[0]
            assert exposure_gain(images, task, cfg) == 1.0, pair.name
            assert stretch_factors(images, task, cfg) == [1.0] * len(images), pair.name
            assert bracket_plan(images, task, cfg) == (1.0, 0.0), pair.name
            assert pair_plan(images, task, cfg)[1] == 0.0, pair.name


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


STRETCH = ExposureConfig(
    stretch_high={"mff": 0.45, "vif": 0.3},
    stretch_low={"mff": 0.3, "vif": 0.26},
    stretch_target={"mff": [0.8], "vif": [0.87, 0.65]},
    stretch_black={"mff": [0.05], "vif": [0.08, 0.3]},
)


def _flat(x: np.ndarray, keep: float) -> np.ndarray:
    """Contrast pulled toward the image's mean luminance, `keep` of every distance left (a veil)."""
    m = luma_levels(x, 99.5)[2]
    return (m + keep * (x - m)).astype(np.float32)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_a_flat_input_gets_its_contrast_back_and_a_clean_one_is_kept(name: str) -> None:
    clean = _photo(name)
    black, white, _ = luma_levels(clean, 99.5)
    assert white - black > STRETCH.stretch_high["mff"]
    flat = _flat(clean, 0.3)
    k = stretch_factor(flat, "mff", STRETCH)
    # full stretch: to the target range, about the inverse of the veil for a photo spanning about 0.8
    b, w, _ = luma_levels(flat, 99.5)
    assert k == pytest.approx(STRETCH.stretch_target["mff"][0] / (w - b), rel=1e-6) and k > 2.0
    (out, kept), ks = stretched_inputs([flat, clean], "mff", STRETCH)
    assert ks[1] == 1.0 and kept is clean  # a clean input is returned as it is
    assert np.abs(out - clean).mean() < np.abs(flat - clean).mean() / 2
    ob, ow, _ = luma_levels(out, 99.5)
    assert ow - ob == pytest.approx(STRETCH.stretch_target["mff"][0], abs=0.03) and 0 <= ob and ow <= 1
    assert stretch_factor(flat, "mef", STRETCH) == 1.0  # a task the config does not stretch


def test_a_dark_input_is_not_taken_for_a_flat_one() -> None:
    dark = _under(_photo(), 0.02)  # a narrow range, but from black: under-exposed, not veiled
    black, white, _ = luma_levels(dark, 99.5)
    assert white - black < STRETCH.stretch_low["mff"] and luma_levels(dark, 99.5)[2] < STRETCH.stretch_mean
    assert stretch_factor(dark, "mff", STRETCH) == 1.0


def test_a_veil_toward_white_is_undone_whatever_its_level() -> None:
    clean = _photo("coffee")
    black = luma_levels(clean, 99.5)[0]
    cfg = ExposureConfig(**{**STRETCH.to_dict(), "stretch_black": {"mff": [black], "vif": [0.08, 0.3]}})
    for level in (0.5, 0.9):  # a light gray, a bright airlight (haze)
        veiled = (0.3 * clean + 0.7 * level).astype(np.float32)
        out, ks = stretched_inputs([veiled], "mff", cfg)
        assert ks[0] > 2.0
        assert (
            np.abs(out[0] - clean).mean() < np.abs(veiled - clean).mean() / 3
        )  # darkened back, not just spread
        assert np.mean(out[0] >= 1.0) < 0.01


def test_an_over_exposed_input_is_not_stretched_and_the_factor_is_bounded() -> None:
    clean = _photo("coffee")
    burnt = np.clip(0.8 + clean, 0, 1).astype(np.float32)  # most of it at white
    black, white, _ = luma_levels(burnt, 99.5)
    assert white - black < STRETCH.stretch_low["mff"] and luma_levels(burnt, 99.5)[2] > STRETCH.stretch_mean
    assert stretch_factor(burnt, "mff", STRETCH) == 1.0
    assert stretch_factor(_flat(clean, 0.05), "mff", STRETCH) == STRETCH.stretch_max


def test_a_pair_darkened_as_a_whole_is_brightened_not_stretched() -> None:
    shipped = load_exposure(resolve_model_folder("allfuse-reg"))
    hazy = (0.55 + 0.4 * _photo()).astype(np.float32)  # a flat visible image, as RoadScene's are
    pair = [_photo("camera"), hazy]
    dark = [(0.3 * x).astype(np.float32) for x in pair]  # albumentations' contrast loss: x' = (1 + a) x
    black, white, mean = luma_levels(dark[1], 99.5)
    assert white - black < shipped.stretch_low["vif"] and mean < shipped.stretch_mean  # flat, but dark
    assert stretch_factors(dark, "vif", shipped) == [1.0, 1.0]
    out, amplification = expose_inputs(dark, "vif", shipped)
    assert amplification > 2.0 and exposure_gain(dark, "vif", shipped) == pytest.approx(amplification)
    for a, b in zip(out, pair, strict=True):
        assert np.abs(a - b).mean() < np.abs(0.3 * b - b).mean() / 4
    # the same flat image veiled rather than darkened (pulled toward its mean) is stretched
    veiled = _flat(hazy, 0.3)
    assert luma_levels(veiled, 99.5)[2] > shipped.stretch_mean
    assert stretch_factors([pair[0], veiled], "vif", shipped)[1] > 2.0


def test_infrared_and_visible_inputs_are_stretched_to_their_own_targets() -> None:
    flat = _flat(_photo("camera"), 0.25)
    k_ir, k_vis = stretch_factors([flat, flat], "vif", STRETCH)
    assert k_ir / k_vis == pytest.approx(0.87 / 0.65, rel=1e-6)


def test_the_stretch_ramps_in_without_a_jump() -> None:
    x = _photo("chelsea")
    ks = [stretch_factor(_flat(x, keep), "mff", STRETCH) for keep in np.linspace(1.0, 0.2, 200)]
    assert ks[0] == 1.0 and max(ks) > 3.0
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(ks))  # flatter: never less stretch
    assert np.abs(np.diff(np.log(ks))).max() < 0.1


VEIL = ExposureConfig(
    **{**STRETCH.to_dict(), "veil_dark": {"mff": [0.15, 0.2]}, "veil_range": {"mff": [0.6, 0.5]}}
)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_a_mildly_veiled_colour_input_is_read_by_its_dark_channel(name: str) -> None:
    clean = _photo(name)
    assert dark_floor(clean) < 0.05  # a clean scene has dark pixels somewhere in most windows
    veiled = _flat(clean, 0.5)  # half the contrast: a range a clean flat scene can also have
    black, white, _ = luma_levels(veiled, 99.5)
    assert STRETCH.stretch_high["mff"] < white - black < VEIL.veil_range["mff"][1]
    assert dark_floor(veiled) > VEIL.veil_dark["mff"][1]
    assert stretch_factor(veiled, "mff", VEIL) == 1.0  # the range alone does not tell
    k, w = veil_plan(veiled, "mff", VEIL)
    assert w == 1.0 and k == pytest.approx(VEIL.stretch_target["mff"][0] / (white - black), rel=1e-6)
    (out,), ks = unveiled_inputs([veiled], "mff", VEIL)
    assert ks == [k] and np.abs(out - clean).mean() < np.abs(veiled - clean).mean() / 2
    assert veil_plan(clean, "mff", VEIL) == (1.0, 0.0) and veil_plan(veiled, "mef", VEIL) == (1.0, 0.0)
    (kept,), ks = unveiled_inputs([clean], "mff", VEIL)
    assert kept is clean and ks == [1.0]
    # the stages run it after the corrector, and hand its factor on as an amplification
    stages = InputStages(exposure=VEIL)
    seen = stages.restore_gain([veiled, veiled], "mff")
    assert seen.unveiled == (k, k) and seen.gain == pytest.approx(k)
    assert np.allclose(seen.images[0], out)
    assert stages.restore_gain([veiled, veiled], "mff", exposure=False).unveiled == (1.0, 1.0)


BRACKET = ExposureConfig(  # the bracket stretch alone (no gain)
    high={}, low={}, bracket_high={"mef": 0.5}, bracket_low={"mef": 0.4}, bracket_target={"mef": 0.93}
)


def _flat_channels(x: np.ndarray, keep: float) -> np.ndarray:
    """Every channel pulled toward its own mean, `keep` of every distance left (ImageNet-C's contrast)."""
    m = x.mean(axis=(0, 1), keepdims=True)
    return (m + keep * (x - m)).astype(np.float32)


PAIR = ExposureConfig(**{**STRETCH.to_dict(), "pair_high": {"vif": 0.5}, "pair_low": {"vif": 0.45}})


def _vif_pair(side: int = 256) -> list[np.ndarray]:
    """A gray "thermal" image and a colour visible one, both spanning most of the range."""
    return [_photo("camera", side), _photo("astronaut", side)]


def _flat_pair(pair: list[np.ndarray], keep: float = 0.4) -> list[np.ndarray]:
    """Both cameras flattened as ImageNet-C's contrast does; the photo standing in for the visible image
    spans the whole range, wider than a visible camera's typical 0.64, so it keeps 5/8 as much."""
    return [_flat_channels(pair[0], keep), _flat_channels(pair[1], keep * 0.625)]


def test_a_pair_flat_to_both_cameras_is_stretched_and_one_flat_camera_is_not() -> None:
    clean = _vif_pair()
    assert pair_plan(clean, "vif", PAIR)[1] == 0.0 and stretch_factors(clean, "vif", PAIR) == [1.0, 1.0]
    flat = _flat_pair(clean)
    ranges = [luma_levels(x, 99.5)[1] - luma_levels(x, 99.5)[0] for x in flat]
    s, w = pair_plan(flat, "vif", PAIR)
    assert s == pytest.approx(max(r / t for r, t in zip(ranges, PAIR.stretch_target["vif"], strict=True)))
    assert s < PAIR.pair_low["vif"] and w == 1.0
    # the infrared image alone reads like a flat thermal scene: its own reading leaves it
    assert ranges[0] > PAIR.stretch_high["vif"] and stretch_factors(flat, "vif", STRETCH)[0] == 1.0
    ks = stretch_factors(flat, "vif", PAIR)
    for k, r, t in zip(ks, ranges, PAIR.stretch_target["vif"], strict=True):
        assert k == pytest.approx(min(PAIR.stretch_max, t / r), rel=1e-6) and k > 2.0
    out, _ = stretched_inputs(flat, "vif", PAIR)
    assert np.abs(out[0] - clean[0]).mean() < np.abs(flat[0] - clean[0]).mean() / 2
    # one camera flat is a scene (fog before the visible camera, a uniform thermal background): no reading
    for one in ([flat[0], clean[1]], [clean[0], flat[1]]):
        assert pair_plan(one, "vif", PAIR)[1] == 0.0
    assert stretch_factors([flat[0], clean[1]], "vif", PAIR) == [1.0, 1.0]
    # an over-exposed input is not flat, a dark one is narrow by nature: no pair reading; nor without the
    # keys, nor for another task
    burnt = np.clip(0.8 + clean[1], 0, 1).astype(np.float32)
    assert pair_plan([flat[0], burnt], "vif", PAIR) == (math.inf, 0.0)
    dark = [(0.3 * x).astype(np.float32) for x in clean]
    assert pair_plan(dark, "vif", PAIR) == (math.inf, 0.0)
    assert pair_plan(flat, "vif", STRETCH) == (math.inf, 0.0) and pair_plan(flat, "mff", PAIR)[1] == 0.0


def test_the_pair_stretch_ramps_in_without_a_jump() -> None:
    clean = _vif_pair()
    ks = [stretch_factors(_flat_pair(clean, keep), "vif", PAIR)[0] for keep in np.linspace(1, 0.3, 300)]
    assert ks[0] == 1.0 and max(ks) > 2.0
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(ks))
    assert np.abs(np.diff(np.log(ks))).max() < 0.1


def test_a_flattened_bracket_gets_one_factor_back_and_a_clean_one_is_kept() -> None:
    clean = [_under(_photo("chelsea"), 0.35), np.clip(_photo("chelsea") * 1.2, 0, 1).astype(np.float32)]
    assert bracket_plan(clean, "mef", BRACKET) == (1.0, 0.0)
    flat = [_flat_channels(x, 0.2) for x in clean]
    k, w = bracket_plan(flat, "mef", BRACKET)
    bright = flat[1]  # the narrowest bright, unclipped member sets the factor
    black, white, mean = luma_levels(bright, 99.5)
    assert mean >= BRACKET.stretch_mean and white - black < BRACKET.bracket_low["mef"]
    assert w == 1.0 and k == pytest.approx(min(BRACKET.stretch_max, 0.93 / (white - black)), rel=1e-6)
    out, ks = unveiled_inputs(flat, "mef", BRACKET)
    assert ks == [k, k]  # one factor for the whole bracket: the members keep their exposure relation
    for x, y, c in zip(out, flat, clean, strict=True):
        assert mean_luma(x) == pytest.approx(mean_luma(y), abs=0.02)  # about the mean: no exposure shift
        assert np.abs(x - c).mean() < np.abs(y - c).mean() / 2
    # the other tasks and a folder without the keys keep the bracket; so does one whose only narrow
    # member is dark (an under-exposed member is narrow by nature) or clipped (an over-exposed one)
    assert bracket_plan(flat, "mff", BRACKET) == (1.0, 0.0) and bracket_plan(flat, "mef", CFG) == (1.0, 0.0)
    dark = [_flat_channels(clean[0], 0.2), clean[1]]
    assert luma_levels(dark[0], 99.5)[2] < BRACKET.stretch_mean
    assert bracket_plan(dark, "mef", BRACKET) == (1.0, 0.0)
    blown = [clean[0], np.clip(clean[1] * 3.0, 0, 1).astype(np.float32)]
    assert bracket_plan(blown, "mef", BRACKET) == (1.0, 0.0)
    # the stages run it after the corrector, and hand its factor on as an amplification
    seen = InputStages(exposure=BRACKET).restore_gain(flat, "mef")
    assert seen.unveiled == (k, k) and seen.gain == pytest.approx(k)


def test_the_bracket_stretch_ramps_in_without_a_jump() -> None:
    clean = [_under(_photo("coffee"), 0.35), _photo("coffee")]
    ks = [
        bracket_plan([_flat_channels(x, keep) for x in clean], "mef", BRACKET)[0]
        for keep in np.linspace(1, 0.2, 200)
    ]
    assert ks[0] == 1.0 and max(ks) > 3.0
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(ks))
    assert np.abs(np.diff(np.log(ks))).max() < 0.1


HAZE = ExposureConfig(high={}, low={}, dehaze_dark={"mff": [0.2, 0.25]})


def _fog(x: np.ndarray, thick: float = 0.7) -> np.ndarray:
    """A haze that varies across the picture (Koschmieder: I = J t + A (1 - t)): transmission from 1 - thick
    at the top-left to 0.4 more at the bottom-right, a white-gray airlight."""
    h, w = x.shape[:2]
    across = (np.add.outer(np.arange(h) / h, np.arange(w) / w) / 2).astype(np.float32)
    t = np.clip((1.0 - thick) + 0.4 * across, 0.0, 1.0)
    t = t[..., None] if x.ndim == 3 else t
    return (x * t + 0.9 * (1.0 - t)).astype(np.float32)


def test_a_haze_left_is_dehazed_and_a_clean_gray_or_over_exposed_input_is_not() -> None:
    clean = _photo("astronaut")
    hazy = _fog(clean)
    black, white, _ = luma_levels(hazy, 99.5)
    assert white - black > 0.6  # the veil's reading needs a narrow range: this one is too wide for it
    assert dark_floor(hazy) > HAZE.dehaze_dark["mff"][1] and haze_weight(hazy, "mff", HAZE) == 1.0
    assert haze_weight(clean, "mff", HAZE) == 0.0
    out = dehaze(hazy, 1.0)
    assert np.abs(out - clean).mean() < np.abs(hazy - clean).mean() / 2 and out.dtype == np.float32
    half = dehaze(hazy, 0.5)
    assert np.allclose(half, (hazy + out) / 2, atol=1e-5)  # the weight blends the two
    # the same at a larger size: the airlight and the transmission are read on the 512 px copy
    big = _fog(_photo("astronaut", 1024))
    assert (
        np.abs(dehaze(big, 1.0) - _photo("astronaut", 1024)).mean()
        < np.abs(big - _photo("astronaut", 1024)).mean() / 2
    )
    # a gray image has no dark-channel prior; another task or a folder without the key: no dehazing
    gray = _fog(_photo("camera"))
    assert dark_floor(gray) > 0.25 and haze_weight(gray, "mff", HAZE) == 0.0
    assert haze_weight(hazy, "mef", HAZE) == 0.0 and haze_weight(hazy, "mff", CFG) == 0.0
    # an input that reached the corrector over-exposed is kept; the others are dehazed, a clean one kept
    (a, b, c), ws = dehazed_inputs([hazy, hazy, clean], "mff", HAZE, [True, False, False])
    assert ws == [0.0, 1.0, 0.0] and a is hazy and c is clean and np.allclose(b, out)
    # the stages run it last and report it; an over-exposed input is flagged before the corrector
    seen = InputStages(exposure=HAZE).restore_gain([hazy, clean], "mff")
    assert seen.dehazed == (1.0, 0.0) and np.allclose(seen.images[0], out, atol=1e-6)
    burnt = np.clip(_fog(clean) * 1.6, 0, 1).astype(np.float32)
    assert InputStages(exposure=HAZE).restore_gain([burnt, clean], "mff").dehazed == (0.0, 0.0)


def test_no_clean_multi_focus_input_reads_hazy_after_the_corrector(shared_data) -> None:
    """The module doc's calibration ("Haze left"): every third clean multi-focus pair of the shared benchmark,
    through the shipped stages up to the dehazing (deblurring skipped), gets none."""
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    for folder in BENCHMARK["mff"]:
        for pair in find_pairs(shared_data / folder)[::3]:
            assert pipe.stages.restore_gain(pair.load()[0], "mff", deblur=False).dehazed == (0.0, 0.0), (
                pair.name
            )


def test_the_dehazing_ramps_in_without_a_jump() -> None:
    clean = _photo("coffee")
    ws = [haze_weight(_fog(clean, thick), "mff", HAZE) for thick in np.linspace(0.0, 0.9, 200)]
    assert ws[0] == 0.0 and ws[-1] == 1.0
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(ws))
    assert np.abs(np.diff(ws)).max() < 0.1


def test_the_dark_floor_does_not_depend_on_the_image_size() -> None:
    for veiled in (False, True):
        sizes = [_photo("coffee", side) for side in (384, 1024, 2048)]
        floors = [dark_floor(_flat(x, 0.5) if veiled else x) for x in sizes]
        assert max(floors) - min(floors) < 0.02, floors


def test_the_veil_ramps_in_without_a_jump() -> None:
    x = _photo("astronaut")
    ks = [veil_plan(_flat(x, keep), "mff", VEIL)[0] for keep in np.linspace(1.0, 0.2, 200)]
    assert ks[0] == 1.0 and max(ks) > 2.0
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(ks))
    assert np.abs(np.diff(np.log(ks))).max() < 0.1
    # the veil's reading starts before the range's stretch: a milder loss is undone
    plain = [stretch_factor(_flat(x, keep), "mff", STRETCH) for keep in np.linspace(1.0, 0.2, 200)]
    assert np.argmax(np.array(ks) > 1.0) < np.argmax(np.array(plain) > 1.0)


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
    good = {"stretch_high": {"mff": 0.45}, "stretch_low": {"mff": 0.3}, "stretch_target": {"mff": [0.8]}}
    good["stretch_black"] = {"mff": [0.05]}
    ExposureConfig(**good)
    bad_stretches = [
        good | {"stretch_high": {"mff": 0.3}, "stretch_low": {"mff": 0.45}},
        good | {"stretch_target": {"mff": [0.4]}},
        good | {"stretch_target": {"mff": []}},
        good | {"stretch_low": {"vif": 0.3}},
        good | {"stretch_target": {}},
        good | {"stretch_black": {}},
        good | {"stretch_black": {"mff": [1.2]}},
    ]
    for bad_stretch in bad_stretches:
        with pytest.raises(ValueError, match="stretch"):
            ExposureConfig(**bad_stretch)
    bad_veils = [
        {"veil_dark": {"mff": [0.2, 0.15]}, "veil_range": {"mff": [0.6, 0.5]}},
        {"veil_dark": {"mff": [0.15, 0.2]}, "veil_range": {"mff": [0.5, 0.6]}},
        {"veil_dark": {"mff": [0.15, 0.2]}, "veil_range": {}},
        {"veil_dark": {"mff": [0.15]}, "veil_range": {"mff": [0.6, 0.5]}},
        {"veil_dark": {"vif": [0.15, 0.2]}, "veil_range": {"vif": [0.6, 0.5]}},  # a task without stretch
    ]
    for bad_veil in bad_veils:
        with pytest.raises(ValueError, match="veil"):
            ExposureConfig(**good, **bad_veil)
    bracket = {"bracket_high": {"mef": 0.5}, "bracket_low": {"mef": 0.4}, "bracket_target": {"mef": 0.93}}
    ExposureConfig(**bracket)
    bad_brackets = [
        bracket | {"bracket_low": {"mef": 0.6}},
        bracket | {"bracket_target": {"mef": 0.45}},
        bracket | {"bracket_target": {}},
        bracket | {"bracket_high": {"hdr": 0.5}},
    ]
    for bad_bracket in bad_brackets:
        with pytest.raises(ValueError, match="bracket"):
            ExposureConfig(**bad_bracket)
    pair = {"pair_high": {"mff": 0.5}, "pair_low": {"mff": 0.45}}
    ExposureConfig(**good, **pair)
    bad_pairs = [
        pair,  # a task without a stretch (no targets to read the ranges against)
        pair | {"pair_low": {"mff": 0.55}},
        pair | {"pair_low": {}},
        pair | {"pair_high": {"mff": 1.0}, "pair_low": {"mff": 0.5}},
    ]
    for bad_pair in bad_pairs:
        with pytest.raises(ValueError, match="pair"):
            ExposureConfig(**(good if bad_pair is not pair else {}), **bad_pair)
    ExposureConfig(dehaze_dark={"mff": [0.2, 0.25]})
    for bad_dehaze in ({"mff": [0.25, 0.2]}, {"mff": [0.2]}, {"mff": [0.2, 1.0]}, {"hdr": [0.2, 0.25]}):
        with pytest.raises(ValueError, match="dehaze"):
            ExposureConfig(dehaze_dark=bad_dehaze)
    for bad_bounds in ({"stretch_clipped": 0.0}, {"stretch_max": 0.5}, {"stretch_mean": 1.0}):
        with pytest.raises(ValueError, match="stretch"):
            ExposureConfig(**bad_bounds)
    cfg = ExposureConfig(
        high={"vif": 0.5},
        low={"vif": 0.3},
        max_gain=2.0,
        lift={"mef": 0.4},
        min_gamma=0.5,
        stretch_high={"mff": 0.45},
        stretch_low={"mff": 0.3},
        stretch_target={"mff": [0.8]},
        stretch_black={"mff": [0.05]},
        veil_dark={"mff": [0.15, 0.2]},
        veil_range={"mff": [0.6, 0.5]},
        bracket_high={"mef": 0.5},
        bracket_low={"mef": 0.4},
        bracket_target={"mef": 0.93},
        pair_high={"mff": 0.4},
        pair_low={"mff": 0.35},
        dehaze_dark={"mff": [0.2, 0.25]},
    )
    assert ExposureConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.tasks == ("mef", "mff", "vif")
    # an exposure.json written before the lift and the stretch existed loads without them
    old = {
        k: v
        for k, v in cfg.to_dict().items()
        if k not in ("lift", "min_gamma")
        and not any(w in k for w in ("stretch", "veil", "bracket", "pair", "dehaze"))
    }
    assert ExposureConfig.from_dict(old).lift == {} and ExposureConfig.from_dict(old).stretch_high == {}
    assert ExposureConfig.from_dict(old).bracket_high == {} and ExposureConfig.from_dict(old).pair_high == {}
    assert ExposureConfig.from_dict(old).dehaze_dark == {}
    bad = '{"exposure": {"gain": 2}}'
    check_stage_file(tmp_path, cfg, load_exposure, save_exposure, "exposure.json", bad)


@pytest.mark.parametrize("name", ["allfuse-reg", "allfuse-fm"])
def test_shipped_models_expose_before_the_gate_and_keep_it_when_saved(name: str, tmp_path) -> None:
    pipe = FusionPipeline.from_pretrained(name)
    assert pipe.exposure is not None and set(pipe.exposure.tasks) == {"mef", "mff", "vif"}
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
    # a flat multi-focus pair is stretched before the gate sees it
    flat = [_flat(_photo(), 0.3), _flat(_photo("coffee"), 0.3)]
    seen = pipe.gate_inputs(flat, "mff", deblur=False)
    kept = pipe.gate_inputs(flat, "mff", deblur=False, exposure=False)
    assert np.std(seen[0]) > 1.5 * np.std(kept[0])  # the corrector after the stage restores some of it
    # a mildly veiled one is read by its dark channel after the corrector, a clean one is left
    veiled = [_flat(_photo(), 0.5), _flat(_photo("coffee"), 0.5)]
    assert stretch_factors(veiled, "mff", pipe.exposure) == [1.0, 1.0]
    restored = pipe.stages.restore_gain(veiled, "mff", deblur=False)
    assert min(restored.unveiled) > 1.1 and restored.gain == pytest.approx(max(restored.unveiled))
    kept = pipe.stages.restore_gain(veiled, "mff", deblur=False, exposure=False).images
    assert np.std(restored.images[0]) > 1.2 * np.std(kept[0])
    assert pipe.stages.restore_gain([_photo(), _photo("coffee")], "mff").unveiled == (1.0, 1.0)
    # a multi-exposure bracket flattened toward its members' means is stretched by one factor after the
    # corrector; a clean one is left
    flat = [_flat_channels(x, 0.2) for x in _bracket(_photo("chelsea"))]
    restored = pipe.stages.restore_gain(flat, "mef", deblur=False)
    assert restored.unveiled[0] == restored.unveiled[1] > 2.0
    kept = pipe.stages.restore_gain(flat, "mef", deblur=False, exposure=False).images
    assert np.std(restored.images[1]) > 1.5 * np.std(kept[1])
    assert pipe.stages.restore_gain(_bracket(_photo("chelsea")), "mef").unveiled == (1.0, 1.0)
    # an infrared + visible pair flattened as a whole: both cameras stretched before the gate sees them
    flat = _flat_pair(_vif_pair())
    seen = pipe.gate_inputs(flat, "vif", deblur=False)
    kept = pipe.gate_inputs(flat, "vif", deblur=False, exposure=False)
    assert all(np.std(a) > 1.5 * np.std(b) for a, b in zip(seen, kept, strict=True))
    # a multi-focus pair under a haze that varies across it, as the corrector would leave one (this one it
    # lifts itself, so it is skipped here): dehazed last
    hazy = [_fog(_photo()), _fog(_photo("coffee"))]
    restored = pipe.stages.restore_gain(hazy, "mff", deblur=False, correct=False)
    assert min(restored.dehazed) > 0.5
    kept = pipe.stages.restore_gain(hazy, "mff", deblur=False, correct=False, exposure=False).images
    assert all(dark_floor(a) < dark_floor(b) - 0.1 for a, b in zip(restored.images, kept, strict=True))
    assert pipe.stages.restore_gain([_photo(), _photo("coffee")], "mff").dehazed == (0.0, 0.0)
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
    for i, name in enumerate(("astronaut", "coffee")):
        write_image(paths[i], _flat(_photo(name, side=192), 0.3))
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "flat.png"), "--task", "mff", "-v"]) == 0
    assert "no gain; flat, contrast stretched: input 1 x 2." in capsys.readouterr().out
    for i, name in enumerate(("astronaut", "coffee")):
        write_image(paths[i], _flat(_photo(name, side=192), 0.5))
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "veil.png"), "--task", "mff", "-v"]) == 0
    assert "no flat input; veiled, contrast stretched: input 1 x 1." in capsys.readouterr().out
    for i, name in enumerate(("astronaut", "coffee")):
        write_image(paths[i], _fog(_photo(name, side=192)))
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "fog.png"), "--task", "mff", "-v"]) == 0
    assert "; no veiled input; no haze left" in capsys.readouterr().out  # the corrector lifts this haze
    # a folder whose dehazing reads lower floors as hazy (what the corrector leaves here: about 0.1-0.15)
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    folder = pipe.save_pretrained(tmp_path / "low")
    save_exposure(dataclasses.replace(pipe.exposure, dehaze_dark={"mff": [0.02, 0.05]}), folder)
    fused = ["fuse", *map(str, paths), "-o", str(tmp_path / "fog2.png"), "--task", "mff", "-v"]
    assert main([*fused, "--model", str(folder)]) == 0
    assert "; haze left, dehazed: input 1 weight 1.00, input 2 weight 1.00" in capsys.readouterr().out
    for i, member in enumerate(_bracket(_photo("chelsea", side=192))):
        write_image(paths[i], _flat_channels(member, 0.2))
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "flatmef.png"), "--task", "mef", "-v"]) == 0
    assert "flat bracket, every input's contrast stretched x " in capsys.readouterr().out
    for path, x in zip(paths, _flat_pair(_vif_pair(side=192)), strict=True):
        write_image(path, x)
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "flatvif.png"), "--task", "vif", "-v"]) == 0
    assert "flat pair, contrast stretched: input 1 x 2." in capsys.readouterr().out
    on, off = (read_image(out).astype(np.float32) / 255 for out in outs.values())
    assert np.abs(on - clean).mean() < np.abs(off - clean).mean()
