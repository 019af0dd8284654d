"""Exposure stage: stretch a flat input's (or a flat pair's) contrast back, undo a whole-pair under-exposure
by the headroom it leaves, then lift a bracket whose brightest member is dark (pipeline.restore_inputs);
after the input corrector, stretch a veiled multi-focus input or a flat multi-exposure bracket, then dehaze
a multi-focus input that still reads hazy.

Beyond the papers. A capture under-exposed by a factor k in linear light shows, in display values
I = (k L) ** (1 / gamma), the clean picture times k ** (1 / gamma): a gain in display values as well (a power
law commutes with a gain). So its brightest pixels sit far below the top of the range, and one gain g,
the headroom's inverse, brings it back: the classical "auto levels" step. A gamma curve that pulls the
mean to a set value (0.45) instead lost Qabf on the bench's under-exposed multi-focus and multi-exposure
pairs (MFF mild 0.454 -> 0.385, MEF 0.446 -> 0.431) where the full gain wins (0.514 and 0.535).

Measure: the `percentile` (99.5) of the luminance of all inputs pooled, p. One gain for the whole pair:
the over-exposed member of a multi-exposure pair sets it, so a dark bracket member stays dark (and its
pair gets no gain when nothing is wrong). Gain: g = target / p, at most `max_gain`, ramped in log-gain from
none at p = high to all of it at p = low, so that no input jumps at a threshold:
    w = clip((high - p) / (high - low), 0, 1),   g = min(max_gain, target / p) ** w
Every input is multiplied by g and clipped to [0, 1] (colours keep their hue). The amplified sensor noise
is the DiT's to remove; the input corrector (allfuse.models.correct) runs after this stage.

Thresholds, per task, from the shared benchmark's clean pairs (all 500, full size): the lowest pooled p99.5
is 0.958 on the 98 multi-exposure pairs (an over-exposed member always reaches the top) and 0.549 on the
140 multi-focus pairs (MFI-WHU/88, a dim scene); `high` sits below each (0.9 and 0.54), so no clean pair of
either task gets a gain. The ramps are short (down to `low` 0.8 and 0.48): the latent path answers a
half-brightened pair worst. On the validation bench's three mildly under-exposed multi-focus pairs
(bench/quality.py families, allfuse-reg), a gain of 1.25 gave Qabf 0.527 / 0.420 / 0.348 and the full gain
of about 2 gave 0.482 / 0.502 / 0.551 (no gain: 0.518 / 0.435 / 0.409); a ramp from 0.54 to 0.40 left the
cell at 0.420, this one gives 0.488 (no stage: 0.454).

Lift (`lift`, per task; the shipped models: multi-exposure pairs, target 0.45). A tone curve that darkens
the whole bracket, I' = I ** k with k > 1 (a darker camera or editing curve; albumentations' RandomGamma),
leaves the white point where it was, so the headroom above sees little or nothing; but it pulls every
mid-tone down, the over-exposed member's too, and the brightest member of a bracket is the one meant to
show the shadows. So after the gain, when the brightest input's mean luminance m is below the target T,
every input goes through x ** g (each channel) with g = log T / log m, the curve that takes the value m
to T, and g >= `min_gamma` (1/3); g is 1 at m = T, so no pair jumps at a threshold.
On the shared benchmark's 98 clean multi-exposure pairs (long side 512), it lifts 9 dark scenes; their
fusion by allfuse-reg against their own sources: Qabf up on 7 (mean +0.013), VIF up on all 9 (+0.083)
(bench/results/exposure_lift.md). On the validation bench's multi-exposure cells (bench/quality.py
families, allfuse-reg): the cross-check generator's gamma-darkened cells 0.515 -> 0.571 (mild) and
0.362 -> 0.453 (strong), the mean of its 26 cells 0.4478 -> 0.4546; the bench's own generator, whose low
light is mostly the gain undone above, 0.5116 -> 0.5105: its one dark validation scene is lifted in every
cell, and with it the noise left in its shadows (noise and low-light cells -0.005 to -0.006). The noise
after a lift is the DiT's to remove, as after a gain.

Infrared + visible pairs (the shipped models: `high` 0.47, `low` 0.40) get a gain only when both cameras
are dark. A night scene's visible image alone is as dark, and as far from the top of its range, as a daytime
one under-exposed (MSRS night images: p99.5 0.47-0.65; the bench's under-exposed daytime visible images:
0.21-0.58), and brightening a night scene costs Qabf against its clean (dark) sources (a gamma to mean 0.45
on six MSRS night pairs: -0.04 to -0.07 clean, -0.02 to -0.06 under the bench's noise); but the thermal
image beside it keeps its hot objects near the top, so the pair's pooled percentile stays high: its lowest
over the 262 clean infrared + visible pairs of the shared benchmark is 0.509 (MSRS 00020N, a night scene),
at native size and at a long side of 512. Below 0.47 both images are dark: albumentations' contrast loss
(a gain below 1 on every input; `bench/quality.py --generator albumentations`, family `low_contrast`).

Stretch (`stretch_high`, `stretch_low`, `stretch_target`, `stretch_black`, per task; the shipped models:
infrared + visible and multi-focus pairs). A flat capture (a thermal camera's automatic gain on a scene
without hot or cold objects, a veil of uniform haze or glare, an edit that lowers contrast) keeps a fraction
c of every value's distance to some level v: I = v + c (J - v). Its black point rises and its white point
falls, so its luminance range r = p99.5 - p0.5 shrinks to c times the clean one, while an under-exposed
input keeps its black point at black, and a veil brightens as much as it flattens. Each input is measured on
its own: when its mean luminance is at least `stretch_mean` (0.4: a dark input is under-exposed, not veiled;
below it r < 0.3 can also be a dark image of a flat scene, such as RoadScene's hazy visible images, whose
clean black point is 0.3 to 0.45: under the bench's low light they measure r 0.24 to 0.32 with means of 0.18
to 0.34, and stretching them cost allfuse-reg 0.074 Qabf in the strong cell and 0.003 in the mild one,
`bench/quality.py --families low_light`) and r is below `stretch_high`, it is stretched about its black
point b and its black point moved toward where a clean input's typically is, b_t, as far as the stretch
has ramped in:
    J = b + w (b_t - b) + k (I - b),   k = min(stretch_max, (r_t / r) ** w),
    w = clip((high - r) / (high - low), 0, 1),
every channel alike, shifted down if its white point would pass 0.99, and clipped. For a veil I = v + c (J -
v) the full stretch (w = 1) is the inverse whatever the level v, a dark gray (a thermal camera's automatic
gain) or a bright airlight (haze, glare, which the inverse also darkens back), once k = 1 / c and b_t is
the clean black point; a partial one moves the black point only partly, as moving it all the way with a
partial k darkens the input more than it restores its contrast (a mildly flattened multi-focus pair of the
bench stretched by 1.2 with its black point moved to 0.085: Qabf 0.718 -> 0.597, `bench/contrast_stretch.py`
then). The targets are the typical values of clean inputs of the kind the stage looks at (mean luminance
0.4 or more), per input of the task: range r_t (`stretch_target`) and black point b_t (`stretch_black`)
0.89 and 0.08 for infrared images, 0.64 and 0.34 for visible ones (RoadScene's visible camera is hazy) and
0.83 and 0.085 for multi-focus inputs (the medians over the shared benchmark's clean inputs),
since c itself cannot be read off one image. The stretch runs after the gain: a pair whose two cameras
are both dark (albumentations' contrast loss, a gain below 1) is brightened, and then no longer measures
flat; stretched before the gain, its visible image (the flatter) took the stretch and the dark thermal image
kept its darkness. An input more than `stretch_clipped` (2 %) of whose luminance sits at 0.99 or above is
over-exposed, not veiled (a strongly over-exposed visible image measures a range of 0.05), and the factor is
at most `stretch_max` (4). `expose_inputs` reports the gain times the largest stretch factor, the
amplification the detail pick reads (allfuse.pick): a stretched input's noise is amplified as by a gain.

Thresholds: `stretch_high` sits below every clean input of the shared benchmark of such a mean (the
narrowest: visible TNO 20 and 09 at 0.37 and 0.40, infrared RoadScene FLIR_08592 at 0.50; multi-focus
MFI-WHU 42 at 0.46 and 0.48; none of the 262 infrared + visible or 140 multi-focus pairs is stretched, at
native size or at a long side of 512). So only a strong loss is undone: a mild one (c about 0.5) leaves a
range a clean flat scene also has. For infrared + visible pairs the ramp is short (0.30 to 0.26): on the
bench's flattened infrared images (`bench/results/contrast_stretch.md`, allfuse-reg), a partial stretch
(k = 1.5 where 2.7 to 3.7 was lost) scored lower than none on two of three pairs (Qabf 0.446 -> 0.430 and
0.413 -> 0.386), a full one higher on all three (0.29 / 0.45 / 0.41 -> 0.65 / 0.56 / 0.58 at k = 2.5 to
3.5); on multi-focus pairs every partial stretch helped (k = 1.5 where 2 was lost: 0.61 / 0.72 / 0.55 ->
0.76 / 0.72 / 0.79). Multi-exposure brackets are not
stretched input by input: an over-exposed member is flat by nature (MEFB ArtistPalette 0.21, Lake1 0.26);
a flat bracket is read as a whole ("Bracket", below). Measured: the models' cards.

Pair (`pair_high`, `pair_low`, per task; the shipped models: infrared + visible pairs). A mild loss of
contrast on one image reads like a flat scene, but a scene is rarely flat to both cameras at once: a thermal
image's contrast comes from temperature, a visible one's from light, and haze or fog that flattens the visible
image leaves the thermal one as it was. An edit or a processing step that flattens the capture as a whole
(ImageNet-C's contrast, Hendrycks & Dietterich 2019, keeping 0.4 of every value's distance to the mean:
bench/degrade_c.py) narrows both. So the pair is read as a whole by its flatness
    s = max_i r_i / t_i,
each input's range over its own `stretch_target` (the typical clean range of that camera): s is small only
when every input is narrow for its kind. Among the shared benchmark's 262 clean infrared + visible pairs
(long side 512) the lowest s is 0.57 (TNO 20: ranges 0.30 and 0.37) and the next 0.63 (TNO 09); a pair
flattened by ImageNet-C's mild contrast measures 0.42 to 0.43 (the validation pairs RoadScene FLIR_00006,
00018 and 00122). Below `pair_high` (0.5) every input is stretched as above with the pair's weight
w = ramp(s; pair_high -> pair_low) (an input's own reading keeps its weight where that is larger). A dark
input (mean below `stretch_mean`) is narrow by nature and an over-exposed one is not flat: either means no
pair reading (a pair darkened as a whole is the gain's, which runs first). The ramp is short (0.5 to 0.45),
as the infrared stretch's is: a partial stretch of a thermal image cost more than none (above). On those
three pairs allfuse-reg's Qabf against the clean sources went 0.317 / 0.245 / 0.385 -> 0.638 / 0.599 /
0.573 (the visible image alone was stretched before, its range being below `stretch_low`; `dcp+focus`
scores 0.48).

Veil (`veil_dark`, `veil_range`, per task; the shipped models: multi-focus pairs). The stretch reads a strong
loss only: a mildly flattened input (c about 0.5) keeps a range a clean flat scene also has. But a veil also
lifts a scene's darkest values, in every colour: the dark channel (He et al. 2009 Eq. 5: the minimum over
colour channels and a 15 px window) of a clean scene is near black almost everywhere (their prior), while a
veil I = v + c (J - v) lifts it by v (1 - c). So an input whose dark-channel floor d (its 5th percentile,
read at a long side of 512 px so that the window covers the same share of the scene at every size, as is r)
is high and whose range r is narrow reads as veiled:
    w = ramp(d; veil_dark[0] -> veil_dark[1]) * ramp(r; veil_range[0] -> veil_range[1])
and is stretched as above with that weight (the shipped models: d from 0.15 to 0.2, r from 0.6 to 0.5).
Among the shared benchmark's 280 clean multi-focus inputs (long side 512), the highest floor is 0.18 and
none combines a floor of 0.15 or more with a range below 0.6; copies flattened toward their median as the
validation bench's mild `low_contrast` does (keeping 0.6 or 0.45 of the contrast) read as veiled at 76 %
(the others are darker than `stretch_mean`). Not for the other inputs: a thermal image has no dark-channel
prior (clean infrared floors reach 0.35), RoadScene's hazy visible camera reads veiled in 53 of 262 clean
images, and a multi-exposure bracket's bright member is flat and pale by nature.
It runs after the input corrector, on what the corrector leaves (InputStages.restore_gain): a hazed input
is veiled too (27 of the 40 inputs of the bench's strongly hazed multi-focus validation pairs read so
without the corrector before the reading), but the corrector lifts most of a haze, and a stretch before it
over-corrected (that cell's Qabf 0.692 -> 0.639, the models' cards); after it 2 of those 40 read veiled, by
a factor of 1.02, while a flattened input, which the corrector does not lift, still reads veiled (the bench's
mild low contrast: 9 of 40, factor 1.46). Measured: bench/results/veil.md.

Bracket (`bracket_high`, `bracket_low`, `bracket_target`, per task; the shipped models: multi-exposure
pairs). A multi-exposure bracket is not stretched input by input (above), but a flattened capture flattens
every member of the bracket, and the bright members betray it: of the 196 clean members of the shared
benchmark's 98 multi-exposure pairs (long side 512), only 7 are bright (mean luminance at least
`stretch_mean`) without being over-exposed (at most `stretch_clipped` of their luminance at 0.99 or above),
and their ranges are 0.85 to 0.98; a dark member is narrow by nature (ArtistPalette 0.23) and so is a
clipped one. So when the narrowest range r of the bright, unclipped members is below `bracket_high` (0.5),
every member is stretched by one factor k about each channel's own mean m, as far as the ramp has come in:
    J = m + k (I - m),   k = min(stretch_max, (r_t / r) ** w),   w = clip((high - r) / (high - low), 0, 1)
with r_t = `bracket_target` (0.93, the median over those 98 pairs of a bracket's widest range). One factor
keeps the members' exposures in their relation, and a pull of every value toward the mean (ImageNet-C's
contrast, Hendrycks & Dietterich 2019; bench/degrade_c.py) is undone in the luminance whatever the colours,
a pull toward the median luminance (bench/degrade.py) up to a shift of (1 - c) times the median's distance
to the mean; about each channel's mean, a pull of each channel toward
its own mean is undone in colour too, and a pull toward one gray leaves the colours as flat as it made them
(about the luminance's mean instead, it would multiply a colour cast by k). Run after the input corrector,
like the veil: the corrector lifts a haze, and a range that a haze narrowed, stretched before it, was
corrected twice (allfuse-reg, the bench's strongly hazed multi-exposure pairs: Qabf 0.732 -> 0.689, the
stretch before the corrector from 0.6, a scratch run about the luminance's mean; unchanged after it); and
from 0.6 instead of 0.5 it also stretched a member of the bench's strong weather that the veil over its rain
leaves at 0.52 (that cell 0.661 -> 0.634). Measured: the models' cards.

Haze left (`dehaze_dark`, per task; the shipped models: multi-focus pairs). The veil's reading needs a
narrow range, but a haze or fog that varies across the picture (ImageNet-C's fog, a fractal veil that is
thick in places and thin in others: bench/degrade_c.py) keeps the range wide, and the corrector, which
predicts its maps on a coarse grid from a 128 px thumbnail, lifts a mild one only in part. What it leaves
still lifts the dark-channel floor: after the corrector, the shared benchmark's 280 clean multi-focus inputs
(long side 512) read at most 0.164 and ImageNet-C's mildly fogged validation inputs 0.20 to 0.29 (4 of 6),
the bench's hazed ones up to 0.23. So last, after the veil, a colour input whose floor d is at least
dehaze_dark[0] is dehazed by the dark channel prior itself (He et al. 2009: airlight, Eq. 12's transmission
refined by the guided filter, Eq. 22's scene radiance, baselines.restoration), blended in by
w = ramp(d; dehaze_dark[0] -> dehaze_dark[1]) (0.2 -> 0.25):
    J' = (1 - w) I + w J,
the airlight and the transmission read on veil_copy (a 15 px window covers at 512 px about the share of the
scene it does at the paper's 600 px) and the transmission resized to the input. Not for a gray input (a
gray picture of a pale surface, scikit-image's clock or moon, has a high floor and no haze), nor for one
that reached the corrector over-exposed (albumentations' over-exposure lifts the floor to 0.18 to 0.29 after
the corrector, and dehazing it cost allfuse-reg 0.038 Qabf in that mild cell). On the validation pairs
(3 per cell, a scratch run of the families' cells in bf16, allfuse-reg / allfuse-fm): ImageNet-C's mild fog
0.4285 / 0.4206 -> 0.5448 / 0.5389 (`dcp+laplacian` 0.564), the bench's haze mild 0.7145 / 0.7122 ->
0.7295 / 0.7292 and strong 0.6923 / 0.6914 -> 0.7006 / 0.7005. No other single-family cell of the three
generators reaches 0.2 after the corrector but albumentations' over-exposure (kept out); the bench's mild
low contrast comes closest (0.18 to 0.2). Not for the other tasks: a bracket's over-exposed member is pale
by nature and RoadScene's visible camera is hazy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import cv2
import numpy as np

from allfuse.baselines.restoration import dark_channel, dcp_transmission, scene_radiance
from allfuse.color import is_color, to_gray
from allfuse.types import TASKS, Image

VEIL_SIDE = 512  # the long side the dark channel floor is read at (dark_floor)


@dataclass(frozen=True)
class ExposureConfig:
    """The exposure stage of a model folder (exposure.json; module doc). `high` and `low` name, per task it
    runs for, the pooled percentile from which the gain starts and at which it is complete."""

    high: dict[str, float] = field(default_factory=lambda: {"mef": 0.9, "mff": 0.54})
    low: dict[str, float] = field(default_factory=lambda: {"mef": 0.8, "mff": 0.48})
    percentile: float = 99.5
    target: float = 0.95  # the pooled percentile after the full gain
    max_gain: float = 4.0
    # per task: the mean luminance the brightest input is lifted to by a gamma curve after the gain (module
    # doc, "Lift"); none by default, so a folder whose exposure.json predates it keeps its behaviour
    lift: dict[str, float] = field(default_factory=dict)
    min_gamma: float = 1 / 3  # the strongest lift's exponent
    # per task: an input's luminance range (module doc, "Stretch") from which its contrast is stretched, and
    # the range at which the stretch is complete; none by default (older exposure.json files)
    stretch_high: dict[str, float] = field(default_factory=dict)
    stretch_low: dict[str, float] = field(default_factory=dict)
    # per task: the range after the full stretch, per input in the task's order (the last entry for the
    # inputs after it): an infrared image spans a wider range than a visible one
    stretch_target: dict[str, list[float]] = field(default_factory=dict)
    # per task, per input as stretch_target: the black point a stretched input gets
    stretch_black: dict[str, list[float]] = field(default_factory=dict)
    stretch_mean: float = 0.4  # an input whose mean luminance lies below this is dark, not veiled: kept
    stretch_clipped: float = 0.02  # an input with more of its values at white (0.99) is over-exposed: kept
    stretch_max: float = 4.0  # the largest stretch factor
    # per task (module doc, "Veil"): the dark-channel floor from which a colour input reads as veiled and the
    # floor at which it fully does, and the luminance range below which that reading counts and the range at
    # which it fully does; none by default (older exposure.json files)
    veil_dark: dict[str, list[float]] = field(default_factory=dict)
    veil_range: dict[str, list[float]] = field(default_factory=dict)
    # per task (module doc, "Bracket"): the narrowest range of a bright, unclipped input from which every
    # input of the pair is stretched about its mean by one factor, the range at which that stretch is
    # complete, and the range it restores; none by default (older exposure.json files)
    bracket_high: dict[str, float] = field(default_factory=dict)
    bracket_low: dict[str, float] = field(default_factory=dict)
    bracket_target: dict[str, float] = field(default_factory=dict)
    # per task (module doc, "Pair"): the pair's flatness (the largest of its inputs' ranges, each over its
    # stretch_target) below which every input is stretched, and the flatness at which that is complete; none
    # by default (older exposure.json files)
    pair_high: dict[str, float] = field(default_factory=dict)
    pair_low: dict[str, float] = field(default_factory=dict)
    # per task (module doc, "Haze left"): the dark-channel floor, after the corrector and the veil, from which
    # an input is dehazed by the dark channel prior and the floor at which fully; none by default
    dehaze_dark: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tasks = set(self.high)
        ok = tasks == set(self.low) and tasks <= set(TASKS) and 50 <= self.percentile <= 100
        ok = ok and 0 < self.target <= 1 and self.max_gain >= 1
        ok = ok and set(self.lift) <= set(TASKS) and all(0 < v < 1 for v in self.lift.values())
        ok = ok and 0 < self.min_gamma <= 1
        stretched = set(self.stretch_high)
        ok = ok and stretched == set(self.stretch_low) == set(self.stretch_target) == set(self.stretch_black)
        ok = (
            ok
            and stretched <= set(TASKS)
            and all(0 <= v < 1 for t in stretched for v in self.stretch_black[t])
        )
        ok = ok and all(len(self.stretch_black[t]) > 0 for t in stretched)
        ok = ok and all(
            len(self.stretch_target[t]) > 0
            and all(0 < self.stretch_low[t] < self.stretch_high[t] < v <= 1 for v in self.stretch_target[t])
            for t in stretched
        )
        ok = ok and 0 <= self.stretch_mean < 1
        ok = ok and set(self.veil_dark) == set(self.veil_range) and set(self.veil_dark) <= stretched
        ok = ok and all(
            len(self.veil_dark[t]) == 2 == len(self.veil_range[t])
            and 0 < self.veil_dark[t][0] < self.veil_dark[t][1] < 1
            and 0 < self.veil_range[t][1] < self.veil_range[t][0] < 1
            for t in self.veil_dark
        )
        ok = ok and 0 < self.stretch_clipped <= 1 and self.stretch_max >= 1
        bracketed = set(self.bracket_high)
        ok = ok and bracketed == set(self.bracket_low) == set(self.bracket_target) and bracketed <= set(TASKS)
        ok = ok and all(
            0 < self.bracket_low[t] < self.bracket_high[t] < self.bracket_target[t] <= 1 for t in bracketed
        )
        ok = ok and set(self.pair_high) == set(self.pair_low) and set(self.pair_high) <= stretched
        ok = ok and all(0 < self.pair_low[t] < self.pair_high[t] < 1 for t in self.pair_high)
        ok = ok and set(self.dehaze_dark) <= set(TASKS)
        ok = ok and all(len(v) == 2 and 0 < v[0] < v[1] < 1 for v in self.dehaze_dark.values())
        if not ok or any(not 0 < self.low[t] < self.high[t] <= 1 for t in tasks):
            raise ValueError(
                "bad exposure config: need the same tasks (among "
                f"{', '.join(TASKS)}) in high and low, 0 < low < high <= 1 for each, a percentile in "
                f"[50, 100], 0 < target <= 1, max_gain >= 1, lift targets in (0, 1) for tasks among "
                f"those, 0 < min_gamma <= 1, the same tasks in stretch_high, stretch_low, stretch_target and "
                f"stretch_black with 0 < stretch_low < stretch_high < every stretch_target <= 1 and every "
                f"stretch_black in [0, 1) for each, veil_dark and veil_range for the same tasks among "
                f"those, each two values: 0 < veil_dark[0] < veil_dark[1] < 1 and 0 < veil_range[1] < "
                f"veil_range[0] < 1, the same tasks in bracket_high, bracket_low and bracket_target with "
                f"0 < bracket_low < bracket_high < bracket_target <= 1 for each, pair_high and pair_low "
                f"for the same tasks among the stretched ones with 0 < pair_low < pair_high < 1, "
                f"dehaze_dark of two values 0 < dehaze_dark[0] < dehaze_dark[1] < 1 per task, and "
                f"0 <= stretch_mean < 1, "
                f"0 < stretch_clipped <= 1 and stretch_max >= 1: {self}"
            )

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks the stage runs for (a gain, a lift, a stretch or several)."""
        return tuple(
            sorted(
                set(self.high)
                | set(self.lift)
                | set(self.stretch_high)
                | set(self.bracket_high)
                | set(self.dehaze_dark)
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "high": dict(self.high),
            "low": dict(self.low),
            "percentile": self.percentile,
            "target": self.target,
            "max_gain": self.max_gain,
            "lift": dict(self.lift),
            "min_gamma": self.min_gamma,
            "stretch_high": dict(self.stretch_high),
            "stretch_low": dict(self.stretch_low),
            "stretch_target": {t: list(v) for t, v in self.stretch_target.items()},
            "stretch_black": {t: list(v) for t, v in self.stretch_black.items()},
            "stretch_mean": self.stretch_mean,
            "stretch_clipped": self.stretch_clipped,
            "stretch_max": self.stretch_max,
            "veil_dark": {t: list(v) for t, v in self.veil_dark.items()},
            "veil_range": {t: list(v) for t, v in self.veil_range.items()},
            "bracket_high": dict(self.bracket_high),
            "bracket_low": dict(self.bracket_low),
            "bracket_target": dict(self.bracket_target),
            "pair_high": dict(self.pair_high),
            "pair_low": dict(self.pair_low),
            "dehaze_dark": {t: list(v) for t, v in self.dehaze_dark.items()},
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Inverse of to_dict; unknown keys are a TypeError naming them."""
        return cls(**values)


def headroom(images: Sequence[Image], percentile: float) -> float:
    """The `percentile` of the luminance of all images pooled, in [0, 1]."""
    pooled = np.concatenate([np.asarray(to_gray(np.asarray(im, np.float32))).ravel() for im in images])
    return float(np.percentile(pooled, percentile))


def mean_luma(im: Image) -> float:
    """Mean luminance of one image."""
    return float(np.mean(to_gray(np.asarray(im, np.float32))))


def lift_gamma(images: Sequence[Image], task: str, cfg: ExposureConfig) -> float:
    """The exponent of the stage's lift for these (already gained) inputs: 1.0 when the task has no lift or
    the brightest input's mean luminance m reaches the lift's target T, else log T / log m (the curve
    x ** g that takes m to T), at least cfg.min_gamma."""
    if task not in cfg.lift:
        return 1.0
    m = max(mean_luma(im) for im in images)
    if m >= cfg.lift[task]:
        return 1.0
    return max(cfg.min_gamma, math.log(cfg.lift[task]) / math.log(max(m, 1e-6)))


def exposure_gain(images: Sequence[Image], task: str, cfg: ExposureConfig) -> float:
    """The gain the stage applies to every input of this pair (1.0: none, or the task is not one of its)."""
    if task not in cfg.high:
        return 1.0
    high, low = cfg.high[task], cfg.low[task]
    p = headroom(images, cfg.percentile)
    w = min(1.0, max(0.0, (high - p) / (high - low)))
    if w == 0.0:
        return 1.0
    return math.exp(w * math.log(min(cfg.max_gain, cfg.target / max(p, 1e-6))))


def luma_levels(im: Image, percentile: float) -> tuple[float, float, float]:
    """An image's black point, white point (the (100 - percentile)th and percentile-th percentiles of its
    luminance) and mean luminance."""
    g = np.asarray(to_gray(np.asarray(im, np.float32)))
    black, white = np.percentile(g, (100.0 - percentile, percentile))
    return float(black), float(white), float(g.mean())


def dark_floor(im: Image) -> float:
    """The 5th percentile of an image's dark channel (He et al. 2009 Eq. 5: the minimum over colour channels
    and a 15 px window), read on a copy whose long side is at most 512 px so that the window covers the same
    share of the scene at every size: a clean scene's is near black, a veil lifts it (module doc, "Veil")."""
    return float(np.percentile(dark_channel(veil_copy(im)), 5.0))


