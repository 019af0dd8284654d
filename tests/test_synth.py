"""Sample synthesis end to end: determinism, datasets, `allfuse synth` shards, resume, --list, preview."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from allfuse.data.control import CONTROLS
from allfuse.data.datasets import MixConfig, ShardDataset, SynthDataset, to_chw
from allfuse.data.pipeline import PipelineConfig
from allfuse.data.samples import SAMPLE_KINDS, Sources, make_sample
from allfuse.data.severity import OP_NAMES
from allfuse.data.sources import PairPool
from allfuse.data.synth_cli import add_synth_parser, cmd_synth
from allfuse.io import write_image


def scene(seed: int, h: int = 72, w: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    return np.clip(base * rng.uniform(0.5, 1, 3) + 0.1 * rng.random((h, w, 3)), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def pair_root(tmp_path_factory) -> Path:
    """A tiny dataset: ivif/Toy/{ir,vi}, mef/Toy/{under,over}, mff/Toy/{near,far} (+ labels on ivif)."""
    root = tmp_path_factory.mktemp("pairs")
    layouts = {"ivif": ("ir", "vi"), "mef": ("under", "over"), "mff": ("near", "far")}
    for task, (a, b) in layouts.items():
        for k in range(2):
            x = scene(k)
            first = x.mean(axis=2) if task == "ivif" else 0.5 * x if task == "mef" else x
            write_image(root / task / "Toy" / a / f"p{k}.png", first)
            write_image(
                root / task / "Toy" / b / f"p{k}.png", np.clip(x * (1.6 if task == "mef" else 1), 0, 1)
            )
    labels = root / "ivif" / "Toy" / "labels"
    labels.mkdir()
    for k in range(2):
        lab = np.zeros((72, 96), np.uint8)
        lab[20:50, 30:70] = 1
        from PIL import Image

        Image.fromarray(lab).save(labels / f"p{k}.png")
    (root / "ivif" / "Toy" / "classes.txt").write_text("background\ncar\n")
    return root


def synth(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_synth_parser(parser.add_subparsers(dest="cmd"))
    return cmd_synth(parser.parse_args(["synth", *argv]))


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_every_kind_deterministic(kind, pair_root):
    src = Sources(PairPool([pair_root]), config=PipelineConfig(size=48))
    a = make_sample(kind, src, seed=3, index=5)
    b = make_sample(kind, Sources(PairPool([pair_root]), config=PipelineConfig(size=48)), seed=3, index=5)
    for x, y in zip((*a.degraded, a.target), (*b.degraded, b.target), strict=True):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == np.float32 and x.shape[:2] == (48, 48) and 0 <= x.min() and x.max() <= 1
    assert a.prompt == b.prompt and json.dumps(a.meta) == json.dumps(b.meta)
    others = [make_sample(kind, src, seed=4, index=5), make_sample(kind, src, seed=3, index=5, epoch=1)]
    for c in others:
        assert c.prompt != a.prompt or not np.array_equal(c.degraded[0], a.degraded[0])


def test_seg_uses_label_masks(pair_root):
    src = Sources(PairPool([pair_root / "ivif"]), config=PipelineConfig(size=48), seg_real=1.0)
    s = make_sample("seg", src, 0, 0)
    assert s.meta["class"] == "car" and s.meta["labels"].endswith(".png")
    assert "car" in s.instruction
    synthetic = Sources(PairPool([pair_root / "ivif"]), config=PipelineConfig(size=48), seg_real=0.0)
    assert make_sample("seg", synthetic, 0, 0).meta["sources"] == ["synthetic_scene"]
    mixed = Sources(src.pairs, config=src.config)
    drawn = {"labels" in make_sample("seg", mixed, 0, i).meta for i in range(12)}
    assert drawn == {True, False}  # the default mixes labelled pairs and synthetic scenes


def test_control_weights_choose_the_levels_drawn(pair_root):
    pool, cfg = PairPool([pair_root / "mef"]), PipelineConfig(size=48)
    only = Sources(pool, config=cfg, control_weights={"CONTRAST+": 1, **{c: 0 for c in CONTROLS[:4]}})
    drawn = [make_sample("control", only, 0, i).meta["control"] for i in range(30)]
    assert set(drawn) == {"CONTRAST+", "CONTRAST-"} and drawn.count("CONTRAST+") > 5
    heavy = Sources(pool, config=cfg, control_weights={"CONTRAST-": 20})
    drawn = [make_sample("control", heavy, 0, i).meta["control"] for i in range(30)]
    assert drawn.count("CONTRAST-") > 15 and len(set(drawn)) > 1
    mix = MixConfig(kinds={"control": 1})
    with pytest.raises(ValueError, match="CONTRAST0"):
        SynthDataset([pair_root / "mef"], mix=mix, control_weights={"CONTRAST0": 2})
    with pytest.raises(ValueError, match=">= 0"):
        SynthDataset([pair_root / "mef"], mix=mix, control_weights={"LIGHT+": -1})


def test_seg_labels_kept_apart_from_the_data(pair_root, tmp_path):
    """A label tree mirroring <task>/<DATASET> (tools/label_objects.py) labels pairs it does not live in."""
    mef = pair_root / "mef"
    unlabelled = Sources(PairPool([mef]), seg_real=1.0)
    assert make_sample("seg", unlabelled, 0, 0).meta["sources"] == ["synthetic_scene"]
    folder = tmp_path / "mef" / "Toy"
    (folder / "labels").mkdir(parents=True)
    (folder / "classes.txt").write_text("background\nperson\n")
    lab = np.zeros((72, 96), np.uint8)
    lab[10:40, 10:30] = 1
    from PIL import Image

    Image.fromarray(lab).save(folder / "labels" / "p1.png")
    src = Sources(PairPool([mef]), config=PipelineConfig(size=48), labels=(str(tmp_path),), seg_real=1.0)
    s = make_sample("seg", src, 0, 0)
    assert s.meta["class"] == "person" and s.meta["name"] == "p1" and "person" in s.instruction


def test_synth_dataset_items(pair_root):
    ds = SynthDataset([pair_root], MixConfig(pipeline=PipelineConfig(size=32)), length=12, seed=1)
    assert set(ds.kinds) == set(SAMPLE_KINDS)
    item = ds[3]
    keys = {"a", "b", "target", "clean_a", "clean_b", "task_id", "prompt", "meta", "mask", "has_mask"}
    assert set(item) == keys | {"label", "classes"}
    assert item["label"].shape == (1, 32, 32) and item["label"].dtype == torch.int64
    for k in ("a", "b", "target", "clean_a", "clean_b"):
        assert item[k].shape == (3, 32, 32) and item[k].dtype == torch.float32
        assert 0 <= float(item[k].min()) and float(item[k].max()) <= 1
    assert item["mask"].shape == (1, 32, 32) and item["has_mask"].dtype == torch.bool
    assert SAMPLE_KINDS[int(item["task_id"])] == json.loads(item["meta"])["kind"]
    s = ds.sample(3)  # the clean pair the degraded inputs came from
    for k, clean in zip(("clean_a", "clean_b"), s.clean, strict=True):
        assert torch.equal(item[k], to_chw(clean))
    again = ds[3]
    assert torch.equal(item["a"], again["a"]) and item["prompt"] == again["prompt"]  # same every epoch
    ds.set_epoch(1)
    moved = ds[3]
    assert not torch.equal(item["a"], moved["a"]) or item["prompt"] != moved["prompt"]
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["a"].shape == (4, 3, 32, 32) and len(batch["prompt"]) == 4
    assert batch["mask"].shape == (4, 1, 32, 32) and batch["has_mask"].shape == (4,)


def test_synth_dataset_without_pairs_and_natural_prompts():
    mix = MixConfig(kinds={"vif": 1.0, "m3": 1.0}, pipeline=PipelineConfig(size=32), prompt_style="natural")
    ds = SynthDataset([], mix, length=4)
    assert ds.kinds == ["m3"]
    assert not ds[0]["prompt"].startswith("[")
    with pytest.raises(ValueError):
        SynthDataset([], MixConfig(kinds={"vif": 1.0}))
    with pytest.raises(ValueError):
        MixConfig(kinds={"nope": 1.0})


def read_all(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_cli_shards_byte_identical_resumable(pair_root, tmp_path):
    args = ["--task", "vif", "--data", str(pair_root / "ivif"), "--count", "4", "--size", "32"]
    assert synth(*args, "--seed", "7", "--out", str(tmp_path / "a")) == 0
    assert synth(*args, "--seed", "7", "--out", str(tmp_path / "b")) == 0
    first = read_all(tmp_path / "a")
    assert first == read_all(tmp_path / "b")
    assert len(first) == 4 * 5 + 1
    assert synth(*args, "--seed", "8", "--out", str(tmp_path / "c")) == 0
    assert read_all(tmp_path / "c")["000000_a.png"] != first["000000_a.png"]
    # resume: lose one sample's image and a torn meta line, rerun -> same bytes again
    (tmp_path / "a" / "000002_target.png").unlink()
    with open(tmp_path / "a" / "meta.jsonl", "a") as f:
        f.write('{"index": 9, "tor')
    assert synth(*args, "--seed", "7", "--out", str(tmp_path / "a")) == 0
    assert read_all(tmp_path / "a") == first
    rows = [json.loads(line) for line in (tmp_path / "a" / "meta.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert {"ops", "prompt", "instruction", "sources", "seed", "crop", "files"} <= set(rows[0])
    shards = ShardDataset(tmp_path / "a")
    item = shards[1]
    assert len(shards) == 4 and item["a"].shape == (3, 32, 32) and item["prompt"] == rows[1]["prompt"]


def test_cli_shard_matches_on_the_fly(pair_root, tmp_path):
    assert synth("--task", "m3", "--count", "2", "--size", "32", "--seed", "5", "--out", str(tmp_path)) == 0
    ds = SynthDataset([], MixConfig(kinds={"m3": 1.0}, pipeline=PipelineConfig(size=32)), length=2, seed=5)
    on_the_fly, written = ds[1], ShardDataset(tmp_path)[1]
    assert on_the_fly["prompt"] == written["prompt"]
    for k in ("a", "clean_a", "clean_b"):
        assert torch.allclose(on_the_fly[k], written[k], atol=0.5 / 255)  # PNG is 8-bit


def test_cli_list_json_covers_ops_and_tasks(capsys):
    assert synth("--list", "--format", "json") == 0
    cat = json.loads(capsys.readouterr().out)
    assert {r["op"] for r in cat["ops"]} == set(OP_NAMES)
    assert set(cat["tasks"]) == set(SAMPLE_KINDS)
    noise = next(r for r in cat["ops"] if r["op"] == "noise")
    assert noise["params"]["sigma"]["levels"]["severe"] and noise["tasks"] == ["vif", "mef", "mff"]
    assert synth("--list") == 0 and "ir_stripes" in capsys.readouterr().out


def test_cli_preview_and_errors(pair_root, tmp_path, capsys):
    png = tmp_path / "grid.png"
    assert synth("--task", "seg", "--count", "2", "--size", "32", "--preview", str(png)) == 0
    assert png.stat().st_size > 1000
    assert synth("--task", "mef", "--count", "1", "--out", str(tmp_path / "x")) == 2  # no pairs
    assert synth("--task", "vif") == 2
    assert "error" in capsys.readouterr().out


def test_real_pairs_smoke(shared_data, tmp_path):
    for task, folder in (("vif", "ivif/MSRS"), ("mef", "mef/MEFB"), ("mff", "mff/Lytro")):
        src = Sources(PairPool([shared_data / folder]), config=PipelineConfig(size=64))
        s = make_sample(task, src, 0, 0)
        assert s.target.shape[:2] == (64, 64) and s.meta["teacher"].startswith("classical")
