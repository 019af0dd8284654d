"""The denoising stage: an input that measures noisy is replaced by its non-local-means result, each input on
its own; clean inputs, and tasks the stage is not configured for, are left as they are."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from photos import resized_photo
from stage_folder import check_stage_file

from allfuse.baselines.restoration import denoise_nlm
from allfuse.color import to_gray
from allfuse.denoise import (
    DenoiseConfig,
    chroma_noise,
    denoise_images,
    denoise_inputs,
    denoise_net_images,
    denoise_weight,
    denoise_weights,
    filter_strength,
    input_noise,
    rule_weight,
)
from allfuse.gate import FEATURES, GateConfig, TaskGate, rule_fusion
from allfuse.io import find_pairs
from allfuse.model_folder import load_denoise, resolve_model_folder, save_denoise
from allfuse.pipeline import FusionPipeline

CFG = DenoiseConfig()


def _photo(name: str = "astronaut", side: int = 192) -> np.ndarray:
    return resized_photo(name, side)


def _noisy(x: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """x plus Gaussian noise of `std` in 1/255 steps."""
    rng = np.random.default_rng(seed)
    return np.clip(x + rng.normal(0, std / 255, x.shape), 0, 1).astype(np.float32)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2))


def test_a_noisy_input_is_denoised_and_a_clean_one_kept() -> None:
    ir, vis = _photo("camera"), _photo()
    noisy_vis = _noisy(vis, 10)
    assert input_noise(ir) < CFG.low and input_noise(noisy_vis) > CFG.high
    out, weights = denoise_inputs([ir, noisy_vis], "vif", CFG)
    assert weights == [0.0, 1.0]
    assert out[0] is ir  # each input is measured on its own: the clean infrared image is untouched
    assert out[1].shape == vis.shape and out[1].dtype == np.float32
    assert _mse(out[1], vis) < _mse(noisy_vis, vis) / 2


@pytest.mark.parametrize("gray", [False, True])
def test_tiles_give_the_whole_images_result(gray: bool) -> None:
    """Each tile is filtered with the margin non-local means reads and the whole image's sigma: no seam."""
    x = _noisy(_photo(side=150), 12)
    x = x.mean(axis=2) if gray else x
    other = _noisy(_photo("coffee", side=100), 20, seed=1)  # filtered alongside, with its own sigma
    tiled, tiled_other = denoise_images([x, other], tile=64)  # 3 x 3 tiles, the last ones narrower
    np.testing.assert_allclose(tiled, denoise_nlm(x), atol=1e-6)
    np.testing.assert_allclose(tiled_other, denoise_nlm(other), atol=1e-6)
    assert _mse(tiled, x) > 1e-4  # it did filter


def test_the_stage_runs_only_for_its_tasks() -> None:
    noisy = [_noisy(_photo("camera"), 10), _noisy(_photo(), 10, seed=1)]
    for task in ("mef", "mff"):
        out, weights = denoise_inputs(noisy, task, CFG)
        assert weights == [0.0, 0.0] and all(a is b for a, b in zip(out, noisy, strict=True))
    assert denoise_weights(noisy, "mff", DenoiseConfig(tasks=("vif", "mff"))) == [1.0, 1.0]


def test_the_weight_ramps_without_a_jump() -> None:
    levels = np.linspace(0, 10, 401)
    weights = np.array([denoise_weight(n, CFG) for n in levels])
    assert weights[levels <= CFG.low].max() == 0.0 and weights[levels >= CFG.high].min() == 1.0
    assert np.all(np.diff(weights) >= 0)
    assert np.abs(np.diff(weights)).max() <= (levels[1] - levels[0]) / (CFG.high - CFG.low) + 1e-9


def test_a_partial_weight_mixes_input_and_filter() -> None:
    vis = _photo()
    noisy = _noisy(vis, 4.0)
    n = input_noise(noisy)
    cfg = DenoiseConfig(low=n - 1.0, high=n + 1.0)  # this input sits half way up the ramp
    out, weights = denoise_inputs([noisy], "vif", cfg)
    full = denoise_inputs([noisy], "vif", DenoiseConfig(low=n - 2.0, high=n - 1.0))[0][0]
    assert weights[0] == pytest.approx(0.5)
    np.testing.assert_allclose(out[0], np.clip(noisy + 0.5 * (full - noisy), 0, 1), atol=1e-6)