def veil_copy(im: Image) -> np.ndarray:
    """The image area-downscaled to a long side of at most VEIL_SIDE px, where the veil is read."""
    x = np.asarray(im, np.float32)
    scale = VEIL_SIDE / max(x.shape[:2])
    if scale >= 1:
        return x
    size = (max(1, round(x.shape[1] * scale)), max(1, round(x.shape[0] * scale)))
    return cv2.resize(x, size, interpolation=cv2.INTER_AREA)


def ramp(value: float, start: float, end: float) -> float:
    """0 at `start`, 1 at `end` (either order), linear between and clipped."""
    return min(1.0, max(0.0, (value - start) / (end - start)))


def stretch_plan(im: Image, task: str, cfg: ExposureConfig, index: int = 0) -> tuple[float, float]:
    """The factor k >= 1 the stage's stretch multiplies this input's contrast by and the ramp's weight w
    (module doc, "Stretch"): (1.0, 0.0) when the task has no stretch, the input is dark rather than veiled
    (mean luminance below `stretch_mean`), over-exposed (more than `stretch_clipped` of its luminance at 0.99
    or above) or its range r reaches `stretch_high`; else k = min(stretch_max, (target / r) ** w), w ramping
    from 0 at stretch_high to 1 at stretch_low, with the target of the input at `index` in task order."""
    if task not in cfg.stretch_high:
        return 1.0, 0.0
    r, mean, clipped = luma_range(im, cfg)
    if mean < cfg.stretch_mean or clipped or r >= cfg.stretch_high[task]:
        return 1.0, 0.0
    return stretch_by(r, ramp(r, cfg.stretch_high[task], cfg.stretch_low[task]), task, cfg, index)


