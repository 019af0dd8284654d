"""FusionPipeline: images (+ prompt) -> fused image, shared by the Python API, the CLI and the web demo.

    from allfuse import FusionPipeline
    pipe = FusionPipeline.from_pretrained("allfuse-reg")      # or "allfuse-fm", or a local folder
    fused = pipe([ir, vis], prompt="remove the noise and fuse")  # float32 [0, 1], the input size

A model folder (allfuse.model_folder) holds `model.safetensors` (the EMA weights), `config.json` (the
inference config) and, optionally, a pixel-space refiner; a training run or checkpoint folder works too.
Output size = input size, always.

Any number >= 2 of inputs: more than the model's slots are fused in steps (allfuse.stacks). Any size:
images of more than `tile_pixels` pixels run the path on overlapping tiles, in bounded memory
(allfuse.tiled). Any device: `from_pretrained(..., device=)` or `.to(device)`; the text encoder, run once
per call on a short prompt, stays on the CPU.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
import torch.nn.functional as F

from allfuse.color import is_color, to_gray
from allfuse.config import SamplerConfig, SamplerKind, config_to_dict, override
from allfuse.data.prompts import (
    FUSION_SUBTAG,
    Intent,
    ParsedPrompt,
    fill,
    parse_prompt,
    phrases,
    tagged_prompt,
)
from allfuse.deblock import DeblockConfig
from allfuse.deblur import DeblurConfig
from allfuse.denoise import DenoiseConfig, pair_chroma_noise
from allfuse.destripe import DestripeConfig
from allfuse.devices import autocast, keep_freed_memory, parse_device
from allfuse.exposure import ExposureConfig, gained_inputs
from allfuse.gate import GateConfig, pair_features, pair_noise, rule_fusion
from allfuse.impulse import ImpulseConfig
from allfuse.inputs import check_images
from allfuse.model_folder import (
    REFINER_CONFIG,
    InferenceConfig,
    check_fingerprint,
    check_noise_guard,
    embedded_with_tags,
    inference_from_training,
    load_corrector,
    load_deblock,
    load_deblur,
    load_denoising,
    load_destripe,
    load_exposure,
    load_gate,
    load_impulse,
    load_noise_guard,
    load_refiner,
    load_weights,
    read_model_config,
    refiner_meta,
    resolve_model_folder,
    save_corrector,
    save_deblock,
    save_deblur,
    save_denoise,
    save_denoiser,
    save_destripe,
    save_exposure,
    save_gate,
    save_impulse,
    save_pretrained,
    save_refiner,
)
from allfuse.models import FusionDiT, JointDiT
from allfuse.models.correct import Corrector
from allfuse.models.denoiser import Denoiser
from allfuse.models.joint import JointConfig
from allfuse.models.refine import DampedRefiner, Refiner, classical_source, guard_weight
from allfuse.pick import PICK_GAIN, PICK_NOISE, pick_detail
from allfuse.sampling import sample_latent
from allfuse.sampling.tiling import TiledModel
from allfuse.stacks import STACK_ORDER, fuse_stack
from allfuse.stages import InputStages, image_tensor
from allfuse.tasks import CLASSICAL_DEFAULT, guess_task
from allfuse.tiled import DEFAULT_TILE_PIXELS, ClassicalFn, LatentFn, check_tile_pixels, fuse_large
from allfuse.types import TASKS, Image, Task
from allfuse.washout import infrared_detail

SAMPLERS: tuple[str, ...] = get_args(SamplerKind)
# Multi-focus inputs are one exposure of one scene: defocus moves light within a blur disc and keeps each
# channel's mean, so the fusion's mean is the (restored) inputs'. The latent path can drift from it (a sharp
# photo fused with itself came back up to 2.2/255 darker from allfuse-fm); keep_mean takes the drift out.
MEAN_TASKS: tuple[str, ...] = ("mff",)
# Geometric self-ensemble (Timofte et al. 2016, "Seven ways to improve example-based single image super
# resolution"; Lim et al. 2017, EDSR+): the latent path also fuses the left-right mirrored inputs and the two
# fusions, mirrored back, are averaged. A mirrored scene is still a natural scene (an upside-down one is not:
# vertical flips lowered infrared + visible Qabf), and the network's errors on the two differ, so their
# mean errs less (MODEL_CARD). The refiner then runs once, on the mean's upsampled decoded fusion. Costs a
# second encoder, DiT and decoder pass at the work size (at most 512 px by default).
MIRROR = True
PICK = True  # the detail pick after the latent path (allfuse.pick); __call__'s `pick`
# the infrared detail where the visible image is washed out, last step of an infrared + visible fusion of
# two images (allfuse.washout); __call__'s `washout`
WASHOUT = True
# A pair with an input deblocked at this JPEG quality or lower is fused by the latent path alone, whatever
# the gate measures; a deconvolved one gets no blend (FusionPipeline.gate_decision).
REPAIRED_JPEG = 50
# A pair the input corrector changed unevenly gets no blend either (FusionPipeline.gate_decision): its
# largest mean change of an input, in 1/255 steps, reaches the first value and the smallest one stays below
# the larger by the second as a share, (largest - smallest) / (largest + 1) >= UNEVEN[1].
UNEVEN = (5.0, 0.7)
MIN_TILE = 4  # smallest latent window of tiled inference (allfuse.sampling.tiling)


class FusionPipeline:
    """A trained FusionDiT with its frozen tokenizer and text encoder."""

    def __init__(
        self,
        model: FusionDiT,
        cfg: Any,  # InferenceConfig, or a training config
        tokenizer,
        text_encoder,
        name: str,
        refiner: Refiner | None = None,
        work_side: int | None = None,
        corrector: Corrector | None = None,
        deblur: DeblurConfig | None = None,
        destripe: DestripeConfig | None = None,
        gate: GateConfig | None = None,
        exposure: ExposureConfig | None = None,
        denoise: DenoiseConfig | None = None,
        deblock: DeblockConfig | None = None,
        impulse: ImpulseConfig | None = None,
    ) -> None:
        if not isinstance(cfg, InferenceConfig):  # a training config: the part inference needs
            cfg = inference_from_training(config_to_dict(cfg))
        self.model, self.cfg, self.tok, self.text, self.name = (
            model.eval(),
            cfg,
            tokenizer,
            text_encoder,
            name,
        )
        self.refiner = refiner.eval() if refiner is not None else None
        self.work_side = work_side  # default of __call__'s work_side (the model folder's refiner.json)
        self.corrector = corrector.eval() if corrector is not None else None
        self.deblur = deblur  # the blind deblurring stage (allfuse.deblur), None = none
        self.destripe = destripe  # the stripe-removal stage (allfuse.destripe), None = none
        self.gate = gate  # the clean-input gate (allfuse.gate), None = none
        self.exposure = exposure  # the exposure stage (allfuse.exposure), None = none
        self.denoise = denoise  # the denoising stage (allfuse.denoise), None = none
        self.deblock = deblock  # the JPEG deblocking stage (allfuse.deblock), None = none
        self.impulse = impulse  # the impulse-noise stage (allfuse.impulse), None = none
        # the denoising stage's network (denoise.json's method "net"; allfuse.models.denoiser), None = none
        self.denoiser: Denoiser | None = None
        # the refiner's noise guard, {task: (low, high, floor)} (refiner.json; refiner_weight)
        self.noise_guard: dict[str, tuple[float, ...]] = {}
        # tasks whose latent-path fusion keeps the restored inputs' mean colour (keep_mean); () = none
        self.mean_tasks: tuple[str, ...] = MEAN_TASKS
        # the latent path's default geometric self-ensemble (MIRROR; __call__'s `mirror`)
        self.mirror: bool = MIRROR
        # the detail pick between the latent path's fusion and the teacher's rule's (PICK; __call__'s `pick`)
        self.pick: bool = PICK
        # the infrared detail where the visible image is washed out (WASHOUT; __call__'s `washout`)
        self.washout: bool = WASHOUT

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike = "allfuse-reg", device: str | torch.device | None = None
    ) -> FusionPipeline:
        """Load an embedded model ("allfuse-reg", "allfuse-fm") or a local folder, on `device` (default
        CPU; "cuda", "cuda:1", "mps", ...); nothing is downloaded. A JointDiT folder (DiTFuse; config.json's
        _class_name JointPipeline) gives a JointPipeline (allfuse.joint_pipeline), whatever class is asked."""
        from allfuse.text import load_text_encoder
        from allfuse.tokenizer import load_tokenizer

        target = parse_device(device) if device is not None else None
        keep_freed_memory()  # full-resolution tensors reuse freed heap memory (allfuse.devices)
        folder = resolve_model_folder(name_or_path)
        cfg = read_model_config(folder)
        kind: type[FusionPipeline]
        if isinstance(cfg.model, JointConfig):  # config.json's _class_name: JointPipeline
            from allfuse.joint_pipeline import JointPipeline

            kind, model = JointPipeline, JointDiT(cfg.model)
        else:
            kind, model = FusionPipeline, FusionDiT(cfg.model)
        weights = folder / "ema.safetensors"
        load_weights(model, weights if weights.exists() else folder / "model.safetensors")
        tok = load_tokenizer(cfg.tokenizer, precision="bf16" if cfg.bf16 else "fp32")
        if tok.channels != cfg.model.latent_channels:
            raise ValueError(
                f"{folder}: tokenizer {cfg.tokenizer!r} has {tok.channels} channels, the model "
                f"expects {cfg.model.latent_channels}"
            )
        check_fingerprint(folder, "tokenizer", cfg.tokenizer_fingerprint, tok.fingerprint())
        text = load_text_encoder(cfg.text_encoder) if cfg.prompted else None
        if text is not None:
            check_fingerprint(folder, "text_encoder", cfg.text_encoder_fingerprint, text.id)
        refiner = load_refiner(folder)
        work_side = refiner_meta(folder).get("work_side") if refiner is not None else None
        if work_side is not None and (not isinstance(work_side, int) or work_side < 16):
            raise ValueError(
                f"{folder / REFINER_CONFIG}: work_side must be an integer >= 16, got {work_side!r}"
            )
        pipe = kind(model, cfg, tok, text, str(name_or_path), refiner, work_side)
        if kind is FusionPipeline:
            pipe.corrector = load_corrector(folder)
            pipe.deblur = load_deblur(folder)
            pipe.destripe = load_destripe(folder)
            pipe.exposure = load_exposure(folder)
            pipe.denoise, pipe.denoiser = load_denoising(folder)
            pipe.deblock = load_deblock(folder)
            pipe.impulse = load_impulse(folder)
            pipe.noise_guard = load_noise_guard(folder) if refiner is not None else {}
            pipe.gate = load_gate(folder)
        return pipe.to(target) if target is not None else pipe

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write this pipeline as a model folder (DiT, config, refiner, corrector) that from_pretrained loads
        back."""
        folder = save_pretrained(self.model, self.cfg, folder)
        if self.refiner is not None:
            save_refiner(self.refiner, folder, work_side=self.work_side, noise_guard=self.noise_guard)
        if self.corrector is not None:
            save_corrector(self.corrector, folder)
        if self.deblur is not None:
            save_deblur(self.deblur, folder)
        if self.destripe is not None:
            save_destripe(self.destripe, folder)
        if self.exposure is not None:
            save_exposure(self.exposure, folder)
        if self.denoise is not None:
            save_denoise(self.denoise, folder)
        if self.denoiser is not None:
            save_denoiser(self.denoiser, folder)
        if self.deblock is not None:
            save_deblock(self.deblock, folder)
        if self.impulse is not None:
            save_impulse(self.impulse, folder)
        if self.gate is not None:
            save_gate(self.gate, folder)
        return folder

    @property
    def device(self) -> torch.device:
        """Where the DiT, the refiner and the tokenizer run."""
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> FusionPipeline:
        """Move the DiT, the refiner, the corrector and the tokenizer's networks to `device`; returns self."""
        device = torch.device(device)
        self.model.to(device)
        for part in (self.refiner, self.corrector, self.denoiser):
            if part is not None:
                part.to(device)
        for part in vars(self.tok).values():  # a tokenizer's networks (KL-VAE, TAEF2, diffusers VAE)
            if isinstance(part, torch.nn.Module):
                part.to(device)
        return self

    def slots(self, refine: bool = True) -> int:
        """How many inputs one fusion step takes: the DiT's condition slots (and the refiner's inputs)."""
        n = self.cfg.model.max_inputs
        return min(n, self.refiner.cfg.max_inputs) if refine and self.refiner is not None else n

    def build_prompt(self, prompt: str | None, task: Task) -> str:
        """The prompt the model was trained on: tagged DiTFuse form, or the bare instruction. Tags the model
        was not trained on are refused (check_tags)."""
        parsed = check_prompt(prompt)
        check_tags(parsed, self.cfg.tags, self.name)
        instruction = (
            parsed.instruction if parsed else fill(phrases("tasks", task)[0], 2, np.random.default_rng(0))
        )
        if self.cfg.prompt_style != "tagged":
            return instruction
        if parsed and parsed.task:
            return prompt  # type: ignore[return-value]  # already tagged by the user
        return tagged_prompt("FUSION", FUSION_SUBTAG[task], instruction)

    def understand(self, prompt: str | None, task: Task) -> Intent:
        """What the model is asked for (`allfuse fuse -v`): the tags and instruction of the prompt it gets."""
        parsed = check_prompt(prompt)
        check_tags(parsed, self.cfg.tags, self.name)
        if parsed is None or self.text is None:
            return Intent("FUSION", FUSION_SUBTAG[task], "", source="default")
        if parsed.task:
            return Intent(parsed.task, parsed.subtags[0] if parsed.subtags else None, parsed.instruction)
        sub = FUSION_SUBTAG[task] if self.cfg.prompt_style == "tagged" else None
        return Intent("FUSION", sub, parsed.instruction, source="words")

    @torch.no_grad()
    def __call__(
        self,
        images: Sequence[Image],
        prompt: str | None = None,
        task: Task | str = "auto",
        steps: int | None = None,
        sampler: str | None = None,
        seed: int = 0,
        tile: int | None = None,
        refine: bool = True,
        work_side: int | None = None,
        tile_pixels: int | None = None,
        correct: bool = True,
        deblur: bool = True,
        gate: bool = True,
        destripe: bool = True,
        exposure: bool = True,
        denoise: bool = True,
        deblock: bool = True,
        mirror: bool | None = None,
        pick: bool | None = None,
        washout: bool | None = None,
    ) -> Image:
        """Fuse >= 2 same-size images; gray output when every input is gray.

        images: float in [0, 1], uint8, uint16 or bool (converted by their range), (H, W), (H, W, 1) or
        (H, W, 3); anything else is refused with a ValueError naming the input (allfuse.inputs). More
        images than the model's slots (`slots()`, 2 for the shipped models) are fused in steps: in input
        order for MEF (sort a bracket by exposure), as a balanced tree otherwise (allfuse.stacks).
        steps (>= 1), sampler: of a flow-matching model's sampler (None = the model's own); a regression
        model makes one forward pass and ignores them.
        tile: latent window of tiled inference (allfuse.sampling.tiling), >= 4; None = the training crop
        size, 0 = the whole image in one window. refine: apply the pixel-space refiner when the model has one.
        work_side: run the latent path (encode, DiT, decode) on inputs area-downscaled to this long side
        and bring the result back to full size, bicubic, then through the refiner, which sees the
        full-size inputs (guided upsampling; module doc of allfuse.models.refine). None = the model's
        default (`self.work_side`, from refiner.json; full size when it has none or refine=False),
        0 = full size.
        tile_pixels: images of more pixels run encoder, decoder and refiner on overlapping tiles of at
        most this many pixels, in bounded memory (allfuse.tiled); None = 1024 x 1024, 0 = never.
        correct: first run the input corrector (allfuse.models.correct: haze, exposure, from the whole
        image) when the model has one and it is enabled for the task (its config's `tasks`).
        deblur: first measure the inputs' blur and deconvolve them when they are blurred (allfuse.deblur),
        when the model has that stage (deblur.json) and it is enabled for the task; before the corrector.
        destripe: before that, remove the fixed-pattern column or row stripes of an input that measures
        striped (allfuse.destripe: an infrared camera's), when the model has that stage (destripe.json) and
        it is enabled for the task.
        exposure: after stripe removal, multiply an under-exposed pair by the gain its headroom asks for
        (allfuse.exposure: the pair's brightest pixels far below white), stretch a flat input's contrast
        and, after the corrector, a veiled one's, when the model has that stage (exposure.json) for the
        task.
        denoise: between those two, replace an input that measures noisy by its non-local-means result
        (allfuse.denoise; each input measured on its own), when the model has that stage (denoise.json) for
        the task, and fuse a pair all of whose inputs measured strongly noisy, where the teacher's rule
        fuses (below), by the rule the stage names (its `rule`); and, before any other stage, replace the
        isolated outliers of an input that measures speckled by their local median (allfuse.impulse:
        impulse noise), when the model has that stage (impulse.json) for the task.
        deblock: first (after the impulse-noise stage, see `denoise`), re-code an input that measures as a
        low-quality JPEG on shifted grids and average (allfuse.deblock; each input measured on its own),
        when the model has that stage (deblock.json) for the task.
        gate: after those stages, fuse a pair that measures clean by the teacher's classical rule
        instead of the latent path, and mix the rule's fusion into the model's where the gate's blend says
        so (allfuse.gate), when the model has a gate (gate.json) for the task; False: the model alone. A
        pair deblocked as a JPEG of quality 50 or less is the latent path's whatever the gate says, and a
        deconvolved pair gets no blend (gate_decision).
        mirror: also run the latent path (encoder, DiT, decoder) on the left-right mirrored inputs and
        average the two decoded fusions before the refiner (geometric self-ensemble, MIRROR); None = the
        pipeline's default (`self.mirror`).
        pick: after the latent path, take the teacher's rule's fusion's fine detail wherever it is stronger
        than the model's, unless the restored inputs measure noisy or the exposure stage brightened them
        (allfuse.pick); None = the pipeline's default (`self.pick`).
        washout: last, for an infrared + visible pair (infrared first), move the output's fine luminance
        detail toward the infrared image's where the visible image is near white (glare, snow, an
        over-exposed sky) and the infrared image has detail of its own, scaled by how washed out the
        visible image is as a whole (its dark-channel floor) and by the pick's noise and gain guard
        (allfuse.washout); None = the pipeline's default (`self.washout`)."""
        images, colour, task = self.prepare(images, task)
        check_options(steps, sampler, tile, work_side, tile_pixels)
        restored = self.stages.restore_gain(
            images, task, deblur, correct, destripe, exposure, denoise, deblock
        )
        images, gain = restored.images, restored.gain
        weight = (
            self.gate_decision(images, task, restored.deblocked, restored.deblurred, restored.corrected)[1]
            if gate
            else 0.0
        )
        limit = DEFAULT_TILE_PIXELS if tile_pixels is None else tile_pixels
        noisy = self.noisy_rule(restored.rule_weight)
        washout = (self.washout if washout is None else washout) and task == "vif" and len(images) == 2
        pick = (self.pick if pick is None else pick) and weight < 1.0
        # how far the restored inputs' fine detail is trusted: the detail pick's weight and the washout's
        trust = self.pick_strength(images, gain) if pick or washout else 0.0
        if weight >= 1.0:
            out = rule_fusion(images, task, limit, noisy)
            out = infrared_detail(out, images, limit, trust) if washout else out
            return out if colour else to_gray(out)
        prompt_text = self.build_prompt(prompt, task) if self.text is not None else None
        latent = self.latent_fn(prompt_text, steps, sampler, seed, tile)
        mirror = self.mirror if mirror is None else mirror
        out = self.run_path(images, task, latent, refine, work_side, tile_pixels, mirror)
        rule = None
        if pick and trust > 0:  # the detail pick (allfuse.pick)
            rule = rule_fusion(images, task, limit, noisy)
            out = pick_detail(out, rule, strength=trust, band_pixels=limit)
        if task in self.mean_tasks:
            out = keep_mean(out, images)
        if weight > 0.0:  # the gate's blend (allfuse.gate): a mix of the two fusions
            rule = rule_fusion(images, task, limit, noisy) if rule is None else rule
            out = (1.0 - weight) * out + weight * rule
        if washout:  # the infrared's detail where the visible image is washed out (allfuse.washout)
            out = infrared_detail(out, images, limit, trust)
        return out if colour else to_gray(out)

    def restore_inputs(
        self,
        images: list[Image],
        task: Task,
        deblur: bool = True,
        correct: bool = True,
        destripe: bool = True,
        exposure: bool = True,
        denoise: bool = True,
        deblock: bool = True,
    ) -> list[Image]:
        """Checked inputs through the stages that precede fusion: JPEG deblocking, stripe removal,
        denoising, the exposure stage, the deblurring stage, the input corrector, then the exposure stage's
        veil stretch, each when the model has it, it is enabled for the task and asked for."""
        return self.stages.restore(images, task, deblur, correct, destripe, exposure, denoise, deblock)

    @property
    def stages(self) -> InputStages:
        """This pipeline's pre-fusion stages (allfuse.stages), the corrector on its device."""
        return InputStages(
            self.destripe,
            self.denoise,
            self.exposure,
            self.deblur,
            self.corrector,
            self.device,
            self.deblock,
            self.impulse,
            self.denoiser,
        )

    def gate_inputs(
        self,
        images: Sequence[Image],
        task: Task | str = "auto",
        deblur: bool = True,
        destripe: bool = True,
        exposure: bool = True,
        denoise: bool = True,
        deblock: bool = True,
        correct: bool = True,
    ) -> list[Image]:
        """What the gate measures and the rule fuses: the inputs checked and through restore_inputs."""
        checked, _, task = self.prepare(images, task)
        return self.restore_inputs(checked, task, deblur, correct, destripe, exposure, denoise, deblock)

    def exposure_gain(
        self, images: Sequence[Image], task: Task | str = "auto", *flags: bool, **named: bool
    ) -> float:
        """exposure_curve's gain alone (the same stage flags): what the exposure stage multiplies these
        inputs by, as __call__ would (`allfuse fuse -v`); 1.0 when it does not run."""
        return self.exposure_curve(images, task, *flags, **named)[0]

    def exposure_curve(
        self,
        images: Sequence[Image],
        task: Task | str = "auto",
        destripe: bool = True,
        denoise: bool = True,
        deblock: bool = True,
    ) -> tuple[float, float]:
        """The exposure stage's gain and the exponent of its lift for these inputs, as __call__ would
        (allfuse.exposure); (1.0, 1.0) when the model has no such stage or it does not run for the task."""
        checked, _, task = self.prepare(images, task)
        if self.exposure is None or task not in self.exposure.tasks:
            return 1.0, 1.0
        # the stages before this one (deblocking, stripe removal, denoising) and none after it
        before = self.restore_inputs(checked, task, False, False, destripe, False, denoise, deblock)
        return gained_inputs(before, task, self.exposure)[1:]

    def gate_decision(
        self,
        images: Sequence[Image],
        task: Task,
        deblocked: int = 0,
        deblurred: bool = False,
        corrected: Sequence[float] = (),
    ) -> tuple[float, float]:
        """P(these restored inputs are clean), by the model's gate, and the teacher's rule's weight in the
        output (1: the rule alone, from the gate's threshold on; between 0 and 1: the gate's blend of the
        two fusions; 0: the latent path alone); (-1.0, 0.0) when the model has no gate for the task.

        Three repairs by the stages before override the gate (`deblocked`, `deblurred`, `corrected`: what
        the stages did, allfuse.stages.Restored). Once repaired a pair often measures clean, or clean
        enough for the blend, but the rule then fuses what the repair leaves (block residue, the
        re-coding's and the deconvolution's ringing), which the latent path smooths.
        `bench/gate_overrides.py` measures it on the validation pairs (the three generators'
        single-family cells and the main sections' pairs), the latent path alone against the gate's own
        choice (bench/results/gate_overrides_reg.md, _fm.md):
        * an input deblocked at JPEG quality REPAIRED_JPEG or lower: the rule's weight is 0. Qabf higher on
          41 of 48 such pairs the gate gave wholly or partly to the rule (allfuse-fm 40 of 52; none lower
          by more than 0.008), BRISQUE lower on 40 (mean -1.6). JPEGs of quality 51 to 60, which the stage
          also deblocks, stay the gate's: the bench's brightened quality-74 JPEG sources read 52 to 56
          (their quantization steps scaled by the gain) and there the rule scored higher (its VIF strong
          over-exposure cell 0.649 against 0.637); the benches' JPEG families code at 10 to 45.
        * an input deconvolved: no blend (weight 0 below the gate's threshold). Qabf higher on 84 of the 101
          pairs the gate blended (allfuse-fm 91 of 112; none lower by more than 0.006), while the blend
          kept winning on average where no stage had repaired (the latent path alone higher on 49 of 134,
          mean -0.003). A deconvolved pair that measures clean stays the rule's, although the latent path
          scores higher on most of those bench pairs too (43 of 60): the blur measure also reads some
          clean captures at their native size as blurred (3 of the 15 multi-exposure validation pairs),
          and those the rule should fuse.
        * the input corrector's mean change of one input at least 5/255 and the change of another one far
          smaller (UNEVEN): no blend. The inputs of one capture carry one veil and one exposure, so an
          uneven correction says their veils differed (a fog drawn for each input apart, as ImageNet-C's,
          bench/degrade_c.py) or were corrected unequally, and the rule, which takes each pixel from one
          input, fuses a patchwork of the two corrections. Qabf higher on 4 of the 5 such pairs the gate
          blended (allfuse-fm 3 of 4; mean +0.028; ImageNet-C fog, and an albumentations over-exposure
          -0.006), but the VIF metric lower (mean -0.020) and BRISQUE higher on 4 (mean +4.3): the latent
          path restores more of the fog's edges and leaves a grainier picture. Only multi-focus pairs take
          it (the gates blend no exposure pair, and the corrector does not run on infrared + visible
          pairs)."""
        if self.gate is None or task not in self.gate.tasks:
            return -1.0, 0.0
        p, weight = self.gate.tasks[task].rule_weight(pair_features(images))
        return p, 0.0 if gate_override(deblocked, deblurred, weight, corrected) else weight

    def gate_choice(
        self,
        images: Sequence[Image],
        task: Task | str = "auto",
        deblur: bool = True,
        destripe: bool = True,
        exposure: bool = True,
        denoise: bool = True,
        deblock: bool = True,
        correct: bool = True,
    ) -> tuple[Task, float, float]:
        """What the gate decides for these inputs, as __call__ would (`allfuse fuse -v`, the benches): the
        task, P(clean) (-1.0 without a gate for the task) and the rule's weight (gate_decision)."""
        task = self.prepare(images, task)[2]
        if self.gate is None or task not in self.gate.tasks:
            return task, -1.0, 0.0
        checked = self.prepare(images, task)[0]
        seen = self.stages.restore_gain(checked, task, deblur, correct, destripe, exposure, denoise, deblock)
        return task, *self.gate_decision(seen.images, task, seen.deblocked, seen.deblurred, seen.corrected)

    def prepare(self, images: Sequence[Image], task: Task | str) -> tuple[list[Image], bool, Task]:
        """Checked images, whether any is colour, and the task (guessed from the images for "auto")."""
        images = check_images(images)
        colour = any(is_color(im) for im in images)
        if task == "auto":
            task = guess_task(images)
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose auto or one of {', '.join(TASKS)}")
        return images, colour, task  # type: ignore[return-value]

    def encode_prompt(self, prompt: str | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Token embeddings (1, L, D) and mask (1, L) of a prompt, on the pipeline's device; or None, None."""
        if self.text is None or prompt is None:
            return None, None
        tokens, mask = self.text.encode([prompt])
        return tokens.to(self.device), mask.to(self.device)

    def latent_fn(
        self, prompt: str | None, steps: int | None, sampler: str | None, seed: int, tile: int | None
    ) -> LatentFn:
        """Condition latents -> fused latent: the FusionDiT (tiled) with its sampler, under autocast."""
        tokens, mask = self.encode_prompt(prompt)
        changes = {k: v for k, v in (("steps", steps), ("method", sampler)) if v is not None}
        scfg = override(self.cfg.sampler, **changes)
        window = self.default_tile() if tile is None else tile
        model = TiledModel(self.model, window) if window else self.model

        def latent(conds: list[torch.Tensor], bf16: bool = self.cfg.bf16) -> torch.Tensor:  # (1, C, h, w)
            with autocast(self.device, bf16):
                z = sample_latent(model, conds, tokens, mask, scfg, torch.Generator().manual_seed(seed)).x
            return z.float()

        return latent

    def run_path(
        self,
        images: list[Image],
        task: Task,
        latent: LatentFn,
        refine: bool,
        work_side: int | None,
        tile_pixels: int | None,
        mirror: bool = False,
    ) -> Image:
        """Checked images -> fused (H, W, 3): encode, `latent`, decode, refine, whole or tiled; more inputs
        than slots fused in steps; with `mirror`, the decoded fusion is the mean of the latent path's on the
        images and, mirrored back, on the left-right mirrored images (MIRROR)."""
        if work_side is None:  # the model's default needs its refiner to restore full-size detail
            work_side = self.work_side if refine and self.refiner is not None else None

        weight = self.refiner_weight(images, task) if refine and self.refiner is not None else 0.0

        def fuse(xs: list[Image]) -> Image:  # one step: 2..slots images -> (H, W, 3)
            h, w = xs[0].shape[:2]
            work = work_size((h, w), work_side or None)
            limit = DEFAULT_TILE_PIXELS if tile_pixels is None else tile_pixels
            refiner: Refiner | DampedRefiner | None = self.refiner if weight > 0 else None
            if refiner is not None and weight < 1:
                refiner = DampedRefiner(refiner, weight)
            classical = functools.partial(classical_source, task=task)
            if refiner is None or not refiner.cfg.classical:
                classical = None
            if limit and h * w > limit:
                # a large latent path on the CPU runs the DiT in fp32: oneDNN keeps a compiled bf16 kernel
                # per matrix shape, and the MoE's expert batches take a new shape at almost every window
                fp32 = self.device.type == "cpu" and work[0] * work[1] > limit
                run = functools.partial(latent, bf16=self.cfg.bf16 and not fp32)
                return fuse_large(self.tok, run, refiner, xs, work, limit, self.device, classical, mirror)
            return self.fuse_whole(xs, latent, work, refiner, classical, mirror)

        return fuse_stack(fuse, images, self.slots(refine), STACK_ORDER[task])

    def noisy_rule(self, weight: float) -> tuple[str, float]:
        """The classical rule the denoising stage names for strongly noisy pairs (allfuse.denoise, "Rule")
        and its share `weight` (Restored.rule_weight) in the pipeline's rule fusion: ("", 0.0) for none."""
        if self.denoise is None or not self.denoise.rule or weight <= 0.0:
            return "", 0.0
        return self.denoise.rule, weight

    def rule_label(self, weight: float, task: Task) -> str:
        """The classical rule the pipeline fuses by, for restored inputs whose Restored.rule_weight is
        `weight`: the teacher's (allfuse.tasks.CLASSICAL_DEFAULT) or, for a strongly noisy pair, the
        denoising stage's rule, alone or mixed in (noisy_rule); for `allfuse fuse -v` and the web demo."""
        rule, share = self.noisy_rule(weight)
        if share >= 1:
            return rule
        return CLASSICAL_DEFAULT[task] + (f" with {share:.0%} of {rule}" if share > 0 else "")

    def pick_strength(self, images: Sequence[Image], gain: float = 1.0) -> float:
        """The detail pick's weight for these restored inputs (allfuse.pick), which the exposure stage gave
        `gain`: 1 up to PICK_NOISE[0] of noise (allfuse.gate.pair_noise) and a gain of PICK_GAIN[0], 0 from
        PICK_NOISE[1] or PICK_GAIN[1] on, linear between (the product of the two ramps)."""
        return guard_weight(pair_noise(images), *PICK_NOISE) * guard_weight(gain, *PICK_GAIN)

    def refiner_weight(self, images: Sequence[Image], task: Task) -> float:
        """How much of the refiner's change these (restored) inputs get: 1 without a noise guard for the
        task; else 1 up to the guard's `low` noise level (allfuse.gate.pair_noise), its `floor` from `high`
        on, linear between; with chroma bounds, the lower of that and the same ramp on the pair's chroma
        noise (allfuse.denoise.pair_chroma_noise: per-channel noise shows there, while a textured scene
        raises the luminance reading too). On strongly noisy multi-focus pairs the refiner's per-pixel
        choice of the sharper input takes noise for detail and copies it into the fusion (MODEL_CARD);
        without any of its change, the fusion is the latent path's, upsampled, and softer than it need be."""
        if task not in self.noise_guard:
            return 1.0
        low, high, floor, chroma_low, chroma_high = check_noise_guard(self.noise_guard)[task]
        weight = guard_weight(pair_noise(images), low, high, floor)
        if chroma_high:  # the same ramp on the pair's chroma noise, the lower weight of the two
            weight = min(weight, guard_weight(pair_chroma_noise(images), chroma_low, chroma_high, floor))
        return weight

    def fuse_whole(
        self,
        images: list[Image],
        latent: LatentFn,
        work: tuple[int, int],
        refiner: Refiner | DampedRefiner | None,
        classical: ClassicalFn | None = None,
        mirror: bool = False,
    ) -> Image:
        """The whole path on whole images: (H, W, 3) float32; `latent` runs the DiT and its sampler (with
        `mirror`, on the mirrored images too: MIRROR), then `refiner` (None: none) with
        `classical(images)` as its classical source if it blends one."""
        x = [image_tensor(im).to(self.device) for im in images]  # each (1, 3, H, W)
        h, w = images[0].shape[:2]
        xw = x if work == (h, w) else [F.interpolate(t, size=work, mode="area") for t in x]

        def decoded(xs: list[torch.Tensor]) -> torch.Tensor:  # encode, DiT, decode at the work size
            return self.tok.decode(latent([self.tok.encode(t).clone() for t in xs]), cond=xs, size=work)

        dec = decoded(xw)
        if mirror:
            dec = 0.5 * (dec + decoded([t.flip(-1) for t in xw]).flip(-1))
        if work != (h, w):
            dec = F.interpolate(dec, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        if refiner is not None:
            extra = image_tensor(classical(images)).to(self.device) if classical is not None else None
            with autocast(self.device):
                dec = refiner(dec, x, extra).float().clamp(0, 1)
        return dec[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)

    def default_tile(self) -> int:
        """Latent window matching the training crops (data.size px), where the model's positions are known."""
        return max(4, self.cfg.crop_size // self.tok.downsample)

    def sampler_config(self) -> SamplerConfig:
        """The sampler used when no steps/sampler are given."""
        return self.cfg.sampler


def keep_mean(out: np.ndarray, images: Sequence[Image]) -> np.ndarray:
    """`out` (H, W, 3) shifted, per channel, to the mean of the images' means (gray images count as three
    equal channels), clipped to [0, 1]: the fusion's overall colour and brightness are the inputs', its
    detail and local contrast its own (MEAN_TASKS)."""
    x = np.asarray(out, np.float32)
    means = [np.asarray(im, np.float32).reshape(-1, 1 if np.ndim(im) == 2 else 3).mean(0) for im in images]
    target = np.mean([np.broadcast_to(m, (3,)) for m in means], axis=0)
    shift = target - x.reshape(-1, 3).mean(axis=0)
    return np.clip(x + shift.astype(np.float32), 0.0, 1.0)


def check_prompt(prompt: str | None) -> ParsedPrompt | None:
    """Refuse an empty prompt, one that is not valid UTF-8 text, or unknown [TAGS] / <SUBTAGS>; parse it."""
    if prompt is None:
        return None
    if not prompt.strip():
        raise ValueError("prompt is empty: give an instruction or leave it out")
    bad = next((i for i, ch in enumerate(prompt) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:  # a command line's undecodable bytes arrive as lone surrogates (PEP 383)
        byte = f"byte 0x{ord(prompt[bad]) - 0xDC00:02x}" if prompt[bad] >= "\udc80" else "a surrogate"
        raise ValueError(f"prompt is not valid UTF-8 text ({byte} at character {bad})")
    return parse_prompt(prompt)


def check_tags(parsed: ParsedPrompt | None, tags: Sequence[str], model: str) -> None:
    """Refuse a prompt whose [TAG] or <SUBTAG> the model was not trained on, naming what it knows: a model
    must never silently ignore an instruction it cannot follow (e.g. [CONTROL] to a fusion-only model)."""
    if parsed is None:
        return
    missing = [t for t in (parsed.task, *parsed.subtags) if t and t not in tags]
    if missing:
        asked = ", ".join(f"[{t}]" if t == parsed.task else f"<{t}>" for t in missing)
        others = [m for m in embedded_with_tags(missing) if m != model]
        hint = f"use --model {others[0]}" if others else "no shipped model is trained for it"
        raise ValueError(f"{model} was not trained for {asked} (it knows: {', '.join(tags)}); {hint}")


def check_intent(intent: Intent, tags: Sequence[str], model: str) -> None:
    """Refuse what a prompt asks for when the model was not trained on its tag or subtag (check_tags),
    whether the user wrote the tag or it was read from the words, and a [CONTROL] without a level."""
    if intent.task == "CONTROL" and intent.subtag is None:
        raise ValueError(
            "a [CONTROL] prompt needs a level: <LIGHT++>, <LIGHT+>, <LIGHT->, <LIGHT-->, <CONTRAST+>, "
            "<CONTRAST-> or words such as 'brighter', 'much darker', 'more contrast'"
        )
    try:
        sub = (intent.subtag,) if intent.subtag else ()
        check_tags(ParsedPrompt(intent.task, sub, intent.instruction), tags, model)
    except ValueError as e:
        if intent.source != "words":
            raise
        raise ValueError(f"{e} (read from the words {intent.instruction!r})") from None


def check_sampling(steps: int | None, sampler: str | None, tile: int | None) -> None:
    """Refuse sampler steps < 1, an unknown sampler, and a tile window that is neither 0 nor >= 4 latents."""
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if tile is not None and tile != 0 and tile < MIN_TILE:
        raise ValueError(f"tile {tile}: give a window of at least {MIN_TILE} latents, or 0 = the whole image")


def gate_override(deblocked: int, deblurred: bool, weight: float, corrected: Sequence[float] = ()) -> str:
    """Which repair takes a pair from the gate's rule (FusionPipeline.gate_decision), given what the stages
    did and the rule's weight the gate alone gives: "deblocked" (an input deblocked at JPEG quality
    REPAIRED_JPEG or lower), "deconvolved" (an input deconvolved, and the gate would blend), "corrected
    unevenly" (uneven_correction, and the gate would blend), or ""."""
    if 0 < deblocked <= REPAIRED_JPEG:
        return "deblocked"
    if deblurred and 0.0 < weight < 1.0:
        return "deconvolved"
    if uneven_correction(corrected) and 0.0 < weight < 1.0:
        return "corrected unevenly"
    return ""


def uneven_correction(changes: Sequence[float]) -> bool:
    """Whether the input corrector changed a set of inputs unevenly (UNEVEN): `changes`, each input's mean
    absolute change in 1/255 steps (allfuse.stages.Restored.corrected; empty: no corrector ran)."""
    if len(changes) < 2:
        return False
    low, high = min(changes), max(changes)
    return high >= UNEVEN[0] and (high - low) / (high + 1.0) >= UNEVEN[1]


def check_options(
    steps: int | None, sampler: str | None, tile: int | None, work_side: int | None, tile_pixels: int | None
) -> None:
    """Refuse a pipeline call's bad sampling options (check_sampling), work_side (0 = full size allowed) or
    tile_pixels (allfuse.tiled.check_tile_pixels)."""
    check_sampling(steps, sampler, tile)
    check_work_side(work_side, full_size_ok=True)
    check_tile_pixels(tile_pixels)


def check_work_side(work_side: int | None, full_size_ok: bool = False) -> None:
    """A latent-path long side must be >= 16 px (or 0 = full size, where allowed); None = unset."""
    if work_side is None or (full_size_ok and work_side == 0):
        return
    if work_side < 16:
        allowed = ">= 16, or 0 = full size" if full_size_ok else ">= 16"
        raise ValueError(f"work_side {work_side} px is too small ({allowed})")


def work_size(size: tuple[int, int], work_side: int | None) -> tuple[int, int]:
    """(h, w) scaled so the long side is at most work_side (aspect kept); unchanged when it already is."""
    h, w = size
    if work_side is None or max(h, w) <= work_side:
        return h, w
    s = work_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))
