"""Model folders: what `FusionPipeline.from_pretrained` reads and `save_pretrained` / `allfuse export` write.

A model folder (the layout diffusers uses: a config beside safetensors weights) holds
  config.json          the INFERENCE config: the pipeline class that runs it (`_class_name`: FusionPipeline
                       for a FusionDiT, JointPipeline for a JointDiT), format version, network, sampler
                       (and, for a JointDiT, its guidance scales), training crop size,
                       prompt style, tokenizer and text encoder (each with a fingerprint checked on load),
                       the task tags the model was trained on, and the refiner files when it has one
  model.safetensors    the DiT weights (EMA)
  refiner.json         the refiner's config and its default latent-path side (when it has a refiner)
  refiner.safetensors  the refiner weights
  corrector.json       the input corrector's config (when it has one; allfuse.models.correct)
  corrector.safetensors  the input corrector's weights
  training.json        how it was trained (the training configs; informative, never needed to run it)
  MODEL_CARD.md        what it does well and where it fails (shipped models)
Keys this version does not know are ignored with a warning, so a folder written by newer code loads.
A training run folder or checkpoint folder works too: its config.json is the training config, from which
the inference config is derived (without fingerprints).

Both inference (allfuse.pipeline) and training (allfuse.train) import this module; it imports neither.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from allfuse.config import (
    Arch,
    GuidanceConfig,
    ModelConfig,
    SamplerConfig,
    build_config,
    config_to_dict,
    known_fields,
)
from allfuse.data.prompts import CONTROL_TAGS, task_tags
from allfuse.deblock import DeblockConfig
from allfuse.deblur import DeblurConfig
from allfuse.denoise import DenoiseConfig
from allfuse.destripe import DestripeConfig
from allfuse.exposure import ExposureConfig
from allfuse.gate import GateConfig
from allfuse.impulse import ImpulseConfig
from allfuse.io import atomic_write_safetensors, atomic_write_text
from allfuse.models.correct import Corrector, CorrectorConfig
from allfuse.models.denoiser import Denoiser, DenoiserConfig
from allfuse.models.joint import JointConfig
from allfuse.models.refine import Refiner, RefinerConfig
from allfuse.types import TASKS

MODELS_DIR = Path(__file__).parent / "weights"
EMBEDDED = ("allfuse-reg", "allfuse-fm", "allfuse-ditfuse")
CLASS_NAME, FORMAT_VERSION = "FusionPipeline", 1
# config.json's `_class_name`: the pipeline class that runs the folder, by network (TrainConfig.arch).
PIPELINE_CLASS: dict[str, Arch] = {"FusionPipeline": "fusion", "JointPipeline": "joint"}
CONFIG, WEIGHTS, TRAINING = "config.json", "model.safetensors", "training.json"
REFINER_WEIGHTS, REFINER_CONFIG = "refiner.safetensors", "refiner.json"
CORRECTOR_WEIGHTS, CORRECTOR_CONFIG = "corrector.safetensors", "corrector.json"
DENOISER_WEIGHTS, DENOISER_CONFIG = "denoiser.safetensors", "denoiser.json"  # the denoising stage's network
DEBLUR_CONFIG = "deblur.json"  # the blind deblurring stage (allfuse.deblur): a config, no weights
DESTRIPE_CONFIG = "destripe.json"  # the stripe-removal stage (allfuse.destripe): a config, no weights
IMPULSE_CONFIG = "impulse.json"  # the impulse-noise stage (allfuse.impulse): a config, no weights
EXPOSURE_CONFIG = "exposure.json"  # the exposure stage (allfuse.exposure): a config, no weights
DENOISE_CONFIG = "denoise.json"  # the denoising stage (allfuse.denoise): a config, no weights
DEBLOCK_CONFIG = "deblock.json"  # the JPEG deblocking stage (allfuse.deblock): a config, no weights
GATE_CONFIG = "gate.json"  # the clean-input gate (allfuse.gate): a fitted logistic regression, no weights
PARTS = {
    "refiner": (REFINER_CONFIG, REFINER_WEIGHTS),
    "corrector": (CORRECTOR_CONFIG, CORRECTOR_WEIGHTS),
    "denoiser": (DENOISER_CONFIG, DENOISER_WEIGHTS),
}
LATEST = "latest.json"  # a training run folder's pointer to its newest checkpoint (allfuse.train.checkpoint)


@dataclass(frozen=True)
class InferenceConfig:
    """Everything needed to run a model folder's DiT (config.json); the refiner has its own (refiner.json)."""

    model: ModelConfig | JointConfig = field(default_factory=ModelConfig)  # FusionDiT's or JointDiT's
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # flow sampling; a regression DiT: passes
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)  # JointDiT: default CFG scales
    crop_size: int = 128  # training crops, px: the default latent window of tiled inference
    prompt_style: str = "tagged"  # "tagged" (DiTFuse template) or "natural" (MMAIF instruction)
    bf16: bool = True  # autocast bf16 for the DiT and the tokenizer, where it pays (devices.bf16_pays)
    tokenizer: str = "default"  # allfuse.tokenizer.load_tokenizer name or path
    tokenizer_fingerprint: str = ""  # Tokenizer.fingerprint() of the tokenizer; "" = not checked
    text_encoder: str = "default"  # allfuse.text.load_text_encoder name or path; "none" = no prompt
    text_encoder_fingerprint: str = ""  # the encoder's id (allfuse.text.encoder.folder_id); "" = not checked
    tags: tuple[str, ...] = ("FUSION", "MULTI-MODALITIES", "MULTI-EXPOSURE", "MULTI-FOCUS")  # DiTFuse tags

    @property
    def arch(self) -> Arch:
        """The network: "joint" (JointDiT) or "fusion" (FusionDiT)."""
        return "joint" if isinstance(self.model, JointConfig) else "fusion"

    @property
    def flow(self) -> bool:
        """True when the model samples (steps, sampler); False for a one-pass regression FusionDiT."""
        return isinstance(self.model, JointConfig) or self.model.timestep

    @property
    def prompted(self) -> bool:
        """True when the network reads the prompt (a text encoder is loaded)."""
        reads = isinstance(self.model, JointConfig) or self.model.prompt
        return reads and self.text_encoder != "none"


