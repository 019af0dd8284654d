"""Dataclass configs (the one schema) and named presets; overrides are by field name, unknown keys are errors.

Parameter budget of the `mmaif` preset (MMAIF Sect. 4.2: 16 layers, hidden d = 576, 12 heads, d' = 128,
4 routed GLU experts top-2 + 1 shared; 282M parameters, ~185M active per token):

  total - active = (routed - top_k) * layers * expert = 2 * 16 * expert = 282M - 185M = 97M
  => one GLU expert (w_gate, w_up: d x h, w_down: h x d) has 3 * d * h ~ 3.03M  =>  h ~ 1754 ~ 3 d = 1728.

With h = 3 d = 1728 (GLU ratio 3) the rest of a layer must fit in (282M - 16 * 5 * 2.99M) / 16 ~ 2.7M:
attention 4 d^2 = 1.33M, LoRA adaLN d * d' + d' * 6 d = 7 d d' = 0.52M and a light NAFNet block (1x1 conv to
naf_expand * d = d channels, depthwise 3x3, SimpleGate, SCA, 1x1 back: 1.75 d^2 = 0.58M) leave ~0.3M for
biases, norms, router and the embedders.  Counted exactly (tests/test_models.py, on the meta device):
279.8M total (-0.8 %), 184.3M active (-0.4 %; routed top-2 + shared + everything not an expert).
A full NAFNet block (dw expand 2 plus its own FFN, 7 d^2) would overshoot to ~308M.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml

# One Literal per choice; everything that validates or lists a choice reads it from here.
PriorKind = Literal["gaussian", "first", "second", "mean"]
ObjectiveKind = Literal["regression", "flow"]
TimeSampling = Literal["uniform", "logit_normal"]
AuxMode = Literal["sum", "max"]
SamplerKind = Literal["euler", "midpoint", "midpoint_reuse", "stochastic", "bridge"]
Prediction = Literal["velocity", "data"]
Arch = Literal["fusion", "joint"]  # FusionDiT (MMAIF, allfuse.models.dit) or JointDiT (DiTFuse, models.joint)

C = TypeVar("C")


def _validate_literals(cfg: Any) -> None:
    """Raise ValueError when a Literal-typed field holds a value outside its choices."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if typing.get_origin(hints[f.name]) is Literal:
            choices = get_args(hints[f.name])
            if getattr(cfg, f.name) not in choices:
                raise ValueError(f"{type(cfg).__name__}.{f.name}={getattr(cfg, f.name)!r} not in {choices}")


