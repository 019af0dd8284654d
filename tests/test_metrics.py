"""Golden values, exact properties and real-data checks for allfuse.metrics.

Regression values below were computed with allfuse.metrics on scikit-image's shipped sample images and
cross-checked independently when written: EN, SD, SF, AG, MI, SCD, CC, VIF, Qabf, SSIM against a
line-by-line transcription of CDDFuse's utils/Evaluator.py (agreement <= 1e-9); Nabf against the
Python port of Kumar's objective_fusion_perform_fn; Qcv against a transcription of VIFB metricChen.m;
MEF-SSIM against the per-window loops of mef_ssim.m (1e-13); BRISQUE against the `brisque` package's
own score (-7.8794042943 on camera, 3e-11). BRISQUE and the NIQEs have their own tests in test_noref.py.
"""

import math

import cv2
import numpy as np
import pytest
from skimage import data

from allfuse.metrics import METRICS, WeightsUnavailable, available, compute, edges, fusion, mef


def camera_crop() -> np.ndarray:
    return data.camera()[128:256, 128:256] / 255.0


def brick_crop() -> np.ndarray:
    return data.brick()[0:128, 0:128] / 255.0


def step_image(h: int = 64, w: int = 64) -> np.ndarray:
    """Binary image: left half 0, right half 1, with a bright square for edges in both directions."""
    x = np.zeros((h, w))
    x[:, w // 2 :] = 1.0
    x[h // 4 : h // 2, w // 8 : w // 4] = 1.0
    return x


# --- hand-computed golden values -------------------------------------------------------------------


def test_entropy_two_and_four_levels():
    two = np.zeros((8, 8))
    two[:, 4:] = 1.0
    assert compute(two, [two, two], names=["EN"])["EN"] == pytest.approx(1.0, abs=1e-12)
    four = np.tile(np.array([0, 1, 2, 3]) / 3.0, (4, 1))
    assert compute(four, [four, four], names=["EN"])["EN"] == pytest.approx(2.0, abs=1e-12)


def test_sd_sf_ag_on_a_ramp():
    ramp = np.tile(np.array([0.0, 10.0, 20.0, 30.0]) / 255.0, (4, 1))  # columns 0, 10, 20, 30 gray levels
    r = compute(ramp, [ramp, ramp], names=["SD", "SF", "AG"])
    assert r["SD"] == pytest.approx(math.sqrt(125.0), rel=1e-12)  # values 0/10/20/30, mean 15
    assert r["SF"] == pytest.approx(10.0, rel=1e-12)  # every column difference is 10, rows 0
    assert r["AG"] == pytest.approx(10.0 / math.sqrt(2.0), rel=1e-12)  # Gx = 10, Gy = 0


def test_mutual_information_identical_and_independent():
    two = np.zeros((8, 8))
    two[:, 4:] = 1.0
    # CDDFuse convention: sum over sources, natural log -> MI(F, F) = H(F) = ln 2 per source.
    assert compute(two, [two, two], names=["MI"])["MI"] == pytest.approx(2 * math.log(2), rel=1e-12)
    rows = np.zeros((8, 8))
    rows[::2] = 1.0
    cols = rows.T.copy()  # the joint histogram of rows vs cols is the product of the marginals
    assert compute(rows, [cols, cols], names=["MI"])["MI"] == pytest.approx(0.0, abs=1e-12)


def test_cc_and_scd_on_uncorrelated_patterns():
    a = np.full((8, 8), 0.25)
    a[::2] = 0.75  # rows alternate
    b = a.T.copy()  # columns alternate: zero covariance with a, same variance
    f = (a + b) / 2
    r = compute(f, [a, b], names=["CC", "SCD"])
    assert r["CC"] == pytest.approx(1 / math.sqrt(2), rel=1e-12)  # corr((a+b)/2, a)
    assert r["SCD"] == pytest.approx(math.sqrt(2), rel=1e-12)  # 2 corr((a-b)/2, a)
    assert compute(a + b - 0.5, [a, b], names=["SCD"])["SCD"] == pytest.approx(2.0, rel=1e-12)


def test_psnr_mse_by_hand():
    f, a, b = np.full((4, 4), 0.5), np.full((4, 4), 0.4), np.full((4, 4), 0.7)
    r = compute(f, [a, b], names=["MSE", "PSNR"])
    assert r["MSE"] == pytest.approx((0.01 + 0.04) / 2, rel=1e-12)
    assert r["PSNR"] == pytest.approx(10 * math.log10(255.0**2 / 0.025), rel=1e-12)
    ref = np.full((4, 4), 0.6)
    r = compute(f, [a, b], names=["MSE_ref", "PSNR_ref", "SSIM_ref"], reference=ref)
    assert r["MSE_ref"] == pytest.approx(0.01, rel=1e-12)
    assert r["PSNR_ref"] == pytest.approx(20.0, rel=1e-12)


def test_reference_metrics_only_with_a_reference():
    a, b = camera_crop(), brick_crop()
    f = (a + b) / 2
    assert not {"PSNR_ref", "MSE_ref", "SSIM_ref"} & set(compute(f, [a, b], names=["PSNR_ref", "SSIM"]))
    r = compute(f, [a, b], reference=f)
    assert r["PSNR_ref"] == math.inf and r["MSE_ref"] == 0.0 and r["SSIM_ref"] == pytest.approx(1.0)


# --- exact properties ---------------------------------------------------------------------------------


def test_fused_equal_to_every_source():
    x = camera_crop()
    r = compute(x, [x, x])
    en = r["EN"]
    assert r["MI"] == pytest.approx(2 * en * math.log(2), rel=1e-12)
    assert r["SSIM"] == pytest.approx(1.0, abs=1e-12)
    assert r["MEF-SSIM"] == pytest.approx(1.0, abs=1e-6)  # the 0.001 in the signal strength
    assert r["VIF"] == pytest.approx(2.0, abs=1e-8)  # 1 per source
    assert r["CC"] == pytest.approx(1.0, abs=1e-12)
    assert r["Nabf"] == 0.0 and r["Qcv"] == 0.0 and r["MSE"] == 0.0
    assert r["PSNR"] == math.inf


def test_qabf_of_a_copied_step_edge():
    x = step_image()
    # Every edge is 255+ gray levels strong: Q^{SF} = Tg * Ta / (1 + e^{-4.4}) on all of them.
    expected = 0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert compute(x, [x, x], names=["Qabf"])["Qabf"] == pytest.approx(expected, rel=1e-12)


def test_vif_of_a_flat_fused_image_is_zero():
    a, b = camera_crop(), brick_crop()
    assert compute(np.full_like(a, 0.5), [a, b], names=["VIF"])["VIF"] == 0.0


def test_swapping_sources_changes_nothing():
    a, b = camera_crop(), brick_crop()
    f = np.clip(0.7 * a + 0.5 * b - 0.1, 0, 1)
    names = [n for n in available() if METRICS[n].kind != "noref"]  # no-reference: no sources
    ab, ba = compute(f, [a, b], names=names), compute(f, [b, a], names=names)
    for name in names:
        assert ab[name] == pytest.approx(ba[name], rel=1e-12, abs=1e-12), name


def test_blurring_lowers_sharpness_and_edge_preservation():
    a, b = camera_crop(), brick_crop()
    f = (a + b) / 2
    blurred = cv2.GaussianBlur(f, (0, 0), 1.5)
    sharp, soft = (
        compute(f, [a, b], names=["SF", "AG", "Qabf"]),
        compute(blurred, [a, b], names=["SF", "AG", "Qabf"]),
    )
    for name in ("SF", "AG", "Qabf"):
        assert soft[name] < sharp[name], name


def test_nabf_counts_artifacts():
    a, b = camera_crop(), brick_crop()
    f = (a + b) / 2
    ripple = np.clip(f + 0.15 * np.sin(np.arange(128) / 2.0)[None, :], 0, 1)
    assert compute(f, [a, b], names=["Nabf"])["Nabf"] < 1e-9  # averaging creates no stronger edge
    # Regression, cross-checked with the Python port of Kumar's code (0.0630585637).
    assert edges.nabf(ripple * 255, [a * 255, b * 255]) == pytest.approx(0.06305855297762519, rel=1e-6)


def test_mef_ssim_matches_the_per_window_definition():
    rng = np.random.default_rng(0)
    seq = [cv2.GaussianBlur(rng.random((20, 24)) * 255, (0, 0), 1.0) for _ in range(3)]
    f = np.mean(seq, axis=0) + rng.normal(0, 2, (20, 24))
    assert mef.mef_ssim_single(seq, f) == pytest.approx(_mef_ssim_loops(seq, f), rel=1e-10)


def _mef_ssim_loops(seq: list[np.ndarray], f: np.ndarray) -> float:
    """Single-scale MEF-SSIM by explicit loops over 11x11 windows (Ma et al. 2015, Eqs. 3-13)."""
    eps, w, c = np.finfo(float).eps, 11, (0.03 * 255) ** 2
    g = cv2.getGaussianKernel(11, 1.5)
    g = g @ g.T
    q = []
    for i in range(f.shape[0] - w + 1):
        for j in range(f.shape[1] - w + 1):
            xs = [s[i : i + w, j : j + w] for s in seq]
            centred = [x - x.mean() for x in xs]
            ed = np.array([np.linalg.norm(x) + 0.001 for x in centred])
            total = sum(xs)
            r = (np.linalg.norm(total - total.mean()) + eps) / (sum(np.linalg.norm(x) for x in centred) + eps)
            p = min(math.tan(math.pi / 2 * min(max(r, eps), 1 - eps)), 10.0)
            wts = (ed / w) ** p + eps
            wts = wts / wts.sum()
            rb = sum(wk * x / e for wk, x, e in zip(wts, centred, ed, strict=True))
            if np.linalg.norm(rb) > 0:
                rb = rb / np.linalg.norm(rb) * ed.max()
            fb = f[i : i + w, j : j + w]
            m1, m2 = np.sum(g * rb), np.sum(g * fb)
            v1, v2 = np.sum(g * (rb - m1) ** 2), np.sum(g * (fb - m2) ** 2)
            cov = np.sum(g * (rb - m1) * (fb - m2))
            q.append((2 * cov + c) / (v1 + v2 + c))
    return float(np.mean(q))


# --- regression values (see module docstring for how each was cross-checked) -------------------------

GOLDEN_AVERAGE = {  # F = (camera crop + brick crop) / 2
    "EN": 6.399605285590093,
    "SD": 31.760125489539423,
    "SF": 12.444198157790414,
    "AG": 4.771647704199911,
    "MI": 2.808155851492714,
    "SCD": 1.2532093130433466,
    "CC": 0.688730474706119,
    "VIF": 0.6431461036973953,
    "Qabf": 0.4410277667132997,
    "Qcv": 761.6709061622107,
    "SSIM": 0.610180448850798,
    "MEF-SSIM": 0.8550678991839248,
    "PSNR": 64.67524729854816,
    "MSE": 0.02215927927735126,
    "BRISQUE": 37.06953224386345,
}


def test_regression_values_on_an_average_fusion():
    a, b = camera_crop(), brick_crop()
    r = compute((a + b) / 2, [a, b], names=list(GOLDEN_AVERAGE))
    for name, value in GOLDEN_AVERAGE.items():
        assert r[name] == pytest.approx(value, rel=1e-7), name


def test_fusion_functions_accept_more_than_two_sources():
    a, b = camera_crop(), brick_crop()
    c = np.clip(1 - a, 0, 1)
    f = (a + b + c) / 3
    r = compute(f, [a, b, c])
    assert all(np.isfinite(v) for v in r.values())
    assert fusion.sum_of_correlations_of_differences(f, [f, f, f]) == 0.0  # F - mean(others) is flat


# --- registry, errors and learned IQA ----------------------------------------------------------------


def test_registry_and_unknown_names():
    report_order = "EN SD SF AG MI SCD CC VIF Qabf Nabf Qcv SSIM MEF-SSIM PSNR MSE PSNR_ref MSE_ref SSIM_ref"
    assert list(METRICS)[:21] == [*report_order.split(), "BRISQUE", "NIQE", "NIQE_MATLAB"]
    assert {n for n, m in METRICS.items() if m.needs_reference} == {"PSNR_ref", "MSE_ref", "SSIM_ref"}
    assert "MUSIQ" in METRICS and METRICS["NIQE_MATLAB"].kind == "noref"
    for name, info in METRICS.items():
        assert info.name == name and callable(info.fn)
    assert not METRICS["Nabf"].higher_is_better and METRICS["PSNR_ref"].needs_reference
    x = camera_crop()
    with pytest.raises(ValueError, match="valid names"):
        compute(x, [x, x], names=["QABF"])


def test_input_validation():
    x = camera_crop()
    with pytest.raises(ValueError, match="float"):
        compute((x * 255).astype(np.uint8), [x, x])
    with pytest.raises(ValueError, match="at least 2"):
        compute(x, [x])
    with pytest.raises(ValueError, match="size"):
        compute(x, [x, x[:64]])


def test_learned_iqa_needs_local_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("ALLFUSE_IQA_WEIGHTS", raising=False)
    x = camera_crop()
    assert "MUSIQ" not in compute(x, [x, x], names=None)
    with pytest.raises(WeightsUnavailable, match=r"musiq\.pt2.*ALLFUSE_IQA_WEIGHTS"):
        compute(x, [x, x], names=["MUSIQ"])
    torch = pytest.importorskip("torch")

    class MeanScore(torch.nn.Module):
        def forward(self, img: torch.Tensor) -> torch.Tensor:
            return img.mean()

    program = torch.export.export(MeanScore(), (torch.rand(1, 3, *x.shape),))
    torch.export.save(program, str(tmp_path / "musiq.pt2"))
    monkeypatch.setenv("ALLFUSE_IQA_WEIGHTS", str(tmp_path))
    assert "MUSIQ" in available() and "LIQE" not in available()
    assert compute(x, [x, x], names=["MUSIQ"])["MUSIQ"] == pytest.approx(x.mean(), rel=1e-6)


# --- real data and colour ----------------------------------------------------------------------------


def test_rgb_fused_with_mixed_sources_is_finite():
    rgb = data.astronaut()[:192, 160:352] / 255.0
    gray = data.camera()[:192, :192] / 255.0
    fused = np.clip(0.6 * rgb + 0.4 * gray[..., None], 0, 1)
    r = compute(fused, [rgb, gray], reference=rgb)
    assert set(r) == set(available(has_reference=True))
    for name, value in r.items():
        assert np.isfinite(value), name


def test_tno_pair_average_fusion_is_finite(shared_data):
    root = shared_data / "ivif" / "TNO"
    ir = cv2.imread(str(root / "ir" / "01.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    vi = cv2.imread(str(root / "vi" / "01.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    r = compute((ir + vi) / 2, [ir, vi])
    assert set(r) == set(available())
    for name, value in r.items():
        assert np.isfinite(value), name