def test_chroma_noise_reads_per_channel_noise_and_nothing_on_gray_images() -> None:
    vis = _photo("chelsea", 384)
    noisy = _noisy(vis, 3.0)  # independent per channel: the opponent channels carry it all
    assert chroma_noise(noisy) == pytest.approx(3.0, rel=0.15)
    assert chroma_noise(vis) < 0.5  # the clean photo's own colour texture reads low
    gray = _noisy(_photo("camera"), 6.0)
    assert chroma_noise(gray) == 0.0 and chroma_noise(np.repeat(gray[..., None], 3, axis=2)) == 0.0
    same = _noisy(vis.mean(axis=2, keepdims=True).repeat(3, axis=2), 6.0)  # one noise field on all channels
    assert chroma_noise(np.repeat(same[..., :1], 3, axis=2)) == 0.0


def test_colour_noise_below_the_luminance_threshold_is_denoised() -> None:
    """A colour input whose per-channel noise reads below `low` on the luminance: the colour cue takes it;
    without the cue, and for a gray input with the same luminance noise, it is kept."""
    cfg = DenoiseConfig(chroma_low=2.0, chroma_high=3.0)
    vis = _photo("chelsea", 384)
    noisy = _noisy(vis, 3.5)
    assert input_noise(noisy) < CFG.low and chroma_noise(noisy) > cfg.chroma_high
    out, weights = denoise_inputs([_photo("camera"), noisy], "vif", cfg)
    assert weights == [0.0, 1.0]
    assert _mse(out[1], vis) < _mse(noisy, vis) / 2
    assert denoise_weights([noisy], "vif", CFG) == [0.0]  # the cue is off by default
    gray = np.repeat(to_gray(noisy)[..., None], 3, axis=2)  # the same luminance noise, no colour
    assert input_noise(gray) == pytest.approx(input_noise(noisy), abs=0.05)
    assert denoise_weights([gray], "vif", cfg) == [0.0]
    assert denoise_weights([vis], "vif", cfg) == [0.0]
    half = DenoiseConfig(chroma_low=chroma_noise(noisy) - 1.0, chroma_high=chroma_noise(noisy) + 1.0)
    assert denoise_weights([noisy], "vif", half)[0] == pytest.approx(0.5)


def test_no_clean_benchmark_input_is_denoised(shared_data) -> None:
    """The module doc's calibration: `low` and `chroma_low` sit above every clean infrared and visible
    image (the shipped models' thresholds)."""
    cfg = FusionPipeline.from_pretrained("allfuse-reg").denoise
    assert cfg.chroma
    for folder in ("ivif/TNO", "ivif/RoadScene", "ivif/MSRS"):
        for pair in find_pairs(shared_data / folder):
            assert denoise_weights(pair.load()[0], "vif", cfg) == [0.0, 0.0], pair.name
    # multi-focus inputs are read on colour noise alone: their fine texture reads up to 8.4/255 on the
    # luminance, above `low`, but at most 0.67/255 on chroma
    for folder in ("mff/MFI-WHU", "mff/Lytro"):
        for pair in find_pairs(shared_data / folder):
            assert denoise_weights(pair.load()[0], "mff", cfg) == [0.0, 0.0], pair.name


