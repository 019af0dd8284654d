"""Pipeline routing and sampling, M3, control curves, segmentation overlays, prompts."""

import numpy as np
import pytest

from allfuse.data.control import CONTROLS, apply_control
from allfuse.data.m3 import m3_pair
from allfuse.data.pipeline import PipelineConfig, degrade_pair, sample_crop, sample_ops
from allfuse.data.prompts import (
    CONTROL_TAGS,
    SUBTAGS,
    TASK_TAGS,
    bank,
    compose_instruction,
    make_prompts,
    parse_prompt,
    tagged_prompt,
)
from allfuse.data.seg import OVERLAY_RGB, overlay, present_classes, synthetic_scene
from allfuse.data.severity import EXCLUSIVE, OP_NAMES, TASK_OPS, WEATHER_OPS


def test_sample_ops_task_sets_and_exclusivity():
    rng = np.random.default_rng(0)
    for task, allowed in TASK_OPS.items():
        for _ in range(200):
            ops = sample_ops(task, rng, PipelineConfig())
            names = [o for o, _ in ops]
            assert 1 <= len(ops) <= 3 and len(set(names)) == len(names)
            assert set(names) <= set(allowed)
            assert all(not g <= set(names) for g in EXCLUSIVE)
            assert all(lvl in (1, 2, 3) for _, lvl in ops)
    assert "ir_stripes" in TASK_OPS["vif"] and "ir_stripes" not in TASK_OPS["mef"]
    assert "high_exposure" in TASK_OPS["mff"] and "high_exposure" in TASK_OPS["vif"]
    assert "high_exposure" not in TASK_OPS["mef"]  # tried for MEF: no gain (allfuse-reg's card)
    assert all("low_contrast" in TASK_OPS[t] for t in ("vif", "mef", "mff"))
    only_blur = PipelineConfig(op_weights={o: 0 for o in OP_NAMES[1:]})
    assert [o for o, _ in sample_ops("vif", rng, only_blur)] == [OP_NAMES[0]]  # 0 weight drops an op


def test_vif_weather_on_visible_and_ir_gets_mild_blur():
    ir = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    vi = np.random.default_rng(2).random((64, 64, 3)).astype(np.float32)
    for op in WEATHER_OPS:
        out, rec = degrade_pair([ir, vi], "vif", [(op, 2)], np.random.default_rng(0))
        assert rec[0]["op"] == op and rec[0]["images"] == [1]
        assert rec[1] == {**rec[1], "op": "gaussian_blur", "level": 1, "images": [0], "ir_for": op}
        assert not np.array_equal(out[0], ir) and not np.array_equal(out[1], vi)
    out, rec = degrade_pair([ir, vi], "vif", [("ir_stripes", 2)], np.random.default_rng(0))
    assert rec[0]["images"] == [0] and np.array_equal(out[1], vi)
    for op in ("low_exposure", "high_exposure"):  # exposure is the visible camera's
        out, rec = degrade_pair([ir, vi], "vif", [(op, 2)], np.random.default_rng(0))
        assert rec[0]["images"] == [1] and np.array_equal(out[0], ir)


def test_ir_weather_blur_sets_how_often_the_ir_image_of_a_weather_pair_is_blurred():
    ir = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    vi = np.random.default_rng(2).random((64, 64, 3)).astype(np.float32)
    sharp = PipelineConfig(ir_weather_blur=0.0)
    for op in WEATHER_OPS:
        out, rec = degrade_pair([ir, vi], "vif", [(op, 2)], np.random.default_rng(0), sharp)
        assert [r["op"] for r in rec] == [op] and np.array_equal(out[0], ir)
    half = PipelineConfig(ir_weather_blur=0.5)
    blurred = [
        len(degrade_pair([ir, vi], "vif", [("rain", 1)], np.random.default_rng(s), half)[1]) == 2
        for s in range(40)
    ]
    assert 8 < sum(blurred) < 32
    with pytest.raises(ValueError, match="ir_weather_blur"):
        PipelineConfig(ir_weather_blur=1.5)


def test_blur_one_puts_an_infrared_visible_blur_on_one_image_at_random():
    ir = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    vi = np.random.default_rng(2).random((64, 64, 3)).astype(np.float32)

    def run(images, task, op, seed, cfg):
        out, records = degrade_pair(images, task, [(op, 2)], np.random.default_rng(seed), cfg)
        return out, records[0]["images"]

    for op in ("gaussian_blur", "motion_blur", "downsample"):  # by default on both, as before
        assert run([ir, vi], "vif", op, 0, PipelineConfig())[1] == [0, 1]
    half = PipelineConfig(blur_one=0.5)
    runs = [run([ir, vi], "vif", "gaussian_blur", s, half) for s in range(60)]
    hits = [tuple(images) for _, images in runs]
    assert 15 < hits.count((0, 1)) < 45 and hits.count((0,)) > 5 and hits.count((1,)) > 5
    out = runs[hits.index((0,))][0]
    assert not np.array_equal(out[0], ir) and np.array_equal(out[1], vi)  # the visible image untouched
    always = PipelineConfig(blur_one=1.0)  # other tasks and other ops are not affected
    assert run([vi, vi], "mef", "gaussian_blur", 0, always)[1] == [0, 1]
    assert run([ir, vi], "vif", "noise", 0, always)[1] == [0, 1]
    with pytest.raises(ValueError, match="blur_one"):
        PipelineConfig(blur_one=-0.1)


