"""The stages that precede fusion, as one object: impulse-noise removal, JPEG deblocking, stripe removal,
denoising, the exposure stage, deblurring, the input corrector and the exposure stage's veil stretch of what
the corrector left veiled (FusionPipeline.restore_inputs; each stage's module says what it does).

`InputStages.restore` is what a model's DiT sees at inference: the pipeline calls it, and a training run
with `stages_from` (allfuse.train.config) passes its fusion samples' degraded inputs through the same
stages of a model folder, so that the network learns to fuse what those stages leave (a deconvolved
input's ringing, a denoised one's smooth patches) rather than raw degradations it never meets at inference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from allfuse.deblock import DeblockConfig, deblock_inputs, pixel_grids
from allfuse.deblur import DeblurConfig, deblur_inputs
from allfuse.denoise import DenoiseConfig, denoise_inputs, rule_weight
from allfuse.destripe import DestripeConfig, destripe_inputs
from allfuse.exposure import (
    ExposureConfig,
    dehazed_inputs,
    expose_inputs,
    exposure_gain,
    over_exposed,
    unveiled_inputs,
)
from allfuse.impulse import ImpulseConfig, impulse_inputs
from allfuse.models.correct import Corrector
from allfuse.models.denoiser import Denoiser
from allfuse.types import Image, Task


def image_tensor(im: Image) -> torch.Tensor:
    """(H, W) or (H, W, 3) float [0, 1] -> (1, 3, H, W) float32, gray replicated."""
    a = np.asarray(im, dtype=np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


class Restored(NamedTuple):
    """Inputs through the pre-fusion stages (InputStages.restore_gain) and what some of the stages did."""

    images: list[Image]
    gain: float  # the exposure stage's gain (1.0: none)
    deblocked: int  # the lowest JPEG quality the deblocking stage deblocked an input at (0: none)
    deblurred: bool  # the deblurring stage deconvolved at least one input
    # the denoising stage's rule's share in the rule fusion (allfuse.denoise.rule_weight; 0.0: the teacher's)
    rule_weight: float = 0.0
    # the exposure stage's veil stretch of each input, after the corrector (allfuse.exposure; 1.0: none)
    unveiled: tuple[float, ...] = ()
    # the weight of the exposure stage's dark-channel dehazing of each input, last (allfuse.exposure; 0: none)
    dehazed: tuple[float, ...] = ()
    # the input corrector's mean absolute change of each input, in 1/255 steps (empty: it did not run)
    corrected: tuple[float, ...] = ()


@dataclass
class InputStages:
    """A model folder's pre-fusion stages; None = the folder has no such stage."""

    destripe: DestripeConfig | None = None
    denoise: DenoiseConfig | None = None
    exposure: ExposureConfig | None = None
    deblur: DeblurConfig | None = None
    corrector: Corrector | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # the corrector's
    deblock: DeblockConfig | None = None
    impulse: ImpulseConfig | None = None
    denoiser: Denoiser | None = None  # the denoising stage's network, when its config's method is "net"

    @classmethod
    def from_folder(cls, name_or_path: str | os.PathLike) -> InputStages:
        """The stages of an embedded model ("allfuse-reg") or a model folder, on the CPU."""
        from allfuse.model_folder import (
            load_corrector,
            load_deblock,
            load_deblur,
            load_denoising,
            load_destripe,
            load_exposure,
            load_impulse,
            resolve_model_folder,
        )

        folder = resolve_model_folder(name_or_path)
        corrector = load_corrector(folder)
        denoise, denoiser = load_denoising(folder)
        return cls(
            load_destripe(folder),
            denoise,
            load_exposure(folder),
            load_deblur(folder),
            corrector.eval().requires_grad_(False) if corrector is not None else None,
            deblock=load_deblock(folder),
            impulse=load_impulse(folder),
            denoiser=denoiser,
        )

    def restore(self, images: Sequence[Image], task: Task, *flags: bool, **named: bool) -> list[Image]:
        """restore_gain's restored inputs alone (the same stage flags)."""
        return self.restore_gain(images, task, *flags, **named).images

    def restore_gain(
        self,
        images: Sequence[Image],
        task: Task,
        deblur: bool = True,
        correct: bool = True,
        destripe: bool = True,
        exposure: bool = True,
        denoise: bool = True,
        deblock: bool = True,
    ) -> Restored:
        """Checked inputs through impulse-noise removal, JPEG deblocking, stripe removal, denoising, the
        exposure stage, the deblurring stage, the input corrector, then the exposure stage's veil stretch of
        what the corrector left veiled and its dehazing of what still reads hazy (an input that reached
        the corrector over-exposed excepted), each when there is one, it is enabled for the task and asked for
        (`denoise` asks for both noise stages, `exposure` for both exposure steps); with what the deblocking,
        exposure, deblurring, denoising stages and the corrector did (Restored; `gain` times the largest
        veil factor)."""
        images, qualities, gain, psfs, rule = list(images), [0] * len(images), 1.0, [], 0.0
        veil, haze = [1.0] * len(images), [0.0] * len(images)
        if denoise and self.impulse is not None:  # first: the codec and the filters below spread a speck
            images = impulse_inputs(images, task, self.impulse)[0]
        enlarged = [False] * len(images)  # made of pixel blocks, re-interpolated (allfuse.depixel)
        if deblock and self.deblock is not None:
            grids = pixel_grids(images, task, self.deblock)
            enlarged = [g is not None for g in grids]
            images, qualities = deblock_inputs(images, task, self.deblock, grids)
        coded = [q > 0 for q in qualities]
        rebuilt = [c or e for c, e in zip(coded, enlarged, strict=True)]
        if destripe and self.destripe is not None:
            images = destripe_inputs(images, task, self.destripe)
        if denoise and self.denoise is not None:
            rule = rule_weight(images, task, self.denoise)  # the noise the inputs reach the stage with
            gained = self.gains(images, task, exposure)
            images = denoise_inputs(images, task, self.denoise, self.denoiser, gained)[0]
        if exposure and self.exposure is not None:
            images, gain = expose_inputs(images, task, self.exposure)
            over = over_exposed(images, self.exposure)  # what the corrector gets over-exposed is not hazed
        if deblur and self.deblur is not None and task in self.deblur.tasks:
            images, psfs = deblur_inputs(images, self.deblur, task, coded, rebuilt)
        corrected: tuple[float, ...] = ()
        if correct and self.corrector is not None and task in self.corrector.cfg.tasks:
            before, images = images, self.correct(images, task)
            corrected = tuple(
                255.0 * float(np.abs(np.asarray(b, np.float32) - np.asarray(a, np.float32)).mean())
                for a, b in zip(before, images, strict=True)
            )
        if exposure and self.exposure is not None:  # what the corrector left veiled (allfuse.exposure)
            images, veil = unveiled_inputs(images, task, self.exposure)
            gain *= max(veil, default=1.0)
            images, haze = dehazed_inputs(images, task, self.exposure, over)
        deblurred = any(np.ndim(p) > 0 or p > 0 for p in psfs)  # a sigma, or an elliptic PSF's covariance
        quality = min((q for q in qualities if q > 0), default=0)
        return Restored(images, gain, quality, deblurred, rule, tuple(veil), tuple(haze), corrected)

    def gains(self, images: Sequence[Image], task: Task, exposure: bool = True) -> bool:
        """Whether the exposure stage will brighten these inputs (its gain above 1), read only for a task the
        denoising stage reads on colour noise alone, which leaves such a pair to the latent path
        (allfuse.denoise, "Colour noise only"); False without either stage or with `exposure` off."""
        if not exposure or self.exposure is None or self.denoise is None:
            return False
        return task in self.denoise.chroma_tasks and exposure_gain(images, task, self.exposure) > 1.0

    @torch.no_grad()
    def correct(self, images: list[Image], task: Task) -> list[Image]:
        """The corrector's whole-image gain/offset correction of every input (all of them as context)."""
        assert self.corrector is not None
        xs = [image_tensor(im).to(self.device) for im in images]
        out = []
        for im, y in zip(images, self.corrector.correct(xs, task), strict=True):
            a = y[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)
            out.append(a.mean(axis=2) if np.asarray(im).ndim == 2 else a)
        return out
