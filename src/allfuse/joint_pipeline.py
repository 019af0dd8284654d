"""JointPipeline: a trained JointDiT (DiTFuse) behind the same entry point as every model.

    from allfuse import FusionPipeline
    pipe = FusionPipeline.from_pretrained("models/ditfuse")  # a JointDiT folder -> a JointPipeline
    fused = pipe([ir, vis], prompt="[CONTROL]. <LIGHT+>. brighter", cfg_text=2.0, cfg_image=1.6, steps=8)
    seg = pipe.run([ir, vis], prompt="highlight the car")    # .image, .mask, .intent

What differs from a FusionDiT (allfuse.pipeline, whose image path, tiling and stacking it shares):
  * Prompts are read for what they ask (`allfuse.data.prompts.read_intent`): their [TAG]. <SUBTAG>. when
    they have them, else brightness/contrast wording -> [CONTROL] and its level, "segment/highlight the X"
    -> [SEG] X, other wording a fusion instruction; a prompt without any instruction word is not
    understood and the model fuses plainly. A tag the model was not trained on is refused. The model gets
    the DiTFuse template it was trained with, rebuilt from the tag, subtag and instruction; a [CONTROL]
    prompt's instruction is replaced by the level's first training phrasing (the level is all it asks).
  * Sampling: the solver of the model's sampler config (Euler, as DiTFuse) from Gaussian noise, with
    classifier-free guidance at text scale `cfg_text` and image scale `cfg_image` (defaults: the folder's),
    the condition's keys and values cached across steps (allfuse.sampling.joint), on latent windows of the
    training crop (`tile`) each with its own cache.
  * [SEG] returns the plain fusion (gray when every input is) with a translucent blue overlay of the
    predicted mask. A model with a mask head (JointConfig.mask_head) reads the mask from the head on its
    input images' states (`segment`): one condition pass, then one sampling of the plain fusion. Without
    one, the mask is read from the generated image: the model is trained to draw the class tinted toward
    blue (allfuse.data.seg.overlay); its output is compared with the plain fusion of the same inputs and
    noise, the per-pixel tint solved by least squares over RGB, smoothed over 5 x 5 px and thresholded at
    half the training alpha (data.seg.mask_from_overlay), so a [SEG] prompt costs two samplings. Either
    way the overlay is drawn crisply on the clean fusion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from allfuse.color import to_gray
from allfuse.config import override
from allfuse.data.prompts import FUSION_SUBTAG, Intent, fill, phrases, read_intent, tagged_prompt
from allfuse.data.seg import mask_from_overlay, overlay
from allfuse.devices import autocast
from allfuse.pipeline import (
    FusionPipeline,
    check_intent,
    check_options,
    check_prompt,
    work_size,
)
from allfuse.sampling.joint import predict_mask, sample_guided
from allfuse.stages import image_tensor
from allfuse.tiled import LatentFn
from allfuse.tokenizer.base import pad_to_multiple
from allfuse.types import Image, Task

PLAIN = Intent("FUSION", None, "", source="default")
MASK_SIDE = 512  # long side (px) the mask head reads the inputs at: 4 px mask cells, one pass per window


@dataclass(frozen=True)
class JointResult:
    """A JointPipeline run's image, its [SEG] mask (None for other prompts) and how the prompt was read."""

    image: Image  # (H, W, 3) float32 in [0, 1]; (H, W) when every input is gray (except for [SEG])
    mask: np.ndarray | None  # (H, W) bool: the pixels of the class a [SEG] prompt names
    intent: Intent


def check_joint_request(
    prompt: str | None,
    tags: Sequence[str],
    model: str,
    sampler: str | None = None,
    cfg_text: float | None = None,
    cfg_image: float | None = None,
) -> Intent:
    """What a prompt asks a JointDiT (`read_intent`), refused when the model was not trained on its tags
    (check_intent); a bridge sampler and guidance scales that are not finite numbers >= 0 are refused too."""
    check_prompt(prompt)
    intent = read_intent(prompt)
    check_intent(intent, tags, model)
    if sampler == "bridge":
        raise ValueError(f"sampler bridge: {model} samples from noise (the bridge needs a latent prior)")
    for name, s in (("cfg_text", cfg_text), ("cfg_image", cfg_image)):
        if s is not None and not (math.isfinite(s) and s >= 0):
            raise ValueError(f"{name} {s}: give a guidance scale >= 0 (1 = none)")
    return intent