def override(cfg: C, **changes: Any) -> C:
    """Return a copy of dataclass `cfg` with fields replaced; unknown field names raise KeyError."""
    names = {f.name for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    unknown = sorted(set(changes) - names)
    if unknown:
        raise KeyError(f"unknown {type(cfg).__name__} fields: {unknown}")
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ModelConfig:
    """FusionDiT hyper-parameters and the switches of MMAIF Tab. 6 (all on = the paper's model)."""

    latent_channels: int = 16  # z of the f=8 tokenizer
    patch_size: int = 2
    hidden: int = 192
    depth: int = 6
    heads: int = 6
    max_inputs: int = 2  # condition slots; fewer inputs are zero-padded and flagged absent
    text_dim: int = 384  # all-MiniLM-L6-v2 token embeddings
    timestep: bool = True  # False = regression model (MMAIF Sect. 3.4.1 removes the timestep embedder)
    # What a flow model's output means: "velocity" v (MMAIF Eq. 2) or "data", the clean latent Z1 from which
    # v = (Z1 - Z_t) / (1 - t) is derived (x-prediction, Li & He 2025 "Back to Basics"); a regression
    # model already predicts Z1, so "data" lets a flow model start from one (allfuse.train.warm_start).
    predict: Prediction = "velocity"
    # MoE of GLU experts (MMAIF Sect. 3.3.2); when moe=False a dense GLU of width dense_hidden.
    moe: bool = True
    experts: int = 4
    top_k: int = 2
    shared_experts: int = 1
    expert_hidden: int = 384
    dense_hidden: int | None = None  # None: (shared + top_k) * expert_hidden, the MoE's active width
    # Positional information.
    rope: bool = True
    rope_base: float = 2000.0
    block_pe: bool = True
    pe_features: int = 64  # Fourier features of a row/column index fed to the PE MLPs
    # Attention value residual, NAFNet block, LoRA adaLN, prompt tokens.
    value_residual: bool = True
    naf: bool = True
    naf_expand: int = 1  # 1x1 conv width = naf_expand * hidden before the depthwise conv
    lora_adaln: bool = True
    lora_rank: int = 64  # d'
    prompt: bool = True
    # Regression models with SamplerConfig.passes > 1 (beyond MMAIF): the calls after the first see the
    # last output AND the mean of the inputs, z <- f(z, mean(Z_i), P), with a learned adaLN condition on
    # every token that marks them as later passes. Two plain passes z <- f(z, z, P) cannot tell an image
    # that needed no restoration from one the first pass half restored, so they push both further; here
    # the change the first pass made, z - mean(Z_i), says how far it went.
    pass_cond: bool = False

    def __post_init__(self) -> None:
        _validate_literals(self)
        if self.pass_cond and self.timestep:
            raise ValueError("pass_cond marks a regression model's later passes: it needs timestep=False")
        if self.hidden % self.heads:
            raise ValueError("hidden must be divisible by heads")
        if self.rope and (self.hidden // self.heads) % 4:
            raise ValueError("2D RoPE needs head_dim divisible by 4 (two axes x complex pairs)")
        if self.moe and not 1 <= self.top_k <= self.experts:
            raise ValueError("need 1 <= top_k <= experts")
        if self.max_inputs < 2:
            raise ValueError("max_inputs must be >= 2")


PRESETS: dict[str, ModelConfig] = {
    # 8.8M parameters (6.2M active); trains on 2 CPU cores at 128-256 px crops.
    "tiny": ModelConfig(),
    # 45.3M parameters (31.2M active).
    "small": ModelConfig(hidden=384, depth=8, heads=6, lora_rank=96, expert_hidden=768),
    # MMAIF Sect. 4.2: 16 layers, hidden 576, 12 heads, d' = 128, 4 routed experts top-2 + 1 shared.
    "mmaif": ModelConfig(hidden=576, depth=16, heads=12, lora_rank=128, expert_hidden=1728),
}


def model_config(name_or_cfg: str | ModelConfig, **changes: Any) -> ModelConfig:
    """Resolve a preset name (or pass a config through) and apply field overrides."""
    if isinstance(name_or_cfg, str):
        if name_or_cfg not in PRESETS:
            raise KeyError(f"unknown model preset {name_or_cfg!r}; choices: {sorted(PRESETS)}")
        name_or_cfg = PRESETS[name_or_cfg]
    return override(name_or_cfg, **changes)


@dataclass(frozen=True)
class ObjectiveConfig:
    """Training objective: regression (MMAIF Eq. 8-10) or flow matching (Eq. 2/11), plus loss weights.

    Flow time convention (everywhere in allfuse): t = 0 is the prior p0, t = 1 the data,
    Z_t = (1 - t) Z0 + t Z1 (+ sigma * sqrt(t (1 - t)) * eps for the I2SB-style bridge), target v = Z1 - Z0.
    """

    kind: ObjectiveKind = "flow"
    aux_weight: float = 0.0  # lambda of Eq. (10); needs a decoder
    aux_mode: AuxMode = "sum"  # "sum": Eq. (9) over sources; "max": SwinFusion's max-intensity/max-gradient
    balance_weight: float = 0.01  # MoE load-balancing loss weight
    time_sampling: TimeSampling = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    prior: PriorKind = "gaussian"  # p0 (MMAIF Tab. 6 j-l)
    bridge_sigma: float = 0.0  # > 0: I2SB-style Brownian bridge from a latent prior (Tab. 6 m)
    mask_weight: float = 1.0  # the joint DiT's mask loss (BCE + Dice), when it has a mask head
    # Regression only (beyond MMAIF): the share of each batch whose inputs are replaced by the model's own
    # output on them, z = f(Z0m, Z1m, P) (no gradient), fed as both inputs -- it learns the second pass
    # that SamplerConfig.passes = 2 runs at inference.
    refeed: float = 0.0

    def __post_init__(self) -> None:
        _validate_literals(self)
        if self.mask_weight < 0:
            raise ValueError(f"mask_weight must be >= 0, got {self.mask_weight}")
        if not 0.0 <= self.refeed <= 1.0:
            raise ValueError(f"refeed must be in [0, 1], got {self.refeed}")
        if self.refeed and self.kind != "regression":
            raise ValueError("refeed trains a regression model's second pass: it needs kind=regression")
        if self.bridge_sigma > 0 and self.prior == "gaussian":
            raise ValueError("bridge_sigma > 0 needs a latent prior (first/second/mean)")


@dataclass(frozen=True)
class SamplerConfig:
    """Flow sampler choice (MMAIF Sect. 3.4.2, Algorithm 1, Tab. 6 h-m); prior and bridge_sigma must match
    the ObjectiveConfig the model was trained with."""

    method: SamplerKind = "midpoint_reuse"
    steps: int = 5
    g: float = 0.0  # diffusion norm of Algorithm 1: kappa = g * sin^2(pi t)
    prior: PriorKind = "gaussian"
    bridge_sigma: float = 0.0
    reuse_velocity: bool = True  # stochastic sampler: v(2) := v(1) (one network call per step)
    # Regression models: calls of the DiT, each after the first on its predecessor's output as both inputs,
    # z <- f(z, z, P) (ObjectiveConfig.refeed trains it). A veil or a blur one call leaves half removed is
    # taken further by the next; flow models ignore it.
    passes: int = 1

    def __post_init__(self) -> None:
        _validate_literals(self)
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        if self.passes < 1:
            raise ValueError("passes must be >= 1")
        if self.method == "bridge" and self.prior == "gaussian":
            raise ValueError("the bridge sampler starts from a latent prior (first/second/mean)")
        if self.method == "stochastic" and self.g > 0 and self.prior != "gaussian":
            raise ValueError("the stochastic sampler's score term assumes a Gaussian prior")


@dataclass(frozen=True)
class GuidanceConfig:
    """Classifier-free guidance of the joint DiT with separate text and image conditions (InstructPix2Pix
    Eq. 3, the three branches DiTFuse's code samples with): how often training drops the conditions, and
    the scales sampling uses unless a caller gives its own. Scales of 1 are plain conditional sampling."""

    drop_text: float = 0.1  # training: P(the text is dropped, the images kept); DiTFuse's code: 0.1
    drop_image: float = 0.1  # training: P(images and text are dropped: the unconditional branch)
    text: float = 2.0  # sampling: s_T (DiTFuse's code: 2.0)
    image: float = 1.6  # sampling: s_I (DiTFuse's code: 1.6)

    def __post_init__(self) -> None:
        if not (0 <= self.drop_text and 0 <= self.drop_image and self.drop_text + self.drop_image <= 1):
            raise ValueError(
                f"guidance dropout needs 0 <= drop_text, drop_image and a sum <= 1, got "
                f"{self.drop_text}, {self.drop_image}"
            )


# Reading a config tree from nested mappings (JSON, YAML, dotted `key=value` overrides).


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
        args = typing.get_args(tp)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None  # tuple[X, ...]: coerce as X
        return tuple(_coerce(item, v, key) if item is not None else v for v in value)
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


def nest_overrides(overrides: list[str]) -> dict[str, Any]:
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


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass tree (tuples become lists)."""
    return dataclasses.asdict(cfg)


def known_fields(cls: type, values: dict, prefix: str = "") -> tuple[dict, list[str]]:
    """`values` without the keys that dataclass `cls` (nested dataclasses too) does not have, and those
    keys, dotted: a config written by newer code is read with what this version knows."""
    hints = typing.get_type_hints(cls)
    kept, unknown = {}, []
    for key, value in values.items():
        if key not in hints:
            unknown.append(prefix + key)
        elif dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            kept[key], more = known_fields(hints[key], value, f"{prefix}{key}.")
            unknown += more
        else:
            kept[key] = value
    return kept, unknown


def load_config(cls: type[C], base: C, config_file: str | None = None, overrides: Sequence[str] = ()) -> C:
    """`base`, then the keys of a YAML file, then dotted `key=value` overrides; unknown keys are errors."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        base = build_config(cls, yaml.safe_load(path.read_text()) or {}, base=base)
    return build_config(cls, nest_overrides(list(overrides)), base=base)


def describe_fields(cfg: Any, prefix: str = "") -> list[str]:
    """`key = value` for every field of a dataclass tree, dotted: the keys an override can set."""
    lines = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            lines += describe_fields(value, f"{prefix}{f.name}.")
        else:
            lines.append(f"{prefix}{f.name} = {json.dumps(value, default=str)}")
    return lines
