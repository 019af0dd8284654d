"""Networks: FusionDiT (MMAIF) and its layers; `build_model` resolves presets and field overrides."""

from __future__ import annotations

from typing import Any

from allfuse.config import PRESETS, ModelConfig, model_config
from allfuse.models.dit import DiTOutput, FusionDiT
from allfuse.models.joint import JointConfig, JointDiT

__all__ = ["PRESETS", "DiTOutput", "FusionDiT", "JointConfig", "JointDiT", "ModelConfig", "build_model"]


def build_model(cfg_or_preset_name: str | ModelConfig, **overrides: Any) -> FusionDiT:
    """Build a FusionDiT from a preset name ("tiny", "small", "mmaif") or a ModelConfig, plus overrides."""
    return FusionDiT(model_config(cfg_or_preset_name, **overrides))