def veil_plan(im: Image, task: str, cfg: ExposureConfig, index: int = 0) -> tuple[float, float]:
    """The veil's factor k and weight w for this input (module doc, "Veil"): (1.0, 0.0) when the task has no
    veil reading, the input is dark, over-exposed (as stretch_plan) or its range reaches veil_range[0];
    else w = ramp(dark floor; veil_dark) * ramp(range; veil_range) and
    k = min(stretch_max, (target / r) ** w), all read on veil_copy (about 0.05 s for a 12 MP input)."""
    if task not in cfg.veil_dark:
        return 1.0, 0.0
    x = veil_copy(im)
    r, mean, clipped = luma_range(x, cfg)
    if mean < cfg.stretch_mean or clipped or r >= cfg.veil_range[task][0]:
        return 1.0, 0.0
    w = ramp(dark_floor(x), *cfg.veil_dark[task]) * ramp(r, *cfg.veil_range[task])
    return stretch_by(r, w, task, cfg, index)


def luma_range(im: Image, cfg: ExposureConfig) -> tuple[float, float, bool]:
    """An input's luminance range (white point - black point at cfg.percentile), its mean luminance, and
    whether more than `stretch_clipped` of it sits at 0.99 or above (over-exposed)."""
    g = np.asarray(to_gray(np.asarray(im, np.float32)))
    black, white = np.percentile(g, (100.0 - cfg.percentile, cfg.percentile))
    return float(white - black), float(g.mean()), is_clipped(g, cfg)


