"""One synthesized training sample per call, for every kind (DiTFuse Sect. III-B2 data categories plus the
MMAIF fusion data of Sect. 3.1). Shared by `allfuse synth` (written shards) and `SynthDataset`
(on the fly), so sample i with seed s is the same wherever it is made.

Kinds:
  vif / mef / mff  clean pair -> crop -> task-aware degradations; target = teacher fusion of the clean pair
  m3               natural image -> two complementary block-degraded views; target = the clean image
  control          clean pair (or, without pairs, an M3 pair) ; target = control curve of the fusion target
  seg              labelled pair, else a synthetic scene through M3; target = blue overlay on one class
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np

from allfuse.color import to_gray
from allfuse.data.control import CONTROLS, apply_control
from allfuse.data.depth import DepthProvider, get_depth_provider
from allfuse.data.m3 import m3_pair
from allfuse.data.pipeline import CropBox, PipelineConfig, degrade_pair, output_size, sample_crop, sample_ops
from allfuse.data.prompts import Split, make_prompts
from allfuse.data.seg import find_labels, overlay, present_classes, read_label, synthetic_scene
from allfuse.data.sources import ImagePool, PairPool, teacher_name
from allfuse.types import Image

SampleKind = Literal["vif", "mef", "mff", "m3", "control", "seg"]
SAMPLE_KINDS: tuple[str, ...] = get_args(SampleKind)
FUSION_KINDS = ("vif", "mef", "mff")


@dataclass
class Sample:
    """Clean and degraded inputs, the target, both prompt forms and JSON-ready metadata."""

    kind: str
    clean: tuple[Image, Image]
    degraded: tuple[Image, Image]
    target: Image
    instruction: str  # MMAIF-style natural instruction
    prompt: str  # DiTFuse tagged prompt (wraps the instruction)
    meta: dict = field(default_factory=dict)
    mask: np.ndarray | None = None  # seg: (H, W) bool, the named class (the target's overlay)
    label: np.ndarray | None = None  # seg: (H, W) int, every pixel's class index into `classes`
    classes: tuple[str, ...] = ()  # seg: the label set of `label`, first "background"


@dataclass
class Sources:
    """Everything a sample can be made from, plus the settings shared by all kinds."""

    pairs: PairPool | None = None
    images: ImagePool = field(default_factory=ImagePool)
    config: PipelineConfig = field(default_factory=PipelineConfig)
    split: Split = "train"
    depth: DepthProvider | None = None
    labels: tuple[str, ...] = ()  # label trees kept apart from the data (allfuse.data.seg.label_folders)
    seg_real: float = 0.5  # share of seg samples drawn from labelled pairs when there are any
    # Relative weight of each control level in control samples (data.control.CONTROLS); missing weigh 1.
    control_weights: Mapping[str, float] = field(default_factory=dict)
    _labelled: list[int] | None = field(default=None, repr=False)

    def depth_provider(self) -> DepthProvider:
        """The configured depth provider (made once)."""
        if self.depth is None:
            self.depth = get_depth_provider(self.config.depth)
        return self.depth


def sample_rng(seed: int, index: int, epoch: int = 0) -> np.random.Generator:
    """The generator of sample `index`: a function of (seed, epoch, index) only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


def crop_pair(
    images: list[Image], target: Image, src: Sources, rng: np.random.Generator
) -> tuple[list[Image], Image, dict]:
    """One random aspect-ratio crop applied identically to both sources and the target."""
    box = sample_crop(*images[0].shape[:2], rng, src.config)
    return [box.apply(x) for x in images], box.apply(target), box.as_dict()


def choose_pair(src: Sources, task: str, rng: np.random.Generator) -> int:
    """A random pair index usable for `task`; ValueError when there is none."""
    idx = src.pairs.indices(task) if src.pairs else []
    if not idx:
        raise ValueError(f"no {task} pairs found; pass --data with {task} pair folders")
    return idx[int(rng.integers(len(idx)))]


def pair_meta(src: Sources, i: int) -> dict:
    """Source description of pair i."""
    p = src.pairs.pairs[i]
    return {"sources": [str(s) for s in p.sources], "dataset": p.dataset, "name": p.name}


def grayed(
    task: str, images: list[Image], src: Sources, rng: np.random.Generator
) -> tuple[list[Image], bool]:
    """PipelineConfig.gray: with that probability a multi-exposure or multi-focus sample's clean images (its
    sources and target) become their luminance in all three channels; the images as they are otherwise (no
    number drawn at 0 or for another task)."""
    if task not in ("mef", "mff") or src.config.gray <= 0 or rng.random() >= src.config.gray:
        return images, False
    return [np.repeat(to_gray(x)[..., None], 3, axis=2) if x.ndim == 3 else x for x in images], True


