"""Training configuration: one dataclass tree, named presets, YAML files and `key=value` overrides.

`allfuse train --config tiny-reg objective.aux_weight=0.5 max_steps=2000` resolves the preset, then each
override by dotted field name; a YAML file holds the same keys (nested mappings for model/objective/...).
Unknown keys are errors, values are parsed as YAML scalars (`true`, `2e-4`, `[a, b]`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allfuse.config import PRESETS, ModelConfig, ObjectiveConfig, SamplerConfig

# Fusion kinds need pair folders; m3/control/seg come from natural images or synthetic scenes.
FUSION_MIX: dict[str, float] = {"vif": 1.0, "mef": 1.0, "mff": 1.0, "m3": 0.5}


@dataclass(frozen=True)
class DataConfig:
    """What the on-the-fly synthesis draws (allfuse.data.datasets.SynthDataset)."""

    data: tuple[str, ...] = ("../shared/data",)  # pair folders (searched a few levels deep)
    size: int = 128  # square training crops, px
    kinds: dict[str, float] = field(default_factory=lambda: dict(FUSION_MIX))
    prompt_style: str = "tagged"  # "tagged" (DiTFuse template) or "natural" (MMAIF instruction)
    # Degradations per sample: MMAIF draws n in {1, 2, 3}; adding 0 teaches clean inputs to pass through.
    n_ops: tuple[int, ...] = (1, 2, 3)
    n_weights: tuple[float, ...] | None = None  # relative weights of n_ops; uniform when None
    min_scale: float = 0.6  # smallest crop side / largest crop of its aspect (data.pipeline.PipelineConfig)
    self_pairs: float = 0.0  # fraction of fusion samples made of one source twice (PipelineConfig)
    # Relative weight of each degradation op (data.severity.OP_NAMES); a missing op weighs 1, 0 drops it.
    op_weights: dict[str, float] = field(default_factory=dict)
    length: int = 20_000  # samples per epoch; each epoch draws new degradations
    val_pairs: int = 8  # held-in synthetic samples scored with allfuse.metrics at each validation
    workers: int = 1  # DataLoader worker processes


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


def _parse_value(text: str) -> Any:
    """A CLI override value as a YAML scalar or flow sequence."""
    return yaml.safe_load(text)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Turn a YAML value into the field's type (tuples from lists, floats from ints)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType) and value is not None:  # Optional[X]: coerce as X
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _coerce(args[0], value, key)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return build_config(tp, value, prefix=f"{key}.")
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if tp is float and isinstance(value, int | str):
        try:
            return float(value)  # YAML 1.1 reads "3e-3" (no dot) as a string
        except ValueError:
            raise ValueError(f"{key}: expected a number, got {value!r}") from None
    return value


def build_config(cls: type, values: dict[str, Any], prefix: str = "", base: Any = None) -> Any:
    """Dataclass `cls` from a nested mapping, starting from `base` (or the defaults)."""
    base = base if base is not None else cls()
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise KeyError(f"unknown config key(s) {[prefix + k for k in unknown]}; valid: {sorted(names)}")
    changes = {}
    for k, v in values.items():
        if dataclasses.is_dataclass(hints[k]) and isinstance(v, dict):
            changes[k] = build_config(hints[k], v, f"{prefix}{k}.", getattr(base, k))
        else:
            changes[k] = _coerce(hints[k], v, prefix + k)
    return dataclasses.replace(base, **changes)


def _nest(overrides: list[str]) -> dict[str, Any]:
    """['a.b=1', 'c=x'] -> {'a': {'b': 1}, 'c': 'x'}."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, text = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _parse_value(text)
    return out


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
    return build_config(TrainConfig, _nest(overrides or []), base=cfg)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass tree (tuples become lists)."""
    return dataclasses.asdict(cfg)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Inverse of config_to_dict (used when a checkpoint is resumed or loaded for inference)."""
    return build_config(TrainConfig, values)
