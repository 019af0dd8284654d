"""TAEF2 loader against an independent functional forward of the published architecture; diffusers loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from allfuse.tokenizer import load_tokenizer
from allfuse.tokenizer.losses import psnr

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "weights"


@pytest.fixture(scope="module")
def taef2_dir() -> Path:
    if not (WEIGHTS / "taef2_encoder.pth").is_file():
        pytest.skip("../shared/weights/taef2_*.pth are absent (developer machines only)")
    return WEIGHTS


def _conv(sd: dict, key: str, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """3x3 (or 1x1) conv from a raw state dict entry, padding 'same' for 3x3."""
    w = sd[f"{key}.weight"].float()
    b = sd.get(f"{key}.bias")
    return F.conv2d(x, w, None if b is None else b.float(), stride=stride, padding=w.shape[-1] // 2)


def _block(sd: dict, key: str, x: torch.Tensor) -> torch.Tensor:
    """The published residual block, written from its description, not from our module."""
    if f"{key}.pool.0.weight" in sd:
        h = _conv(sd, f"{key}.pool.0", x)
        h = F.group_norm(h, 4, sd[f"{key}.pool.1.weight"].float(), sd[f"{key}.pool.1.bias"].float())
        x = x + _conv(sd, f"{key}.pool.3", F.relu(h))
    h = F.relu(_conv(sd, f"{key}.conv.0", x))
    h = F.relu(_conv(sd, f"{key}.conv.2", h))
    return F.relu(_conv(sd, f"{key}.conv.4", h) + x)


def reference_reconstruct(enc: dict, dec: dict, x: torch.Tensor) -> torch.Tensor:
    """TAEF2 encode + decode straight from the two .pth state dicts."""
    h = _block(enc, "1", _conv(enc, "0", x))
    for down, blocks in ((2, (3, 4, 5)), (6, (7, 8, 9)), (10, (11, 12, 13))):
        h = _conv(enc, str(down), h, stride=2)
        for i in blocks:
            h = _block(enc, str(i), h)
    z = _conv(enc, "14", h)
    h = F.relu(_conv(dec, "1", torch.tanh(z / 3) * 3))
    for blocks, up in (((3, 4, 5), 7), ((8, 9, 10), 12), ((13, 14, 15), 17)):
        for i in blocks:
            h = _block(dec, str(i), h)
        h = _conv(dec, str(up), F.interpolate(h, scale_factor=2.0, mode="nearest"))
    return _conv(dec, "19", _block(dec, "18", h)).clamp(0, 1)


def _crops(n: int = 6) -> torch.Tensor:
    from allfuse.tokenizer.data import heldout_crops

    _, crops = heldout_crops(SHARED / "data", 256)
    return crops[:: max(1, len(crops) // n)][:n]


def test_taef2_matches_published_architecture(taef2_dir: Path) -> None:
    tok = load_tokenizer(taef2_dir)
    assert (tok.downsample, tok.channels) == (8, 32)
    x = _crops()
    ours = tok.decode(tok.encode(x), size=x.shape[-2:])
    enc = torch.load(taef2_dir / "taef2_encoder.pth", weights_only=True)
    dec = torch.load(taef2_dir / "taef2_decoder.pth", weights_only=True)
    with torch.inference_mode():
        ref = reference_reconstruct(enc, dec, x)
    p_ours, p_ref = psnr(ours, x).mean().item(), psnr(ref, x).mean().item()
    assert abs(p_ours - p_ref) < 0.5
    assert p_ref > 25  # the published model is a real autoencoder (~30 dB on natural images)
    assert torch.allclose(ours, ref, atol=1e-3)


def test_taef2_odd_sizes_and_normalised_latents(taef2_dir: Path) -> None:
    tok = load_tokenizer(taef2_dir)
    x = _crops(2)[:, :, :75, :101]
    z = tok.encode(x)
    assert z.shape == (2, 32, 10, 13)
    assert tok.decode(z, cond=[x]).shape == x.shape
    assert 0.3 < float(z.std()) < 3


def test_diffusers_autoencoder_from_local_folder(tmp_path: Path) -> None:
    diffusers = pytest.importorskip("diffusers")
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, layers_per_block=1,
    )  # fmt: skip
    vae.save_pretrained(tmp_path / "vae")
    tok = load_tokenizer(tmp_path / "vae")
    assert (tok.downsample, tok.channels) == (2, 4)
    x = torch.rand(1, 3, 9, 13)
    z = tok.encode(x)
    assert z.shape == (1, 4, 5, 7)
    assert tok.decode(z, size=(9, 13)).shape == x.shape
    assert torch.equal(tok.encode(x), z)
