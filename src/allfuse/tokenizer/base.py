"""The Tokenizer protocol and the shared padding / scaling / precision logic of our wrappers.

Contract: ``encode(x)`` takes (B, 3, H, W) float in [0, 1], any H x W, and returns deterministic latents
(the posterior mean for KL-VAEs), normalised to about zero mean and unit variance, of shape
(B, channels, ceil(H / f), ceil(W / f)). ``decode(z, cond=None, size=None)`` returns (B, 3, f*h, f*w)
cropped to ``size`` = (H, W) when given (or to the size of ``cond[0]``), values in [0, 1]. ``cond`` is the
list of source images, reserved for decoders that also look at the inputs (SPEC, "a measured ceiling");
decoders that do not use it accept and ignore it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from allfuse.devices import bf16_pays

Precision = Literal["fp32", "bf16"]


@runtime_checkable
class Tokenizer(Protocol):
    """Image <-> latent. See the module docstring for the exact contract."""

    downsample: int
    channels: int
    name: str

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, channels, ceil(H/f), ceil(W/f)), about unit variance."""
        ...

    def decode(
        self, z: torch.Tensor, cond: Sequence[torch.Tensor] | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """(B, channels, h, w) -> (B, 3, f*h, f*w) in [0, 1], cropped to `size` (or cond[0]'s size)."""
        ...

    def decode_train(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable decode, unclipped and uncropped: gradients reach z (weights stay frozen)."""
        ...

    def fingerprint(self) -> str:
        """A short hash that changes whenever the latents would (weights, config, precision)."""
        ...


def pad_to_multiple(x: torch.Tensor, f: int) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom/right to multiples of f: reflect when possible, else replicate."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % f, (-w) % f
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class CroppedDecode:
    """`decode` for tokenizers whose `decode_train` is the whole decoder: crop to the output size, clip."""

    downsample: int

    def decode_train(self, z: torch.Tensor) -> torch.Tensor:  # provided by the tokenizer
        raise NotImplementedError

    @torch.inference_mode()
    def decode(
        self, z: torch.Tensor, cond: Sequence[torch.Tensor] | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """(B, channels, h, w) -> (B, 3, H, W) in [0, 1], cropped to `size` (or cond[0]'s size)."""
        h, w = target_size(z, self.downsample, cond, size)
        return self.decode_train(z)[..., :h, :w].clamp(0, 1).contiguous()


def target_size(
    z: torch.Tensor, f: int, cond: Sequence[torch.Tensor] | None, size: tuple[int, int] | None
) -> tuple[int, int]:
    """The output (H, W) of a decode: `size`, else the size of cond[0], else the full f*h x f*w."""
    if size is not None:
        return int(size[0]), int(size[1])
    if cond:
        return int(cond[0].shape[-2]), int(cond[0].shape[-1])
    return z.shape[-2] * f, z.shape[-1] * f


def check_image_batch(x: torch.Tensor) -> None:
    """Raise ValueError unless x is a float (B, 3, H, W) batch."""
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"expected a float image batch (B, 3, H, W), got {tuple(x.shape)} {x.dtype}")


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on the given device when precision == 'bf16' and bf16 pays there
    (`allfuse.devices.bf16_pays`), otherwise a no-op."""
    if precision == "bf16" and bf16_pays(device.type):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def latent_hw(h: int, w: int, f: int) -> tuple[int, int]:
    """Latent spatial size of an H x W image at factor f."""
    return math.ceil(h / f), math.ceil(w / f)
