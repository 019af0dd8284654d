"""A JointDiT (DiTFuse) model end to end on 32 px: train both stages and export through the CLI, load with
FusionPipeline.from_pretrained, fuse with prompts, guidance and the condition cache; [SEG] overlays;
refusals; inference never imports training."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from allfuse.cli import main
from allfuse.data.seg import overlay
from allfuse.io import read_image, write_image
from allfuse.joint_pipeline import JointPipeline
from allfuse.models import JointDiT
from allfuse.models.joint import JointConfig
from allfuse.pipeline import FusionPipeline
from allfuse.sampling import joint as joint_sampling
from allfuse.sampling.joint import sample_guided
from allfuse.sampling.tiling import ramp, window_starts

TINY = [
    "tokenizer=pixel-unshuffle-f4",
    "joint.hidden=32",
    "joint.heads=2",
    "joint.depth=2",
    "joint.ffn_hidden=64",
    "joint.lora_rank=8",
    "batch_size=2",
    "data.size=32",
    "data.data=[]",
    "data.workers=0",
    "data.length=8",
    "val_every=0",
    "warmup=1",
    "bf16=false",
    "sampler.steps=2",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both DiTFuse stages, 2 steps each, trained and exported by the CLI: m3 (stage 1), lora (stage 2)."""
    root = tmp_path_factory.mktemp("ditfuse")
    runs = {"m3": root / "run-m3", "lora": root / "run-lora"}
    stage1 = [*TINY, "--max-steps", "2", "--out", str(runs["m3"])]
    assert main(["train", "--config", "tiny-ditfuse", *stage1]) == 0
    stage2 = [*TINY, f"init_from={runs['m3']}", "--max-steps", "2", "--out", str(runs["lora"])]
    assert main(["train", "--config", "tiny-ditfuse-lora", *stage2]) == 0
    out = {}
    for name, run in runs.items():
        out[name] = root / name
        assert main(["export", str(run), str(out[name])]) == 0
    return out


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_image(a, rng.random((40, 52), dtype=np.float32))
    write_image(b, rng.random((40, 52, 3), dtype=np.float32))
    return a, b


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.random((40, 52, 3), dtype=np.float32), rng.random((40, 52, 3), dtype=np.float32)]


