"""The blind deblurring stage: the blur it measures grows with the blur applied and stays below its
threshold on sharp photos, its filter is scikit-image's Wiener-Hunt filter, it restores a blurred photo,
leaves sharp or flat inputs untouched, and ships in a model folder that the pipeline applies first."""

import json
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest
from skimage import data as skdata
from skimage.restoration import wiener

from allfuse.deblur import (
    DeblurConfig,
    deblur_image,
    deblur_inputs,
    edge_width,
    input_psfs,
    min_widths,
    pair_blur,
    pair_psf,
    psf_covariance,
    wiener_gaussian,
)
from allfuse.model_folder import resolve_model_folder
from allfuse.pipeline import FusionPipeline


def photo(name: str = "camera") -> np.ndarray:
    x = getattr(skdata, name)().astype(np.float32) / 255.0
    return np.ascontiguousarray(x[:256, :256])


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_measured_blur_grows_with_the_blur_and_sharp_photos_stay_below_the_threshold() -> None:
    cfg = DeblurConfig()
    for name in ("camera", "astronaut", "coffee"):
        x = photo(name)
        assert pair_blur([x], cfg) == 0.0, name  # sharp: untouched
        measured = [pair_blur([blur(x, s)], cfg) for s in (1.5, 2.5, 3.5)]
        assert measured[0] > 0.5, name
        assert measured[0] < measured[1] < measured[2], (name, measured)
        assert 0.5 * 2.5 < measured[1] < 1.5 * 2.5, (name, measured)  # the right size, not just the order


def test_a_pair_is_as_blurred_as_its_sharper_input() -> None:
    x, cfg = photo(), DeblurConfig()
    assert pair_blur([x, blur(x, 3.0)], cfg) == 0.0  # one soft input: a multi-focus pair, a thermal camera
    both = pair_blur([blur(x, 2.0), blur(x, 3.0)], cfg)
    assert both == pytest.approx(pair_blur([blur(x, 2.0)], cfg))


def test_flat_or_sharp_inputs_pass_unchanged() -> None:
    flat = np.full((64, 64, 3), 0.4, np.float32)
    assert edge_width(flat) is None
    images = [flat, photo()]
    out, psfs = deblur_inputs(images, DeblurConfig())
    assert psfs == [0.0, 0.0] and all(a is b for a, b in zip(out, images, strict=True))


def test_the_filter_is_scikit_images_wiener_hunt_filter() -> None:
    x = blur(photo(), 1.6)
    sigma, balance = 1.6, 0.02
    radius = int(np.ceil(4 * sigma))
    g = cv2.getGaussianKernel(2 * radius + 1, sigma, cv2.CV_64F)
    psf = g @ g.T
    pad = 64
    ref = wiener(np.pad(x, pad, mode="reflect").astype(np.float64), psf, balance, clip=False)
    ref = np.clip(ref[pad:-pad, pad:-pad], 0, 1)
    ours = wiener_gaussian(x, sigma, balance)
    inner = (slice(16, -16), slice(16, -16))  # away from the two paddings' edges
    assert np.abs(ours[inner] - ref[inner]).mean() < 2e-3
    assert np.abs(ours[inner] - x[inner]).mean() > 10 * np.abs(ours[inner] - ref[inner]).mean()


def test_deblurring_restores_a_blurred_photo_in_gray_and_colour() -> None:
    cfg = DeblurConfig()
    for x in (photo("camera"), photo("astronaut")):
        soft = blur(x, 2.0)
        (out, *_), (sigma,) = deblur_inputs([soft], cfg)
        assert sigma > 0 and out.shape == x.shape and out.dtype == np.float32
        assert psnr(out, x) > psnr(soft, x) + 1.0


def elliptic_blur(x: np.ndarray, major: float, minor: float, degrees: float) -> np.ndarray:
    """x blurred by a Gaussian of std `major` along the direction `degrees` (x right, y down) and `minor`
    across it."""
    r = int(np.ceil(4 * major))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    t = np.deg2rad(degrees)
    along, across = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    k = np.exp(-0.5 * ((along / major) ** 2 + (across / minor) ** 2))
    return cv2.filter2D(x, -1, (k / k.sum()).astype(np.float32), borderType=cv2.BORDER_REFLECT)


def axis_of(cov: np.ndarray) -> tuple[float, float]:
    """The direction (degrees in [0, 180)) of a covariance's major axis and its axis-std ratio."""
    variances, axes = np.linalg.eigh(cov)
    degrees = np.rad2deg(np.arctan2(axes[1, 1], axes[0, 1])) % 180.0
    return float(degrees), float(np.sqrt(variances[1] / max(variances[0], 1e-9)))


