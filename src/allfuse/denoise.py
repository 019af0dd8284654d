"""Denoising stage: non-local means (or a learned denoiser) on each input that measures noisy
(pipeline.restore_inputs).

Beyond the papers. The DiT learned to remove the training generator's noise, and on exposure and focus
pairs it does better than restoring first (bench/quality.py families: MEF noise above the `nlm+...` chains).
On infrared + visible pairs it does not: a dark, grainy visible image (the bench's low light: a gain in
linear light, the sensor's shot and read noise at that light level, 8-bit quantization) comes out of the
latent path with most of its grain, and Qabf against the clean sources counts grain as lost edges. There
the chains' own first step, non-local means (Buades, Coll & Morel 2005; allfuse.baselines.restoration.
denoise_nlm: the noise sigma from a wavelet MAD estimate, h = 0.8 sigma; the stage's own strengths:
below, "Strength"), wins by far.

Measure: each input's noise std by the gate's estimator (allfuse.gate.noise_std: the median absolute
deviation of the finest diagonal Haar detail, on the luminance at a long side of at most 512, in 1/255
steps), n. Denoise: the input is replaced by x + w (nlm(x) - x), with the weight ramped so that no input
jumps at a threshold:
    w = clip((n - low) / (high - low), 0, 1)
Each input is measured and weighted on its own: the infrared and the visible camera have their own noise.

Thresholds: on the 262 clean infrared + visible pairs of the shared benchmark the largest estimate is
3.29/255 (a grainy TNO visible image; 99th percentile 2.97, median 0.38; infrared images at most 2.97), so
the ramp starts above it, at `low` 3.5. The bench's noisy inputs measure 4.0-6.5 (mild noise, visible),
4.4-7.4 (low light, visible) and 8-17 (strong noise): `high` 4.5 gives them all of it. A partial weight is
a poor compromise, not a safe one: a ramp over 4-6 left the bench's mild low light at Qabf 0.491 and a
ramp over 3.5-5 at 0.577, while the full filter gives 0.643 (allfuse-reg; no stage: 0.487).

Colour cue (`chroma_low`, `chroma_high`; off when both are 0): a colour input's noise is also read on its
two opponent chroma channels, (R - G) / sqrt(2) and (R + G - 2 B) / sqrt(6), by the same estimator
(chroma_noise, the larger of the two), and the input gets the larger of the two ramps' weights. Noise drawn
per channel (a sensor's, before or after demosaicing) reads its full std there, while the luminance, a
weighted mean of the channels, carries about 0.67 of it; and clean colour images hold almost none there
(JPEG's subsampled chroma, the cameras' own chroma filtering): the 237 clean colour visible images of the
shared infrared + visible pairs read at most 0.34/255 (their luminance up to 2.5). A visible image darkened
by a gamma curve, with per-channel Gaussian noise of std 2.5-5/255 (bench/degrade_alb.py's low light),
reads 1.9-4.8 on the luminance, mostly below `low`, and 2.6-4.7 on chroma; left noisy, it was fused at
Qabf 0.45 / 0.42 (mild / strong) where its non-local-means chains reach 0.59 / 0.56. Photos with a grain
of their own read up to 1.5 (scikit-image's astronaut, a film scan, at 512 px) and the dimmest frames of
two multi-exposure brackets 2.1 (MEFB Church and Memorial; not a task of this stage): `chroma_low` 2.0,
full weight from `chroma_high` 3.0. Gray inputs (infrared images, TNO's visible ones) read 0 and keep the
luminance thresholds, whose `low` a grainy gray image set.

Tasks: infrared + visible pairs, and multi-focus pairs read on colour noise alone (below), in the shipped
models. On exposure and focus pairs non-local means on every noisy-reading input lost Qabf on the main
validation bench (MEF 0.358 -> 0.340) and left flat, waxy patches that raised BRISQUE (MEF 47.4 -> 52.2, MFF
30.8 -> 36.3; bench/results/tried/reg-denoise-nlm_main.md); the latent path denoises those better, except
mild colour noise on multi-focus pairs.

Colour noise only (`chroma_tasks`, `chroma_cut`; the shipped models: multi-focus pairs, 10 to 11). An input
of such a task is weighed by its chroma noise alone: up from chroma_low to chroma_high as above, and back
down to nothing from chroma_cut[0] to chroma_cut[1]; a pair that the exposure stage will brighten (its gain
above 1, read on the inputs as they reach this stage: allfuse.stages.InputStages.gains) is left as it is;
and such a task gets no stage rule. Why each part:
* Chroma alone: the shared benchmark's clean multi-focus inputs read a luminance noise of up to 8.4/255 at
  512 px (fine foliage and gravel; median 0.7, 99th percentile 5.9), above `low` and into the range of the
  bench's mild noise (5.2 to 7.3), but at most 0.67/255 on chroma, where the bench's mild noise reads 5 to
  8: read on the luminance, the stage lowered the clean pairs' Qabf (0.7501 -> 0.7450).
* The cut: the latent path removes strong noise better than non-local means leaves it (the bench's strong
  noise, chroma 12 to 14: Qabf -0.010 when filtered); ImageNet-C's noise reads 15 and more.
* The brightened pair: a dark, noisy capture (the bench's low light) is the latent path's, which was trained
  on noisy low exposures; filtered before the gain, it lost 0.010 and 0.036 (mild, strong).
Measured on the validation bench's families at 6 pairs a cell (bench/quality.py --family-pairs 6, allfuse-reg;
the models' cards): mild noise 0.6065 -> 0.6256, still 0.002 below `nlm+mertens` but above the chain with the
teacher's rule (0.6216), where the latent path alone scored 0.015 below it; the multi-focus strong noise,
low light and mix cells, and the main and clean multi-focus pairs, did not move. A likely reading, not
measured apart: at mild noise the latent path smooths the fine texture that Qabf counts as edges along with
the grain, while non-local means at the pair strength keeps it.

Rule (`rule`, `rule_low`, `rule_high`; the shipped models: `laplacian` from 7 to 9): where the pipeline fuses
by the teacher's classical rule (the clean-input gate hands it a pair, blends the rule in, or the detail pick
takes its detail: allfuse.gate, allfuse.pick), a pair ALL of whose inputs measured noisy before this stage, at
least `rule_low`, is fused by `rule` instead, mixed in linearly up to `rule_high`:
    rule fusion = teacher + r (rule - teacher),   r = clip((n_pair - rule_low) / (rule_high - rule_low), 0, 1)
with n_pair the lower of the inputs' noise (allfuse.gate.pair_noise's "a noisy capture makes every input
noisy"). A likely reading, not measured apart: non-local means of a strongly noisy image keeps its edges and
flattens what lies between them; the guided-filter fusion (the infrared + visible teacher, `gff`) then weights
the two images by a saliency that the flattened regions no longer carry, and averages edges that a Laplacian
pyramid's max-abs selection (Burt & Adelson 1983) keeps whole. Measured by bench/noisy_rule.py (`laplacian`
against `gff` on the same denoised inputs, Qabf against the clean sources, long side 512, the `noise` family
of both generators of bench/quality.py at both strengths, binned by the pair's noise; the inputs filtered at
the stage's strengths, below): on the 40 infrared + visible validation pairs -0.004 to +0.000 below 7.5/255
(its VIF metric 0.03 to 0.04 lower), +0.015 to +0.018 from 7.5 to 10.5 and +0.024 to +0.029 above, where it
wins 86 of 89 captures from 7.5 on; on 36 TNO and MSRS pairs (other cameras) +0.005 to +0.047 at every level.
A pair only one of whose images is noisy (a dark, grainy visible image beside a clean thermal one: the bench's
low light) keeps the teacher: there `laplacian` lost 0.050.

Strength (`strength`, `pair_strength`; the shipped models: 1.2 and 0.6). Non-local means averages pixels whose
patches differ by less than about h, with h = strength * the input's noise sigma (the `nlm+...` chains: 0.8,
scikit-image's advice for its fast mode, allfuse.baselines.restoration.NLM_STRENGTH). A noisy capture, a pair
ALL of whose inputs are denoised, is filtered at `pair_strength`; one noisy camera beside a clean one (a dark,
grainy visible image next to a thermal one) at `strength`; between the two by the lowest of the inputs'
weights (each input's own, from its luminance or, with the colour cue, its chroma noise: a colour image whose
noise reads mostly on chroma counts as noisy as it is denoised). The two want opposite settings. Measured by
bench/noisy_strength.py (the pipeline's classical fusion of the inputs the stages restored at h = 0.5 to 1.5
sigma, Qabf / VIF / BRISQUE against the clean sources, long side 512, both generators at both levels): on the
`noise` family (both images), 0.6 against 0.8 scored Qabf +0.005 / +0.006 (bench mild / strong) and +0.008 /
+0.017 (albumentations) on 20 validation pairs, +0.005 to +0.011 on 20 TNO and MSRS pairs (other cameras),
with BRISQUE 3 to 15 lower (the heavier filter's flat, waxy patches read as unnatural) and the VIF metric up
to 0.014 lower (it counts the grain left with the detail); 0.5 was no better (-0.003 to +0.003), 1.2 lost
0.022 to 0.034. On `low_light` (the visible image alone) the heavier filter won at every level on the
validation pairs: 1.2 against 0.8 +0.004 / +0.004 (bench) and +0.005 / +0.006 (albumentations), the VIF metric
+0.006 to +0.019, BRISQUE within +0.6; 1.5 added at most 0.003 more. On 20 TNO and MSRS pairs +0.015 / +0.022
(bench) and -0.002 / +0.001 (albumentations), BRISQUE 0.8 to 1.8 higher; 1.5 scored below 1.2 on the bench's
damage. A likely reading, not measured apart: grain left in a dark visible image next to a flat thermal one is
what the fusion's saliency weights pick up, while two noisy images are each other's context. The model (8
validation pairs, against every input at 0.8): `noise` Qabf +0.004 / +0.007 (bench) and +0.008 / +0.020
(albumentations), BRISQUE 3 to 6 lower; `low_light` +0.003 / +0.007 and +0.004 / +0.004, BRISQUE up to 0.7
higher. Reading the pair by the weights rather than by the luminance noise alone moved one family cell of
bench/quality.py (3 pairs a cell, both generators): the bench's mild infrared + visible mix, 0.3053 -> 0.3095
(RoadScene/FLIR_00006, whose visible image reads 4.0/255 on the luminance and 4.8 on chroma: h = 0.91 -> 0.6).

Filter (`method`; the shipped models: "nlm"). "net" replaces non-local means by the model folder's learned
denoiser (allfuse.models.denoiser, trained by allfuse.train.denoiser; denoiser.safetensors), on the same
inputs at the same weights; `strength` and `pair_strength` are then unused. It is more faithful (PSNR +0.5 to
+2.1 dB over the better of the two non-local-means strengths in 11 of 12 cells of the bench's noise and low
light, bench/denoiser.py) and raised the fusion's Qabf and VIF metric on the validation bench's mixed damage,
but its smoother output raised BRISQUE and lowered SF there, and it lost Qabf on multi-exposure noise (the
README's "allfuse train-denoiser"), so it is not the shipped default. Large inputs run in 512 px tiles, each
with NET_MARGIN px of surroundings (beyond the network's reach) and on its pooling grid, so the result is the
whole image's.

Measured at 512 px, an input's noise is what the latent path (which runs at that side: refiner.json's
work_side) sees: a 1024² image needs noise of about twice the std at full size to measure as noisy.
Large inputs are filtered in 512 px tiles, each with the few pixels of its surroundings that non-local
means reads and the whole image's noise sigma, so the result is the whole image's, in bounded memory; the
tiles run in parallel threads. Cost (bench/latency.py, 2 cores): measuring a pair (luminance and chroma)
0.011 s at 1024²; filtering is paid only by inputs that measure noisy (the bench's line times two colour
inputs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from allfuse.color import to_gray
from allfuse.models.denoiser import Denoiser
from allfuse.types import TASKS, Image, TaskStageConfig

TILE = 512  # px: side of the tiles large inputs are filtered in (denoise_image)
NET_MARGIN = 32  # px around a learned denoiser tile: the network reaches 31 px (allfuse.models.denoiser)
METHODS = ("nlm", "net")  # the stage's filters: non-local means, the learned denoiser


@dataclass(frozen=True)
class DenoiseConfig(TaskStageConfig):
    """The denoising stage of a model folder (denoise.json; module doc). `low` and `high` are noise stds in
    1/255 steps: from `low` the filter's result starts to replace the input, from `high` it replaces it."""

    low: float = 3.5
    high: float = 4.5
    tasks: tuple[str, ...] = ("vif",)
    # the colour cue (module doc): the same ramp on a colour input's chroma noise; 0 and 0 turn it off
    chroma_low: float = 0.0
    chroma_high: float = 0.0
    # the fusion rule for a pair whose inputs are all strongly noisy (module doc, "Rule"), ramped in from
    # rule_low to rule_high of the pair's noise; "" = the teacher's rule always
    rule: str = ""
    rule_low: float = 7.0
    rule_high: float = 9.0
    # non-local means' filter parameter h in units of the noise sigma (module doc, "Strength"), and the one
    # for a pair all of whose inputs measure noisy, ramped in from low to high of the pair's noise; 0 = the
    # same strength for every pair (older denoise.json files)
    strength: float = 0.8
    pair_strength: float = 0.0
    # the filter (module doc, "Filter"): "nlm" non-local means, "net" the model folder's learned denoiser
    method: str = "nlm"
    # tasks whose inputs are read on their chroma noise alone, full weight from chroma_high, none from
    # chroma_cut[1] on (ramped down from chroma_cut[0]), and not at all when the exposure stage brightens the
    # pair; no stage rule for them (module doc, "Colour noise only"); () (and older denoise.json files): none
    chroma_tasks: tuple[str, ...] = ()
    chroma_cut: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        from allfuse.baselines.registry import FUSIONS

        chroma_ok = self.chroma_low == self.chroma_high == 0 or 0 < self.chroma_low < self.chroma_high
        rule_ok = (not self.rule or self.rule in FUSIONS) and 0 < self.rule_low < self.rule_high
        rule_ok = rule_ok and self.strength > 0 and self.pair_strength >= 0
        rule_ok = rule_ok and self.method in METHODS
        cut = self.chroma_cut
        only_ok = not self.chroma_tasks or (
            set(self.chroma_tasks) <= set(self.tasks)
            and self.chroma_high > 0
            and len(cut) == 2
            and self.chroma_high <= cut[0] < cut[1]
        )
        tasks_ok = set(self.tasks) <= set(TASKS) and only_ok
        if not 0 < self.low < self.high or not chroma_ok or not rule_ok or not tasks_ok:
            raise ValueError(
                f"bad denoise config: need 0 < low < high and 0 < chroma_low < chroma_high, or both 0 (noise "
                f'stds in 1/255 steps), a rule among {", ".join(FUSIONS)} (or "") with 0 < rule_low < '
                f"rule_high, strength > 0, pair_strength >= 0, a method among {', '.join(METHODS)}, tasks "
                f"among {', '.join(TASKS)}, and chroma_tasks among the tasks only with the colour cue on and "
                f"a chroma_cut of two values, chroma_high <= chroma_cut[0] < chroma_cut[1]: {self}"
            )

    @property
    def chroma(self) -> bool:
        """Whether the colour cue is on."""
        return self.chroma_high > 0