def make_scene_self_pair(task: str, src: Sources, rng: np.random.Generator) -> Sample:
    """PipelineConfig.scene_self_pairs: the visible image of a random infrared + visible pair twice, itself
    the clean source and the target, every op on both copies (one capture twice, as a self pair)."""
    if not (src.pairs and src.pairs.indices("vif")):
        raise ValueError("scene_self_pairs takes the visible images of infrared + visible pairs; none found")
    i = choose_pair(src, "vif", rng)
    visible = src.pairs.load(i, "vif")[0][1]
    box = sample_crop(*visible.shape[:2], rng, src.config)
    (scene,), gray = grayed(task, [box.apply(visible)], src, rng)
    ops = sample_ops(task, rng, src.config)
    degraded, records = degrade_pair([scene, scene], "mef", ops, rng, src.config, src.depth_provider())
    instruction, prompt = make_prompts(task, rng, ops, split=src.split)
    meta = {**pair_meta(src, i), "crop": box.as_dict(), "ops": records, "self_pair": "scene"}
    if gray:
        meta["gray"] = True
    if any(op == "haze" for op, _ in ops):
        meta["depth"] = src.depth_provider().name
    return Sample(task, (scene, scene), (degraded[0], degraded[1]), scene, instruction, prompt, meta)


def make_fusion(task: str, src: Sources, rng: np.random.Generator) -> Sample:
    """MMAIF 3.1: crop a clean pair, degrade it task-aware, target = teacher fusion of the clean pair."""
    if task == "mff" and src.config.scene_self_pairs > 0 and rng.random() < src.config.scene_self_pairs:
        return make_scene_self_pair(task, src, rng)
    i = choose_pair(src, task, rng)
    images, full_target = src.pairs.load(i, task)
    clean, target, crop = crop_pair(images, full_target, src, rng)
    self_pair = src.config.self_pairs > 0 and rng.random() < src.config.self_pairs
    if self_pair:  # PipelineConfig.self_pairs: the teacher's fusion of the clean pair twice, its own target.
        # Not one of the sources: an under-exposed or half-defocused source as its own target would teach the
        # model to keep dark or blurred inputs as they are (measured: MEF/MFF low light fell on the bench).
        clean = [target, target]
    images, gray = grayed(task, [*clean, target], src, rng)
    clean, target = images[:-1], images[-1]
    ops = sample_ops(task, rng, src.config)
    # A self pair is one capture twice: every op goes on both copies, as in MEF.
    degraded, records = degrade_pair(
        clean, "mef" if self_pair else task, ops, rng, src.config, src.depth_provider()
    )
    instruction, prompt = make_prompts(task, rng, ops, split=src.split)
    meta = {**pair_meta(src, i), "crop": crop, "ops": records, "teacher": teacher_name(src.pairs.teacher)}
    if self_pair:
        meta["self_pair"] = "teacher"
    if gray:
        meta["gray"] = True
    if any(op == "haze" for op, _ in ops):
        meta["depth"] = src.depth_provider().name
    return Sample(task, (clean[0], clean[1]), (degraded[0], degraded[1]), target, instruction, prompt, meta)


def natural_crop(src: Sources, rng: np.random.Generator) -> tuple[Image, dict]:
    """A random crop of a random natural image, resized to the training size."""
    j = int(rng.integers(len(src.images)))
    x = src.images.load(j)
    box = sample_crop(*x.shape[:2], rng, src.config)
    return box.apply(x), {"sources": [src.images.names[j]], "crop": box.as_dict()}


def make_m3(src: Sources, rng: np.random.Generator) -> Sample:
    """DiTFuse M3: two complementary block-degraded views of one clean image; target = the image."""
    clean, meta = natural_crop(src, rng)
    a, b, m3 = m3_pair(clean, rng)
    instruction, prompt = make_prompts("m3", rng, split=src.split)
    return Sample("m3", (clean, clean), (a, b), clean, instruction, prompt, {**meta, "m3": m3})


def control_probs(weights: Mapping[str, float]) -> np.ndarray:
    """Probabilities of CONTROLS from relative `weights` (missing levels weigh 1, 0 drops a level)."""
    bad = sorted(set(weights) - set(CONTROLS))
    if bad:
        raise ValueError(f"control_weights: unknown control(s) {bad}; choose from {', '.join(CONTROLS)}")
    w = np.array([float(weights.get(c, 1.0)) for c in CONTROLS])
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"control_weights must be >= 0 with a positive sum: {dict(weights)}")
    return w / w.sum()


def pick_control(weights: Mapping[str, float], rng: np.random.Generator) -> str:
    """One control level, drawn with relative `weights` (see control_probs)."""
    if not weights:  # uniform: the draw sequence of earlier datasets is kept
        return CONTROLS[int(rng.integers(len(CONTROLS)))]
    return CONTROLS[int(rng.choice(len(CONTROLS), p=control_probs(weights)))]