def stretch_by(r: float, w: float, task: str, cfg: ExposureConfig, index: int) -> tuple[float, float]:
    """(k, w) for an input of range r stretched with weight w toward the target range of the input at
    `index`: k = min(stretch_max, (target / r) ** w); (1.0, 0.0) when w is 0."""
    if w <= 0.0:
        return 1.0, 0.0
    target = per_input(cfg.stretch_target[task], index)
    return min(cfg.stretch_max, math.exp(w * math.log(target / max(r, 1e-3)))), w


def stretch_factor(im: Image, task: str, cfg: ExposureConfig, index: int = 0) -> float:
    """stretch_plan's factor alone."""
    return stretch_plan(im, task, cfg, index)[0]


def per_input(values: list[float], index: int) -> float:
    """The entry of a per-input list for the input at `index` (the last one for the inputs after it)."""
    return values[min(index, len(values) - 1)]


def stretch(im: Image, k: float, percentile: float, black_to: float, weight: float = 1.0) -> Image:
    """Eq. "Stretch" of the module doc: J = b' + k (I - b) about the input's black point b (its
    (100 - percentile)th luminance percentile), b' = b + weight (black_to - b), every channel alike, shifted
    down if its white point would pass 0.99; clipped to [0, 1]."""
    x = np.asarray(im, np.float32)
    if k == 1.0:
        return x
    black, white, _ = luma_levels(x, percentile)
    to = black + weight * (black_to - black)
    shift = min(0.0, 0.99 - (to + k * (white - black)))
    return np.clip(to + shift + np.float32(k) * (x - black), 0.0, 1.0).astype(np.float32)


