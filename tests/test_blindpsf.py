"""Blind kernel estimation (allfuse.blindpsf) and the deblurring stage's use of it (`kernel_tasks`): the
kernel of a shake or a defocus disk is found, deconvolving by it restores more than the Gaussian fit does,
sharp inputs cost nothing, a multi-exposure bracket's inputs each get their own kernel, a kernel close
to a Gaussian is deconvolved with a weaker regularizer (`smooth_balance`), and a one-sided streak is
anchored at its start or its peak (`streak_skew`, `streak_start`)."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
from photos import resized_photo

import allfuse.deblur
from allfuse.blindpsf import (
    at_peak,
    at_start,
    clean_kernel,
    deblur_by_kernel,
    estimate_kernel,
    fast_pad,
    fast_sides,
    gaussian_distance,
    long_axis,
    streak_shape,
    wiener_kernel,
)
from allfuse.deblur import (
    DeblurConfig,
    anchored,
    deblur_image,
    deblur_inputs,
    input_kernels,
    input_psfs,
    kernel_balance,
    kernel_size,
    streak_test,
)

SHIPPED = DeblurConfig(anisotropic=True, per_input=("mef",), kernel_tasks=("vif", "mef", "mff"))


def shake(length: float, seed: int) -> np.ndarray:
    """A curved camera-shake path of `length` px, drawn anti-aliased and normalized (odd side)."""
    rng = np.random.default_rng(seed)
    heading = rng.uniform(0, np.pi) + np.cumsum(rng.normal(0, 0.15, 64))
    path = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1), axis=0) * length / 64
    path -= path.mean(axis=0)
    r = int(np.ceil(np.abs(path).max())) + 2
    k = np.zeros((8 * (2 * r + 1),) * 2, np.float32)
    pts = np.round((path + r + 0.5) * 8).astype(np.int32)
    cv2.polylines(k, [pts], False, 1.0, 6, cv2.LINE_AA)
    k = cv2.resize(k, (2 * r + 1, 2 * r + 1), interpolation=cv2.INTER_AREA)
    return (k / k.sum()).astype(np.float64)


def disk(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    k = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    return k / k.sum()


def convolve(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    return cv2.filter2D(x, -1, k[::-1, ::-1].astype(np.float32), borderType=cv2.BORDER_REFLECT)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def match(a: np.ndarray, b: np.ndarray) -> float:
    """Normalized correlation of two kernels, the smaller centred in the larger, best over shifts of 2 px."""
    n = max(a.shape[0], b.shape[0]) + 4
    pa, pb = (np.pad(k, (n - k.shape[0]) // 2).astype(np.float32) for k in (a, b))
    return float(cv2.matchTemplate(pa, pb[2:-2, 2:-2], cv2.TM_CCORR_NORMED).max())


@pytest.mark.parametrize("kind", ["shake", "disk"])
def test_the_kernel_of_a_shake_or_defocus_is_found_and_restores_more_than_the_gaussian(kind: str) -> None:
    sharp = resized_photo("camera", 320)
    k = shake(11.0, 1) if kind == "shake" else disk(3.0)
    soft = convolve(sharp, k)
    psf = input_psfs([soft], SHIPPED, "vif")[0]
    size = kernel_size(psf, SHIPPED)
    assert size is not None and size >= k.shape[0]  # the window covers the blur the edges measure
    found = estimate_kernel(soft, size, SHIPPED.kernel_side)
    assert found.shape == (size, size) and found.min() >= 0 and found.sum() == pytest.approx(1.0)
    assert match(found, k) > 0.8, match(found, k)
    gaussian = deblur_image(soft, psf, SHIPPED.balance)
    blind = deblur_by_kernel(soft, found, SHIPPED.balance)
    inner = (slice(16, -16),) * 2  # away from the reflected border
    gains = [psnr(x[inner], sharp[inner]) - psnr(soft[inner], sharp[inner]) for x in (gaussian, blind)]
    assert gains[1] > 1.0 and gains[1] > gains[0] + 0.5, gains


def test_a_kernel_is_cleaned_into_a_centred_psf() -> None:
    raw = np.zeros((9, 9))
    raw[2, 2:5] = [1.0, 2.0, 1.0]  # off centre
    raw[7, 7] = 0.3  # a stray piece
    raw[0, 8] = -0.5
    k = clean_kernel(raw)
    rows, cols = np.indices(k.shape)
    assert k.min() >= 0 and k.sum() == pytest.approx(1.0) and k[7, 7] == 0
    assert (k * rows).sum() == pytest.approx(4.0, abs=0.05) and (k * cols).sum() == pytest.approx(
        4.0, abs=0.05
    )
    delta = clean_kernel(-np.ones((5, 5)))
    assert delta[2, 2] == 1.0 and delta.sum() == 1.0
    with pytest.raises(ValueError, match="odd and at least 3"):
        estimate_kernel(np.zeros((64, 64)), 8)


def test_deconvolving_by_a_delta_kernel_keeps_the_image() -> None:
    x = resized_photo("astronaut", 96)
    delta = np.zeros((7, 7))
    delta[3, 3] = 1.0
    assert np.abs(deblur_by_kernel(x, delta, 1e-6) - x).max() < 1e-3
    assert wiener_kernel(x[..., 0], delta, 1e-6).dtype == np.float32


def test_the_stage_reads_one_kernel_for_a_pair_and_one_per_exposure(monkeypatch) -> None:
    calls: list[int] = []
    estimate = allfuse.deblur.estimate_kernel

    def counted(gray: np.ndarray, size: int, side: int) -> np.ndarray:
        calls.append(size)
        return estimate(gray, size, side)

    monkeypatch.setattr(allfuse.deblur, "estimate_kernel", counted)
    sharp = resized_photo("camera", 256)
    pair = [sharp, np.ascontiguousarray(sharp[:, ::-1])]
    out, _ = deblur_inputs(pair, SHIPPED, "vif")
    assert calls == [] and all(a is b for a, b in zip(out, pair, strict=True))  # sharp: nothing estimated
    soft = [convolve(x, shake(9.0, 2)) for x in pair]
    for task, n in (("vif", 1), ("mff", 1), ("mef", 2)):
        calls.clear()
        kernels = input_kernels(soft, input_psfs(soft, SHIPPED, task), SHIPPED, task)
        assert len(calls) == n and all(k is not None for k in kernels), task
    calls.clear()
    without = replace(SHIPPED, kernel_tasks=("mef",))
    gaussian, _ = deblur_inputs(soft, without, "vif")
    blind, _ = deblur_inputs(soft, SHIPPED, "vif")
    assert calls == [kernel_size(input_psfs(soft, SHIPPED, "vif")[0], SHIPPED)]  # the blind path only
    assert psnr(blind[0], pair[0]) > psnr(gaussian[0], pair[0])


def test_kernel_settings_are_checked_and_older_folders_keep_the_gaussian() -> None:
    assert DeblurConfig.from_dict({"min_width": 1.12}).kernel_tasks == ()
    for bad in ({"kernel_tasks": ["xyz"]}, {"kernel_max": 5}, {"kernel_side": 100}, {"kernel_reach": 0.0}):
        with pytest.raises(ValueError, match="bad deblur config"):
            DeblurConfig.from_dict(bad)
    assert kernel_size(0.0, SHIPPED) is None
    assert kernel_size(1.0, SHIPPED) == 9 and kernel_size(0.5, SHIPPED) == 7  # at least 7 px
    assert kernel_size(6.0, SHIPPED) is None  # 49 px > kernel_max: the Gaussian stays


@pytest.mark.parametrize(("h", "w", "pad"), [(384, 384, 13), (100, 37, 9), (5, 40, 4), (1024, 1024, 26)])
def test_planes_are_padded_to_fast_fft_sizes_by_reflection(h: int, w: int, pad: int) -> None:
    plane = np.random.default_rng(0).random((h, w)).astype(np.float32)
    out = fast_pad(plane, pad)
    assert out.shape == fast_sides(h, w, pad)
    for n, side in zip((h, w), out.shape, strict=True):
        cap = 2 * n + pad - 1  # as far as a reflection reaches
        assert min(n + 2 * pad, cap) <= side <= cap
        rest = side
        for p in (2, 3, 5, 7, 11):
            while rest % p == 0:
                rest //= p
        assert rest == 1 or side == cap, side  # no prime factor above 11, unless capped
    # the plane sits at (pad, pad), mirrored (edge repeated) on every side
    np.testing.assert_array_equal(out[pad : pad + h, pad : pad + w], plane)
    np.testing.assert_array_equal(out[:pad, pad : pad + w], plane[:pad][::-1])
    np.testing.assert_array_equal(out[pad : pad + h, pad + w : 2 * pad + w], plane[:, ::-1][:, :pad])


def test_the_stage_measures_each_input_s_edges_once(monkeypatch) -> None:
    calls: list[int] = []
    measure = allfuse.deblur.edge_samples

    def counted(image: np.ndarray, *args) -> tuple[np.ndarray, np.ndarray] | None:
        calls.append(1)
        return measure(image, *args)

    monkeypatch.setattr(allfuse.deblur, "edge_samples", counted)
    sharp = resized_photo("camera", 256)
    soft = [convolve(x, shake(9.0, 2)) for x in (sharp, np.ascontiguousarray(sharp[:, ::-1]))]
    for task in ("vif", "mef"):
        calls.clear()
        _, psfs = deblur_inputs(soft, SHIPPED, task)
        assert len(calls) == 2 and all(np.ndim(p) or p for p in psfs), task  # measured once, deconvolved


def test_a_kernel_s_distance_to_a_gaussian_tells_gaussian_blur_from_defocus_and_shake() -> None:
    g = cv2.getGaussianKernel(13, 1.8)
    assert gaussian_distance(g @ g.T) < 0.01  # a sampled Gaussian is its own moments' Gaussian
    assert gaussian_distance(disk(3.0)) > 0.4 and gaussian_distance(shake(11.0, 1)) > 0.4
    delta = np.zeros((7, 7))
    delta[3, 3] = 1.0
    assert np.isfinite(gaussian_distance(delta))


def test_a_kernel_close_to_a_gaussian_is_deconvolved_with_the_weaker_regularizer() -> None:
    smooth = replace(SHIPPED, smooth_balance=0.005)
    sharp = resized_photo("camera", 320)
    inner = (slice(16, -16),) * 2
    blurs = {
        "gaussian": cv2.GaussianBlur(sharp, (0, 0), 1.6, borderType=cv2.BORDER_REFLECT),
        "disk": convolve(sharp, disk(3.0)),
        "shake": convolve(sharp, shake(11.0, 1)),
    }
    for name, soft in blurs.items():
        kernel = input_kernels([soft], input_psfs([soft], smooth, "vif"), smooth, "vif")[0]
        assert kernel is not None, name
        before = deblur_inputs([soft], SHIPPED, "vif")[0][0]
        after = deblur_inputs([soft], smooth, "vif")[0][0]
        if name == "gaussian":  # its estimate is near a Gaussian: the weaker regularizer, more restored
            assert kernel_balance(kernel, smooth) == pytest.approx(0.005)
            assert psnr(after[inner], sharp[inner]) > psnr(before[inner], sharp[inner]) + 0.4
            # unless the deblocking stage rebuilt the input: then the stage's balance, as without it
            kept = deblur_inputs([soft], smooth, "vif", rebuilt=[True])[0][0]
            assert np.array_equal(kept, before)
            with pytest.raises(ValueError, match="rebuilt flags"):
                deblur_inputs([soft, soft], smooth, "vif", rebuilt=[True])
        else:  # spectral zeros: the stage's balance, the same output as without the setting
            assert kernel_balance(kernel, smooth) == SHIPPED.balance, name
            assert np.array_equal(after, before), name


def test_the_smooth_balance_settings_are_checked_and_older_folders_keep_one_balance() -> None:
    old = DeblurConfig.from_dict({"min_width": 1.12})
    assert old.smooth_balance == 0.0 and kernel_balance(disk(1.0), old) == old.balance
    mid = replace(SHIPPED, smooth_balance=0.005, smooth_near=0.0, smooth_far=1.0)
    halfway = 0.005 * (0.02 / 0.005) ** gaussian_distance(disk(3.0))  # geometric in the distance
    assert kernel_balance(disk(3.0), mid) == pytest.approx(halfway)
    for bad in (
        {"smooth_balance": 0.05},
        {"smooth_balance": -1.0},
        {"smooth_near": 0.3, "smooth_far": 0.3},
        {"wide_far": 0.1},
        {"wide_tasks": ["hdr"]},
    ):
        with pytest.raises(ValueError, match="bad deblur config"):
            DeblurConfig.from_dict(bad)
    assert old.wide_tasks == ()


def test_a_wide_task_reaches_the_full_balance_only_at_wide_far() -> None:
    cfg = replace(SHIPPED, smooth_balance=0.005, wide_tasks=("mef",), wide_far=0.6)
    kernel = disk(3.0)  # a defocus disk: between smooth_far and wide_far from its Gaussian
    d = gaussian_distance(kernel)
    assert cfg.smooth_far < d < cfg.wide_far
    expected = 0.005 * (0.02 / 0.005) ** ((d - cfg.smooth_near) / (cfg.wide_far - cfg.smooth_near))
    assert kernel_balance(kernel, cfg, "mef") == pytest.approx(expected)
    assert kernel_balance(kernel, cfg, "mef") < cfg.balance
    for task in ("vif", "mff", ""):  # the other tasks keep smooth_far: the full balance here
        assert kernel_balance(kernel, cfg, task) == cfg.balance, task
    # far enough from a Gaussian, every task deconvolves at the full balance
    path = shake(11.0, 1)
    assert gaussian_distance(path) > cfg.wide_far and kernel_balance(path, cfg, "mef") == cfg.balance
    # through the stage: a defocused bracket is deconvolved harder than without the setting
    sharp = resized_photo("camera", 256)
    soft = convolve(sharp, kernel)
    inner = (slice(16, -16),) * 2
    as_mef = deblur_inputs([soft, soft], cfg, "mef")[0][0]
    without = deblur_inputs([soft, soft], replace(cfg, wide_tasks=()), "mef")[0][0]
    assert not np.array_equal(as_mef, without)
    detail = [float(np.abs(np.diff(x[inner], axis=1)).mean()) for x in (as_mef, without, sharp)]
    assert detail[1] < detail[0] < detail[2] * 1.2  # sharper, not rung past the clean photo's detail


def one_sided(length: int = 12, std: float = 4.0, angle: float = 0.3) -> np.ndarray:
    """A streak heaviest at its start, which is the kernel's centre (ImageNet-C's motion blur): weights
    exp(-t^2 / 2 std^2) at t = 0..length px along `angle`, drawn anti-aliased."""
    r = length + 2
    k = np.zeros((8 * (2 * r + 1),) * 2, np.float32)
    for t in np.linspace(0, length, 8 * length + 1):
        x, y = (r + t * np.cos(angle) + 0.5) * 8, (r + t * np.sin(angle) + 0.5) * 8
        cv2.circle(k, (round(x), round(y)), 3, float(np.exp(-(t**2) / (2 * std**2))), -1)
    k = cv2.resize(k, (2 * r + 1, 2 * r + 1), interpolation=cv2.INTER_AREA)
    return (k / k.sum()).astype(np.float64)


def test_a_one_sided_streak_is_told_from_symmetric_and_compact_kernels() -> None:
    gaussian = cv2.getGaussianKernel(15, 2.0) @ cv2.getGaussianKernel(15, 2.0).T
    dot = shake(0.0, 0)  # compact
    skew, elongation = streak_shape(one_sided())
    assert skew > 0.5 and elongation > 3.0
    for name, k in {"gaussian": gaussian, "disk": disk(4.0), "dot": dot, "shake": shake(11.0, 1)}.items():
        skew, elongation = streak_shape(k)
        assert skew < 0.4 or elongation < 2.0, (name, skew, elongation)
    even = np.zeros((15, 15))
    even[7, 1:14] = 1.0  # a straight streak of even speed: long, not skewed
    skew, elongation = streak_shape(even)
    assert skew < 0.05 and elongation > 10


def test_a_one_sided_streak_is_anchored_at_its_peak_and_restores_the_scene_where_it_was() -> None:
    streaky = replace(SHIPPED, streak_skew=0.4, streak_elongation=2.0)
    k = clean_kernel(one_sided())  # as the estimate places it: on its centroid
    assert np.array_equal(anchored(k, SHIPPED), k)  # the setting off (older folders): the centroid
    np.testing.assert_allclose(anchored(k, streaky), at_peak(k))
    for symmetric in (disk(4.0), shake(11.0, 1)):
        assert np.array_equal(anchored(symmetric, streaky), symmetric)
    sharp = resized_photo("camera", 320)
    soft = convolve(sharp, one_sided())  # the scene displaced toward the streak's start, as ImageNet-C does
    inner = (slice(24, -24),) * 2
    found = input_kernels([soft], input_psfs([soft], SHIPPED, "mff"), SHIPPED, "mff")[0]
    assert found is not None and streak_shape(found)[0] >= 0.4 and streak_shape(found)[1] >= 2.0
    before = deblur_inputs([soft], SHIPPED, "mff")[0][0]
    after = deblur_inputs([soft], streaky, "mff")[0][0]
    assert psnr(after[inner], sharp[inner]) > psnr(before[inner], sharp[inner]) + 1.0


def test_a_streak_anchored_at_its_start_is_deconvolved_where_the_scene_was() -> None:
    truth = one_sided(length=12, std=4.0, angle=0.3)  # its start (t = 0) is the kernel's centre
    k = clean_kernel(truth)  # as the estimate places it: on its centroid, about 3 px past the start
    c = truth.shape[0] // 2
    for reach in (1.1, 1.32):
        moved = at_start(k, reach)
        assert moved.sum() == pytest.approx(1.0) and moved.shape[0] == moved.shape[1] and moved.shape[0] % 2
        centre, axis, along, _, _ = long_axis(moved)
        # the centroid now lies `reach` stds past the kernel's centre, toward the streak's light end
        np.testing.assert_allclose(centre - moved.shape[0] // 2, reach * along * axis, atol=0.1)
        assert along == pytest.approx(long_axis(k)[2], rel=0.05)  # moved (bilinearly), not reshaped
    # a half-Gaussian streak starts 1.32 of its stds before its centroid: anchored there, it is where the
    # true kernel is (within half a pixel)
    found = long_axis(at_start(k, 1.32))[0] - at_start(k, 1.32).shape[0] // 2
    np.testing.assert_allclose(found, long_axis(truth)[0] - c, atol=0.5)
    sharp = resized_photo("camera", 320)
    soft = convolve(sharp, truth)  # displaced toward the streak's start, as ImageNet-C's motion blur is
    inner = (slice(24, -24),) * 2
    scores = {
        name: psnr(wiener_kernel(soft, kernel, 0.005)[inner], sharp[inner])
        for name, kernel in {"centroid": k, "peak": at_peak(k), "start": at_start(k, 1.1)}.items()
    }
    assert scores["start"] > scores["peak"] + 1.0 and scores["start"] > scores["centroid"] + 3.0, scores
    # the stage: the shipped reach on a one-sided streak, the peak without it, symmetric kernels untouched
    starting = replace(SHIPPED, streak_skew=0.4, streak_elongation=2.0, streak_start=1.1)
    np.testing.assert_allclose(anchored(k, starting), at_start(k, 1.1))
    for symmetric in (disk(4.0), shake(11.0, 1)):
        assert np.array_equal(anchored(symmetric, starting), symmetric)
    peaked = deblur_inputs([soft], replace(starting, streak_start=0.0), "mff")[0][0]
    started = deblur_inputs([soft], starting, "mff")[0][0]
    assert psnr(started[inner], sharp[inner]) > psnr(peaked[inner], sharp[inner]) + 1.0


def test_a_long_kernel_is_read_as_a_streak_at_a_lower_skew() -> None:
    base = replace(SHIPPED, streak_skew=0.4, streak_elongation=2.0)
    longer = replace(base, streak_long_skew=0.3, streak_long_elongation=3.5)
    assert streak_test(0.45, 2.1, base) and streak_test(0.45, 2.1, longer)  # the first test, either way
    assert not streak_test(0.32, 5.0, base) and streak_test(0.32, 5.0, longer)  # long: a lower skew will do
    assert not streak_test(0.32, 3.0, longer)  # ... only from streak_long_elongation on
    assert not streak_test(0.25, 6.0, longer) and not streak_test(0.9, 1.5, longer)
    assert not streak_test(0.9, 9.0, replace(longer, streak_skew=0.0))  # no streak test at all
    # an estimate of a long one-sided streak that is only mildly skewed is anchored at its start
    k = clean_kernel(one_sided(length=16, std=11.0, angle=0.2))  # only a little heavier at its start
    skew, elongation = streak_shape(k)
    assert 0.3 <= skew < 0.4 and elongation >= 3.5, (skew, elongation)
    assert np.array_equal(anchored(k, replace(base, streak_start=1.1)), k)
    np.testing.assert_allclose(anchored(k, replace(longer, streak_start=1.1)), at_start(k, 1.1))


def test_the_streak_settings_are_checked_and_older_folders_keep_the_centroid() -> None:
    old = DeblurConfig.from_dict({"min_width": 1.12})
    assert old.streak_skew == 0.0 and old.streak_start == 0.0 and old.streak_long_skew == 0.0
    bad_cases = (
        {"streak_skew": -0.1},
        {"streak_elongation": 0.5},
        {"streak_start": -1.0},
        {"streak_long_skew": -0.3},
        {"streak_elongation": 3.0, "streak_long_elongation": 2.5},
    )
    for bad in bad_cases:
        with pytest.raises(ValueError, match="streak"):
            DeblurConfig.from_dict(bad)