def test_the_elliptic_psf_finds_the_blur_direction_and_restores_more_than_the_round_one() -> None:
    x = np.ascontiguousarray(skdata.astronaut()[:384, :384].astype(np.float32) / 255.0)
    cfg = DeblurConfig(anisotropic=True)
    for degrees in (30.0, 120.0):
        soft = elliptic_blur(x, 2.6, 0.9, degrees)
        psf = pair_psf([soft], cfg)
        assert np.shape(psf) == (2, 2)
        found, ratio = axis_of(psf)
        assert abs((found - degrees + 90.0) % 180.0 - 90.0) < 15.0, (degrees, found)
        assert ratio > 1.6, (degrees, ratio)
        (elliptic, *_), _ = deblur_inputs([soft], cfg)
        (round_, *_), _ = deblur_inputs([soft], DeblurConfig())
        assert psnr(elliptic, x) > psnr(round_, x) + 0.3 > psnr(soft, x) + 0.3
    # a round blur is measured round, and sharp inputs still pass untouched
    assert axis_of(pair_psf([blur(x, 2.0)], cfg))[1] < 1.35
    assert pair_psf([x], cfg) == 0.0


def test_per_input_tasks_deconvolve_each_input_by_its_own_blur() -> None:
    x = photo()
    cfg = DeblurConfig(per_input=("mef",))
    # one exposure shaken, the other sharp: the pair's PSF keeps both; per input, the soft one alone
    pair = [x, blur(x, 2.5)]
    assert deblur_inputs(pair, cfg, "mff")[1] == [0.0, 0.0]
    (sharp, restored), psfs = deblur_inputs(pair, cfg, "mef")
    assert psfs[0] == 0.0 and sharp is pair[0]
    assert psfs[1] == pytest.approx(pair_blur([pair[1]], cfg)) and psnr(restored, x) > psnr(pair[1], x) + 1.0
    # both blurred, unequally: the pair's PSF is the sharper one's for both; per input each its own
    both = [blur(x, 1.8), blur(x, 3.0)]
    shared = input_psfs(both, cfg, "vif")
    own = input_psfs(both, cfg, "mef")
    assert shared[0] == shared[1] == pytest.approx(own[0]) and own[1] > own[0] + 0.5
    per_input = deblur_inputs(both, cfg, "mef")[0][1]
    assert psnr(per_input, x) > psnr(deblur_inputs(both, cfg, "vif")[0][1], x) + 0.5
    # an input just below solo_width beside a sharp one is kept; sharp pairs pass
    assert input_psfs([x, blur(x, 0.5)], cfg, "mef") == [0.0, 0.0]
    with pytest.raises(ValueError, match="solo_width"):
        DeblurConfig(solo_width=1.0)