def make_control(src: Sources, rng: np.random.Generator) -> Sample:
    """DiTFuse control: target = a brightness/contrast curve of the fusion target (M3 pair without pairs)."""
    control = pick_control(src.control_weights, rng)
    tasks = src.pairs.tasks() if src.pairs else []
    if tasks:
        task = tasks[int(rng.integers(len(tasks)))]
        i = choose_pair(src, task, rng)
        images, full_target = src.pairs.load(i, task)
        clean, base, crop = crop_pair(images, full_target, src, rng)
        inputs, meta = clean, {**pair_meta(src, i), "crop": crop, "task": task}
    else:
        base, meta = natural_crop(src, rng)
        a, b, meta["m3"] = m3_pair(base, rng)
        clean, inputs, meta["task"] = [base, base], [a, b], "m3"
    instruction, prompt = make_prompts("control", rng, control=control, split=src.split)
    meta["control"] = control
    target = apply_control(base, control)
    return Sample("control", (clean[0], clean[1]), (inputs[0], inputs[1]), target, instruction, prompt, meta)


def pair_labels(src: Sources, i: int) -> tuple[Path, tuple[str, ...]] | None:
    """The label mask and class names of pair i, if it has one."""
    p = src.pairs.pairs[i]
    return find_labels(p.sources[0].parent.parent, p.name, src.labels)


def labelled_pairs(src: Sources) -> list[int]:
    """Pairs that have a label mask (looked up once per Sources)."""
    if src._labelled is None:
        src._labelled = [i for i in range(len(src.pairs.pairs)) if pair_labels(src, i)] if src.pairs else []
    return src._labelled


def make_seg(src: Sources, rng: np.random.Generator) -> Sample:
    """DiTFuse seg: target = fused/clean image with a translucent blue overlay on one named class; from a
    labelled pair (a `seg_real` share when there are any) or a synthetic scene."""
    labelled = labelled_pairs(src)
    if labelled and (src.seg_real >= 1.0 or rng.random() < src.seg_real):
        i = labelled[int(rng.integers(len(labelled)))]
        p = src.pairs.pairs[i]
        task = p.task or "vif"
        path, names = pair_labels(src, i)
        images, full_target = src.pairs.load(i, task)
        label_img = fit_label(read_label(path), images[0].shape[:2])
        box = sample_crop(*images[0].shape[:2], rng, src.config)
        clean = [box.apply(x) for x in images]
        base, inputs = box.apply(full_target), clean
        label = nearest_crop(label_img, box)
        meta = {**pair_meta(src, i), "crop": box.as_dict(), "labels": str(path), "task": task}
    else:
        out_hw = output_size(src.config.size, 1.0, False, False)
        base, label, names = synthetic_scene(rng, out_hw)
        a, b, m3 = m3_pair(base, rng)
        clean, inputs, meta = [base, base], [a, b], {"sources": ["synthetic_scene"], "m3": m3}
    present = present_classes(label, names) or [0]
    k = present[int(rng.integers(len(present)))]
    instruction, prompt = make_prompts("seg", rng, cls=names[k], split=src.split)
    meta.update({"class": names[k], "class_index": k})
    mask = label == k
    target = overlay(base, mask)
    pair = (clean[0], clean[1]), (inputs[0], inputs[1])
    return Sample("seg", *pair, target, instruction, prompt, meta, mask, label, tuple(names))


def fit_label(label: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a label mask to the (possibly downscaled) pair size, nearest neighbour."""
    if label.shape == shape:
        return label
    return cv2.resize(label.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def nearest_crop(label: np.ndarray, box: CropBox) -> np.ndarray:
    """Crop/resize a label mask with nearest-neighbour sampling (class indices are not blended)."""
    crop = label[box.y : box.y + box.h, box.x : box.x + box.w].astype(np.float32)
    return cv2.resize(crop, (box.out_w, box.out_h), interpolation=cv2.INTER_NEAREST).astype(np.int32)


def make_sample(kind: str, src: Sources, seed: int, index: int, epoch: int = 0) -> Sample:
    """Sample `index` of `kind` under base `seed` (and `epoch` offset): deterministic."""
    rng = sample_rng(seed, index, epoch)
    if kind in FUSION_KINDS:
        sample = make_fusion(kind, src, rng)
    elif kind == "m3":
        sample = make_m3(src, rng)
    elif kind == "control":
        sample = make_control(src, rng)
    elif kind == "seg":
        sample = make_seg(src, rng)
    else:
        raise ValueError(f"unknown sample kind {kind!r}; choose from {', '.join(SAMPLE_KINDS)}")
    sample.meta = {
        "index": index, "kind": kind, "seed": seed, "epoch": epoch,
        "prompt": sample.prompt, "instruction": sample.instruction, **sample.meta,
    }  # fmt: skip
    return sample
