"""Training configuration: one dataclass tree, named presets, YAML files and `key=value` overrides.

`allfuse train --config tiny-reg objective.aux_weight=0.5 max_steps=2000` resolves the preset, then each
override by dotted field name; a YAML file holds the same keys (nested mappings for model/objective/...).
Unknown keys are errors, values are parsed as YAML scalars (`true`, `2e-4`, `[a, b]`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allfuse.config import PRESETS, ModelConfig, ObjectiveConfig, SamplerConfig, build_config, nest_overrides
from allfuse.data.pipeline import PipelineConfig

# Fusion kinds need pair folders; m3/control/seg come from natural images or synthetic scenes.
FUSION_MIX: dict[str, float] = {"vif": 1.0, "mef": 1.0, "mff": 1.0, "m3": 0.5}


@dataclass(frozen=True)
class DataConfig:
    """What the on-the-fly synthesis draws (allfuse.data.datasets.SynthDataset). Every field of the
    degradation pipeline (allfuse.data.pipeline.PipelineConfig) is here too, with its default."""

    data: tuple[str, ...] = ("../shared/data",)  # pair folders (searched a few levels deep)
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
    length: int = 20_000  # samples per epoch; each epoch draws new degradations
    val_pairs: int = 8  # held-in synthetic samples scored with allfuse.metrics at each validation
    workers: int = 1  # DataLoader worker processes

    def pipeline(self) -> PipelineConfig:
        """The degradation pipeline's config: every PipelineConfig field, read from here."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(PipelineConfig)}
        return PipelineConfig(**{**values, "op_weights": dict(self.op_weights)})


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run. Defaults follow MMAIF Sect. 4.2 scaled to a CPU (batch, steps, warmup)."""

    model: ModelConfig = field(default_factory=lambda: dataclasses.replace(PRESETS["tiny"], timestep=False))
    objective: ObjectiveConfig = field(default_factory=lambda: ObjectiveConfig(kind="regression"))
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # used for validation samples
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: str = "default"  # allfuse.tokenizer.load_tokenizer name or path
    text_encoder: str = "default"  # allfuse.text.load_text_encoder name or path; "none" = no prompt
    out_dir: str = "runs/tiny-reg"
    init_from: str = ""  # warm start: network weights of a model folder (fresh optimizer and schedule)
    max_steps: int = 4000
    batch_size: int = 8  # per process
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup: int = 200
    clip: float = 1.0
    ema_decay: float = 0.999
    bf16: bool = True  # torch.autocast bf16 for the network (and the frozen tokenizer)
    grad_checkpoint: bool = False
    seed: int = 0
    threads: int = 0  # torch intra-op threads per process; 0 = torch's default (torchrun sets 1)
    log_every: int = 10
    ckpt_every: int = 250
    val_every: int = 500
    keep_checkpoints: int = 2


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