def test_an_elliptic_psf_of_equal_axes_is_the_round_one() -> None:
    x = blur(photo(), 1.6)
    np.testing.assert_allclose(
        wiener_gaussian(x, np.eye(2) * 1.6**2, 0.02), wiener_gaussian(x, 1.6, 0.02), atol=1e-5
    )
    for bad in (np.array([[1.0, 2.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [0.0, -1.0]]), np.eye(3)):
        with pytest.raises(ValueError, match="Gaussian PSF"):
            psf_covariance(bad)


def test_fine_tasks_deblur_from_a_lower_width_except_recoded_inputs() -> None:
    x = photo()
    cfg = DeblurConfig(fine_tasks=("mef",), fine_min_width=1.0)
    assert min_widths(cfg, 2, "mef", [True, False]) == [1.12, 1.0] and min_widths(cfg, 2, "mef") == [1.0, 1.0]
    assert min_widths(cfg, 2, "vif") == [1.12, 1.12] and min_widths(DeblurConfig(), 1, "mef") == [1.12]
    with pytest.raises(ValueError, match="coded flags"):
        min_widths(cfg, 2, "mef", [True])
    # a pair measuring between the two thresholds: deconvolved for a fine task, unless its inputs were
    # re-coded by the deblocking stage; kept for any other task
    soft = [blur(x, s) for s in np.arange(0.3, 1.2, 0.05)]
    between = next(y for y in soft if 1.02 < edge_width(y) < 1.10)
    pair = [between, between.copy()]
    assert pair_psf(pair, cfg, "mef") > 0 and pair_psf(pair, cfg, "mef", [False, False]) > 0
    assert pair_psf(pair, cfg, "mef", [True, True]) == 0.0 and pair_psf(pair, cfg, "vif") == 0.0
    assert deblur_inputs(pair, cfg, "mef", [True, True])[1] == [0.0, 0.0]
    own = replace(cfg, per_input=("mef",))
    assert deblur_inputs(pair, own, "mef", [True, True])[1] == [0.0, 0.0]
    assert all(np.ndim(p) or p > 0 for p in deblur_inputs(pair, own, "mef")[1])
    for bad in ({"fine_min_width": 0.4}, {"fine_min_width": 1.2}, {"fine_tasks": ("sharpen",)}):
        with pytest.raises(ValueError, match="bad deblur config"):
            DeblurConfig(**{"fine_tasks": ("mef",), "fine_min_width": 1.0} | bad)


def test_the_pipeline_tells_the_deblurring_stage_which_inputs_were_deblocked(monkeypatch) -> None:
    import allfuse.stages

    seen = []

    def record(images, cfg, task="", coded=(), rebuilt=()):
        seen.append((list(coded), list(rebuilt)))
        return list(images), [0.0] * len(images)

    monkeypatch.setattr(allfuse.stages, "deblur_inputs", record)
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    x = photo()
    _, buf = cv2.imencode(".jpg", np.uint8(x * 255), [cv2.IMWRITE_JPEG_QUALITY, 20])
    coded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    # shrunk to a quarter and enlarged back by nearest neighbour: pixel blocks, re-interpolated
    small = cv2.resize(x, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    blocky = cv2.resize(small, x.shape[::-1], interpolation=cv2.INTER_NEAREST)
    pipe.restore_inputs([coded, x], "mff")
    pipe.restore_inputs([coded, x], "mff", deblock=False)
    pipe.restore_inputs([x, blocky], "mff")
    assert seen == [
        ([True, False], [True, False]),
        ([False, False], [False, False]),
        ([False, False], [False, True]),  # re-interpolated, not re-coded: rebuilt only
    ]


def test_bad_configs_are_refused() -> None:
    assert DeblurConfig.from_dict({"tasks": ["mff"]}).anisotropic is False  # folders written before it
    with pytest.raises(ValueError, match="anisotropic true or false"):
        DeblurConfig(anisotropic="yes")  # type: ignore[arg-type]
    for bad in ({"min_width": 0.5}, {"balance": 0.0}, {"tasks": ("sharpen",)}, {"max_sigma": 0.0}):
        with pytest.raises(ValueError, match="bad deblur config"):
            DeblurConfig(**bad)
    assert DeblurConfig.from_dict(DeblurConfig(tasks=("mff",)).to_dict()) == DeblurConfig(tasks=("mff",))


def test_the_shipped_pipeline_deblurs_blurred_inputs_first_and_leaves_sharp_ones(tmp_path) -> None:
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    assert pipe.deblur == DeblurConfig(
        anisotropic=True,
        per_input=("mef",),
        fine_tasks=("mef", "mff"),
        fine_min_width=1.0,
        kernel_tasks=("vif", "mef", "mff"),
        smooth_balance=0.005,
        wide_tasks=("mef",),
        wide_far=0.6,
        streak_skew=0.4,
        streak_start=1.1,
        streak_long_skew=0.3,
    )
    x = photo()
    sharp = [x, x[:, ::-1].copy()]
    np.testing.assert_array_equal(pipe(sharp, task="vif"), pipe(sharp, task="vif", deblur=False))
    soft = [blur(im, 2.0) for im in sharp]
    on, off = pipe(soft, task="vif"), pipe(soft, task="vif", deblur=False)
    assert psnr(on, off) < 40  # it changed the output ...
    detail = [np.abs(cv2.Laplacian(y, cv2.CV_32F)).mean() for y in (on, off)]
    assert detail[0] > detail[1]  # ... and sharpened it

    folder = tmp_path / "m"
    shutil.copytree(resolve_model_folder("allfuse-reg"), folder)
    (folder / "deblur.json").write_text(json.dumps({"deblur": {"tasks": ["mff"]}}))
    only_mff = FusionPipeline.from_pretrained(folder)
    np.testing.assert_array_equal(only_mff(soft, task="vif"), off)  # not enabled for this task
    again = FusionPipeline.from_pretrained(only_mff.save_pretrained(tmp_path / "again"))
    assert again.deblur == DeblurConfig(tasks=("mff",))
    (folder / "deblur.json").write_text(json.dumps({"deblur": {"sigma": 2}}))
    with pytest.raises(ValueError, match=r"deblur\.json"):
        FusionPipeline.from_pretrained(folder)
    (folder / "deblur.json").unlink()
    assert FusionPipeline.from_pretrained(folder).deblur is None


def test_large_images_are_measured_in_bands_as_they_are_whole() -> None:
    x = np.concatenate([blur(photo("astronaut"), 2.0)] * 2, axis=0)  # 512 x 256 x 3
    whole = edge_width(x, band_pixels=10**9)
    banded = edge_width(x, band_pixels=40 * 256)  # bands of 40 rows
    assert whole is not None and banded == pytest.approx(whole, rel=0.02)


def test_a_colour_image_is_deconvolved_in_its_luminance_and_keeps_its_colours() -> None:
    x = blur(photo("astronaut"), 2.0)
    out = deblur_image(x, 1.8, 0.02)
    inside = np.all((out > 0.001) & (out < 0.999), axis=2)  # pixels no channel was clipped at
    np.testing.assert_allclose((out - out[..., 1:2])[inside], (x - x[..., 1:2])[inside], atol=1e-5)
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    lum = out @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(lum[inside], wiener_gaussian(gray, 1.8, 0.02)[inside], atol=1e-5)


def test_the_command_line_can_skip_the_stage(tmp_path) -> None:
    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    paths = []
    for i, x in enumerate((photo(), photo()[:, ::-1].copy())):
        paths.append(tmp_path / f"in{i}.png")
        write_image(paths[-1], blur(x, 2.0))
    outs = {flag: tmp_path / f"out{len(flag)}.png" for flag in ((), ("--no-deblur",))}
    for flag, out in outs.items():
        assert main(["fuse", *map(str, paths), "-o", str(out), "--task", "vif", *flag]) == 0
    on, off = (read_image(out).astype(np.float32) for out in outs.values())
    assert np.abs(on - off).mean() > 1.0 / 255  # uint8 PNGs: the stage changed the fusion


def test_large_images_are_deconvolved_in_tiles_without_seams() -> None:
    x = cv2.resize(blur(photo("astronaut"), 1.0), (700, 600))  # an upscaled photo: blurred
    for sigma in (1.5, 4.0):
        whole = wiener_gaussian(x, sigma, 0.02, tile=10**6)
        tiled = wiener_gaussian(x, sigma, 0.02, tile=256)  # 3 x 3 tiles, seams at 256 and 512
        inner = (slice(48, -48), slice(48, -48))  # the image's own border is padded differently
        assert np.abs(tiled - whole)[inner].max() < 3e-3, sigma
        assert np.abs(whole - x)[inner].mean() > 0.001  # it did deconvolve


def test_the_command_line_says_what_the_stage_measured(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import write_image

    x = photo("camera")
    for name, im in (("sharp", x), ("soft", elliptic_blur(x, 2.6, 0.9, 30.0))):
        paths = [tmp_path / f"{name}{i}.png" for i in range(2)]
        for path, y in zip(paths, (im, im[:, ::-1].copy()), strict=True):
            write_image(path, y)
        out = tmp_path / f"{name}_out.png"
        assert main(["fuse", *map(str, paths), "-o", str(out), "--task", "vif", "-v"]) == 0
    said = capsys.readouterr().out.splitlines()
    lines = [line for line in said if line.startswith("deblurring (vif): edge width")]
    assert len(lines) == 2, said
    assert lines[0].endswith("(below 1.12), kept")
    assert "deconvolved by a kernel estimated blind, " in lines[1]  # the shipped models' kernel_tasks
    side = int(lines[1].split("estimated blind, ")[1].split(" x ")[0])
    assert "(the edges fit a elliptic Gaussian, std " not in lines[1]
    assert "(the edges fit an elliptic Gaussian, std " in lines[1] and "from horizontal)" in lines[1]
    major = float(lines[1].split("std ")[1].split(" x ")[0])
    assert abs(side - (8.0 * major + 1)) <= 2  # kernel_reach: 4 stds of the long axis each side (rounded up)
    degrees = float(lines[1].split("long axis ")[1].split(" deg")[0])
    # the mirrored input blurs along 150 degrees: the sharper of the two sets the pair's PSF, either axis
    assert min(abs(degrees - 30.0), abs(degrees - 150.0)) < 15.0, lines[1]


def test_the_command_line_says_what_each_exposure_measured(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import write_image

    x = photo("camera")
    paths = [tmp_path / "sharp.png", tmp_path / "shaken.png"]
    for path, y in zip(paths, (x, blur(x, 2.5)), strict=True):
        write_image(path, y)
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "out.png"), "--task", "mef", "-v"]) == 0
    said = capsys.readouterr().out.splitlines()
    lines = [line for line in said if line.startswith("deblurring (mef): ")]
    assert len(lines) == 1, said
    first, second = lines[0].split("; ")
    assert first.startswith("deblurring (mef): input 1: edge width") and first.endswith("(below 1.30), kept")
    assert second.startswith("input 2: edge width") and "deconvolved by a kernel estimated blind" in second
