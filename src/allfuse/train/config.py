"""Training configuration: one dataclass tree, named presets, YAML files and `key=value` overrides.

`allfuse train --config tiny-reg objective.aux_weight=0.5 max_steps=2000` resolves the preset, then each
override by dotted field name; a YAML file holds the same keys (nested mappings for model/objective/...).
Unknown keys are errors, values are parsed as YAML scalars (`true`, `2e-4`, `[a, b]`).

`arch` picks the network: `fusion` trains the FusionDiT of `model` (MMAIF), `joint` the JointDiT of `joint`
(DiTFuse) with `guidance` dropout and, when `lora.rank` > 0, LoRA adapters on the base model `init_from`:
  allfuse train --config tiny-ditfuse                                   # stage 1: M3 pretraining
  allfuse train --config tiny-ditfuse-lora init_from=runs/tiny-ditfuse  # stage 2: the task mixture, LoRA
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allfuse.config import (
    PRESETS,
    Arch,
    GuidanceConfig,
    ModelConfig,
    ObjectiveConfig,
    SamplerConfig,
    _validate_literals,
    build_config,
    nest_overrides,
)
from allfuse.data.pipeline import PipelineConfig
from allfuse.models.joint import JOINT_PRESETS, JointConfig
from allfuse.models.lora import DEFAULT_TARGETS

# Fusion kinds need pair folders; m3/control/seg come from natural images or synthetic scenes.
FUSION_MIX: dict[str, float] = {"vif": 1.0, "mef": 1.0, "mff": 1.0, "m3": 0.5}
# DiTFuse Sect. III-B1: four kinds of data under task tags, fusion a small share (4.3 % in the paper), M3,
# segmentation and control the bulk.
DITFUSE_MIX: dict[str, float] = {"vif": 0.3, "mef": 0.3, "mff": 0.3, "m3": 1.0, "control": 1.0, "seg": 1.0}


@dataclass(frozen=True)
class DataConfig:
    """What the on-the-fly synthesis draws (allfuse.data.datasets.SynthDataset). Every field of the
    degradation pipeline (allfuse.data.pipeline.PipelineConfig) is here too, with its default."""

    data: tuple[str, ...] = ("../shared/data",)  # pair folders (searched a few levels deep)
    # Folders of natural photos (searched recursively) for M3, and for control and seg without pairs;
    # empty = scikit-image's bundled samples. Files of validation pairs (splits.json) are left out.
    images: tuple[str, ...] = ()
    # Label trees for seg kept apart from the data (``ROOT/<task>/<DATASET>/labels/NAME.png`` + classes.txt,
    # as tools/label_objects.py writes them), and the share of seg samples drawn from labelled pairs.
    labels: tuple[str, ...] = ()
    seg_real: float = 0.5
    # Relative weight of each control level in control samples (data.control.CONTROLS: LIGHT++ .. CONTRAST-);
    # a missing level weighs 1, 0 drops it.
    control_weights: dict[str, float] = field(default_factory=dict)
    size: int = 128  # square training crops, px
    kinds: dict[str, float] = field(default_factory=lambda: dict(FUSION_MIX))
    prompt_style: str = "tagged"  # "tagged" (DiTFuse template) or "natural" (MMAIF instruction)
    # Degradations per sample: MMAIF draws n in {1, 2, 3}; adding 0 teaches clean inputs to pass through.
    n_ops: tuple[int, ...] = PipelineConfig.n_ops
    n_weights: tuple[float, ...] | None = None  # relative weights of n_ops; uniform when None
    min_scale: float = PipelineConfig.min_scale  # smallest crop side / largest crop of its aspect
    self_pairs: float = PipelineConfig.self_pairs  # fraction of fusion samples made of one source twice
    # Relative weight of each degradation op (data.severity.OP_NAMES); a missing op weighs 1, 0 drops it.
    op_weights: dict[str, float] = field(default_factory=dict)
    levels: tuple[int, ...] = PipelineConfig.levels  # severity levels drawn (1 mild .. 3 severe)
    aspects: tuple[tuple[int, int], ...] = PipelineConfig.aspects  # crop aspect ratios drawn
    keep_aspect: bool = PipelineConfig.keep_aspect  # outputs keep the crop's aspect (long side = size)
    depth: str = PipelineConfig.depth  # depth provider for haze (allfuse.data.depth)
    # VIF: chance that rain, haze or snow on the visible image comes with a mild blur of the IR image
    ir_weather_blur: float = PipelineConfig.ir_weather_blur
    # VIF: chance that a blur hits the IR or the visible image alone (one camera's optics or shake)
    blur_one: float = PipelineConfig.blur_one
    # chance that a haze has a tinted airlight, a varied depth layout and patchy scattering
    haze_variety: float = PipelineConfig.haze_variety
    # chance that an MFF sample is the visible image of an infrared + visible pair twice, its own target
    scene_self_pairs: float = PipelineConfig.scene_self_pairs
    # chance that an MEF or MFF sample's clean sources and target are made gray before degradation
    gray: float = PipelineConfig.gray
    length: int = 20_000  # samples per epoch; each epoch draws new degradations
    val_pairs: int = 8  # held-in synthetic samples scored with allfuse.metrics at each validation
    workers: int = 1  # DataLoader worker processes

    def pipeline(self) -> PipelineConfig:
        """The degradation pipeline's config: every PipelineConfig field, read from here."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(PipelineConfig)}
        return PipelineConfig(**{**values, "op_weights": dict(self.op_weights)})


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA fine-tuning of a base joint DiT (DiTFuse Eq. 3, allfuse.models.lora): with rank > 0 only the
    adapters train; `allfuse export` merges them into the base weights (a plain model folder)."""

    rank: int = 0  # 0 = no adapters: every weight trains
    alpha: float | None = None  # update scale alpha / rank; None = rank (scale 1)
    targets: tuple[str, ...] = DEFAULT_TARGETS  # names of the nn.Linear layers to adapt (glob patterns)
    dropout: float = 0.0  # on the adapters' input

    def __post_init__(self) -> None:
        if self.rank < 0 or not self.targets or not 0 <= self.dropout < 1:
            raise ValueError(
                f"lora needs rank >= 0, some targets and 0 <= dropout < 1, got rank {self.rank}, "
                f"targets {list(self.targets)}, dropout {self.dropout}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run. Defaults follow MMAIF Sect. 4.2 scaled to a CPU (batch, steps, warmup)."""

    arch: Arch = "fusion"  # the network to train: `model` (FusionDiT, MMAIF) or `joint` (JointDiT, DiTFuse)
    model: ModelConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["tiny"], timestep=False))
    # arch=joint: the network (with init_from, the base model's own), CFG dropout and scales, LoRA.
    joint: JointConfig = field(default_factory=lambda: JOINT_PRESETS["tiny"])
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    objective: ObjectiveConfig = field(default_factory=lambda: ObjectiveConfig(kind="regression"))
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # used for validation samples
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: str = "default"  # allfuse.tokenizer.load_tokenizer name or path
    text_encoder: str = "default"  # allfuse.text.load_text_encoder name or path; "none" = no prompt
    out_dir: str = "runs/tiny-reg"
    init_from: str = ""  # warm start: network weights of a model folder or run (fresh optimizer and schedule)
    # a model folder whose pre-fusion stages (allfuse.stages) the fusion samples' inputs pass through, as
    # at inference; "" = the degraded inputs as synthesized (train.data.StagedDataset)
    stages_from: str = ""
    max_steps: int = 4000
    batch_size: int = 8  # per process
    grad_accum: int = 1
    lr: float = 2e-4
    mask_head_lr: float = 10.0  # a JointDiT mask head's learning rate, as a multiple of lr
    # arch=joint: train the mask head alone (at lr) on a frozen init_from network; a label head
    # (joint.mask_labels) trains only so, on the seg samples' dense labels (objectives.joint.label_head_loss).
    only_mask_head: bool = False
    weight_decay: float = 0.0
    warmup: int = 200
    clip: float = 1.0
    ema_decay: float = 0.999
    bf16: bool = True  # bf16 autocast for the network and frozen tokenizer where it pays (devices.bf16_pays)
    grad_checkpoint: bool = False
    seed: int = 0
    threads: int = 0  # torch intra-op threads per process; 0 = torch's default (torchrun sets 1)
    log_every: int = 10
    ckpt_every: int = 250
    val_every: int = 500
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        _validate_literals(self)
        if self.mask_head_lr <= 0:
            raise ValueError(f"mask_head_lr must be > 0 (a multiple of lr), got {self.mask_head_lr}")
        if self.arch == "fusion":
            if self.lora.rank or self.guidance != GuidanceConfig() or self.only_mask_head:
                raise ValueError(
                    "lora.*, guidance.* and only_mask_head apply to arch=joint (a FusionDiT has none of them)"
                )
            return
        obj = self.objective
        if obj.kind != "flow" or obj.prior != "gaussian" or obj.bridge_sigma or obj.aux_weight:
            raise ValueError(
                "arch=joint trains flow matching from Gaussian noise (DiTFuse Eq. 4-5): objective.kind=flow, "
                "objective.prior=gaussian, objective.bridge_sigma=0, objective.aux_weight=0"
            )
        if self.sampler.prior != "gaussian" or self.sampler.method == "bridge":
            raise ValueError("arch=joint samples from Gaussian noise: sampler.prior=gaussian, no bridge")
        if self.grad_checkpoint:
            raise ValueError("grad_checkpoint is implemented for arch=fusion only")
        if self.only_mask_head and not (self.init_from and self.joint.mask_head):
            raise ValueError(
                "only_mask_head trains a head on a frozen network: give init_from and joint.mask_head"
            )
        if self.joint.mask_labels and not self.only_mask_head:
            raise ValueError("a label head (joint.mask_labels) trains alone: set only_mask_head=true")


