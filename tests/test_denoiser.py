"""The learned denoiser: the identity at init, whole-image results from tiles, a noise synthesis that is
reproducible per (seed, step) and leaves the clean target as it was, a run that resumes exactly and ships
in a model folder, and a denoising stage that uses it when its config says so (and refuses to run without
it). The shipped network against non-local means on photos it never saw: tests/test_denoise.py."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from photos import resized_photo
from PIL import Image as PILImage
from test_refine import latest_weights

from allfuse.denoise import DenoiseConfig, denoise_inputs, denoise_net_images
from allfuse.models.denoiser import Denoiser, DenoiserConfig
from allfuse.stages import InputStages
from allfuse.train.denoiser import DenoiseTrainConfig, sample_batch, synth_noise, train_denoiser


def _random_net(seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    net = Denoiser(DenoiserConfig(width=8, depth=1))
    for p in net.out.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return net.eval()


def test_an_untrained_denoiser_is_the_identity_at_any_size() -> None:
    net = Denoiser(DenoiserConfig(width=8, depth=1))
    for h, w in [(32, 32), (37, 21), (5, 9)]:
        x = torch.rand(1, 3, h, w)
        torch.testing.assert_close(net(x), x)
    with pytest.raises(TypeError, match="wdth"):
        DenoiserConfig.from_dict({"wdth": 8})
    with pytest.raises(ValueError, match="bad denoiser config"):
        DenoiserConfig(width=2)


@pytest.mark.parametrize("gray", [False, True])
def test_tiles_give_the_whole_images_result(gray: bool) -> None:
    net = _random_net()
    x = np.random.default_rng(1).random((150, 97, 3), dtype=np.float32)
    x = x.mean(axis=2) if gray else x
    whole = denoise_net_images(net, [x], tile=1024)[0]
    tiled = denoise_net_images(net, [x], tile=40)[0]  # 4 x 3 tiles, the last ones narrower
    assert whole.shape == x.shape and whole.dtype == np.float32
    assert np.abs(whole - x).mean() > 1e-3  # the network changes the image
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_the_noise_synthesis_is_reproducible_and_keeps_its_target() -> None:
    x = resized_photo("astronaut", 48).astype(np.float32)
    kinds = set()
    for seed in range(40):
        noisy, clean = synth_noise(x, np.random.default_rng(seed))
        again = synth_noise(x, np.random.default_rng(seed))
        np.testing.assert_array_equal(noisy, again[0])
        assert noisy.shape == clean.shape == x.shape and noisy.dtype == np.float32
        assert 0 <= noisy.min() and noisy.max() <= 1
        # the target is the photo, a gray version of it, or either darkened: never noisier than the photo
        d = clean - np.roll(clean, 1, axis=1)
        assert np.abs(d).mean() <= np.abs(x - np.roll(x, 1, axis=1)).mean() + 1e-6
        kinds.add(bool(np.abs(noisy - clean).max() > 2 / 255))
    assert kinds == {True, False}  # noisy samples and noiseless ones (the identity) both occur
    cfg = DenoiseTrainConfig(data=["x"], size=32, batch_size=3, scales=(40, 60))
    a, b, c = (sample_batch([x], cfg, 0, step) for step in (5, 5, 6))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (3, 3, 32, 32)


def _data(folder: Path) -> Path:
    (folder / "imgs").mkdir(parents=True)
    for name in ("astronaut", "camera", "coffee"):
        x = resized_photo(name, 96)
        PILImage.fromarray(np.round(x * 255).astype(np.uint8)).save(folder / "imgs" / f"{name}.png")
    return folder


def _cfg(data: Path, out: Path) -> DenoiseTrainConfig:
    return DenoiseTrainConfig(
        data=[str(data)],
        out_dir=str(out),
        denoiser=DenoiserConfig(width=4, depth=1),
        size=32,
        scales=(64, 96),
        clean_noise=20.0,
        max_steps=4,
        batch_size=2,
        warmup=1,
        ckpt_every=2,
        val_every=2,
        val_samples=6,
        bf16=False,
    )


def test_a_denoiser_run_resumes_exactly_and_ships_in_the_model_folder(
    dit_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from allfuse.cli import main
    from allfuse.pipeline import FusionPipeline

    data = _data(tmp_path / "data")
    train_denoiser(_cfg(data, tmp_path / "a"))
    train_denoiser(_cfg(data, tmp_path / "b"), until=2)
    train_denoiser(_cfg(data, tmp_path / "b"))
    a, b = latest_weights(tmp_path / "a"), latest_weights(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert a["out.weight"].abs().max() > 0  # it learned something
    val = [json.loads(line) for line in (tmp_path / "a" / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [2, 4]
    assert all(np.isfinite(v["psnr_denoised"]) for v in val)
    with pytest.raises(ValueError, match="give the folders"):
        train_denoiser(dataclasses.replace(_cfg(data, tmp_path / "c"), data=[]))
    with pytest.raises(FileNotFoundError, match="no image files"):
        train_denoiser(dataclasses.replace(_cfg(data, tmp_path / "c"), data=[str(tmp_path / "a")]))

    model = tmp_path / "model"
    model.mkdir()
    for f in ("model.safetensors", "config.json"):
        (model / f).write_bytes((dit_folder / f).read_bytes())
    assert main(["export", str(tmp_path / "a"), str(model), "--tasks", "mef"]) == 2  # not a corrector
    assert main(["export", str(tmp_path / "a"), str(model), "--dtype", "fp32", "--weights", "raw"]) == 0
    assert json.loads((model / "config.json").read_text())["denoiser"]["weights"] == "denoiser.safetensors"
    pipe = FusionPipeline.from_pretrained(model)
    assert pipe.denoiser is not None and pipe.denoiser.cfg == DenoiserConfig(width=4, depth=1)
    for k, v in pipe.denoiser.state_dict().items():
        torch.testing.assert_close(v, a[k].float(), msg=k)
    again = FusionPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "again"))
    torch.testing.assert_close(again.denoiser.state_dict(), pipe.denoiser.state_dict())
    cfg = {"denoise": {**DenoiseConfig(method="net").to_dict()}}
    (model / "denoise.json").write_text(json.dumps(cfg))
    pipe = FusionPipeline.from_pretrained(model)
    assert pipe.denoise.method == "net" and InputStages.from_folder(model).denoiser is not None
    clean = resized_photo("camera", 48)
    paths = [tmp_path / "ir.png", tmp_path / "vis.png"]
    noisy = clean + np.random.default_rng(0).normal(0, 12 / 255, clean.shape)
    for path, x in zip(paths, (clean, noisy), strict=True):
        PILImage.fromarray(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)).save(path)
    out = str(tmp_path / "f.png")
    assert main(["fuse", *map(str, paths), "-o", out, "--model", str(model), "--task", "vif", "-v"]) == 0
    said = capsys.readouterr().out
    assert "kept; input 2 noise" in said and "denoised (100%, by the learned denoiser)" in said
    (model / "denoiser.safetensors").rename(tmp_path / "away.safetensors")  # the network gone: refused
    for load in (FusionPipeline.from_pretrained, InputStages.from_folder):
        with pytest.raises(ValueError, match=r"denoise\.json: method 'net' needs the learned denoiser"):
            load(model)
    (tmp_path / "away.safetensors").rename(model / "denoiser.safetensors")
    (model / "denoiser.json").write_text('{"denoiser": {"width": 4, "deep": 1}}')
    with pytest.raises(ValueError, match=r"denoiser\.json"):
        FusionPipeline.from_pretrained(model)


def test_the_stage_filters_with_the_network_when_its_config_says_so() -> None:
    net = _random_net()
    clean = resized_photo("camera", 64)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 12 / 255, clean.shape), 0, 1).astype(
        np.float32
    )
    cfg = DenoiseConfig(method="net")
    out, weights = denoise_inputs([clean, noisy], "vif", cfg, net)
    assert weights == [0.0, 1.0] and out[0] is clean  # a clean input is not touched
    np.testing.assert_allclose(out[1], denoise_net_images(net, [noisy])[0], atol=1e-6)
    nlm = denoise_inputs([clean, noisy], "vif", DenoiseConfig(), net)[0][1]  # method "nlm": the net unused
    assert np.abs(nlm - out[1]).max() > 0.01
    with pytest.raises(ValueError, match="no denoiser network"):
        denoise_inputs([clean, noisy], "vif", cfg)
    with pytest.raises(ValueError, match="a method among nlm, net"):
        DenoiseConfig(method="bm3d")