def test_config_is_checked_and_round_trips(tmp_path) -> None:
    with pytest.raises(ValueError, match="denoise"):
        DenoiseConfig(low=5.0, high=4.0)
    with pytest.raises(ValueError, match="denoise"):
        DenoiseConfig(low=0.0, high=4.0)
    with pytest.raises(ValueError, match="denoise"):
        DenoiseConfig(tasks=("sharpen",))
    for lo, hi in ((2.0, 1.0), (0.0, 2.0), (1.0, 0.0)):
        with pytest.raises(ValueError, match="chroma_low"):
            DenoiseConfig(chroma_low=lo, chroma_high=hi)
    with pytest.raises(ValueError, match="a rule among"):
        DenoiseConfig(rule="median")
    with pytest.raises(ValueError, match="rule_low"):
        DenoiseConfig(rule="laplacian", rule_low=9.0, rule_high=7.0)
    for k, pair in ((0.0, 0.6), (0.8, -0.1)):
        with pytest.raises(ValueError, match="pair_strength"):
            DenoiseConfig(strength=k, pair_strength=pair)
    only = {"tasks": ("vif", "mff"), "chroma_low": 2.0, "chroma_high": 3.0, "chroma_tasks": ("mff",)}
    for bad_only in (
        {**only, "chroma_tasks": ("mef",)},  # not one of the stage's tasks
        {**only, "chroma_low": 0.0, "chroma_high": 0.0, "chroma_cut": (10.0, 11.0)},  # the colour cue off
        {**only, "chroma_cut": (11.0, 10.0)},
        {**only, "chroma_cut": (2.5, 11.0)},  # below chroma_high
        {**only, "chroma_cut": (10.0,)},
    ):
        with pytest.raises(ValueError, match="chroma_cut"):
            DenoiseConfig(**bad_only)
    cfg = DenoiseConfig(low=3.0, high=6.0, tasks=("vif", "mff"), chroma_low=1.0, chroma_high=2.5, rule="max")
    cfg = dataclasses.replace(
        cfg, strength=0.9, pair_strength=0.5, chroma_tasks=("mff",), chroma_cut=(9.0, 12.0)
    )
    assert DenoiseConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    bad = '{"denoise": {"sigma": 2}}'
    check_stage_file(tmp_path, cfg, load_denoise, save_denoise, "denoise.json", bad)


@pytest.mark.parametrize("name", ["allfuse-reg", "allfuse-fm"])
def test_shipped_models_denoise_before_the_gate_and_keep_it_when_saved(name: str, tmp_path) -> None:
    pipe = FusionPipeline.from_pretrained(name)
    assert pipe.denoise is not None and pipe.denoise.tasks == ("vif", "mff")
    assert pipe.denoise.chroma_tasks == ("mff",) and pipe.denoise.chroma_cut == (10.0, 11.0)
    # non-local means by default; the learned denoiser ships beside it for denoise.json's method "net"
    assert pipe.denoise.method == "nlm" and pipe.denoiser is not None
    ir, vis = _photo("camera"), _photo()
    noisy = [ir, _noisy(vis, 10)]
    seen = pipe.gate_inputs(noisy, "vif", deblur=False)
    kept = pipe.gate_inputs(noisy, "vif", deblur=False, denoise=False)
    assert _mse(seen[1], vis) < _mse(kept[1], vis) / 2
    np.testing.assert_array_equal(seen[0], kept[0])
    again = FusionPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    assert again.denoise == pipe.denoise
    torch.testing.assert_close(again.denoiser.state_dict(), pipe.denoiser.state_dict())


@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee"])
def test_the_shipped_denoiser_beats_the_stages_non_local_means_on_photos_it_never_saw(name: str) -> None:
    """scikit-image's photos are not in the training data (the shared benchmark's pairs): white noise of
    12/255 and sensor noise in linear light (more in the shadows), against non-local means at the strength
    the shipped denoise.json gives one noisy input (its `strength`, used when its method is "nlm")."""
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    clean = resized_photo(name, 256)
    lin = clean**2.2
    std = np.sqrt(0.008 * lin + 0.006**2)
    sensor = np.clip(lin + std * np.random.default_rng(5).standard_normal(clean.shape), 0, 1) ** (1 / 2.2)
    for noisy in (_noisy(clean, 12), sensor.astype(np.float32)):
        net = denoise_net_images(pipe.denoiser, [noisy])[0]
        nlm = denoise_images([noisy], strengths=[pipe.denoise.strength])[0]
        assert _mse(net, clean) < 0.95 * _mse(nlm, clean) < 0.95 * _mse(noisy, clean)


