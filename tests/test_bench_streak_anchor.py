"""bench/streak_anchor.py: its columns score what they name (a streak's start restores more than its centroid
and its peak, the blurred input is scored as it is) and its shape-test table counts what passes."""

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from allfuse.deblur import DeblurConfig

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the script imports its bench neighbours (degrade, cases, machine)
from test_bench_degrade import load_bench_module  # noqa: E402

S = load_bench_module(BENCH / "streak_anchor.py")
STAGE = DeblurConfig(
    anisotropic=True, kernel_tasks=("mff",), smooth_balance=0.005, streak_skew=0.4, streak_start=1.1
)


def test_the_start_restores_a_one_sided_streak_more_than_the_centroid_and_the_peak():
    clean = cv2.resize(data.camera(), (256, 256), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
    streak = S.degrade_c.streak_kernel(10, 3, 0.2)  # ImageNet-C's mild motion blur
    reaches = [1.1, 1.32]
    scores = S.anchor_scores(clean, streak, STAGE, "mff", reaches)
    assert len(scores) == 4 + len(reaches)  # input, centroid, peak, each reach, the stage
    soft = np.round(np.clip(S.degrade_c.convolve(clean.astype(np.float32), streak), 0, 1) * 255) / 255
    assert scores[0] == pytest.approx(S.psnr(soft, clean), abs=1e-6)
    centroid, peak, start = scores[1], scores[2], scores[3]
    assert start > centroid + 3.0 and start > peak + 1.0 and start > scores[0] + 1.0, scores


def test_the_shape_test_table_counts_passes_and_sums_the_gains():
    cfg = DeblurConfig(streak_skew=0.4, streak_elongation=2.0)
    cases = [
        (True, [(0.5, 3.0)], 5.0),  # a streak both tests catch
        (True, [(0.5, 2.2)], 2.0),  # caught by the folder's test only
        (True, [(0.1, 1.2)], 0.0),  # missed by both
        (False, [(0.6, 2.1)], -3.0),  # another blur the folder's test lets through
        (False, [(0.0, 1.0)], 0.0),
        (False, [], 0.0),  # no kernel estimated: not counted
        (True, [(0.5, 3.0), (0.5, 1.5)], 0.0),  # a bracket: every kernel must pass
    ]
    rows = S.gate_table(cases, S.shape_tests(cfg, [(0.3, 2.5)]))
    assert rows[2] == "| the folder's | 2 of 4 | +7.0 | 1 of 2 | -3.0 |"
    assert rows[3] == "| skew ≥ 0.3, elongation ≥ 2.5 | 1 of 4 | +5.0 | 0 of 2 | +0.0 |"