def pair_plan(images: Sequence[Image], task: str, cfg: ExposureConfig) -> tuple[float, float]:
    """The pair's flatness s and the weight w of its stretch (module doc, "Pair"): s is the largest of the
    inputs' luminance ranges, each over its own stretch_target, and w ramps from 0 at `pair_high` to 1 at
    `pair_low`; (inf, 0.0) when the task has no pair reading or an input is dark (mean luminance below
    `stretch_mean`) or over-exposed (more than `stretch_clipped` of its luminance at 0.99 or above)."""
    if task not in cfg.pair_high:
        return math.inf, 0.0
    s = 0.0
    for i, im in enumerate(images):
        r, mean, clipped = luma_range(im, cfg)
        if clipped or mean < cfg.stretch_mean:
            return math.inf, 0.0
        s = max(s, r / per_input(cfg.stretch_target[task], i))
    return s, ramp(s, cfg.pair_high[task], cfg.pair_low[task])


def stretch_plans(images: Sequence[Image], task: str, cfg: ExposureConfig) -> list[tuple[float, float]]:
    """Each input's (k, w): its own stretch (stretch_plan) or, where the pair reads flat with a larger
    weight (pair_plan), the stretch of its range with the pair's weight."""
    plans = [stretch_plan(im, task, cfg, i) for i, im in enumerate(images)]
    wp = pair_plan(images, task, cfg)[1]
    if wp <= 0.0:
        return plans
    return [
        stretch_by(luma_range(im, cfg)[0], wp, task, cfg, i) if wp > w else (k, w)
        for i, (im, (k, w)) in enumerate(zip(images, plans, strict=True))
    ]