def test_the_command_line_reports_and_can_skip_the_stage(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    ir, vis = _photo("camera"), _photo()
    paths = [tmp_path / "ir.png", tmp_path / "vis.png"]
    write_image(paths[0], ir)
    write_image(paths[1], _noisy(vis, 12))
    outs = {flag: tmp_path / f"out{i}.png" for i, flag in enumerate(("-v", "--no-denoise"))}
    for flag, out in outs.items():
        assert main(["fuse", *map(str, paths), "-o", str(out), "--task", "vif", flag]) == 0
    said = capsys.readouterr().out
    assert "denoising (vif, from 3.5/255, colour noise from 2/255): input 1 noise" in said
    assert "input 2 noise" in said and "(colour " in said
    assert "kept; input 2" in said and "denoised (100%, h = 1.20 sigma)" in said  # one noisy camera
    on, off = (read_image(out).astype(np.float32) / 255 for out in outs.values())
    assert input_noise(on) < input_noise(off)
    assert "every input noisy" not in said  # the infrared image is clean: the teacher's rule stays
    write_image(paths[0], _noisy(ir, 16, seed=2))
    write_image(paths[1], _noisy(vis, 20, seed=3))
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "both.png"), "--task", "vif", "-v"]) == 0
    said = capsys.readouterr().out
    assert (
        "every input noisy (" in said
        and "where the teacher's rule gff would fuse, laplacian does (100%)" in said
    )
    assert said.count("denoised (100%, h = 0.60 sigma)") == 2  # a noisy capture: the pair strength


def _both_noisy(std: float = 14.0) -> list[np.ndarray]:
    return [_noisy(_photo("camera"), std), _noisy(_photo(), std, seed=1)]


def test_the_rule_is_for_a_pair_whose_every_input_is_noisy() -> None:
    """The stage's rule (module doc, "Rule") follows the quieter input: one noisy camera beside a clean one
    keeps the teacher's rule; the weight ramps from rule_low to rule_high; other tasks never get it."""
    cfg = DenoiseConfig(rule="laplacian", rule_low=7.0, rule_high=9.0)
    both = _both_noisy()
    least = min(input_noise(x) for x in both)
    assert least > cfg.rule_high
    assert rule_weight(both, "vif", cfg) == 1.0
    assert rule_weight([_photo("camera"), both[1]], "vif", cfg) == 0.0
    assert rule_weight(both, "mef", cfg) == 0.0
    assert rule_weight(both, "vif", dataclasses.replace(cfg, rule="")) == 0.0
    half = dataclasses.replace(cfg, rule_low=least - 1.0, rule_high=least + 1.0)
    assert rule_weight(both, "vif", half) == pytest.approx(0.5)


def test_a_pair_whose_every_input_is_noisy_is_filtered_at_the_pair_strength() -> None:
    """Module doc, "Strength": a noisy capture (every input noisy) is filtered at pair_strength, one noisy
    camera beside a clean one at strength; the strength ramps with the lowest input weight; without
    pair_strength every pair gets strength. A lighter filter keeps more of the input."""
    cfg = DenoiseConfig(strength=0.8, pair_strength=0.6)
    both = _both_noisy(std=8.0)
    one = [_photo("camera"), both[1]]

    def strength(images: list[np.ndarray], c: DenoiseConfig = cfg) -> float:
        return filter_strength(denoise_weights(images, "vif", c), c)

    assert strength(both) == pytest.approx(0.6) and strength(one) == 0.8
    assert strength(both, DenoiseConfig(strength=0.7)) == 0.7
    least = min(input_noise(x) for x in both)
    half = dataclasses.replace(cfg, low=least - 1.0, high=least + 1.0)
    assert strength(both, half) == pytest.approx(0.7)
    # a colour input whose noise reads mostly on chroma counts as noisy as it is denoised
    colour = DenoiseConfig(strength=0.8, pair_strength=0.6, chroma_low=2.0, chroma_high=3.0)
    vis = _noisy(_photo("chelsea", 384), 3.5)
    ir = _noisy(to_gray(_photo("coffee", 384)), 8.0, seed=1)
    assert input_noise(vis) < colour.low and input_noise(ir) > colour.high
    assert strength([ir, vis], colour) == pytest.approx(0.6) and strength([ir, vis], cfg) == 0.8
    out, weights = denoise_inputs(both, "vif", cfg)
    assert weights == [1.0, 1.0]
    for x, y in zip(both, out, strict=True):
        np.testing.assert_allclose(y, denoise_nlm(x, strength=0.6), atol=1e-6)
        assert _mse(y, x) < _mse(denoise_nlm(x), x)  # filtered more lightly than at the default 0.8
    np.testing.assert_allclose(denoise_inputs(one, "vif", cfg)[0][1], denoise_nlm(both[1]), atol=1e-6)
    with pytest.raises(ValueError, match="2 strengths for 1 images"):
        denoise_images([both[0]], strengths=[0.6, 0.8])