def test_cli_round_trip_with_a_control_prompt(
    models: dict[str, Path], pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.png"
    flags = ["--cfg-text", "2", "--cfg-image", "1.5", "--steps", "2", "-v", "--task", "vif", "-o", str(out)]
    argv = ["fuse", *map(str, pair), "--model", str(models["lora"]), *flags]
    assert main([*argv, "--prompt", "[CONTROL]. <LIGHT+>. brighter"]) == 0
    said = capsys.readouterr().out
    assert 'prompt (vif): [CONTROL] <LIGHT+> "brighter" (from its tags)' in said
    assert read_image(out).shape == (40, 52, 3)
    assert main([*argv, "--prompt", "qwerty zxcv"]) == 0  # not understood: plain fusion, said so
    assert "[FUSION] default instruction (no instruction understood: plain fusion)" in capsys.readouterr().out


def test_the_folder_names_its_pipeline_and_loads_as_one(models: dict[str, Path]) -> None:
    cfg = json.loads((models["lora"] / "config.json").read_text())
    assert cfg["_class_name"] == "JointPipeline" and cfg["model"]["hidden"] == 32
    assert {"FUSION", "CONTROL", "LIGHT++", "CONTRAST-", "SEG"} <= set(cfg["tags"])
    pipe = FusionPipeline.from_pretrained(models["lora"])
    assert isinstance(pipe, JointPipeline) and isinstance(pipe.model, JointDiT)
    assert pipe.cfg.arch == "joint" and pipe.cfg.flow and pipe.slots() == 4
    folder = models["lora"].parent / "renamed"
    folder.mkdir()
    for f in models["lora"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "config.json").write_text(json.dumps({**cfg, "_class_name": "VideoPipeline"}))
    with pytest.raises(ValueError, match="_class_name 'VideoPipeline' is not a pipeline this allfuse runs"):
        FusionPipeline.from_pretrained(folder)
    newer = {**cfg, "model": {**cfg["model"], "future_switch": 1}}  # written by a newer allfuse
    (folder / "config.json").write_text(json.dumps(newer))
    with pytest.warns(UserWarning, match="ignoring config keys .*'model.future_switch'"):
        assert FusionPipeline.from_pretrained(folder).cfg == pipe.cfg
    again = FusionPipeline.from_pretrained(pipe.save_pretrained(folder.parent / "saved"))
    assert isinstance(again, JointPipeline) and again.cfg == pipe.cfg


def test_sampling_runs_on_the_condition_cache(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = FusionPipeline.from_pretrained(models["lora"])
    calls = {"encode_condition": 0, "forward_cached": 0}
    for name in calls:
        real = getattr(JointDiT, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(JointDiT, name, counted)

    def full_sequence(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole sequence ran: the condition cache was not used")

    monkeypatch.setattr(JointDiT, "forward", full_sequence)
    out = pipe(images(), prompt="fuse them", steps=3, cfg_text=2.0, cfg_image=1.5, tile=0)
    assert out.shape == (40, 52, 3) and np.isfinite(out).all()
    assert calls == {"encode_condition": 1, "forward_cached": 3}  # 3 branches batched: one call a step
    calls.update(encode_condition=0, forward_cached=0)
    pipe(images(), prompt="fuse them", steps=3)  # windows of the 32 px crops: 2 x 2 on a 10 x 13 latent
    assert calls == {"encode_condition": 1, "forward_cached": 3}  # the 4 windows batched: one call a step


def test_guidance_scales_default_to_the_folders_and_change_the_output(models: dict[str, Path]) -> None:
    pipe = FusionPipeline.from_pretrained(models["lora"])
    with torch.no_grad():  # open the zero-initialised gates, or every branch would output zero
        for p in pipe.model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    ims = images()
    default = pipe(ims, prompt="remove the noise", task="vif")
    np.testing.assert_array_equal(
        default, pipe(ims, prompt="remove the noise", task="vif", cfg_text=2.0, cfg_image=1.6)
    )
    plain = pipe(ims, prompt="remove the noise", task="vif", cfg_text=1.0, cfg_image=1.0)
    assert np.abs(plain - default).max() > 1e-4
    np.testing.assert_array_equal(pipe(ims, task="vif"), pipe(ims, prompt="qwerty zxcv", task="vif"))
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="cfg_text"):
            pipe(ims, cfg_text=bad)
    with pytest.raises(ValueError, match="bridge"):
        pipe(ims, sampler="bridge")


def test_seg_returns_the_fusion_with_the_predicted_mask(models: dict[str, Path]) -> None:
    pipe = FusionPipeline.from_pretrained(models["lora"])
    ims = [x.mean(axis=2) for x in images()]  # gray inputs: the overlay still comes back in colour
    res = pipe.run(ims, prompt="highlight the star", task="mff", steps=2)
    assert (res.intent.task, res.intent.target) == ("SEG", "star")
    assert res.mask is not None and res.mask.shape == (40, 52) and res.mask.dtype == bool
    plain = pipe.run(ims, task="mff", steps=2)
    assert plain.mask is None and plain.image.shape == (40, 52)
    expected = overlay(np.repeat(plain.image[..., None], 3, axis=2), res.mask)
    np.testing.assert_allclose(res.image, expected, atol=1e-6)


def with_mask_head(folder: Path, dest: Path, bias: float) -> Path:
    """A copy of a JointDiT folder with a mask head whose logits are `bias` everywhere."""
    shutil.copytree(folder, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["model"]["mask_head"] = True
    (dest / "config.json").write_text(json.dumps(cfg))
    weights = load_file(dest / "model.safetensors")
    head = JointDiT(JointConfig.from_dict(cfg["model"])).mask_head
    assert head is not None
    with torch.no_grad():
        head.scale.zero_()  # logits = bias at every pixel
        head.bias.fill_(bias)
    dtype = next(iter(weights.values())).dtype
    weights.update({f"mask_head.{k}": v.to(dtype) for k, v in head.state_dict().items()})
    save_file(weights, dest / "model.safetensors")
    return dest


@pytest.mark.parametrize("bias", [8.0, -8.0])
def test_seg_with_a_mask_head_reads_the_head_and_samples_once(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bias: float
) -> None:
    pipe = FusionPipeline.from_pretrained(with_mask_head(models["lora"], tmp_path / "m", bias))
    assert pipe.model.mask_head is not None
    samplings = []
    real = joint_sampling.solve

    def counted(*args: object, **kwargs: object):
        samplings.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(joint_sampling, "solve", counted)
    res = pipe.run(images(), prompt="segment the circle", steps=2)
    assert len(samplings) == 1  # the plain fusion; the mask comes from one condition pass
    assert res.mask is not None and res.mask.shape == (40, 52) and bool(res.mask.all()) == (bias > 0)
    plain = pipe.run(images(), steps=2)
    np.testing.assert_allclose(res.image, overlay(plain.image, res.mask), atol=1e-6)


def with_label_head(folder: Path, dest: Path, labels: list[str]) -> Path:
    """A copy of a JointDiT folder with an (untrained) label head over `labels`."""
    shutil.copytree(folder, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["model"].update(mask_head=True, mask_labels=labels)
    (dest / "config.json").write_text(json.dumps(cfg))
    weights = load_file(dest / "model.safetensors")
    head = JointDiT(JointConfig.from_dict(cfg["model"])).mask_head
    dtype = next(iter(weights.values())).dtype
    weights.update({f"mask_head.{k}": v.to(dtype) for k, v in head.state_dict().items()})
    save_file(weights, dest / "model.safetensors")
    return dest


def test_seg_with_a_label_head_takes_the_argmax_over_its_labels_and_the_named_class(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = FusionPipeline.from_pretrained(
        with_label_head(models["lora"], tmp_path / "m", ["background", "circle"])
    )
    asked: list[int] = []

    def fake(conds, pixels, text, text_mask, label_text, label_mask):  # the named class wins where bright
        b, _, h, w = conds[0].shape
        k = label_text.shape[0]
        asked.append(k)
        assert pixels[0].shape[-2:] == (h * pipe.tok.downsample, w * pipe.tok.downsample)
        bright = torch.nn.functional.adaptive_avg_pool2d(pixels[0].mean(1), (h * 2, w * 2))  # (B, h2, w2)
        logits = torch.zeros(b, k, h * 2, w * 2)
        logits[:, 0] = 1.0  # background wins where the last label (the named one) scores below it
        logits[:, k - 1] = 10.0 * (bright - 0.5)
        return logits

    monkeypatch.setattr(pipe.model, "label_logits", fake)
    half = np.zeros((40, 52, 3), np.float32)
    half[:, :26] = 1.0
    res = pipe.run([half, half], prompt="segment the dog", steps=2)
    assert asked and set(asked) == {3}  # background, circle and the named "dog"
    assert res.mask.shape == (40, 52) and res.mask[:, :22].all() and not res.mask[:, 30:].any()
    res = pipe.run([half, half], prompt="segment the circle", steps=2)
    assert asked[-1] == 2 and res.mask[:, :22].all() and not res.mask[:, 30:].any()  # a known label adds none


def test_large_images_and_windows(models: dict[str, Path]) -> None:
    pipe = FusionPipeline.from_pretrained(models["lora"])
    rng = np.random.default_rng(3)
    big = [rng.random((90, 70), dtype=np.float32), rng.random((90, 70), dtype=np.float32)]
    assert pipe(big, steps=1, tile_pixels=4096).shape == (90, 70)  # tiled encoder/decoder, latent windows
    model = pipe.model
    g = torch.Generator().manual_seed(0)
    conds = [torch.randn(1, 48, 12, 10, generator=g) for _ in range(2)]
    text = torch.randn(1, 4, 384, generator=g)

    def run(window: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(1)
        return sample_guided(model, conds, text, None, pipe.cfg.sampler, 2.0, 1.5, gen, window).x

    whole = run(0)
    torch.testing.assert_close(run(12), whole)  # a window holding the whole latent is the whole latent
    windowed = run(8)
    assert windowed.shape == whole.shape and torch.isfinite(windowed).all()
    joint_sampling.CACHE_BUDGET, budget = 0, joint_sampling.CACHE_BUDGET  # too many windows to cache
    try:
        torch.testing.assert_close(run(8), windowed, atol=1e-5, rtol=1e-5)
    finally:
        joint_sampling.CACHE_BUDGET = budget


def test_windows_batched_in_one_forward_equal_windows_run_one_by_one(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = FusionPipeline.from_pretrained(models["lora"]).model
    g = torch.Generator().manual_seed(5)
    conds = [torch.randn(2, 48, 12, 10, generator=g) for _ in range(2)]  # a batch of 2: ordering matters
    text = torch.randn(2, 4, 384, generator=g)
    x, t = torch.randn(2, 48, 12, 10, generator=g), torch.tensor([0.3, 0.7])
    window, overlap = 8, 2

    def windowed() -> torch.Tensor:
        with torch.no_grad():
            v = joint_sampling.windowed_velocity_fn(model, conds, text, None, 2.0, 1.5, window, overlap)
            return v(x, t)

    got = windowed()
    with torch.no_grad():
        want, norm = torch.zeros_like(x), torch.zeros(12, 10)
        for i in window_starts(12, window, overlap):
            for j in window_starts(10, window, overlap):
                crop = [z[..., i : i + window, j : j + window] for z in conds]
                fn = joint_sampling.joint_velocity_fn(model, crop, text, None, 2.0, 1.5)
                w = ramp(window, overlap)[:, None] * ramp(window, overlap)[None, :]
                want[..., i : i + window, j : j + window] += fn(x[..., i : i + window, j : j + window], t) * w
                norm[i : i + window, j : j + window] += w
    torch.testing.assert_close(got, want / norm, atol=1e-5, rtol=1e-5)
    monkeypatch.setattr(joint_sampling, "WINDOW_BATCH_TOKENS", 1)  # chunks of one window each
    torch.testing.assert_close(windowed(), got, atol=1e-5, rtol=1e-5)


def test_tags_a_model_was_not_trained_on_are_refused_before_it_loads(
    models: dict[str, Path],
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the error was reported")

    monkeypatch.setattr(FusionPipeline, "from_pretrained", staticmethod(refuse))
    argv = ["fuse", *map(str, pair), "-o", str(tmp_path / "o.png"), "--model"]
    for model, extra, expected in (
        (
            models["m3"],
            ["--prompt", "[CONTROL]. <LIGHT+>. brighter"],
            "was not trained for [CONTROL], <LIGHT+>",
        ),
        (models["m3"], ["--prompt", "make it much darker"], "(read from the words 'make it much darker')"),
        (models["m3"], ["--prompt", "segment the car"], "was not trained for [SEG]"),
        (models["lora"], ["--prompt", "[CONTROL]. whatever"], "a [CONTROL] prompt needs a level"),
        (models["lora"], ["--cfg-image", "-2"], "--cfg-image -2.0: give a guidance scale >= 0"),
        (models["lora"], ["--sampler", "bridge"], "--sampler bridge:"),
        ("allfuse-reg", ["--cfg-text", "2"], "--cfg-text: allfuse-reg has no classifier-free guidance"),
        (
            "allfuse-reg",
            ["--prompt", "[CONTROL]. <LIGHT+>. brighter"],
            "allfuse-reg was not trained for [CONTROL]",
        ),
    ):
        assert main([*argv, str(model), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err


def test_inference_does_not_import_training(models: dict[str, Path]) -> None:
    code = (
        "import sys, json, numpy as np; from allfuse import FusionPipeline; "
        f"p = FusionPipeline.from_pretrained({str(models['lora'])!r}); "
        "x = np.zeros((24, 24), np.float32); p.run([x, x], prompt='highlight the car', steps=1); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('allfuse'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    assert "allfuse.joint_pipeline" in loaded
    assert not {m for m in loaded if m.startswith("allfuse.train")}