def network_config(arch: Arch, values: Any, prefix: str = "model.") -> tuple[ModelConfig | JointConfig, list]:
    """The network config of an arch from its dict, and the keys this version does not know (dotted)."""
    cls = JointConfig if arch == "joint" else ModelConfig
    if not isinstance(values, dict):
        raise ValueError(f"model must be an object of {cls.__name__} fields, got {type(values).__name__}")
    kept, unknown = known_fields(cls, values, prefix)
    return build_config(cls, kept), unknown


def inference_from_training(train: Mapping[str, Any]) -> InferenceConfig:
    """The inference config of a training config (a dict of allfuse.train.config.TrainConfig's fields)."""
    arch = train.get("arch", "fusion")
    if arch not in PIPELINE_CLASS.values():
        raise ValueError(f"arch {arch!r} is not one of {sorted(set(PIPELINE_CLASS.values()))}")
    data = train.get("data", {})
    kinds = [k for k, w in data.get("kinds", {"vif": 1, "mef": 1, "mff": 1}).items() if w > 0]
    tags: list[str] = []
    for kind in kinds:
        found = ["CONTROL", *CONTROL_TAGS] if kind == "control" else [t for t in task_tags(kind) if t]
        tags += [t for t in found if t not in tags]
    values = {
        "sampler": train.get("sampler", {}),
        **({"guidance": train.get("guidance", {})} if arch == "joint" else {}),
        "crop_size": data.get("size", 128),
        "prompt_style": data.get("prompt_style", "tagged"),
        "bf16": train.get("bf16", True),
        "tokenizer": train.get("tokenizer", "default"),
        "text_encoder": train.get("text_encoder", "default"),
        "tags": tags,
    }
    net, _ = network_config(arch, train.get("joint" if arch == "joint" else "model", {}))
    cfg = build_config(InferenceConfig, known_fields(InferenceConfig, values)[0])
    return dataclasses.replace(cfg, model=net)