def test_the_rule_fusion_mixes_in_the_stages_rule() -> None:
    from allfuse import baselines

    pair = _both_noisy()
    teacher, other = rule_fusion(pair, "vif"), baselines.fuse("laplacian", pair, "vif")
    assert np.abs(teacher - other).mean() > 1e-3
    np.testing.assert_allclose(rule_fusion(pair, "vif", noisy=("laplacian", 1.0)), other, atol=1e-6)
    half = rule_fusion(pair, "vif", noisy=("laplacian", 0.5))
    np.testing.assert_allclose(half, (teacher + other) / 2, atol=1e-5)
    large = [resized_photo("astronaut", 700), _noisy(resized_photo("astronaut", 700), 14)]
    whole = rule_fusion(large, "vif", noisy=("laplacian", 1.0))
    tiled = rule_fusion(large, "vif", tile_pixels=256 * 256, noisy=("laplacian", 1.0))
    assert tiled.shape == whole.shape and np.abs(tiled - whole).mean() < 2e-3


@pytest.mark.parametrize("name", ["allfuse-reg", "allfuse-fm"])
def test_shipped_models_fuse_a_strongly_noisy_pair_by_the_stages_rule(name: str, tmp_path) -> None:
    """Where the gate hands the pair to the rule, the rule is the stage's for a pair both of whose cameras
    are strongly noisy and the teacher's otherwise (the shipped gate is replaced by one that always hands
    the pair over, so that only the rule's choice is tested)."""
    folder = tmp_path / "m"
    shutil.copytree(resolve_model_folder(name), folder)
    n = len(FEATURES)
    one = TaskGate(weights=(0.0,) * n, bias=50.0, mean=(0.0,) * n, scale=(1.0,) * n)
    (folder / "gate.json").write_text(json.dumps({"gate": GateConfig(tasks={"vif": one}).to_dict()}))
    pipe = FusionPipeline.from_pretrained(folder)
    assert pipe.denoise.rule == "laplacian"
    both = _both_noisy()
    seen = pipe.stages.restore_gain(both, "vif")
    assert seen.rule_weight == 1.0 and pipe.noisy_rule(seen.rule_weight) == ("laplacian", 1.0)
    out = pipe(both, task="vif")
    np.testing.assert_allclose(out, rule_fusion(seen.images, "vif", noisy=("laplacian", 1.0)), atol=1e-5)
    assert np.abs(out - rule_fusion(seen.images, "vif")).mean() > 1e-3
    one_noisy = [_photo("camera"), both[1]]
    seen = pipe.stages.restore_gain(one_noisy, "vif")
    assert seen.rule_weight == 0.0
    np.testing.assert_allclose(pipe(one_noisy, task="vif"), rule_fusion(seen.images, "vif"), atol=1e-5)