def stretch_factors(images: Sequence[Image], task: str, cfg: ExposureConfig) -> list[float]:
    """Each input's stretch factor (stretch_plans), in order."""
    return [k for k, _ in stretch_plans(images, task, cfg)]


def stretched_inputs(
    images: Sequence[Image], task: str, cfg: ExposureConfig
) -> tuple[list[Image], list[float]]:
    """Every input through its stretch (stretch_plans: its own, or the pair's), and the factors."""
    return apply_plans(images, task, cfg, stretch_plans(images, task, cfg))


def unveiled_inputs(
    images: Sequence[Image], task: str, cfg: ExposureConfig
) -> tuple[list[Image], list[float]]:
    """What the stage does after the input corrector: every input through its own veil stretch (veil_plan;
    module doc, "Veil") or, for a task with a bracket stretch, every input through the bracket's one factor
    (bracket_plan, mean_stretch; module doc, "Bracket"); and each input's factor."""
    if task in cfg.bracket_high:
        k = bracket_plan(images, task, cfg)[0]
        return [mean_stretch(im, k) for im in images], [k] * len(images)
    return planned_stretch(images, task, cfg, veil_plan)


def over_exposed(images: Sequence[Image], cfg: ExposureConfig) -> list[bool]:
    """Whether each input has more than `stretch_clipped` of its luminance at 0.99 or above."""
    return [is_clipped(np.asarray(to_gray(np.asarray(im, np.float32))), cfg) for im in images]