def test_haze_variety_tints_the_airlight_and_varies_the_veil_and_replays_from_its_record():
    from allfuse.data.depth import HeuristicDepth
    from allfuse.data.weather import HazeVariety, haze

    y, x = np.mgrid[0:64, 0:96] / 64.0
    img = np.stack([0.4 + 0.1 * np.sin(6 * x), 0.4 + 0.1 * np.cos(5 * y), 0.4 + 0.0 * x], -1).astype(
        np.float32
    )
    depth = HeuristicDepth()(img)
    _, rec = degrade_pair([img, img], "mef", [("haze", 3)], np.random.default_rng(0))
    assert "variety" not in rec[0]  # haze_variety 0 (the default): the plain model
    varied = PipelineConfig(haze_variety=1.0)
    tints, spreads = [], []
    for seed in range(8):
        out, rec = degrade_pair(
            [img, img], "mef", [("haze", 3)], np.random.default_rng(seed), varied, HeuristicDepth()
        )
        v = HazeVariety(**{**rec[0]["variety"], "tint": tuple(rec[0]["variety"]["tint"])})
        d, beta = v.maps(depth)
        again, _ = haze(img, np.random.default_rng(99), rec[0]["params"], d, v.tint, beta)
        np.testing.assert_allclose(again, out[0], atol=1e-6)  # the record replays it
        np.testing.assert_array_equal(out[0], out[1])  # one scene, one veil
        assert 0.0 <= d.min() and d.max() <= 1.0 and beta.min() > 0.0
        tints.append(np.ptp(v.tint))
        spreads.append(float(np.std(beta)))
        # a far, hazy region takes the airlight's colour: the channels part by the tint
        far = out[0][d > np.quantile(d, 0.9)].mean(axis=0)
        order = np.argsort(v.tint)
        assert far[order[0]] < far[order[2]]
    assert max(tints) > 0.05 and max(spreads) > 0.05
    with pytest.raises(ValueError, match="haze_variety"):
        PipelineConfig(haze_variety=-0.1)


def test_shared_params_independent_noise():
    x = np.full((32, 32), 0.5, np.float32)
    out, _ = degrade_pair([x, x], "mef", [("noise", 2), ("gaussian_blur", 2)], np.random.default_rng(0))
    assert not np.array_equal(out[0], out[1])  # independent sensor noise
    out, _ = degrade_pair([x, x], "mef", [("rain", 3)], np.random.default_rng(0))
    np.testing.assert_array_equal(out[0], out[1])  # one weather layer for one scene


@pytest.mark.parametrize("keep", [False, True])
def test_crop_geometry(keep):
    cfg = PipelineConfig(size=64, keep_aspect=keep)
    rng = np.random.default_rng(0)
    img = np.random.default_rng(5).random((90, 160, 3)).astype(np.float32)
    seen = set()
    for _ in range(30):
        box = sample_crop(90, 160, rng, cfg)
        a, b = box.apply(img), box.apply(img.copy())
        np.testing.assert_array_equal(a, b)
        seen.add(box.aspect)
        ratio = max(map(int, box.aspect.split(":"))) / min(map(int, box.aspect.split(":")))
        assert abs(box.w / box.h - ratio) < 0.05 * ratio + 1 / box.h
        assert a.shape[:2] == ((box.out_h, box.out_w))
        assert a.shape[:2] == (64, 64) if not keep else max(a.shape[:2]) == 64
    assert seen == {"16:9", "4:3", "1:1"}


def test_m3_blocks_complementary():
    clean = np.random.default_rng(0).random((128, 128, 3)).astype(np.float32) * 0.5 + 0.25
    both = total = 0
    for seed in range(20):
        a, b, meta = m3_pair(clean, np.random.default_rng(seed), block=32)
        da = np.abs(a - clean).reshape(4, 32, 4, 32, 3).max(axis=(1, 3, 4)) > 0
        db = np.abs(b - clean).reshape(4, 32, 4, 32, 3).max(axis=(1, 3, 4)) > 0
        assert (da | db).all()  # every block degraded in at least one copy
        both += int((da & db).sum())
        total += da.size
        assert meta["blocks"] == 16 and meta["block"] == 32
    assert 0.15 < both / total < 0.35  # about a quarter in both