def input_noise(image: Image) -> float:
    """An input's noise std in 1/255 steps, measured as the gate measures it (allfuse.gate.noise_std on the
    luminance at a long side of at most allfuse.gate.GATE_SIDE)."""
    from allfuse.gate import noise_std, shrink

    return noise_std(np.asarray(to_gray(shrink(image)), np.float32)) * 255.0


def chroma_noise(image: Image) -> float:
    """A colour input's chroma noise std in 1/255 steps: allfuse.gate.noise_std on the two opponent channels
    (R - G) / sqrt(2) and (R + G - 2 B) / sqrt(6), the larger one, at a long side of at most
    allfuse.gate.GATE_SIDE. Noise drawn independently per channel with std s reads s on both; a gray
    image (one channel, or three equal ones) reads 0."""
    from allfuse.gate import noise_std, shrink

    x = np.asarray(shrink(image), np.float32)
    if x.ndim != 3 or x.shape[2] < 3:
        return 0.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return max(noise_std((r - g) / np.sqrt(2.0)), noise_std((r + g - 2.0 * b) / np.sqrt(6.0))) * 255.0


def quieter_noise(images: Sequence[Image]) -> float:
    """The lower luminance noise (input_noise) of a set of inputs, in 1/255 steps: what the stage's rule
    reads, as a noisy capture makes every input noisy."""
    return min(input_noise(x) for x in images)