def is_clipped(gray: np.ndarray, cfg: ExposureConfig) -> bool:
    """Whether more than `stretch_clipped` of a luminance image sits at 0.99 or above (over-exposed)."""
    return bool(np.mean(gray >= 0.99) > cfg.stretch_clipped)


def haze_weight(im: Image, task: str, cfg: ExposureConfig) -> float:
    """The weight of the dark-channel dehazing of this input (module doc, "Haze left"): 0.0 when the task
    has none or the input is gray (the prior is one of colour scenes: a gray picture of a pale surface has a
    high floor), else its dark-channel floor (dark_floor) ramped from dehaze_dark[0] to dehaze_dark[1]."""
    if task not in cfg.dehaze_dark:
        return 0.0
    x = veil_copy(im)  # both read at a long side of at most 512 px
    return ramp(dark_floor(x), *cfg.dehaze_dark[task]) if is_color(x) else 0.0


def dehaze(im: Image, weight: float) -> Image:
    """(1 - weight) I + weight J, J the dark channel prior's scene radiance (He et al. 2009 Eqs. 12 and 22,
    guided-filter transmission) with the airlight and the transmission read on veil_copy, where a 15 px
    window covers the share of the scene it does at the paper's 600 px, the transmission resized to the
    input's size."""
    x = np.asarray(im, np.float32)
    if weight <= 0.0:
        return x
    a, t = dcp_transmission(veil_copy(x))
    if t.shape != x.shape[:2]:
        t = cv2.resize(t, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_LINEAR)
    j = scene_radiance(x, a, t)
    return (x + np.float32(weight) * (j - x)).astype(np.float32)


