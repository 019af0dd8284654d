"""Validation pairs never reach training; self pairs and defocus blur of the synthesis pipeline."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from allfuse.color import to_gray
from allfuse.data.degradations import gaussian_blur
from allfuse.data.kernels import disk_kernel
from allfuse.data.pipeline import PipelineConfig
from allfuse.data.samples import Sources, make_sample
from allfuse.data.sources import ImagePool, PairPool, validation_pairs
from allfuse.train.config import load_train_config
from allfuse.train.data import build_dataset


def _pair_folder(root: Path, names: list[str]) -> None:
    rng = np.random.default_rng(0)
    for sub in ("near", "far"):
        (root / "mff" / "Set" / sub).mkdir(parents=True, exist_ok=True)
        for n in names:
            x = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
            PILImage.fromarray(x).save(root / "mff" / "Set" / sub / f"{n}.png")


def test_pool_leaves_out_the_pairs_splits_json_names(tmp_path: Path) -> None:
    _pair_folder(tmp_path, ["a", "b", "c"])
    (tmp_path / "splits.json").write_text(json.dumps({"val": {"Set": ["b"]}}))
    pool = PairPool([tmp_path])
    assert sorted(p.name for p in pool.pairs) == ["a", "c"]
    assert [p.name for p in pool.excluded] == ["b"]
    assert [p.name for p in PairPool([tmp_path / "mff" / "Set"]).pairs] == ["a", "c"]  # from a parent
    assert len(PairPool([tmp_path], include_validation=True).pairs) == 3


def test_photo_folders_leave_out_the_validation_pairs_files(tmp_path: Path) -> None:
    _pair_folder(tmp_path, ["a", "b", "c"])
    (tmp_path / "splits.json").write_text(json.dumps({"val": {"Set": ["b"]}}))
    for root in (tmp_path, tmp_path / "mff" / "Set" / "near"):  # the data root or a source folder
        pool = ImagePool([root])
        assert "b" not in {p.stem for p in pool.paths} and {p.stem for p in pool.excluded} == {"b"}
    assert len(ImagePool([tmp_path], include_validation=True).paths) == 6


def test_tokenizer_training_leaves_out_the_validation_pairs(tmp_path: Path) -> None:
    from allfuse.tokenizer.data import split_dataset

    names = [f"p{i}" for i in range(10)]
    _pair_folder(tmp_path, names)

    def split() -> tuple[set[str], set[str]]:
        train, held = split_dataset(tmp_path, "mff/Set")
        return {e.path.stem for e in train}, {e.path.stem for e in held}

    assert split() == (set(names) - {"p4", "p9"}, {"p4", "p9"})  # no splits.json: every 5th pair
    (tmp_path / "splits.json").write_text(json.dumps({"val": {"Set": ["p0", "p4"]}}))
    assert split() == (set(names) - {"p0", "p4"}, {"p0", "p4"})  # the validation pairs


def test_bad_splits_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "splits.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"splits\.json"):
        validation_pairs(tmp_path)


def test_training_data_never_draws_a_validation_pair(shared_data: Path) -> None:
    val = validation_pairs(shared_data)
    assert len(val) == 75
    pool = PairPool([shared_data], cache=0)
    assert len(pool.excluded) == 75 and not {(p.dataset, p.name) for p in pool.pairs} & val
    cfg = load_train_config("tiny-reg", [f"data.data=[{shared_data}]", "data.length=40"])
    ds = build_dataset(cfg, seed=0)
    drawn = set()
    for i in range(40):
        meta = ds.sample(i).meta
        if "dataset" in meta:
            drawn.add((meta["dataset"], meta["name"]))
    assert drawn and not drawn & val


def test_self_pairs_are_the_teacher_fusion_twice_with_it_as_target(tmp_path: Path) -> None:
    _pair_folder(tmp_path, ["a"])
    src = Sources(PairPool([tmp_path]), config=PipelineConfig(size=32, self_pairs=1.0, n_ops=(0,)))
    s = make_sample("mff", src, 0, 3)
    assert "self_pair" in s.meta
    np.testing.assert_array_equal(s.degraded[0], s.degraded[1])
    np.testing.assert_array_equal(s.target, s.clean[0])
    src = Sources(PairPool([tmp_path]), config=PipelineConfig(size=32, n_ops=(0,)))
    plain = make_sample("mff", src, 0, 3)  # the same pair and crop: its target is the teacher's fusion
    assert "self_pair" not in plain.meta
    np.testing.assert_array_equal(s.target, plain.target)
    assert not np.array_equal(s.clean[0], plain.clean[0]) and not np.array_equal(s.clean[0], plain.clean[1])


def test_scene_self_pairs_are_a_training_visible_image_twice_with_it_as_target(tmp_path: Path) -> None:
    _pair_folder(tmp_path, ["a"])
    rng = np.random.default_rng(1)
    for sub, level in (("ir", 200), ("vi", 30)):  # a dark visible image, as a night scene's
        (tmp_path / "ivif" / "Night" / sub).mkdir(parents=True)
        for n in ("n1", "n2"):
            x = rng.integers(0, level, (40, 48, 3)).astype(np.uint8)
            PILImage.fromarray(x).save(tmp_path / "ivif" / "Night" / sub / f"{n}.png")
    (tmp_path / "splits.json").write_text(json.dumps({"val": {"Night": ["n2"]}}))
    pool = PairPool([tmp_path])
    config = PipelineConfig(size=32, scene_self_pairs=1.0, n_ops=(0,))
    for i in range(6):
        s = make_sample("mff", Sources(pool, config=config), 0, i)
        assert s.meta["self_pair"] == "scene" and (s.meta["dataset"], s.meta["name"]) == ("Night", "n1")
        np.testing.assert_array_equal(s.target, s.clean[0])
        np.testing.assert_array_equal(s.degraded[0], s.target)  # no op: it passes through
        assert s.target.mean() < 40 / 255  # the visible image, not the infrared one
    one_op = dataclasses.replace(config, n_ops=(1,))
    for i in range(6):  # every op goes on both copies, as on one capture
        ops = make_sample("mff", Sources(pool, config=one_op), 0, i).meta["ops"]
        assert len(ops) == 1 and ops[0]["images"] == [0, 1]
    vif = make_sample("vif", Sources(pool, config=config), 0, 0)
    assert "self_pair" not in vif.meta  # multi-focus samples only
    with pytest.raises(ValueError, match="no mef pairs"):  # not one exposure twice: that is not a bracket
        make_sample("mef", Sources(pool, config=config), 0, 0)
    # At 0 no number is drawn (old recipes replay unchanged); any p > 0 draws one, shifting the stream.
    off = make_sample("mff", Sources(pool, config=dataclasses.replace(config, scene_self_pairs=0.0)), 0, 4)
    tiny = make_sample("mff", Sources(pool, config=dataclasses.replace(config, scene_self_pairs=1e-12)), 0, 4)
    assert "self_pair" not in tiny.meta and off.meta["crop"] != tiny.meta["crop"]
    with pytest.raises(ValueError, match="scene_self_pairs"):
        make_sample("mff", Sources(PairPool([tmp_path / "mff"]), config=config), 0, 0)
    with pytest.raises(ValueError, match="scene_self_pairs"):
        PipelineConfig(scene_self_pairs=1.5)


def test_gray_turns_a_multi_focus_sample_gray_before_it_is_degraded(tmp_path: Path) -> None:
    _pair_folder(tmp_path, ["a"])
    pool = PairPool([tmp_path])
    config = PipelineConfig(size=32, gray=1.0, n_ops=(0,))
    gray = make_sample("mff", Sources(pool, config=config), 0, 0)
    colour = make_sample("mff", Sources(pool, config=dataclasses.replace(config, gray=0.0)), 0, 0)
    assert gray.meta["gray"] and "gray" not in colour.meta
    for x in (*gray.clean, gray.target, *gray.degraded):  # three equal channels, sources and target alike
        assert x.shape[-1] == 3
        assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2])
    assert not np.array_equal(colour.clean[0][..., 0], colour.clean[0][..., 1])
    # the same crop (drawn before the gray draw), as its luminance
    np.testing.assert_allclose(gray.clean[0][..., 0], to_gray(colour.clean[0]), atol=1e-6)
    np.testing.assert_allclose(gray.target[..., 0], to_gray(colour.target), atol=1e-6)
    with pytest.raises(ValueError, match="gray"):
        PipelineConfig(gray=1.5)


def test_defocus_disk_has_the_gaussian_std_and_erases_mid_frequencies_harder() -> None:
    k = disk_kernel(4.0)
    assert k.sum() == pytest.approx(1.0) and k.shape == (9, 9)
    x = np.mgrid[-4:5, -4:5][1]
    assert np.sqrt((k * x**2).sum()) == pytest.approx(2.0, rel=0.06)  # disk of radius r: std r / 2
    img = np.zeros((64, 64), np.float32)
    img[:, ::8] = 1.0  # stripes of period 8 px
    gauss, _ = gaussian_blur(img, np.random.default_rng(0), {"sigma": 1.5, "kernel": 0})
    disk, _ = gaussian_blur(img, np.random.default_rng(0), {"sigma": 1.5, "kernel": 1})
    assert disk[8:-8, 8:-8].std() < gauss[8:-8, 8:-8].std()


def test_crops_are_never_enlarged_when_the_source_is_large_enough() -> None:
    from allfuse.data.pipeline import sample_crop

    cfg = PipelineConfig(size=128, min_scale=0.1)
    rng = np.random.default_rng(0)
    boxes = [sample_crop(400, 600, rng, cfg) for _ in range(200)]
    assert min(min(b.h, b.w) for b in boxes) >= 127  # rounding
    assert max(min(b.h, b.w) for b in boxes) > 300  # still the whole range of scales
    small = [sample_crop(100, 100, rng, cfg) for _ in range(20)]  # smaller than the output: largest crop
    assert all(max(b.h, b.w) == 100 for b in small)


def test_op_weights_reach_the_pipeline_and_typos_are_refused() -> None:
    cfg = load_train_config("tiny-reg", ["data.op_weights={haze: 3, rain: 0}", "data.data=[]"])
    assert build_dataset(cfg, seed=0).sources.config.op_weights == {"haze": 3, "rain": 0}
    with pytest.raises(ValueError, match="hze"):
        PipelineConfig(op_weights={"hze": 2.0})
    with pytest.raises(ValueError, match=">= 0"):
        PipelineConfig(op_weights={"haze": -1.0})
