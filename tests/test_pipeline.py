"""FusionPipeline on a tiny untrained model: loading, sizes, colour policy, prompts, errors."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from allfuse.models import FusionDiT
from allfuse.pipeline import FusionPipeline, check_prompt, save_pretrained, work_size
from allfuse.train.config import load_train_config

TINY = [
    "tokenizer=pixel-unshuffle-f4",
    "model.latent_channels=48",
    "model.hidden=32",
    "model.heads=2",
    "model.depth=1",
    "model.expert_hidden=32",
    "model.lora_rank=8",
    "model.pe_features=8",
    "bf16=false",
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_train_config("tiny-fm", [*TINY, "text_encoder=none", "model.prompt=false", "sampler.steps=2"])
    return save_pretrained(FusionDiT(cfg.model), cfg, tmp_path_factory.mktemp("m") / "tiny")


def test_output_keeps_odd_sizes_and_colour_policy(tiny_folder: Path) -> None:
    pipe = FusionPipeline.from_pretrained(tiny_folder)
    rng = np.random.default_rng(0)
    gray, rgb = rng.random((37, 53), dtype=np.float32), rng.random((37, 53, 3), dtype=np.float32)
    out = pipe([gray, rgb], task="vif")
    assert out.shape == (37, 53, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert pipe([gray, gray.T.copy().T], task="mff").shape == (37, 53)  # all gray in, gray out
    a = pipe([gray, rgb], task="vif", seed=3)
    np.testing.assert_array_equal(a, pipe([gray, rgb], task="vif", seed=3))  # seeded


def test_work_side_runs_the_latent_path_smaller_and_returns_the_input_size(tiny_folder: Path) -> None:
    pipe = FusionPipeline.from_pretrained(tiny_folder)
    rng = np.random.default_rng(1)
    ims = [rng.random((37, 53), dtype=np.float32), rng.random((37, 53, 3), dtype=np.float32)]
    small = pipe(ims, task="vif", work_side=20)
    assert small.shape == (37, 53, 3) and 0 <= small.min() and small.max() <= 1
    assert np.abs(small - pipe(ims, task="vif")).max() > 0  # it did run at another size
    np.testing.assert_array_equal(pipe(ims, task="vif", work_side=53), pipe(ims, task="vif"))  # fits: no-op
    assert work_size((37, 53), 20) == (14, 20) and work_size((53, 37), 1000) == (53, 37)
    for bad in (8, -1):
        with pytest.raises(ValueError, match="work_side"):
            pipe(ims, task="vif", work_side=bad)


def test_a_model_folder_can_set_the_default_work_side(tiny_folder: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    from allfuse.models.refine import Refiner, RefinerConfig
    from allfuse.pipeline import save_refiner

    folder = Path(shutil.copytree(tiny_folder, tmp_path / "m"))
    net = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2))
    torch.nn.init.normal_(net.tail[0].weight, std=0.05)
    old = os.umask(0o022)
    try:  # written atomically, with the mode open() gives (safetensors' save_file makes 0600)
        save_refiner(net, folder, work_side=20)
    finally:
        os.umask(old)
    assert {f.stat().st_mode & 0o777 for f in folder.glob("refiner.*")} == {0o644}
    assert not list(folder.glob(".*.tmp"))
    pipe = FusionPipeline.from_pretrained(folder)
    assert pipe.work_side == 20
    rng = np.random.default_rng(2)
    ims = [rng.random((37, 53), dtype=np.float32), rng.random((37, 53, 3), dtype=np.float32)]
    default = pipe(ims, task="vif")
    np.testing.assert_array_equal(default, pipe(ims, task="vif", work_side=20))
    full = pipe(ims, task="vif", work_side=0)  # 0 = the whole latent path at full size
    assert np.abs(full - default).max() > 0
    pipe.work_side = None
    np.testing.assert_array_equal(full, pipe(ims, task="vif"))
    with pytest.raises(ValueError, match="work_side"):
        save_refiner(net, folder, work_side=4)
    meta = json.loads((folder / "refiner.json").read_text())
    (folder / "refiner.json").write_text(json.dumps({**meta, "work_side": "big"}))
    with pytest.raises(ValueError, match=r"refiner\.json: work_side"):
        FusionPipeline.from_pretrained(folder)


def test_bad_inputs_are_clear_errors(tiny_folder: Path, tmp_path: Path) -> None:
    pipe = FusionPipeline.from_pretrained(tiny_folder)
    x = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="differ in size"):
        pipe([x, np.zeros((16, 17), np.float32)])
    with pytest.raises(ValueError, match="at least 2"):
        pipe([x])
    with pytest.raises(ValueError, match="unknown task"):
        pipe([x, x], task="pan")
    with pytest.raises(FileNotFoundError, match="no model here"):
        FusionPipeline.from_pretrained(tmp_path)


def test_inputs_are_converted_or_refused_naming_the_input(tiny_folder: Path) -> None:
    pipe = FusionPipeline.from_pretrained(tiny_folder)
    rng = np.random.default_rng(2)
    u8 = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    f = rng.random((24, 20), dtype=np.float32)
    as_float = pipe([u8 / 255.0, f], task="vif")
    np.testing.assert_allclose(pipe([u8, f], task="vif"), as_float, atol=1e-5)  # uint8 + float32 mix
    u16 = (u8.astype(np.uint16) * 257)[..., 0]
    np.testing.assert_allclose(
        pipe([u16, f], task="mff"), pipe([u8[..., 0] / 255.0, f], task="mff"), atol=1e-5
    )
    np.testing.assert_array_equal(pipe([f[..., None], f], task="mff"), pipe([f, f], task="mff"))  # (H, W, 1)
    assert pipe([f > 0.5, f], task="mff").shape == (24, 20)  # bool is 0 / 1
    with pytest.raises(ValueError, match=r"^images\[0\]: float values must lie in \[0, 1\].*divide by 255"):
        pipe([u8.astype(np.float32), f])  # 0-255 floats used to come out all white
    nan = f.copy()
    nan[3:5, 3:5] = np.nan
    with pytest.raises(ValueError, match=r"^images\[1\]: 4 NaN or infinite"):
        pipe([f, nan])  # one NaN patch used to make the whole output NaN
    with pytest.raises(ValueError, match=r"^images\[1\]: 1 NaN or infinite"):
        pipe([f, np.where(np.arange(f.size).reshape(f.shape) == 7, np.inf, f)])
    with pytest.raises(ValueError, match=r"^images\[0\]: expected shape"):
        pipe([np.zeros((24, 20, 4), np.float32), f])


def test_sampler_options_are_checked(tiny_folder: Path) -> None:
    pipe = FusionPipeline.from_pretrained(tiny_folder)
    f = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        pipe([f, f], steps=0)  # used to be ignored silently
    with pytest.raises(
        ValueError, match="unknown sampler 'bogus'; choose from euler, midpoint, midpoint_reuse"
    ):
        pipe([f, f], sampler="bogus")
    with pytest.raises(ValueError, match="tile -1: give a window of at least 4 latents, or 0"):
        pipe([f, f], tile=-1)
    assert pipe([f, f], steps=1, sampler="euler", tile=0).shape == (16, 16)


def test_a_damaged_model_folder_names_the_file(tiny_folder: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_folder, folder)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"m/config\.json: must hold a JSON object"):
        FusionPipeline.from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"m/config\.json: not valid JSON"):
        FusionPipeline.from_pretrained(folder)
    shutil.copy(tiny_folder / "config.json", folder / "config.json")
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(ValueError, match=r"m/model\.safetensors: not a readable safetensors file"):
        FusionPipeline.from_pretrained(folder)
    other = load_train_config(
        "tiny-fm", [*TINY, "text_encoder=none", "model.prompt=false", "model.hidden=64"]
    )
    save_pretrained(FusionDiT(other.model), other, tmp_path / "wide")
    shutil.copy(tmp_path / "wide" / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"m/model\.safetensors: the weights do not fit the model's config"):
        FusionPipeline.from_pretrained(folder)


def test_prompt_checks(tmp_path: Path) -> None:
    assert check_prompt(None) is None and check_prompt("remove the rain").instruction == "remove the rain"
    for bad, message in (
        ("", "prompt is empty"),
        ("  ", "prompt is empty"),
        ("caf\udce9", r"not valid UTF-8 text \(byte 0xe9 at character 3\)"),
        ("[DANCE]. go", r"unknown task tag \[DANCE\]"),
        ("[FUSION]. <WOBBLY>. fuse", "unknown subtag <WOBBLY>"),
    ):
        with pytest.raises(ValueError, match=message):
            check_prompt(bad)


def test_prompts_are_wrapped_in_the_training_template() -> None:
    kinds = "data.kinds={vif: 1, mef: 1, mff: 1, control: 1}"  # trained on [CONTROL] too
    cfg = load_train_config("tiny-reg", [*TINY, "text_encoder=none", kinds])
    pipe = FusionPipeline(FusionDiT(cfg.model), cfg, None, None, "t")
    p = pipe.build_prompt("remove the rain", "vif")
    assert p.startswith("[FUSION]. <MULTI-MODALITIES>. This is the first image") and p.endswith(
        "remove the rain"
    )
    assert pipe.build_prompt(None, "mef").startswith("[FUSION]. <MULTI-EXPOSURE>.")
    assert pipe.build_prompt("[CONTROL]. <LIGHT+>. brighter", "mef").startswith("[CONTROL]. <LIGHT+>.")
    with pytest.raises(ValueError, match="unknown task tag"):
        pipe.build_prompt("[DANCE]. go", "vif")


def test_a_tag_the_model_was_not_trained_on_is_refused() -> None:
    cfg = load_train_config("tiny-reg", [*TINY, "text_encoder=none"])  # fusion kinds only
    pipe = FusionPipeline(FusionDiT(cfg.model), cfg, None, None, "fusion-only")
    assert pipe.build_prompt("[FUSION]. <MULTI-FOCUS>. fuse", "mff").startswith("[FUSION]. <MULTI-FOCUS>.")
    for prompt, named in (
        ("[CONTROL]. <LIGHT+>. brighter", r"\[CONTROL\], <LIGHT\+>"),
        ("[SEG]. the car", r"\[SEG\]"),
    ):
        with pytest.raises(ValueError, match=f"fusion-only was not trained for {named} .*it knows: FUSION"):
            pipe.build_prompt(prompt, "vif")


def test_a_folder_from_newer_code_loads_with_a_warning(tiny_folder: Path, tmp_path: Path) -> None:
    import json
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_folder, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["future_key"], cfg["model"]["future_switch"] = 1, True
    (folder / "config.json").write_text(json.dumps(cfg))
    want = r"config\.json: ignoring .*'model\.future_switch', 'future_key'"
    with pytest.warns(UserWarning, match=want):
        pipe = FusionPipeline.from_pretrained(folder)
    assert pipe.cfg == FusionPipeline.from_pretrained(tiny_folder).cfg
    cfg["format_version"] = 2
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.warns(UserWarning, match="format_version 2 is newer"):
        FusionPipeline.from_pretrained(folder)


def test_a_tokenizer_other_than_the_trained_one_is_refused(tiny_folder: Path, tmp_path: Path) -> None:
    import json
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(tiny_folder, folder)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["tokenizer"]["fingerprint"]
    cfg["tokenizer"]["fingerprint"] = "0123456789abcdef"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="its tokenizer has fingerprint 0123456789abcdef, the one installed"):
        FusionPipeline.from_pretrained(folder)