def pair_chroma_noise(images: Sequence[Image]) -> float:
    """The lower chroma noise (chroma_noise) of a set of inputs, in 1/255 steps, as allfuse.gate.pair_noise
    takes the lower luminance noise: a noisy capture makes every input noisy. 0 when any input is gray."""
    return min(chroma_noise(x) for x in images)


def ramp(value: float, low: float, high: float) -> float:
    """0 up to `low`, 1 from `high`, linear between."""
    return float(min(1.0, max(0.0, (value - low) / (high - low))))


def denoise_weight(noise: float, cfg: DenoiseConfig, chroma: float = 0.0) -> float:
    """The share of the filter's change an input gets, in [0, 1], from its luminance noise std and its
    chroma noise std (1/255 steps; the larger of the two ramps when the colour cue is on)."""
    w = ramp(noise, cfg.low, cfg.high)
    return max(w, ramp(chroma, cfg.chroma_low, cfg.chroma_high)) if cfg.chroma else w


def input_weight(image: Image, cfg: DenoiseConfig) -> float:
    """An input's weight: denoise_weight of its luminance and, with the colour cue, its chroma noise."""
    return denoise_weight(input_noise(image), cfg, chroma_noise(image) if cfg.chroma else 0.0)


def chroma_only_weight(chroma: float, cfg: DenoiseConfig) -> float:
    """The weight of an input of a task in cfg.chroma_tasks from its chroma noise (1/255 steps; module doc,
    "Colour noise only"): up from chroma_low to chroma_high, back down from chroma_cut[0] to chroma_cut[1]."""
    up = ramp(chroma, cfg.chroma_low, cfg.chroma_high)
    return up * (1.0 - ramp(chroma, *cfg.chroma_cut))


