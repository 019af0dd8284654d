"""Detail pick: the model's fusion takes the teacher's rule's fine detail wherever that detail is stronger.

Beyond the papers. The latent path (f = 8 encoder, DiT, decoder, refiner) fuses softer than the teacher's
classical rule fuses the same restored inputs: it spends its capacity on restoration, and where an input
is degraded in a way it does not undo (a haze veil it lifts in part, an anisotropic blur on one camera's
image, rain on one exposure) it mixes that input's blurred content over the other's sharp edges, where the
rule's saliency weights keep the sharp one. So after the latent path, both fusions are split into a
Laplacian pyramid (Burt & Adelson 1983) and, in each of the PICK_LEVELS finest bands, every pixel takes the
detail of the fusion whose luminance detail is the stronger, the max-abs selection of Burt & Kolczynski
(1993) between two fusions instead of two sources; the coarse base, which carries the model's dehazing,
exposure and colour, stays the model's. The selection mask is smoothed by a 1 px Gaussian against
speckle.

The rule fuses the inputs as the stages left them, noise included: on inputs that still measure noisy the
rule's strongest detail is noise, which the latent path removes (validation bench: multi-exposure noise
−0.02 to −0.04 Qabf, low light −0.04 to −0.05 with an unguarded pick). So the pick's weight follows the
restored inputs' noise (allfuse.gate.pair_noise) as the refiner's noise guard does (guard_weight): full up to
PICK_NOISE[0], none from PICK_NOISE[1] (in 1/255 steps) on, linear between. An exposure gain multiplies
what the stages leave below that measure's reach (the 8-bit steps of a dark capture, the faint ringing of
a deconvolution), and the rule's fusion carries it as detail: on a dim, blurred multi-exposure pair of the
validation bench (gain 1.69) the pick raised BRISQUE from 46 to 70 at the same Qabf. So the pick also
fades with the exposure stage's gain: full up to PICK_GAIN[0], none from PICK_GAIN[1]. Measured effects
are in the models' cards.
"""

from __future__ import annotations

import cv2
import numpy as np

from allfuse.baselines.pyramid import collapse_pyramid, laplacian_pyramid
from allfuse.tiled import row_bands

PICK_LEVELS = 4  # finest Laplacian bands taken by max-abs; the base (1/16 of the size) stays the model's
PICK_NOISE = (2.0, 3.5)  # restored inputs' noise (1/255): full pick up to the first, none from the second
PICK_GAIN = (1.2, 1.5)  # the exposure stage's gain: full pick up to the first, none from the second
MARGIN = 96  # rows of context each side of a band (a multiple of 2**PICK_LEVELS; the 4-level support)


def pick_detail(
    model: np.ndarray,
    rule: np.ndarray,
    levels: int = PICK_LEVELS,
    strength: float = 1.0,
    band_pixels: int = 0,
) -> np.ndarray:
    """The model's fusion with, in its `levels` finest Laplacian bands, the rule's detail wherever the
    rule's luminance detail is the stronger (times `strength` in [0, 1]); (H, W) or (H, W, 3) float in
    [0, 1], both alike. Above `band_pixels` pixels (0 = never) it runs on bands of rows with MARGIN rows of
    context, in bounded memory; the result matches the whole-image one to float round-off away from the
    image's top and bottom MARGIN rows."""
    m = np.asarray(model, np.float32)
    r = np.asarray(rule, np.float32)
    if m.shape != r.shape:
        raise ValueError(f"model fusion {m.shape} and rule fusion {r.shape} differ in size")
    if levels < 1 or strength <= 0:
        return m.copy()
    out = np.empty_like(m)
    for y0, y1, a, b in row_bands(*m.shape[:2], band_pixels, MARGIN, 2**levels):
        out[y0:y1] = _pick(m[a:b], r[a:b], levels, strength)[y0 - a : y1 - a]
    return out


def _pick(m: np.ndarray, r: np.ndarray, levels: int, strength: float) -> np.ndarray:
    """pick_detail on one piece. The pyramid is linear, so the mixed bands are the model's plus the mask
    times the bands of the difference r - m: out = m + collapse(mask_l * L_l(r - m), base 0)."""
    luma = (lambda x: x.mean(axis=2)) if m.ndim == 3 else (lambda x: x)
    lm = laplacian_pyramid(np.ascontiguousarray(luma(m)), levels)
    lr = laplacian_pyramid(np.ascontiguousarray(luma(r)), levels)
    masks = [
        strength * cv2.GaussianBlur((np.abs(b) > np.abs(a)).astype(np.float32), (0, 0), 1.0)
        for a, b in zip(lm[:-1], lr[:-1], strict=True)
    ]
    d = r - m
    planes = [d[..., c] for c in range(d.shape[2])] if d.ndim == 3 else [d]
    added = []
    for plane in planes:
        bands = laplacian_pyramid(np.ascontiguousarray(plane), levels)
        mixed = [k * band for k, band in zip(masks, bands[:-1], strict=True)]
        added.append(collapse_pyramid([*mixed, np.zeros_like(bands[-1])]))
    extra = np.stack(added, axis=2) if d.ndim == 3 else added[0]
    return np.clip(m + extra, 0.0, 1.0)