def resolve_model_folder(name_or_path: str | os.PathLike) -> Path:
    """An embedded model name, a model folder, a run folder (its latest checkpoint) or a checkpoint."""
    name = str(name_or_path)
    path = MODELS_DIR / name if name in EMBEDDED else Path(name)
    if (path / LATEST).exists():
        path = latest_checkpoint(path)  # type: ignore[assignment]
    if not (path / WEIGHTS).is_file() or not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path}: no model here (needs {WEIGHTS} + {CONFIG})")
    return path


def embedded_with_tags(tags: Sequence[str]) -> list[str]:
    """The embedded models trained on every one of `tags` (read from their config.json)."""
    found = []
    for name in EMBEDDED:
        try:
            known = read_json_object(MODELS_DIR / name / CONFIG).get("tags", [])
        except (OSError, ValueError):
            continue
        if all(t in known for t in tags):
            found.append(name)
    return found


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint folder a run's latest.json points to, or None for a fresh run."""
    pointer = Path(run_dir) / LATEST
    if not pointer.exists():
        return None
    return Path(run_dir) / json.loads(pointer.read_text())["path"]


def read_model_config(folder: Path) -> InferenceConfig:
    """config.json of a model folder (or the training config of a checkpoint) as an InferenceConfig; every
    error names the file; unknown keys are ignored with a warning, as diffusers does."""
    path = folder / CONFIG
    raw = read_json_object(path)
    if "format_version" not in raw:  # a training checkpoint: derive the inference config
        try:
            return inference_from_training(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{path}: {_message(e)}") from None
    if not isinstance(raw["format_version"], int) or raw["format_version"] > FORMAT_VERSION:
        warnings.warn(
            f"{path}: format_version {raw['format_version']!r} is newer than this allfuse's", stacklevel=2
        )
    name = raw.get("_class_name", CLASS_NAME)
    if name not in PIPELINE_CLASS:
        raise ValueError(
            f"{path}: _class_name {name!r} is not a pipeline this allfuse runs "
            f"({', '.join(PIPELINE_CLASS)}); a newer allfuse may"
        )
    values = {k: v for k, v in raw.items() if k not in ("_class_name", "format_version", "model", *PARTS)}
    for part in ("tokenizer", "text_encoder"):
        if isinstance(values.get(part), dict):
            entry = values.pop(part)
            values[part], values[f"{part}_fingerprint"] = (
                entry.get("name", "default"),
                entry.get("fingerprint", ""),
            )
    try:
        net, unknown = network_config(PIPELINE_CLASS[name], raw.get("model", {}))
        kept, more = known_fields(InferenceConfig, values)
        if unknown + more:
            warnings.warn(
                f"{path}: ignoring config keys this version does not know: {unknown + more}", stacklevel=2
            )
        return dataclasses.replace(build_config(InferenceConfig, kept), model=net)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: {_message(e)}") from None


def config_json(cfg: InferenceConfig, folder: Path | None = None) -> dict[str, Any]:
    """The config.json form of an inference config (tokenizer and text encoder as name + fingerprint),
    naming the refiner and corrector files `folder` holds."""
    values = config_to_dict(cfg)
    name = next(k for k, arch in PIPELINE_CLASS.items() if arch == cfg.arch)
    out: dict[str, Any] = {"_class_name": name, "format_version": FORMAT_VERSION}
    for key, value in values.items():
        if key in ("tokenizer", "text_encoder"):
            out[key] = {"name": value, "fingerprint": values[f"{key}_fingerprint"]}
        elif key == "guidance" and cfg.arch == "fusion":
            continue  # a FusionDiT has no guidance: its config.json stays as older versions wrote it
        elif not key.endswith("_fingerprint"):
            out[key] = value
    for part, (config, weights) in PARTS.items():
        present = folder is not None and (folder / weights).is_file()
        if present or part == "refiner":  # "refiner": null as older versions wrote it
            out[part] = {"config": config, "weights": weights} if present else None
    return out


def fingerprints(cfg: InferenceConfig) -> InferenceConfig:
    """`cfg` with the fingerprints of its tokenizer (Tokenizer.fingerprint: weights, config, precision) and
    text encoder (its id: weights and settings) as installed here."""
    from allfuse.text import load_text_encoder
    from allfuse.tokenizer import load_tokenizer

    tok = load_tokenizer(cfg.tokenizer, precision="bf16" if cfg.bf16 else "fp32").fingerprint()
    text = load_text_encoder(cfg.text_encoder).id if cfg.prompted else ""
    return dataclasses.replace(cfg, tokenizer_fingerprint=tok, text_encoder_fingerprint=text)


def check_fingerprint(folder: Path, part: str, expected: str, actual: str) -> None:
    """Refuse a tokenizer or text encoder other than the one the model was trained with."""
    if expected and expected != actual:
        raise ValueError(
            f"{folder / CONFIG}: its {part} has fingerprint {expected}, the one installed here {actual}: "
            f"the model was trained with another {part} and would give wrong images (reinstall the allfuse "
            f"version that wrote this folder, or point {part!r} at the right files)"
        )


def save_pretrained(
    model: torch.nn.Module, cfg: Any, folder: str | os.PathLike, dtype: torch.dtype = torch.float32
) -> Path:
    """Write a model folder: model.safetensors (in `dtype`: fp16 halves a shipped model), config.json and,
    when `cfg` is a training config, training.json; each file atomically. Fingerprints are recorded."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    training = config_to_dict(cfg) if hasattr(cfg, "objective") else None  # a TrainConfig
    icfg = cfg if isinstance(cfg, InferenceConfig) else inference_from_training(training or {})
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()
    }
    atomic_write_safetensors(folder / WEIGHTS, state)
    atomic_write_text(folder / CONFIG, json.dumps(config_json(fingerprints(icfg), folder), indent=2))
    if training is not None:
        record = read_training(folder) if (folder / TRAINING).is_file() else {}
        write_training(folder, {**record, "dit": training})
    return folder


def save_refiner(
    net: Refiner,
    folder: str | os.PathLike,
    dtype: torch.dtype = torch.float32,
    info: dict | None = None,
    work_side: int | None = None,
    noise_guard: dict[str, tuple[float, ...]] | None = None,
) -> Path:
    """Add a trained refiner to an existing model folder (refiner.safetensors + refiner.json; how it was
    trained goes to training.json); work_side becomes the pipeline's default latent-path side, noise_guard
    its per-task noise guard (check_noise_guard). Atomic."""
    if work_side is not None and work_side < 16:
        raise ValueError(f"work_side {work_side} px is too small (>= 16)")
    meta: dict[str, Any] = {"refiner": net.cfg.to_dict(), **({"work_side": work_side} if work_side else {})}
    if noise_guard:
        meta["noise_guard"] = noise_guard_json(noise_guard)
    return save_part("refiner", net, meta, folder, dtype, info)


def check_noise_guard(value: Any) -> dict[str, tuple[float, float, float, float, float]]:
    """A refiner's noise guard, {task: (low, high, floor, chroma_low, chroma_high)}: the pair's noise level
    (1/255, allfuse.gate.pair_noise) from which the refiner's change is damped, the level from which it
    keeps only `floor` of it (0 <= floor < 1; [low, high] alone means floor 0: dropped), 0 < low < high;
    and optionally the same ramp on the pair's chroma noise (allfuse.denoise.pair_chroma_noise), 0 <
    chroma_low < chroma_high (left out: 0, 0, not read). Anything else is a ValueError saying what."""
    if not isinstance(value, dict):
        raise ValueError(f"noise_guard must map tasks to [low, high, floor], got {value!r}")
    out = {}
    for task, bounds in value.items():
        ok = task in TASKS and isinstance(bounds, (list, tuple)) and len(bounds) in (2, 3, 5)
        ok = ok and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
        b = [float(x) for x in bounds] + [0.0] * (5 - len(bounds)) if ok else []
        if not ok or not 0 < b[0] < b[1] or not 0 <= b[2] < 1 or not (b[3] == b[4] == 0 or 0 < b[3] < b[4]):
            raise ValueError(
                f"noise_guard {task!r}: need a task among {', '.join(TASKS)} and [low, high, floor] or "
                "[low, high, floor, chroma_low, chroma_high] with 0 < low < high, 0 <= floor < 1 and "
                f"0 < chroma_low < chroma_high (floor may be left out: 0), got {bounds!r}"
            )
        out[task] = (b[0], b[1], b[2], b[3], b[4])
    return out


def noise_guard_json(guard: dict[str, tuple[float, ...]]) -> dict[str, list[float]]:
    """refiner.json's form of a noise guard: [low, high, floor], and the chroma bounds when they are set."""
    checked = check_noise_guard(guard).items()
    return {t: list(v) if v[4] else list(v[:3]) for t, v in checked}


def save_corrector(
    net: Corrector, folder: str | os.PathLike, dtype: torch.dtype = torch.float32, info: dict | None = None
) -> Path:
    """Add a trained input corrector to an existing model folder (corrector.safetensors + corrector.json;
    how it was trained goes to training.json). Atomic."""
    return save_part("corrector", net, {"corrector": net.cfg.to_dict()}, folder, dtype, info)


def save_part(
    part: str,
    net: torch.nn.Module,
    meta: dict,
    folder: str | os.PathLike,
    dtype: torch.dtype,
    info: dict | None,
) -> Path:
    """Write one of PARTS into a model folder: weights, its JSON config, config.json entry, training.json."""
    folder = resolve_model_folder(folder)
    config, weights = PARTS[part]
    state = {k: v.to(dtype).contiguous() for k, v in net.state_dict().items()}
    atomic_write_safetensors(folder / weights, state)
    atomic_write_text(folder / config, json.dumps(meta, indent=2))
    raw = read_json_object(folder / CONFIG)
    if "format_version" in raw:
        raw[part] = {"config": config, "weights": weights}
        atomic_write_text(folder / CONFIG, json.dumps(raw, indent=2))
    record = read_training(folder) if (folder / TRAINING).is_file() else {}
    write_training(folder, {**record, part: info or {}})
    return folder


def save_denoiser(
    net: Denoiser, folder: str | os.PathLike, dtype: torch.dtype = torch.float32, info: dict | None = None
) -> Path:
    """Add a trained denoiser network to an existing model folder (denoiser.safetensors + denoiser.json; how
    it was trained goes to training.json). The denoising stage uses it when its denoise.json says
    "method": "net". Atomic."""
    return save_part("denoiser", net, {"denoiser": net.cfg.to_dict()}, folder, dtype, info)


def load_denoiser(folder: Path) -> Denoiser | None:
    """The denoising stage's network of a model folder, or None when it has none."""
    return load_part(folder, "denoiser", lambda values: Denoiser(DenoiserConfig.from_dict(values)))


def load_denoising(folder: Path) -> tuple[DenoiseConfig | None, Denoiser | None]:
    """The denoising stage's config and network; a config whose method is "net" without the network is a
    ValueError naming the folder's denoise.json."""
    cfg, net = load_denoise(folder), load_denoiser(folder)
    if cfg is not None and cfg.method == "net" and net is None:
        raise ValueError(
            f"{folder / DENOISE_CONFIG}: method 'net' needs the learned denoiser, {DENOISER_WEIGHTS}"
        )
    return cfg, net


def load_refiner(folder: Path) -> Refiner | None:
    """The refiner of a model folder, or None when it has none."""
    return load_part(folder, "refiner", lambda values: Refiner(RefinerConfig.from_dict(values)))


def load_corrector(folder: Path) -> Corrector | None:
    """The input corrector of a model folder, or None when it has none."""
    return load_part(folder, "corrector", lambda values: Corrector(CorrectorConfig.from_dict(values)))


def load_stage(folder: Path, file: str, key: str, build: Callable[[dict], Any], what: str) -> Any:
    """A weightless stage's config, `build(json[key])`, from a model folder's `file`; None without the file;
    a bad file is a ValueError naming it."""
    path = folder / file
    if not path.is_file():
        return None
    try:
        return build(read_json_object(path)[key])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a {what} config ({_message(e)})") from None


def save_stage(values: dict, folder: str | os.PathLike, file: str, key: str) -> Path:
    """Write a weightless stage's config ({key: values}) into an existing model folder's `file`. Atomic."""
    folder = resolve_model_folder(folder)
    atomic_write_text(folder / file, json.dumps({key: values}, indent=2))
    return folder


def load_deblur(folder: Path) -> DeblurConfig | None:
    """The blind deblurring stage of a model folder (deblur.json's "deblur" entry), or None without one."""
    return load_stage(folder, DEBLUR_CONFIG, "deblur", DeblurConfig.from_dict, "deblur")


def save_deblur(cfg: DeblurConfig, folder: str | os.PathLike) -> Path:
    """Add the blind deblurring stage to an existing model folder (deblur.json). Atomic."""
    return save_stage(cfg.to_dict(), folder, DEBLUR_CONFIG, "deblur")


def load_destripe(folder: Path) -> DestripeConfig | None:
    """The stripe-removal stage of a model folder (destripe.json's "destripe" entry), or None without one."""
    return load_stage(folder, DESTRIPE_CONFIG, "destripe", DestripeConfig.from_dict, "destripe")


def save_destripe(cfg: DestripeConfig, folder: str | os.PathLike) -> Path:
    """Add the stripe-removal stage to an existing model folder (destripe.json). Atomic."""
    return save_stage(cfg.to_dict(), folder, DESTRIPE_CONFIG, "destripe")


def load_impulse(folder: Path) -> ImpulseConfig | None:
    """The impulse-noise stage of a model folder (impulse.json's "impulse" entry), or None without one."""
    return load_stage(folder, IMPULSE_CONFIG, "impulse", ImpulseConfig.from_dict, "impulse")


def save_impulse(cfg: ImpulseConfig, folder: str | os.PathLike) -> Path:
    """Add the impulse-noise stage to an existing model folder (impulse.json). Atomic."""
    return save_stage(cfg.to_dict(), folder, IMPULSE_CONFIG, "impulse")


def load_exposure(folder: Path) -> ExposureConfig | None:
    """The exposure stage of a model folder (exposure.json's "exposure" entry), or None without one."""
    return load_stage(folder, EXPOSURE_CONFIG, "exposure", ExposureConfig.from_dict, "exposure")


def save_exposure(cfg: ExposureConfig, folder: str | os.PathLike) -> Path:
    """Add the exposure stage to an existing model folder (exposure.json). Atomic."""
    return save_stage(cfg.to_dict(), folder, EXPOSURE_CONFIG, "exposure")


def load_denoise(folder: Path) -> DenoiseConfig | None:
    """The denoising stage of a model folder (denoise.json's "denoise" entry), or None without one."""
    return load_stage(folder, DENOISE_CONFIG, "denoise", DenoiseConfig.from_dict, "denoise")


def save_denoise(cfg: DenoiseConfig, folder: str | os.PathLike) -> Path:
    """Add the denoising stage to an existing model folder (denoise.json). Atomic."""
    return save_stage(cfg.to_dict(), folder, DENOISE_CONFIG, "denoise")


def load_deblock(folder: Path) -> DeblockConfig | None:
    """The JPEG deblocking stage of a model folder (deblock.json's "deblock" entry), or None without one."""
    return load_stage(folder, DEBLOCK_CONFIG, "deblock", DeblockConfig.from_dict, "deblock")


def save_deblock(cfg: DeblockConfig, folder: str | os.PathLike) -> Path:
    """Add the JPEG deblocking stage to an existing model folder (deblock.json). Atomic."""
    return save_stage(cfg.to_dict(), folder, DEBLOCK_CONFIG, "deblock")


def load_gate(folder: Path) -> GateConfig | None:
    """The clean-input gate of a model folder (gate.json's "gate" entry), or None without one."""
    return load_stage(folder, GATE_CONFIG, "gate", GateConfig.from_dict, "gate")


def save_gate(cfg: GateConfig, folder: str | os.PathLike) -> Path:
    """Add the clean-input gate to an existing model folder (gate.json). Atomic."""
    return save_stage(cfg.to_dict(), folder, GATE_CONFIG, "gate")


def load_part(folder: Path, part: str, build: Callable[[Any], torch.nn.Module]) -> Any:
    """One of PARTS from a model folder (None when its weights are absent): its JSON config's `part` entry
    built into a network, the weights loaded; a bad config or weights name the file."""
    config, weights = PARTS[part]
    if not (folder / weights).is_file():
        return None
    path = folder / config
    try:
        net = build((read_json_object(path) if path.is_file() else {})[part])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a {part} config ({_message(e)})") from None
    load_weights(net, folder / weights)
    return net


def refiner_meta(folder: Path) -> dict:
    """refiner.json of a model folder ({} when it has none): the refiner config and its default work_side."""
    path = folder / REFINER_CONFIG
    return read_json_object(path) if path.is_file() else {}


def load_noise_guard(folder: Path) -> dict[str, tuple[float, float, float, float, float]]:
    """The refiner's noise guard from refiner.json ({} without one); a bad one is a ValueError naming it."""
    try:
        return check_noise_guard(refiner_meta(folder).get("noise_guard", {}))
    except ValueError as e:
        raise ValueError(f"{folder / REFINER_CONFIG}: {e}") from None


def read_training(folder: Path) -> dict[str, Any]:
    """How a model folder was trained: training.json ({"dit": TrainConfig dict, "refiner": ...}); for a
    checkpoint, whose config.json is the training config, {"dit": that}."""
    if (folder / TRAINING).is_file():
        return read_json_object(folder / TRAINING)
    raw = read_json_object(folder / CONFIG)
    if "format_version" in raw:
        raise FileNotFoundError(f"{folder}: no {TRAINING} (how this model was trained is not recorded)")
    return {"dit": raw}


def write_training(folder: Path, record: dict[str, Any]) -> None:
    """training.json, atomically."""
    atomic_write_text(folder / TRAINING, json.dumps(record, indent=2, default=str))


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; invalid JSON or another value is a ValueError naming the file."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # invalid JSON, or bytes that are not UTF-8
        raise ValueError(f"{path}: not valid JSON ({_message(e)})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: must hold a JSON object {{...}}, got {type(values).__name__}")
    return values


def load_weights(net: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into a network; a damaged file or weights of another shape name the file."""
    try:
        state = load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError (not an OSError) on a damaged file
        raise ValueError(f"{path}: not a readable safetensors file ({_message(e)})") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit the model's config ({_message(e)[:300]})") from None


def _message(e: BaseException) -> str:
    """An exception's message on one line (a KeyError's without its quotes)."""
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(text.split()) or type(e).__name__
