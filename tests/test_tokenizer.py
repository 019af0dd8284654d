"""Tokenizer protocol, our KL-VAE (tiny configs), pixel-unshuffle, saving/loading, latent cache, training."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from allfuse.ops import ssim
from allfuse.tokenizer import LatentCache, Tokenizer, load_tokenizer
from allfuse.tokenizer.klvae import VAETokenizer, fit_latent_stats, load_vae, save_vae
from allfuse.tokenizer.load import DEFAULT_WEIGHTS
from allfuse.tokenizer.losses import psnr
from allfuse.tokenizer.pixel import PixelUnshuffleTokenizer
from allfuse.tokenizer.vae import KLVAE, VAEConfig
from allfuse.train.tokenizer import TrainTokenizerConfig, add_train_tokenizer_parser, lr_at, train_tokenizer

TINY = VAEConfig(latent_channels=4, widths=(12, 24, 48), enc_blocks=(1, 1, 1), dec_blocks=(1, 1, 1))


def tiny_tokenizer(seed: int = 0, precision: str = "fp32") -> VAETokenizer:
    """A random tiny KL-VAE wrapped as a tokenizer (its zero-init residuals made non-trivial)."""
    torch.manual_seed(seed)
    model = KLVAE(VAEConfig(**{**TINY.__dict__}))
    for p in model.parameters():
        p.data.add_(0.01 * torch.randn_like(p))
    return VAETokenizer(model, precision=precision)  # type: ignore[arg-type]


@pytest.mark.parametrize("hw", [(32, 48), (37, 53), (5, 3), (64, 64)])
def test_round_trip_shapes_any_size(hw: tuple[int, int]) -> None:
    tok = tiny_tokenizer()
    x = torch.rand(2, 3, *hw)
    z = tok.encode(x)
    assert z.shape == (2, 4, -(-hw[0] // 8), -(-hw[1] // 8))
    assert z.dtype == torch.float32
    assert tok.decode(z, size=hw).shape == x.shape
    assert tok.decode(z, cond=[x, x]).shape == x.shape  # cond gives the size; the plain decoder ignores it
    assert tok.decode(z).shape[-2:] == (z.shape[-2] * 8, z.shape[-1] * 8)
    y = tok.decode(z, size=hw)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encode_is_deterministic(precision: str) -> None:
    x = torch.rand(1, 3, 40, 24)
    a, b = tiny_tokenizer(precision=precision), tiny_tokenizer(precision=precision)
    assert torch.equal(a.encode(x), a.encode(x))
    assert torch.equal(a.encode(x), b.encode(x))  # same seed, same weights, same latents
    assert torch.equal(a.decode(a.encode(x)), b.decode(b.encode(x)))


def test_protocol_and_attributes() -> None:
    for tok in (tiny_tokenizer(), PixelUnshuffleTokenizer(8)):
        assert isinstance(tok, Tokenizer)
        assert tok.downsample == 8
    assert tiny_tokenizer().channels == 4
    assert PixelUnshuffleTokenizer(8).channels == 192


def test_pixel_unshuffle_is_exact_for_odd_sizes() -> None:
    tok = load_tokenizer("pixel-unshuffle")
    x = torch.rand(2, 3, 29, 41)
    z = tok.encode(x)
    assert z.shape == (2, 192, 4, 6)
    assert torch.allclose(tok.decode(z, size=(29, 41)), x, atol=1e-6)
    assert load_tokenizer("pixel-unshuffle-f4").channels == 48
    assert abs(float(tok.encode(torch.rand(1, 3, 64, 64)).std()) - 1) < 0.05  # about unit variance


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        tiny_tokenizer().encode(torch.rand(3, 16, 16))
    with pytest.raises(FileNotFoundError):
        load_tokenizer("no-such-tokenizer")


def test_latent_stats_give_unit_variance() -> None:
    tok = tiny_tokenizer()
    batches = [torch.rand(4, 3, 32, 32) for _ in range(3)]
    fit_latent_stats(tok.model, batches, precision="fp32")
    tok = VAETokenizer(tok.model, precision="fp32")
    z = torch.cat([tok.encode(b) for b in batches])  # (12, 4, 4, 4)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-3)
    assert torch.allclose(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(4), atol=1e-3)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = tiny_tokenizer().model
    model.cfg.scale = [2.0] * 4
    tok = VAETokenizer(model, precision="fp32")
    path = save_vae(tok.model, tmp_path / "mine", {"note": "test"})
    assert json.loads(path.with_suffix(".json").read_text())["kind"] == "klvae"
    again = load_tokenizer(path, precision="fp32")
    same_folder = load_tokenizer(tmp_path, precision="fp32")
    x = torch.rand(1, 3, 24, 24)
    # weights are stored as fp16: latents agree to fp16 precision
    assert torch.allclose(again.encode(x), tok.encode(x), atol=2e-2)
    assert torch.equal(again.encode(x), same_folder.encode(x))
    assert load_vae(path).cfg.scale == [2.0] * 4


def test_default_tokenizer_ships_and_reconstructs() -> None:
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("default weights not trained yet")
    assert DEFAULT_WEIGHTS.stat().st_size <= 10 * 2**20
    tok = load_tokenizer()
    assert (tok.downsample, tok.channels) == (8, 16)
    from skimage.data import astronaut

    x = torch.from_numpy(astronaut()[100:196, 150:270].copy()).permute(2, 0, 1)[None].float() / 255
    z = tok.encode(x)
    assert 0.3 < float(z.std()) < 3  # normalised latents
    assert float(psnr(tok.decode(z, size=x.shape[-2:]), x)[0]) > 24


def test_latent_cache_reuses_and_invalidates(tmp_path: Path) -> None:
    from allfuse.io import write_image

    img = tmp_path / "a.png"
    write_image(img, np.random.default_rng(0).random((20, 28, 3)).astype(np.float32))
    tok = tiny_tokenizer()
    cache = LatentCache(tmp_path / "cache", tok)
    z1 = cache.encode_file(img)
    z2 = cache.encode_file(img)
    assert (cache.misses, cache.hits) == (1, 1)
    assert torch.equal(z1, z2) and z1.shape == (4, 3, 4)
    x = torch.rand(3, 16, 16)
    assert torch.equal(cache.encode(x), cache.encode(x.clone()))
    assert len(cache) == 2
    other = LatentCache(tmp_path / "cache", tiny_tokenizer(seed=1))  # different weights -> new folder
    assert other.dir != cache.dir
    other.encode_file(img)
    assert other.misses == 1


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 40, 50, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ref = structural_similarity(
        x[0].permute(1, 2, 0).numpy(), y[0].permute(1, 2, 0).numpy(), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1, channel_axis=-1,
    )  # fmt: skip
    assert abs(float(ssim(x, y)[0]) - ref) < 1e-5
    assert abs(float(psnr(x, x * 0 + x)[0]) - 120) < 1e-3  # clamped at mse 1e-12


def test_lr_schedule() -> None:
    cfg = TrainTokenizerConfig(steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1, decay_frac=0.3)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(10, cfg) == lr_at(70, cfg) == pytest.approx(1e-3)  # stable until the last 30 %
    assert lr_at(85, cfg) == pytest.approx(0.55e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-4)


def _tiny_train_cfg(out: Path, steps: int) -> TrainTokenizerConfig:
    return TrainTokenizerConfig(
        out_dir=str(out), data_root=str(out / "no-data"), latent_channels=4, widths=(12, 24, 48),
        enc_blocks=(1, 1, 1), dec_blocks=(1, 1, 1), steps=steps, batch_size=2, crop=32, warmup=2,
        log_every=1, eval_every=1000, ckpt_every=2, threads=1,
    )  # fmt: skip


def test_training_resumes_exactly(tmp_path: Path) -> None:
    train_tokenizer(_tiny_train_cfg(tmp_path / "a", 4))
    train_tokenizer(_tiny_train_cfg(tmp_path / "b", 2))  # interrupted at step 2 (before any lr decay) ...
    exported = train_tokenizer(_tiny_train_cfg(tmp_path / "b", 4))  # ... and resumed: `steps` may change
    a = load_vae(tmp_path / "a" / "tokenizer.safetensors").state_dict()
    b = load_vae(exported).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(s) for s in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="different config"):
        cfg = _tiny_train_cfg(tmp_path / "b", 4)
        cfg.lr = 1.0
        train_tokenizer(cfg)


def test_cli_hook_parses_overrides() -> None:
    parser = argparse.ArgumentParser()
    add_train_tokenizer_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train-tokenizer", "--widths", "16,32,64", "--bf16", "false", "--steps", "7"])
    assert args.widths == (16, 32, 64) and args.bf16 is False and args.steps == 7
    with pytest.raises(SystemExit):
        parser.parse_args(["train-tokenizer", "--no-such-field", "1"])


@pytest.mark.parametrize("name", ["default", "pixel-unshuffle"])
def test_decode_train_is_differentiable_and_matches_decode(name: str) -> None:
    from allfuse.tokenizer import load_tokenizer

    tok = load_tokenizer(name, precision="fp32")
    x = torch.rand(1, 3, 32, 40)
    z = tok.encode(x).clone().requires_grad_(True)
    y = tok.decode_train(z)
    y.mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # the aux pixel loss reaches the latent
    torch.testing.assert_close(y.detach().clamp(0, 1), tok.decode(z.detach()))