def dehazed_inputs(
    images: Sequence[Image], task: str, cfg: ExposureConfig, over: Sequence[bool] | None = None
) -> tuple[list[Image], list[float]]:
    """What the stage does last, after the veil stretch: every input that did not reach the corrector
    over-exposed (`over`, None: none did) through its dark-channel dehazing (haze_weight, dehaze); an input
    of weight 0 is returned as it is. And the weights."""
    over = [False] * len(images) if over is None else list(over)
    weights = [0.0 if o else haze_weight(im, task, cfg) for im, o in zip(images, over, strict=True)]
    return [dehaze(im, w) if w > 0 else im for im, w in zip(images, weights, strict=True)], weights


def planned_stretch(
    images: Sequence[Image], task: str, cfg: ExposureConfig, plan: Callable[..., tuple[float, float]]
) -> tuple[list[Image], list[float]]:
    """Every input stretched as `plan(image, task, cfg, index)` -> (k, w) asks (an input of k = 1 is
    returned as it is), and the factors."""
    return apply_plans(images, task, cfg, [plan(im, task, cfg, i) for i, im in enumerate(images)])


def apply_plans(
    images: Sequence[Image], task: str, cfg: ExposureConfig, plans: Sequence[tuple[float, float]]
) -> tuple[list[Image], list[float]]:
    """Every input stretched by its (k, w) (stretch; an input of k = 1 is returned as it is), and the
    factors."""
    out = [
        stretch(im, k, cfg.percentile, per_input(cfg.stretch_black[task], i), w) if k != 1.0 else im
        for i, (im, (k, w)) in enumerate(zip(images, plans, strict=True))
    ]
    return out, [k for k, _ in plans]


def bracket_plan(images: Sequence[Image], task: str, cfg: ExposureConfig) -> tuple[float, float]:
    """The factor k >= 1 the bracket stretch multiplies every input's contrast by and its ramp's weight w
    (module doc, "Bracket"): (1.0, 0.0) when the task has none, no input is bright and unclipped (mean
    luminance at least `stretch_mean`, at most `stretch_clipped` of it at 0.99 or above) or the narrowest
    range r of those reaches `bracket_high`; else w ramps from 0 there to 1 at `bracket_low` and
    k = min(stretch_max, (bracket_target / r) ** w)."""
    if task not in cfg.bracket_high:
        return 1.0, 0.0
    ranges = [
        r
        for r, mean, clipped in (luma_range(im, cfg) for im in images)
        if mean >= cfg.stretch_mean and not clipped
    ]
    if not ranges or min(ranges) >= cfg.bracket_high[task]:
        return 1.0, 0.0
    r = min(ranges)
    w = ramp(r, cfg.bracket_high[task], cfg.bracket_low[task])
    return min(cfg.stretch_max, math.exp(w * math.log(cfg.bracket_target[task] / max(r, 1e-3)))), w


def mean_stretch(im: Image, k: float) -> Image:
    """Eq. "Bracket" of the module doc: J = m + k (I - m) about each channel's mean m, clipped to [0, 1]."""
    x = np.asarray(im, np.float32)
    if k == 1.0:
        return x
    m = x.mean(axis=(0, 1), keepdims=True, dtype=np.float64).astype(np.float32)
    return np.clip(m + np.float32(k) * (x - m), 0.0, 1.0).astype(np.float32)


def gained_inputs(
    images: Sequence[Image], task: str, cfg: ExposureConfig
) -> tuple[list[Image], float, float]:
    """The inputs times the stage's gain, clipped to [0, 1] (the lift not yet applied); the gain and the
    exponent of the lift those gained inputs ask for."""
    gain = exposure_gain(images, task, cfg)
    out = list(images)
    if gain != 1.0:
        out = [np.clip(np.asarray(im, np.float32) * np.float32(gain), 0.0, 1.0) for im in out]
    return out, gain, lift_gamma(out, task, cfg)


def expose_inputs(images: Sequence[Image], task: str, cfg: ExposureConfig) -> tuple[list[Image], float]:
    """The inputs times the stage's gain, clipped to [0, 1], then each through its stretch, then through the
    lift (each channel to the power lift_gamma); and the largest amplification of an input's values, the
    gain times the largest stretch factor (what the detail pick reads as the stage's gain)."""
    out, gain, g = gained_inputs(images, task, cfg)
    out, ks = stretched_inputs(out, task, cfg)
    if g != 1.0:
        out = [np.power(np.clip(np.asarray(im, np.float32), 0.0, 1.0), np.float32(g)) for im in out]
    return out, gain * max(ks, default=1.0)