def test_a_colour_noise_only_task_reads_chroma_up_to_its_cut_and_skips_a_brightened_pair() -> None:
    """Module doc, "Colour noise only": a multi-focus input is weighed by its chroma noise alone (a texture
    or a gray noise field that reads high on the luminance is kept), up from chroma_low to chroma_high and
    back down from chroma_cut[0] to chroma_cut[1]; nothing when the exposure stage brightens the pair; no
    stage rule. Infrared + visible pairs keep the luminance reading."""
    only = {"chroma_tasks": ("mff",), "chroma_cut": (10.0, 11.0)}
    cfg = DenoiseConfig(tasks=("vif", "mff"), chroma_low=2.0, chroma_high=3.0, rule="laplacian", **only)
    vis = _photo("chelsea", 384)
    rng = np.random.default_rng(4)
    gray_grain = np.clip(vis + rng.normal(0, 8 / 255, vis.shape[:2])[..., None], 0, 1).astype(np.float32)
    assert input_noise(gray_grain) > cfg.high and chroma_noise(gray_grain) < cfg.chroma_low
    assert denoise_weights([gray_grain], "mff", cfg) == [0.0]
    assert denoise_weights([gray_grain], "vif", cfg) == [1.0]
    mild, strong = _noisy(vis, 6.0), _noisy(vis, 16.0, seed=1)
    assert (
        cfg.chroma_high < chroma_noise(mild) < cfg.chroma_cut[0] and chroma_noise(strong) > cfg.chroma_cut[1]
    )
    assert denoise_weights([mild, strong], "mff", cfg) == [1.0, 0.0]
    assert denoise_weights([mild, strong], "vif", cfg) == [1.0, 1.0]
    assert denoise_weights([mild, strong], "mff", cfg, gained=True) == [0.0, 0.0]
    assert denoise_weights([mild, strong], "vif", cfg, gained=True) == [1.0, 1.0]  # only chroma_tasks
    half = dataclasses.replace(cfg, chroma_cut=(chroma_noise(mild) - 1.0, chroma_noise(mild) + 1.0))
    assert denoise_weights([mild], "mff", half)[0] == pytest.approx(0.5)
    out, weights = denoise_inputs([mild, mild], "mff", cfg)
    assert weights == [1.0, 1.0] and _mse(out[0], vis) < _mse(mild, vis) / 2
    both = [strong, _noisy(vis, 16.0, seed=2)]
    assert rule_weight(both, "vif", cfg) == 1.0 and rule_weight(both, "mff", cfg) == 0.0


def test_the_stages_skip_colour_noise_only_denoising_for_a_pair_the_exposure_stage_brightens() -> None:
    """allfuse.stages.InputStages.gains: a dark multi-focus pair (the shipped exposure stage's gain above 1)
    is left noisy for the latent path; the same noise on a bright pair is filtered."""
    stages = FusionPipeline.from_pretrained("allfuse-reg").stages
    vis = _photo("chelsea", 256)
    bright = [_noisy(vis, 6.0), _noisy(vis, 6.0, seed=1)]
    dark = [_noisy(vis * 0.25, 6.0), _noisy(vis * 0.25, 6.0, seed=1)]
    assert not stages.gains(bright, "mff") and stages.gains(dark, "mff")
    assert not stages.gains(dark, "mff", exposure=False) and not stages.gains(dark, "mef")
    flags = {"deblur": False, "correct": False, "destripe": False, "deblock": False}
    for pair, filtered in ((bright, True), (dark, False)):
        on = stages.restore(pair, "mff", **flags)
        off = stages.restore(pair, "mff", denoise=False, **flags)
        if filtered:
            assert chroma_noise(on[0]) < chroma_noise(off[0]) / 2
        else:
            np.testing.assert_array_equal(on[0], off[0])


def test_the_command_line_says_when_a_multi_focus_pair_is_left_to_the_model(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import write_image

    vis = _photo("chelsea", 160)
    for name, scale in (("bright", 1.0), ("dark", 0.2)):
        paths = [tmp_path / f"{name}{i}.png" for i in range(2)]
        for i, path in enumerate(paths):
            write_image(path, _noisy(vis * scale, 6.0, seed=i))
        out = str(tmp_path / f"{name}.png")
        assert main(["fuse", *map(str, paths), "-o", out, "--task", "mff", "-v"]) == 0
    said = capsys.readouterr().out
    assert "denoising (mff, colour noise from 2 to 11/255): input 1 noise" in said
    assert said.count("denoised (100%, h = 0.60 sigma)") == 2  # the bright pair, both inputs
    assert "the exposure stage brightens this pair: left to the model" in said
    assert said.count("/255), kept") == 2  # the dark pair, both inputs
