"""FusionPipeline on a tiny untrained model: loading, sizes, colour policy, prompts, errors."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from allfuse.models import FusionDiT
from allfuse.pipeline import FusionPipeline, save_pretrained, work_size
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


def test_prompts_are_wrapped_in_the_training_template() -> None:
    cfg = load_train_config("tiny-reg", [*TINY, "text_encoder=none"])
    pipe = FusionPipeline(FusionDiT(cfg.model), cfg, None, None, "t")
    p = pipe.build_prompt("remove the rain", "vif")
    assert p.startswith("[FUSION]. <MULTI-MODALITIES>. This is the first image") and p.endswith(
        "remove the rain"
    )
    assert pipe.build_prompt(None, "mef").startswith("[FUSION]. <MULTI-EXPOSURE>.")
    assert pipe.build_prompt("[CONTROL]. <LIGHT+>. brighter", "mef").startswith("[CONTROL]. <LIGHT+>.")
    with pytest.raises(ValueError, match="unknown task tag"):
        pipe.build_prompt("[DANCE]. go", "vif")
