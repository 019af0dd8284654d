"""What a training run optimises, by `TrainConfig.arch`: the network, the parameters the optimizer updates
and the loss. The loop (train.loop) is the same for both; only this differs.

  fusion  FusionDiT (MMAIF) with `objectives.compute_loss`; init_from warm-starts it (train.warm).
  joint   JointDiT (DiTFuse) with `objectives.joint.joint_loss` and the run's guidance dropout. init_from
          loads a base JointDiT (a model folder, a run or a checkpoint; its EMA weights when it has them)
          whose network config the run takes over; with lora.rank > 0 the base is frozen and only LoRA
          adapters on `lora.targets` train (DiTFuse Eq. 3). `trained_network` merges them for export.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from allfuse.model_folder import CONFIG, WEIGHTS, read_json_object, read_model_config, resolve_model_folder
from allfuse.models import FusionDiT, JointDiT
from allfuse.models.joint import JointConfig
from allfuse.models.lora import add_lora, lora_parameters, merge_lora
from allfuse.objectives import LatentBatch, compute_loss
from allfuse.objectives.joint import joint_loss, label_head_loss
from allfuse.train.config import TrainConfig, config_from_dict
from allfuse.train.data import Frozen

LossFn = Callable[[nn.Module, LatentBatch, torch.Generator], tuple[Tensor, dict[str, float]]]


class Trainee(NamedTuple):
    """A run's network and how it trains."""

    cfg: TrainConfig  # the run's config, its network config matched to tokenizer, text encoder and base
    model: nn.Module  # what is checkpointed and averaged (EMA); LoRA layers included while they train
    params: list  # what the optimizer updates: parameters, or param groups (dicts) with their own lr
    loss: LossFn  # (network, latent batch, generator) -> (loss, logged scalars)


def build_trainee(cfg: TrainConfig, frozen: Frozen, device: torch.device, verbose: bool = True) -> Trainee:
    """The network of cfg.arch on `device`, initialised (init_from, LoRA), with its parameters and loss."""
    if cfg.arch == "joint":
        return joint_trainee(cfg, frozen, device, verbose)
    cfg = frozen.fit(cfg)
    model = FusionDiT(cfg.model).to(device)
    model.gradient_checkpointing = cfg.grad_checkpoint
    if cfg.init_from:
        from allfuse.train.warm import warm_start

        notes = warm_start(model, load_file(resolve_model_folder(cfg.init_from) / WEIGHTS))
        if verbose and notes:
            print(f"warm start from {cfg.init_from}: " + "; ".join(notes), flush=True)

    def loss(net: nn.Module, batch: LatentBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        return compute_loss(net, batch, cfg.objective, frozen.decode_for_loss, gen)

    return Trainee(cfg, model, list(model.parameters()), loss)


def joint_trainee(cfg: TrainConfig, frozen: Frozen, device: torch.device, verbose: bool) -> Trainee:
    """A JointDiT, from scratch or from a base model, with LoRA adapters when cfg.lora.rank > 0."""
    cfg = frozen.fit(cfg)
    state = None
    if cfg.init_from:
        base, state = base_joint(cfg)
        if (base.latent_channels, base.text_dim) != (cfg.joint.latent_channels, cfg.joint.text_dim):
            raise ValueError(
                f"init_from {cfg.init_from}: its latents / text are {base.latent_channels} / "
                f"{base.text_dim} wide, this run's tokenizer and text encoder give "
                f"{cfg.joint.latent_channels} / {cfg.joint.text_dim}"
            )
        # the base's network, plus a mask head when the run asks for one (a new head starts untrained)
        if cfg.joint.mask_labels and cfg.joint.mask_labels != base.mask_labels:  # another head: a new one
            state = {k: v for k, v in state.items() if not k.startswith("mask_head.")}
            base = dataclasses.replace(base, mask_head=True, mask_labels=cfg.joint.mask_labels)
        base = dataclasses.replace(base, mask_head=base.mask_head or cfg.joint.mask_head)
        cfg = dataclasses.replace(cfg, joint=base)
    model = JointDiT(cfg.joint)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("mask_head.") for k in missing):
            raise ValueError(
                f"init_from {cfg.init_from}: weights do not fit the network (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})"
            )
    head = [] if model.mask_head is None else list(model.mask_head.parameters())
    in_head = {id(q) for q in head}
    params = [p for p in model.parameters() if id(p) not in in_head]
    if cfg.lora.rank:
        names = add_lora(model, cfg.lora.rank, cfg.lora.alpha, cfg.lora.targets, cfg.lora.dropout)
        params = lora_parameters(model)
        for q in head:  # the head is not a LoRA target: it trains whole
            q.requires_grad_(True)
        if verbose:
            n = sum(p.numel() for p in params + head)
            print(f"LoRA rank {cfg.lora.rank} on {len(names)} layers: {n:,} trained parameters", flush=True)
    model.to(device)

    def loss(net: nn.Module, batch: LatentBatch, gen: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        if model.cfg.mask_labels:  # a label head: its dense labels alone (it always trains alone)
            return label_head_loss(net, batch)
        return joint_loss(net, batch, cfg.objective, cfg.guidance, gen)

    groups: list = params
    if cfg.only_mask_head:  # the network frozen, its head alone at lr
        for q in model.parameters():
            q.requires_grad_(False)
        for q in head:
            q.requires_grad_(True)
        if verbose:
            print(f"mask head alone: {sum(q.numel() for q in head):,} trained parameters", flush=True)
        groups = head
    elif head:  # the mask head, new or small beside the network, learns at mask_head_lr x lr
        groups = [{"params": params}, {"params": head, "lr": cfg.lr * cfg.mask_head_lr}]
    return Trainee(cfg, model, groups, loss)


def base_joint(cfg: TrainConfig) -> tuple[JointConfig, dict[str, Tensor]]:
    """The config and plain weights of the JointDiT that cfg.init_from names; its tokenizer and text
    encoder must be the run's (they fix what its latents and text tokens mean)."""
    folder = resolve_model_folder(cfg.init_from)
    icfg = read_model_config(folder)
    if not isinstance(icfg.model, JointConfig):
        raise ValueError(f"init_from {cfg.init_from}: a FusionDiT, not a JointDiT (arch=joint needs one)")
    for part in ("tokenizer", "text_encoder"):
        if getattr(icfg, part) != getattr(cfg, part):
            raise ValueError(
                f"init_from {cfg.init_from} was trained with {part} {getattr(icfg, part)!r}: "
                f"set {part}={getattr(icfg, part)}"
            )
    ema = folder / "ema.safetensors"
    weights = load_file(ema if ema.is_file() else folder / WEIGHTS)
    raw = read_json_object(folder / CONFIG)
    if "format_version" in raw:  # a model folder: plain weights
        return icfg.model, weights
    # a checkpoint, whose config.json is its training config: its weights may carry LoRA adapters
    return icfg.model, trained_network(config_from_dict(raw), weights).state_dict()


def trained_network(cfg: TrainConfig, weights: dict[str, Tensor]) -> nn.Module:
    """The plain network of a checkpoint's weights: a FusionDiT, or a JointDiT with any LoRA adapters
    merged into its base weights (allfuse.models.lora.merge_lora), as a model folder ships it."""
    if cfg.arch == "fusion":
        model: nn.Module = FusionDiT(cfg.model)
        model.load_state_dict(weights)
        return model
    model = JointDiT(cfg.joint)
    if cfg.lora.rank:
        add_lora(model, cfg.lora.rank, cfg.lora.alpha, cfg.lora.targets)
    model.load_state_dict(weights)
    return merge_lora(model).requires_grad_(True)