def denoise_weights(
    images: Sequence[Image], task: str, cfg: DenoiseConfig, gained: bool = False
) -> list[float]:
    """Each input's weight (0 for every input when the task is not one of the stage's). For a task of
    cfg.chroma_tasks: chroma_only_weight, and 0 for every input when `gained` (the exposure stage will
    brighten the pair)."""
    if task not in cfg.tasks or (gained and task in cfg.chroma_tasks):
        return [0.0] * len(images)
    if task in cfg.chroma_tasks:
        return [chroma_only_weight(chroma_noise(x), cfg) for x in images]
    return [input_weight(x, cfg) for x in images]


def rule_weight(images: Sequence[Image], task: str, cfg: DenoiseConfig) -> float:
    """The share of the stage's `rule` in the pipeline's rule fusion of these inputs, as they reach the
    stage (module doc, "Rule"): 0 without a rule or for a task not the stage's or one of cfg.chroma_tasks,
    else the ramp of the lower of the inputs' noise (input_noise) from rule_low to rule_high."""
    if not cfg.rule or task not in cfg.tasks or task in cfg.chroma_tasks:
        return 0.0
    return ramp(quieter_noise(images), cfg.rule_low, cfg.rule_high)


def denoise_images(
    images: Sequence[Image], tile: int = TILE, strengths: Sequence[float] | None = None
) -> list[Image]:
    """Non-local means of each image (allfuse.baselines.restoration.denoise_nlm, at the image's entry of
    `strengths`, by default NLM_STRENGTH) in tiles of at most `tile` px a side, each filtered with NLM_REACH
    px of its surroundings and its whole image's noise sigma, so the result equals each whole image's
    filtered at once, in bounded memory. All tiles of all images run in parallel threads (scikit-image's
    non-local means releases the GIL), one per CPU core."""
    from allfuse.baselines.restoration import NLM_REACH, NLM_STRENGTH, denoise_nlm, noise_sigma

    xs = [np.asarray(im, np.float32) for im in images]
    outs = [np.empty_like(x) for x in xs]
    strengths = [NLM_STRENGTH] * len(xs) if strengths is None else list(strengths)
    if len(strengths) != len(xs):
        raise ValueError(f"denoise_images: {len(strengths)} strengths for {len(xs)} images")
    jobs = []
    for x, out, k in zip(xs, outs, strengths, strict=True):
        sigma = noise_sigma(x)
        if not sigma > 0:
            out[...] = x
            continue
        h, w = x.shape[:2]
        jobs += [
            (x, out, sigma, k, (y0, min(h, y0 + tile), x0, min(w, x0 + tile)))
            for y0 in range(0, h, tile)
            for x0 in range(0, w, tile)
        ]

    def run(job: tuple[np.ndarray, np.ndarray, float, float, tuple[int, int, int, int]]) -> None:
        x, out, sigma, k, (y0, y1, x0, x1) = job
        h, w = x.shape[:2]
        top, left = max(0, y0 - NLM_REACH), max(0, x0 - NLM_REACH)
        y = denoise_nlm(x[top : min(h, y1 + NLM_REACH), left : min(w, x1 + NLM_REACH)], sigma, k)
        out[y0:y1, x0:x1] = y[y0 - top : y1 - top, x0 - left : x1 - left]

    if jobs:
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
            list(pool.map(run, jobs))
    return outs


