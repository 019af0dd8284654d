"""Training the JointDiT (DiTFuse) with the shared loop: presets, exact resume of both stages, LoRA that
moves only the adapters, export that merges them, and the config errors a user can make."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from allfuse.cli import main
from allfuse.io import write_image
from allfuse.model_folder import read_model_config, resolve_model_folder
from allfuse.models import JointDiT
from allfuse.models.lora import LoRALinear, add_lora
from allfuse.train.checkpoint import load_checkpoint
from allfuse.train.config import TRAIN_PRESETS, check_runnable, config_from_dict, load_train_config
from allfuse.train.data import Frozen, build_dataset
from allfuse.train.loop import train
from allfuse.train.network import build_trainee, trained_network

# A JointDiT of ~30k parameters on 32 px M3 / control / seg samples (bundled images, no ../shared).
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
    "data.length=16",
    "log_every=1",
    "ckpt_every=3",
    "val_every=0",
    "warmup=2",
    "bf16=false",
]


def latest(run: Path, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    """A file of the run's latest checkpoint."""
    return load_file(run / json.loads((run / "latest.json").read_text())["path"] / name)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step M3 pretraining run (text encoder: the bundled MiniLM)."""
    run = tmp_path_factory.mktemp("joint") / "stage1"
    train(load_train_config("tiny-ditfuse", [*TINY, f"out_dir={run}", "max_steps=4", "lr=3e-3"]))
    return run


def test_presets_are_the_two_ditfuse_stages() -> None:
    one, two = TRAIN_PRESETS["tiny-ditfuse"], TRAIN_PRESETS["tiny-ditfuse-lora"]
    assert one.arch == two.arch == "joint" and one.objective.kind == "flow" and one.sampler.method == "euler"
    assert dict(one.data.kinds) == {"m3": 1.0} and one.lora.rank == 0
    assert {"m3", "control", "seg", "vif"} <= set(two.data.kinds) and two.lora.rank == 8
    assert (two.guidance.drop_text, two.guidance.drop_image) == (0.1, 0.1)


def test_stage1_resume_gives_the_same_weights(tmp_path: Path) -> None:
    # N + N steps equals 2N steps, as for the FusionDiT (tests/test_train_loop.py)
    args = [*TINY, "text_encoder=none", "max_steps=6", "guidance.drop_text=0.3", "guidance.drop_image=0.2"]
    train(load_train_config("tiny-ditfuse", [*args, f"out_dir={tmp_path / 'a'}"]))
    split = load_train_config("tiny-ditfuse", [*args, f"out_dir={tmp_path / 'b'}"])
    train(split, until=3)
    assert "step_00000003" in (tmp_path / "b" / "latest.json").read_text()
    train(split)
    for name in ("model.safetensors", "ema.safetensors"):
        assert_same(latest(tmp_path / "a", name), latest(tmp_path / "b", name))
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,lr,it_s,mse,loss") and len(log) == 7


def test_lora_stage_trains_only_adapters_and_resumes_exactly(stage1: Path, tmp_path: Path) -> None:
    args = [*TINY, f"init_from={stage1}", "max_steps=6", "lora.rank=4", "lora.alpha=8", "lora.dropout=0.2"]
    train(load_train_config("tiny-ditfuse-lora", [*args, f"out_dir={tmp_path / 'a'}"]))
    split = load_train_config("tiny-ditfuse-lora", [*args, f"out_dir={tmp_path / 'b'}"])
    train(split, until=3)
    train(split)
    a = latest(tmp_path / "a")
    assert_same(a, latest(tmp_path / "b"))  # dropout too: the global RNG is seeded per micro-batch
    base = latest(stage1, "ema.safetensors")  # the base model is its EMA weights
    lora = {k: v for k, v in a.items() if "lora_" in k}
    assert lora and all(v.abs().sum() > 0 for k, v in lora.items() if k.endswith("lora_b"))
    for key, value in a.items():
        if "lora_" not in key:  # every base weight is frozen
            torch.testing.assert_close(value, base[key.replace(".base.", ".")], rtol=0, atol=0, msg=key)
    saved = json.loads((tmp_path / "a" / "step_00000006" / "config.json").read_text())
    assert saved["joint"]["hidden"] == 32 and saved["lora"]["rank"] == 4  # the base's network config


def test_export_merges_the_adapters_into_plain_weights(stage1: Path, tmp_path: Path) -> None:
    run = tmp_path / "lora"
    args = [*TINY, f"init_from={stage1}", "max_steps=2", "lr=0.05", f"out_dir={run}"]
    val = ["val_every=2", "data.val_pairs=2"]  # validation samples with guidance, as the export will
    assert main(["train", "--config", "tiny-ditfuse-lora", *args, *val]) == 0
    assert set(json.loads((run / "val_latest.json").read_text())) >= {"step", "SF", "Qabf", "PSNR_ref"}
    assert main(["export", str(run), str(tmp_path / "model"), "--dtype", "fp32"]) == 0
    merged = load_file(tmp_path / "model" / "model.safetensors")
    assert set(merged) == set(JointDiT(load_train_config("tiny-ditfuse", TINY).joint).state_dict())
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["_class_name"] == "JointPipeline" and {"CONTROL", "LIGHT+", "SEG"} <= set(cfg["tags"])
    assert cfg["guidance"]["text"] == 2.0 and cfg["text_encoder"]["fingerprint"]
    record = json.loads((tmp_path / "model" / "training.json").read_text())
    assert record["dit"]["lora"]["rank"] == 8 and record["base"]["dit"]["data"]["kinds"] == {"m3": 1.0}
    # the merged network computes what the adapted one did
    saved = load_checkpoint(run)
    cfg_run = config_from_dict(saved.config)
    adapted = JointDiT(cfg_run.joint)
    add_lora(adapted, 8, None)
    adapted.load_state_dict(saved.ema)
    plain = trained_network(cfg_run, saved.ema)
    assert not any(isinstance(m, LoRALinear) for m in plain.modules())
    g = torch.Generator().manual_seed(0)
    conds = [torch.randn(1, 48, 8, 8, generator=g) for _ in range(2)]
    text, x = torch.randn(1, 5, 384, generator=g), torch.randn(1, 48, 8, 8, generator=g)
    with torch.no_grad():
        want = adapted.eval()(conds, text, None, x, torch.tensor([0.3]))
        torch.testing.assert_close(plain.eval()(conds, text, None, x, torch.tensor([0.3])), want)


@pytest.mark.parametrize(
    ("preset", "overrides", "message"),
    [
        ("tiny-reg", ["lora.rank=4"], "apply to arch=joint"),
        ("tiny-fm", ["guidance.drop_text=0.5"], "apply to arch=joint"),
        ("tiny-ditfuse", ["objective.kind=regression"], "flow matching from Gaussian noise"),
        ("tiny-ditfuse", ["objective.aux_weight=0.5"], "aux_weight=0"),
        ("tiny-ditfuse", ["sampler.method=bridge", "sampler.prior=mean"], "no bridge"),
        ("tiny-ditfuse", ["guidance.drop_text=0.7", "guidance.drop_image=0.5"], "sum <= 1"),
        ("tiny-ditfuse", ["lora.rank=-1"], "rank >= 0"),
        ("tiny-ditfuse", ["arch=both"], "not in"),
    ],
)
def test_config_errors(preset: str, overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_train_config(preset, overrides)


def test_lora_needs_a_base_and_the_base_a_joint_dit(
    stage1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="init_from=RUN_OR_MODEL_FOLDER"):
        check_runnable(load_train_config("tiny-ditfuse-lora"))
    assert main(["train", "--config", "tiny-ditfuse-lora", *TINY, f"out_dir={tmp_path}"]) == 2
    assert "give init_from=" in capsys.readouterr().err
    wrong = [*TINY, "max_steps=1", f"out_dir={tmp_path / 'x'}"]
    with pytest.raises(ValueError, match="a FusionDiT, not a JointDiT"):
        train(load_train_config("tiny-ditfuse-lora", [*wrong, "init_from=allfuse-reg"]))
    with pytest.raises(ValueError, match="set text_encoder=default"):
        train(load_train_config("tiny-ditfuse-lora", [*wrong, f"init_from={stage1}", "text_encoder=none"]))


def test_m3_images_come_from_a_photo_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("one", "two"):
        write_image(tmp_path / "photos" / f"{name}.png", rng.random((48, 64, 3), dtype=np.float32))
    cfg = load_train_config("tiny-ditfuse", [*TINY, f"data.images=[{tmp_path / 'photos'}]"])
    ds = build_dataset(cfg, 0)
    used = {json.loads(ds[i]["meta"])["sources"][0] for i in range(6)}
    assert used <= {str(tmp_path / "photos" / f) for f in ("one.png", "two.png")} and used
    with pytest.raises(FileNotFoundError, match=r"data\.images: no such folder"):
        build_dataset(load_train_config("tiny-ditfuse", [*TINY, f"data.images=[{tmp_path / 'no'}]"]), 0)


def test_seg_samples_carry_the_mask_their_overlay_was_drawn_on() -> None:
    cfg = load_train_config("tiny-ditfuse", [*TINY, "data.kinds={seg: 1, m3: 1}"])
    ds = build_dataset(cfg, 0)
    kinds = set()
    for i in range(8):
        item = ds[i]
        kind = json.loads(item["meta"])["kind"]
        kinds.add(kind)
        assert item["mask"].shape == (1, 32, 32) and bool(item["has_mask"]) == (kind == "seg")
        if kind == "seg":  # a synthetic scene: the target is the clean scene tinted exactly on the mask
            tinted = (item["target"] - item["clean_a"]).abs().sum(0) > 1e-6
            assert item["mask"][0].bool().equal(tinted) and tinted.any()
        else:
            assert not item["mask"].any()
    assert kinds == {"seg", "m3"}


def test_seg_items_carry_every_pixels_label() -> None:
    cfg = load_train_config("tiny-ditfuse", [*TINY, "data.kinds={seg: 1, m3: 1}"])
    ds = build_dataset(cfg, 0)
    seen = 0
    for i in range(8):
        item = ds[i]
        meta = json.loads(item["meta"])
        assert item["label"].shape == (1, 32, 32) and item["label"].dtype == torch.int64
        if meta["kind"] != "seg":
            assert (item["label"] == -1).all() and item["classes"] == ""
            continue
        seen += 1
        names = item["classes"].split("|")
        assert names[0] == "background" and names[meta["class_index"]] == meta["class"]
        assert item["mask"][0].bool().equal(item["label"][0] == meta["class_index"])
        assert 0 <= int(item["label"].min()) and int(item["label"].max()) < len(names)
    assert seen


def test_a_label_head_trains_alone_on_a_frozen_network(stage1: Path, tmp_path: Path) -> None:
    run = tmp_path / "labels"
    labels = "joint.mask_labels=[background, circle, square, triangle, star]"
    args = [*TINY, f"init_from={stage1}", "joint.mask_head=true", labels, "only_mask_head=true"]
    args += ["data.kinds={seg: 1}", "max_steps=3", "lr=1e-2", "ckpt_every=1", "keep_checkpoints=3"]
    train(load_train_config("tiny-ditfuse", [*args, f"out_dir={run}"]))
    log = (run / "log.csv").read_text().splitlines()
    assert "mask" in log[0].split(",") and len(log) == 4
    first, last = (load_file(run / f"step_{k:08d}" / "model.safetensors") for k in (1, 3))
    base = latest(stage1, "ema.safetensors")
    head = [k for k in last if k.startswith("mask_head.")]
    assert {k.split(".")[1] for k in head} == {"norm", "states", "pixels", "mix", "query", "log_scale"}
    for key in last:
        if key in head:
            continue
        torch.testing.assert_close(last[key], base[key], rtol=0, atol=0, msg=key)  # the network is frozen
    assert any(not torch.equal(first[k], last[k]) for k in head)  # the head learns
    saved = json.loads((run / "step_00000003" / "config.json").read_text())
    assert saved["joint"]["mask_labels"] == ["background", "circle", "square", "triangle", "star"]
    assert saved["only_mask_head"] is True
    assert main(["export", str(run), str(tmp_path / "folder")]) == 0
    tags = json.loads((tmp_path / "folder" / "config.json").read_text())["tags"]
    base_tags = read_model_config(resolve_model_folder(stage1)).tags
    assert base_tags and tags == [*base_tags, "SEG"]  # the base's tasks stay; the head adds SEG
    with pytest.raises(ValueError, match="only_mask_head"):
        load_train_config("tiny-ditfuse", [*TINY, f"init_from={stage1}", "joint.mask_head=true", labels])


def test_a_mask_head_joins_a_base_without_one_and_trains_with_the_adapters(
    stage1: Path, tmp_path: Path
) -> None:
    run = tmp_path / "seg"
    args = [*TINY, f"init_from={stage1}", "joint.mask_head=true", "lora.rank=4", "max_steps=3", "lr=1e-2"]
    train(load_train_config("tiny-ditfuse-lora", [*args, "data.kinds={seg: 1}", f"out_dir={run}"]))
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].split(",")[3:5] == ["mse", "mask"] and len(log) == 4
    weights = latest(run)
    head = {k: v for k, v in weights.items() if k.startswith("mask_head.")}
    saved = json.loads((run / "step_00000003" / "config.json").read_text())
    fresh = JointDiT(config_from_dict(saved).joint).mask_head
    assert fresh is not None and set(head) == {f"mask_head.{k}" for k in fresh.state_dict()}
    assert float(head["mask_head.bias"]) != -2.0  # trained from its initial bias
    base = latest(stage1, "ema.safetensors")
    frozen = [k for k in weights if "lora_" not in k and not k.startswith("mask_head.")]
    for key in frozen:
        torch.testing.assert_close(weights[key], base[key.replace(".base.", ".")], rtol=0, atol=0, msg=key)
    assert saved["joint"]["mask_head"] is True
    trainee = build_trainee(config_from_dict(saved), Frozen(config_from_dict(saved)), torch.device("cpu"))
    head_group = trainee.params[1]
    assert head_group["lr"] == 10 * 1e-2 and len(head_group["params"]) == len(head)  # mask_head_lr x lr