def test_control_curves_monotone_and_ordered():
    x = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    outs = {c: apply_control(x, c) for c in CONTROLS}
    for y in outs.values():
        assert np.all(np.diff(y.ravel()) >= 0)  # monotone: pixel order kept
    means = (
        [outs[c].mean() for c in ("LIGHT++", "LIGHT+")]
        + [x.mean()]
        + [outs[c].mean() for c in ("LIGHT-", "LIGHT--")]
    )
    assert means == sorted(means, reverse=True)
    assert outs["CONTRAST+"].std() > x.std() > outs["CONTRAST-"].std()
    with pytest.raises(ValueError):
        apply_control(x, "LIGHT+++")


def test_seg_overlay_and_synthetic_scene():
    img, label, names = synthetic_scene(np.random.default_rng(0), (96, 96))
    assert img.shape == (96, 96, 3) and label.shape == (96, 96)
    present = present_classes(label, names)
    assert present and all(0 < k < len(names) for k in present)
    k = present[0]
    out = overlay(img, label == k)
    m = label == k
    assert np.abs(out[~m] - img[~m]).max() == 0
    moved = out[m] - img[m]
    assert np.mean(moved @ (OVERLAY_RGB - 0.5)) > 0  # pulled toward blue
    gray = overlay(img[..., 0], label == k)
    assert gray.shape == (96, 96, 3)


def test_held_out_synthetic_scenes():
    """bench/seg.py's held-out scenes: the same classes and label rules, other textures than training's."""
    for held_out in (False, True):
        img, label, names = synthetic_scene(np.random.default_rng(3), (96, 96), held_out=held_out)
        assert names[1:] == ("circle", "square", "triangle", "star") and present_classes(label, names)
        assert img.shape == (96, 96, 3) and 0 <= img.min() and img.max() <= 1
    train = synthetic_scene(np.random.default_rng(3), (96, 96))[0]
    assert not np.allclose(img, train)


def test_prompt_bank_sizes_and_held_out_disjoint():
    b = bank()
    groups = [b["tasks"][k] for k in ("vif", "mef", "mff", "m3", "seg")]
    groups += [b["control"][k] for k in CONTROL_TAGS] + [b["degradations"][k] for k in OP_NAMES]
    for g in groups:
        assert len(set(g["train"])) >= 20
        assert len(g["held_out"]) >= 3 and not set(g["train"]) & set(g["held_out"])
    assert set(b["degradations"]) == set(OP_NAMES)


def test_held_out_wording_never_in_training_prompts():
    held = [
        p for grp in ("tasks", "control", "degradations") for v in bank()[grp].values() for p in v["held_out"]
    ]
    stems = [p.split("{")[0][:25] for p in held]
    rng = np.random.default_rng(0)
    for i in range(300):
        kind = ["vif", "mef", "mff", "m3", "seg"][i % 5]
        text = compose_instruction(kind, rng, [("noise", 2), ("rain", 3)], cls="circle")
        assert "{" not in text and not any(s in text for s in stems)
    text = compose_instruction("vif", rng, [("haze", 1)], split="held_out")
    assert sum(s in text for s in stems) == 2  # task sentence and degradation sentence both held out


def test_tagged_prompt_round_trip():
    rng = np.random.default_rng(0)
    cases = [("vif", None, "MULTI-MODALITIES"), ("mef", None, "MULTI-EXPOSURE"), ("mff", None, "MULTI-FOCUS")]
    cases += [("control", c, c) for c in CONTROL_TAGS] + [("m3", None, None), ("seg", None, None)]
    for kind, control, sub in cases:
        instruction, prompt = make_prompts(
            kind, rng, [("snow", 1)] if kind != "control" else (), control, "star"
        )
        parsed = parse_prompt(prompt)
        assert parsed.task == {"control": "CONTROL", "seg": "SEG"}.get(kind, "FUSION")
        assert parsed.subtags == ((sub,) if sub else ())
        assert parsed.instruction == instruction
        assert "<img><|image_1|></img>" in prompt and "<img><|image_2|></img>" in prompt
    assert len(TASK_TAGS) == 3 and len(SUBTAGS) == 9
    p = tagged_prompt("CONTROL", "LIGHT--", "make it darker")
    assert p.startswith("[CONTROL]. <LIGHT-->. This is the first image")
    assert parse_prompt("Fuse the images and increase the brightness.").task is None
    with pytest.raises(ValueError):
        parse_prompt("[EDIT]. fuse")
    with pytest.raises(ValueError):
        parse_prompt("[FUSION]. <LIGHT+++>. fuse")


def test_every_generator_field_is_a_training_data_key():
    import dataclasses

    from allfuse.train.config import DataConfig

    generator = {f.name for f in dataclasses.fields(PipelineConfig)}
    assert generator <= {f.name for f in dataclasses.fields(DataConfig)}
    assert DataConfig(ir_weather_blur=0.5).pipeline().ir_weather_blur == 0.5
    assert DataConfig(blur_one=0.4).pipeline().blur_one == 0.4
    assert DataConfig(haze_variety=0.5).pipeline().haze_variety == 0.5