def filter_strength(weights: Sequence[float], cfg: DenoiseConfig) -> float:
    """Non-local means' strength for a set of inputs of these weights (denoise_weights; module doc,
    "Strength"): cfg.strength, moved toward cfg.pair_strength (when set) by the lowest weight, as a pair all
    of whose inputs are denoised reads."""
    if not cfg.pair_strength or not weights:
        return cfg.strength
    return cfg.strength + min(weights) * (cfg.pair_strength - cfg.strength)


@torch.no_grad()
def denoise_net_images(net: Denoiser, images: Sequence[Image], tile: int = TILE) -> list[Image]:
    """The learned denoiser (allfuse.models.denoiser) on each image, gray ones as three equal channels and
    back. An image larger than `tile` px a side runs in tiles, each with NET_MARGIN px of its surroundings
    (beyond the network's reach) and starting on its pooling grid, so the result equals the whole image's
    to float round-off, in bounded memory."""
    from allfuse.tiled import as_batch

    step = max(Denoiser.MULTIPLE, tile // Denoiser.MULTIPLE * Denoiser.MULTIPLE)
    outs, device = [], next(net.parameters()).device
    for image in images:
        x = np.asarray(image, np.float32)
        h, w = x.shape[:2]
        out = np.empty((h, w, 3), np.float32)
        for y0 in range(0, h, step):
            for x0 in range(0, w, step):
                y1, x1 = min(h, y0 + step), min(w, x0 + step)
                top, left = max(0, y0 - NET_MARGIN), max(0, x0 - NET_MARGIN)
                crop = x[top : min(h, y1 + NET_MARGIN), left : min(w, x1 + NET_MARGIN)]
                y = net(as_batch(crop, device))[0].permute(1, 2, 0).float().cpu().numpy()
                out[y0:y1, x0:x1] = y[y0 - top : y1 - top, x0 - left : x1 - left]
        out = np.clip(out, 0.0, 1.0)
        outs.append(out.mean(axis=2) if x.ndim == 2 else out)
    return outs


def denoise_inputs(
    images: Sequence[Image], task: str, cfg: DenoiseConfig, net: Denoiser | None = None, gained: bool = False
) -> tuple[list[Image], list[float]]:
    """The inputs, each one that measures noisy moved toward its filtered result by its weight (the same
    array when its weight is 0); and the weights (denoise_weights, `gained` as there). The filter: the
    learned denoiser `net` when cfg.method is "net" (denoise_net_images), else non-local means
    (denoise_images, at filter_strength)."""
    weights = denoise_weights(images, task, cfg, gained)
    noisy = [i for i, w in enumerate(weights) if w > 0.0]
    out = list(images)
    xs = [np.asarray(images[i], np.float32) for i in noisy]
    if cfg.method == "net":
        if net is None:
            raise ValueError("denoise: the config's method is 'net' but no denoiser network was given")
        filtered = denoise_net_images(net, xs)
    else:
        filtered = denoise_images(xs, strengths=[filter_strength(weights, cfg)] * len(xs))
    for i, x, y in zip(noisy, xs, filtered, strict=True):
        w = np.float32(weights[i])
        out[i] = y if w == 1.0 else np.clip(x + w * (y - x), 0.0, 1.0)
    return out, weights
