"""Guess the fusion task of a set of sources, and the classical method to use for each task."""

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from allfuse.color import is_color, to_gray
from allfuse.types import Image, Task

# Best classical fusion per task, chosen by measurement on 8 pairs of each shared dataset with the metrics
# MMAIF reports per task (VIF: VIF, Qabf; MEF/MFF: Qcv, Qabf; plus MEF-SSIM for MEF); README "Baselines".
# VIF: `focus` scores highest on VIF/Qabf but its hard decision map leaves blotches a person sees at once
# (dark patches of IR on a lit road), so the runner-up `gff` is the default. MEF: `laplacian` beats
# `mertens` on Qcv, Qabf and MEF-SSIM on MEFB. MFF: `focus` leads Qabf and VIF on Lytro and MFI-WHU.
CLASSICAL_DEFAULT: dict[Task, str] = {"vif": "gff", "mef": "laplacian", "mff": "focus"}

# Thresholds measured on the shared benchmark pairs (tests/test_tasks.py checks every pair): IR/visible
# luminance rank correlation spans -0.80..0.84, multi-exposure and multi-focus pairs 0.39..1.0 (10th
# percentile 0.83), exposure brackets differ in mean luminance far more than focus pairs.
EXPOSURE_GAP = 0.12  # |mean luminance difference| above which a pair is an exposure bracket
SAME_MODALITY_RANK_CORR = 0.85  # Spearman correlation above which two gray images are one modality


def guess_task(images: Sequence[Image]) -> Task:
    """Guess vif / mef / mff from the sources alone (the CLI's --task overrides it).

    Colour + gray sources are VIF; two gray sources whose luminance ranks disagree are VIF (two
    modalities); otherwise an exposure gap makes MEF and its absence MFF.
    """
    colours = [is_color(x) for x in images]
    if any(colours) and not all(colours):
        return "vif"
    grays = [to_gray(x)[::4, ::4].astype(np.float64).ravel() for x in images]
    if not any(colours):
        flat = any(np.ptp(g) == 0 for g in grays)  # Spearman is undefined there (scipy warns)
        rank_corr = np.nan if flat else min(spearmanr(grays[0], g)[0] for g in grays[1:])
        if not rank_corr > SAME_MODALITY_RANK_CORR:  # NaN (a flat image) counts as 'not the same'
            return "vif"
    means = [g.mean() for g in grays]
    return "mef" if max(means) - min(means) > EXPOSURE_GAP else "mff"