class JointPipeline(FusionPipeline):
    """A trained JointDiT with its frozen tokenizer and text encoder (module doc); no refiner."""

    def understand(self, prompt: str | None, task: Task) -> Intent:
        """What the prompt asks (`read_intent`), refused when the model was not trained on its tags."""
        return check_joint_request(prompt, self.cfg.tags, self.name)

    def prompt_for(self, intent: Intent, task: Task) -> str:
        """The prompt the model was trained on: the DiTFuse template around the instruction (or the bare
        instruction for a model trained on natural prompts); plain fusion gets the task's default."""
        instruction = intent.instruction or fill(phrases("tasks", task)[0], 2, np.random.default_rng(0))
        if intent.task == "CONTROL" and intent.subtag is not None:
            # the level says all a control prompt asks: the model gets its trained wording of that level,
            # so a paraphrase it never saw ("add just a bit of light") acts as the level does
            instruction = phrases("control", intent.subtag)[0]
        if self.cfg.prompt_style != "tagged":
            return instruction
        sub = intent.subtag
        if intent.task == "FUSION" and sub is None and FUSION_SUBTAG[task] in self.cfg.tags:
            sub = FUSION_SUBTAG[task]
        return tagged_prompt(intent.task, sub, instruction)

    def slots(self, refine: bool = True) -> int:
        """How many inputs one fusion step takes: the JointDiT's max_inputs."""
        return self.cfg.model.max_inputs

    def __call__(self, *args: Any, **kwargs: Any) -> Image:  # type: ignore[override]
        """The fused image (`run(...).image`); arguments as `run`."""
        return self.run(*args, **kwargs).image

    @torch.no_grad()
    def run(
        self,
        images: Sequence[Image],
        prompt: str | None = None,
        task: Task | str = "auto",
        steps: int | None = None,
        sampler: str | None = None,
        cfg_text: float | None = None,
        cfg_image: float | None = None,
        seed: int = 0,
        tile: int | None = None,
        work_side: int | None = None,
        tile_pixels: int | None = None,
    ) -> JointResult:
        """Fuse >= 2 same-size images as the prompt asks; output size = input size.

        images, task, steps, sampler, seed, tile, work_side, tile_pixels: as FusionPipeline.__call__
        (sampler: any but "bridge"; work_side: the latent path at most this long side, bicubic back).
        cfg_text, cfg_image: classifier-free guidance scales of text and images (InstructPix2Pix Eq. 3);
        None = the model's (config.json "guidance"), 1 and 1 = plain conditional sampling."""
        images, colour, task = self.prepare(images, task)
        check_options(steps, sampler, tile, work_side, tile_pixels)
        intent = check_joint_request(prompt, self.cfg.tags, self.name, sampler, cfg_text, cfg_image)
        args = (steps, sampler, cfg_text, cfg_image, seed, tile)
        if intent.task == "SEG" and self.model.mask_head is not None:
            mask = self.segment(images, task, intent, tile)
            plain = self.generate(images, task, PLAIN, args, work_side, tile_pixels)
            return JointResult(overlay(plain if colour else to_gray(plain), mask), mask, intent)
        out = self.generate(images, task, intent, args, work_side, tile_pixels)
        if intent.task != "SEG":
            return JointResult(out if colour else to_gray(out), None, intent)
        plain = self.generate(images, task, PLAIN, args, work_side, tile_pixels)
        mask = mask_from_overlay(out, plain)
        return JointResult(overlay(plain if colour else to_gray(plain), mask), mask, intent)

    @torch.no_grad()
    def segment(self, images: list[Image], task: Task, intent: Intent, tile: int | None) -> np.ndarray:
        """The mask (H, W) bool of the class a [SEG] intent names: the first `slots()` inputs area-downscaled
        to a long side of at most MASK_SIDE, encoded, one condition pass per window
        (sampling.joint.predict_mask), the probability brought back to full size bilinearly. A prompt mask
        head's probability >= 0.5; a label head's argmax over its labels plus the named class (LSeg's
        inference: the class wins where it scores above background and every other label)."""
        h, w = images[0].shape[:2]
        size = work_size((h, w), MASK_SIDE)
        x = [image_tensor(im).to(self.device) for im in images[: self.slots()]]
        x = [t if size == (h, w) else F.interpolate(t, size=size, mode="area") for t in x]
        tokens, tmask = self.encode_prompt(self.prompt_for(intent, task))
        window = self.default_tile() if tile is None else tile
        names = list(self.model.cfg.mask_labels)
        if names and intent.target not in names:
            names.append(intent.target)
        labels = None
        if names:
            if self.text is None:
                raise ValueError("a label head needs the model's text encoder")
            tokens_k, mask_k = self.text.encode(names)
            labels = (tokens_k.to(self.device), mask_k.to(self.device))
        with autocast(self.device, self.cfg.bf16):
            conds = [self.tok.encode(t).float() for t in x]
            pixels = [pad_to_multiple(t, self.tok.downsample) for t in x]  # as the tokenizer pads
            prob = predict_mask(self.model, conds, tokens, tmask, window, pixels, labels)
        prob = F.interpolate(prob.float(), size=(h, w), mode="bilinear", align_corners=False)[0]
        if not names:
            return prob[0].cpu().numpy() >= 0.5
        return (prob.argmax(dim=0) == names.index(intent.target)).cpu().numpy()

    def generate(
        self,
        images: list[Image],
        task: Task,
        intent: Intent,
        args: tuple,  # steps, sampler, cfg_text, cfg_image, seed, tile
        work_side: int | None,
        tile_pixels: int | None,
    ) -> Image:
        """One generation (H, W, 3) for an intent, through the shared image path."""
        latent = self.joint_latent_fn(self.prompt_for(intent, task), *args)
        return self.run_path(images, task, latent, False, work_side or None, tile_pixels)

    def joint_latent_fn(
        self,
        prompt: str,
        steps: int | None,
        sampler: str | None,
        cfg_text: float | None,
        cfg_image: float | None,
        seed: int,
        tile: int | None,
    ) -> LatentFn:
        """Condition latents -> generated latent: guided, cached, windowed sampling under autocast."""
        tokens, mask = self.encode_prompt(prompt)
        changes = {k: v for k, v in (("steps", steps), ("method", sampler)) if v is not None}
        scfg = override(self.cfg.sampler, **changes)
        s_text = self.cfg.guidance.text if cfg_text is None else cfg_text
        s_image = self.cfg.guidance.image if cfg_image is None else cfg_image
        window = self.default_tile() if tile is None else tile

        def latent(conds: list[torch.Tensor], bf16: bool = self.cfg.bf16) -> torch.Tensor:  # (1, C, h, w)
            gen = torch.Generator().manual_seed(seed)
            with autocast(self.device, bf16):
                z = sample_guided(self.model, conds, tokens, mask, scfg, s_text, s_image, gen, window).x
            return z.float()

        return latent