def check_runnable(cfg: TrainConfig) -> None:
    """What a preset may leave open but a run may not: LoRA needs a base model to adapt."""
    if cfg.arch == "joint" and cfg.lora.rank and not cfg.init_from:
        raise ValueError("lora.rank > 0 fine-tunes a base model: give init_from=RUN_OR_MODEL_FOLDER")


def joint_preset(kinds: dict[str, float], out_dir: str, **changes: Any) -> TrainConfig:
    """A JointDiT run: flow matching with CFG dropout, Euler sampling (as DiTFuse), tagged prompts."""
    return TrainConfig(
        arch="joint",
        joint=JOINT_PRESETS["tiny"],
        objective=ObjectiveConfig(kind="flow"),
        sampler=SamplerConfig(method="euler", steps=8),
        data=DataConfig(kinds=dict(kinds)),
        out_dir=out_dir,
        **changes,
    )


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # MMAIF regression variant (Sect. 3.4.1), tiny network, aux pixel loss of Eq. (9)-(10) on the target.
    "tiny-reg": TrainConfig(
        model=dataclasses.replace(PRESETS["tiny"], timestep=False),
        objective=ObjectiveConfig(kind="regression", aux_weight=0.5),
        out_dir="runs/tiny-reg",
    ),
    # MMAIF flow-matching variant (Sect. 3.4.2).
    "tiny-fm": TrainConfig(
        model=dataclasses.replace(PRESETS["tiny"], timestep=True),
        objective=ObjectiveConfig(kind="flow", aux_weight=0.5),
        out_dir="runs/tiny-fm",
    ),
}
TRAIN_PRESETS["tiny"] = TRAIN_PRESETS["tiny-reg"]
# DiTFuse stage 1 (Sect. III-B): M3 pretraining of the whole JointDiT.
TRAIN_PRESETS["tiny-ditfuse"] = joint_preset({"m3": 1.0}, "runs/tiny-ditfuse")
# DiTFuse stage 2: LoRA (rank 8 on the block linears, as DiTFuse's code) on the task mixture with tags;
# needs init_from=<the stage-1 run or model folder>.
TRAIN_PRESETS["tiny-ditfuse-lora"] = joint_preset(
    DITFUSE_MIX, "runs/tiny-ditfuse-lora", lora=LoRAConfig(rank=8), lr=5e-4, warmup=100, max_steps=2000
)


def load_train_config(config: str = "tiny-reg", overrides: list[str] | None = None) -> TrainConfig:
    """A preset name or YAML file, then `key=value` overrides (dotted for nested fields)."""
    if config in TRAIN_PRESETS:
        cfg = TRAIN_PRESETS[config]
    elif Path(config).is_file():
        values = yaml.safe_load(Path(config).read_text()) or {}
        preset = values.pop("preset", "tiny-reg")
        cfg = build_config(TrainConfig, values, base=TRAIN_PRESETS[preset])
    else:
        raise KeyError(
            f"unknown training config {config!r}: a preset ({', '.join(TRAIN_PRESETS)}) or a YAML file"
        )
    return build_config(TrainConfig, nest_overrides(overrides or []), base=cfg)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Inverse of config_to_dict (used when a checkpoint is resumed or loaded for inference)."""
    return build_config(TrainConfig, values)
