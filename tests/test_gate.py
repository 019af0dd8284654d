"""The clean-input gate: its statistics respond to the degradations they stand for, its fit learns which
fusion to use from scored samples, and a model folder's gate hands a pair to the teacher's rule or to the
model, as the CLI and the Python API can be told not to."""

import dataclasses
import json
import shutil

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from allfuse.gate import (
    FEATURES,
    GATE_SIDE,
    IMAGE_FEATURES,
    GateConfig,
    TaskGate,
    image_features,
    pair_features,
    rule_fusion,
)
from allfuse.model_folder import resolve_model_folder
from allfuse.models.refine import classical_source
from allfuse.pipeline import FusionPipeline
from allfuse.train.gate import GateTrainConfig, fit_gate, fit_logistic, probabilities, train_gate

N = len(FEATURES)


def photo(name: str = "camera") -> np.ndarray:
    x = getattr(skdata, name)().astype(np.float32) / 255.0
    return np.ascontiguousarray(x[:256, :256])


def feature(x: np.ndarray, name: str) -> float:
    return float(image_features(x)[IMAGE_FEATURES.index(name)])


def always(p_rule: bool, tasks=("vif", "mef", "mff"), blend: float = 0.0) -> GateConfig:
    """A gate whose probability is 1 (rule) or 0 (model) whatever the inputs; below its threshold it mixes
    in the rule with weight `blend`."""
    one = TaskGate(weights=(0.0,) * N, bias=50.0 if p_rule else -50.0, mean=(0.0,) * N, scale=(1.0,) * N)
    if blend:
        one = dataclasses.replace(one, blend_weights=(0.0,) * N, blend_bias=50.0, blend_top=blend)
    return GateConfig(tasks={t: one for t in tasks})


def test_each_statistic_rises_with_the_degradation_it_stands_for() -> None:
    x = photo()
    rng = np.random.default_rng(0)
    noisy = np.clip(x + rng.normal(0, 10 / 255, x.shape), 0, 1).astype(np.float32)
    assert feature(x, "noise") < 4 < feature(noisy, "noise") < 14  # std x 255: about the noise added
    _, buf = cv2.imencode(".jpg", (x * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 15])
    coded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    assert feature(coded, "block") > feature(x, "block") + 0.2
    shifted = np.roll(coded, (3, 5), axis=(0, 1))  # the 8 px grid at another offset
    assert feature(shifted, "block") > feature(x, "block") + 0.2
    stripes = np.clip(x + 0.04 * rng.standard_normal(x.shape[1])[None, :], 0, 1).astype(np.float32)
    assert feature(stripes, "stripes") > feature(x, "stripes") + 0.5
    specks = x.copy()
    specks[rng.random(x.shape) < 0.01] = 1.0
    assert feature(specks, "impulse") > feature(x, "impulse") + 0.005
    soft = cv2.GaussianBlur(x, (0, 0), 2.0)
    assert feature(soft, "width") > feature(x, "width") + 0.5
    hazy = 0.4 * photo("astronaut") + 0.6 * np.float32(0.9)
    assert feature(hazy, "dark") > feature(photo("astronaut"), "dark") + 0.3
    dark = x * 0.1
    assert feature(dark, "mean") < 0.1 and feature(dark, "low") > 0.3 > feature(x, "low")
    assert feature(dark, "contrast") < 0.05 < feature(x, "contrast")
    bright = np.clip(x * 2.5, 0, 1)
    assert feature(bright, "high") > 0.3 > feature(x, "high")


def test_pair_features_are_order_free_and_large_inputs_are_measured_at_the_gate_size() -> None:
    a, b = photo(), photo("astronaut")
    f = pair_features([a, b])
    assert f.shape == (N,)
    np.testing.assert_array_equal(f, pair_features([b, a]))
    big = np.clip(cv2.resize(photo("astronaut"), (2 * GATE_SIDE,) * 2, interpolation=cv2.INTER_CUBIC), 0, 1)
    small = cv2.resize(big, (GATE_SIDE, GATE_SIDE), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(pair_features([big, big]), pair_features([small, small]), rtol=1e-4, atol=1e-6)


def test_the_weighted_logistic_fit_learns_where_a_choice_pays() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    gain = 0.05 * np.tanh(2 * x[:, 0] - x[:, 1])  # the rule pays where x0 is high and x1 low
    model = fit_logistic(x, gain > 0, np.abs(gain), l2=1.0)
    p = probabilities(model, x)
    assert ((p > 0.5) == (gain > 0)).mean() > 0.95
    assert model[2][0] > 0 > model[2][1] and abs(model[2][2]) < 0.3 * abs(model[2][0])


def records_for(task: str, n: int, rng: np.random.Generator, blends: bool = False) -> list[dict]:
    """Synthetic samples: the rule wins by 0.03 where the first feature (noise_min) is low, loses by 0.05
    above; with `blends`, among the degraded ones the rule also wins by 0.04 where the second feature is
    high, and a half-and-half mix there wins by 0.05 (more than either fusion)."""
    out = []
    for k in range(n):
        f = rng.normal(size=N)
        dq = 0.03 if f[0] < 0 else -0.05
        mix = {a: dq * a for a in (0.25, 0.5, 0.75)}
        if blends and f[0] >= 0 and f[1] > 0.5:
            dq, mix = 0.04, {0.25: 0.03, 0.5: 0.05, 0.75: 0.045}
        r = {
            "task": task,
            "scene": f"s{k % 40}",
            "ops": [] if f[0] < 0 else [["noise", 2]],
            "features": f.tolist(),
            "model": {"Qabf": 0.5, "VIF": 0.6},
            "rule": {"Qabf": 0.5 + dq, "VIF": 0.6 + dq},
        }
        if blends:
            r["blends"] = {f"{a:g}": {"Qabf": 0.5 + d, "VIF": 0.6 + d} for a, d in mix.items()}
        out.append(r)
    return out


def test_fit_gate_learns_each_task_and_reports_cross_validated_gains() -> None:
    rng = np.random.default_rng(2)
    records = records_for("vif", 200, rng) + records_for("mff", 200, rng)
    gate, report = fit_gate(records, GateTrainConfig(model="m", tasks=("vif", "mff")))
    assert set(gate.tasks) == {"vif", "mff"}
    for task in ("vif", "mff"):
        low, high = np.zeros(N), np.zeros(N)
        low[0], high[0] = -1.0, 1.0
        assert gate.tasks[task].probability(low) > gate.tasks[task].threshold
        assert gate.tasks[task].probability(high) < gate.tasks[task].threshold
    cv = report["cross_validated"]
    assert cv["clean"]["rule_share"] > 0.75 and cv["degraded"]["rule_share"] < 0.15
    assert (
        cv["all"]["Qabf_gain"] > 0.6 * cv["all"]["best_possible_Qabf_gain"] > 0
    )  # near the boundary it errs
    assert GateConfig.from_dict(json.loads(json.dumps(gate.to_dict()))) == gate
    assert all(g.blend_top == 0 for g in gate.tasks.values())  # no scored blends: no blend


def test_fit_gate_blends_where_a_mix_of_the_two_fusions_pays() -> None:
    rng = np.random.default_rng(3)
    records = records_for("mef", 400, rng, blends=True) + records_for("mff", 400, rng, blends=True)
    gate, report = fit_gate(records, GateTrainConfig(model="m", tasks=("mef", "mff"), blend_tasks=("mef",)))
    assert gate.tasks["mff"].blend_top == 0  # not among blend_tasks: it switches only
    g = gate.tasks["mef"]
    assert 0 < g.blend_top < 1  # a half-and-half mix pays more than the rule alone
    clean, noisy, mixed = np.zeros(N), np.zeros(N), np.zeros(N)
    clean[0], noisy[0], noisy[1], mixed[0], mixed[1] = -1.0, 1.0, -1.0, 1.0, 1.5
    assert g.rule_weight(clean)[1] == 1.0 and g.rule_weight(noisy)[1] < 0.1
    assert 0.25 < g.rule_weight(mixed)[1] < 1.0
    cv = report["cross_validated"]
    assert cv["mef"]["blend_share"] > 0.1 and cv["mff"]["blend_share"] == 0
    assert cv["clean"]["rule_share"] > 0.75
    assert GateConfig.from_dict(json.loads(json.dumps(gate.to_dict()))) == gate


def test_a_gate_with_squares_learns_a_choice_that_pays_at_both_ends_of_a_feature() -> None:
    rng = np.random.default_rng(4)
    records = []
    for k in range(400):  # the rule wins (clean pairs) where the first feature is far from 0 either way
        f = rng.normal(size=N)
        dq = 0.03 if abs(f[0]) > 1 else -0.05
        ops = [] if abs(f[0]) > 1 else [["noise", 2]]
        records.append(
            {"task": "mef", "scene": f"s{k % 40}", "ops": ops, "features": f.tolist(),
             "model": {"Qabf": 0.5, "VIF": 0.6}, "rule": {"Qabf": 0.5 + dq, "VIF": 0.6 + dq}}
        )  # fmt: skip
    linear, plain = fit_gate(records, GateTrainConfig(model="m", tasks=("mef",)))
    gate, report = fit_gate(records, GateTrainConfig(model="m", tasks=("mef",), squares_tasks=("mef",)))
    g = gate.tasks["mef"]
    assert g.squares and len(g.weights) == len(g.mean) == 2 * N and not linear.tasks["mef"].squares
    far, near = np.zeros(N), np.zeros(N)
    for v in (-2.0, 2.0):
        far[0] = v
        assert g.rule_weight(far)[1] == 1.0
    assert g.rule_weight(near)[1] == 0.0
    best = report["cross_validated"]["all"]["best_possible_Qabf_gain"]
    assert report["cross_validated"]["all"]["Qabf_gain"] > 0.8 * best
    assert plain["cross_validated"]["all"]["Qabf_gain"] < 0.5 * best  # a linear P cannot rise at both ends
    assert set(report["coefficients"]["mef"]) == set(FEATURES) | {f"{f}^2" for f in FEATURES}
    assert GateConfig.from_dict(json.loads(json.dumps(gate.to_dict()))) == gate
    with pytest.raises(ValueError, match="one per square"):
        dataclasses.replace(linear.tasks["mef"], squares=True)  # N weights where 2 N are needed


def test_bad_gate_configs_are_refused() -> None:
    good = always(True).to_dict()
    with pytest.raises(ValueError, match="features"):
        GateConfig.from_dict({**good, "features": list(FEATURES[:-1])})
    bad = json.loads(json.dumps(good))
    bad["tasks"]["vif"]["threshold"] = 1.5
    with pytest.raises(ValueError, match="task vif"):
        GateConfig.from_dict(bad)
    bad = json.loads(json.dumps(good))
    bad["tasks"]["vif"]["weights"] = [0.0] * (N - 1)
    with pytest.raises(ValueError, match="task vif"):
        GateConfig.from_dict(bad)
    with pytest.raises(ValueError, match="tasks must be among"):
        GateConfig(tasks={"seg": always(True).tasks["vif"]})
    bad = json.loads(json.dumps(always(False, blend=0.5).to_dict()))
    bad["tasks"]["vif"]["blend_weights"] = []
    with pytest.raises(ValueError, match="blend_weights"):
        GateConfig.from_dict(bad)
    with pytest.raises(ValueError, match="bad gate run"):
        GateTrainConfig(model="m", clean_share=1.5)
    with pytest.raises(ValueError, match="blend_tasks"):
        GateTrainConfig(model="m", blend_tasks=("seg",))
    with pytest.raises(ValueError, match="squares_tasks"):
        GateTrainConfig(model="m", squares_tasks=("seg",))
    with pytest.raises(ValueError, match="data_overrides"):
        GateTrainConfig(model="m", data_overrides={"ir_blur": 0.5})  # not a generator key
    with pytest.raises(ValueError, match="ir_weather_blur"):
        GateTrainConfig(model="m", data_overrides={"ir_weather_blur": 2.0})


def test_the_pipeline_hands_a_gated_pair_to_the_rule_and_keeps_the_option_off(tmp_path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(resolve_model_folder("allfuse-reg"), folder)
    pair = [photo(), photo()[:, ::-1].copy()]
    (folder / "gate.json").write_text(json.dumps({"gate": always(True).to_dict()}))
    pipe = FusionPipeline.from_pretrained(folder)
    rule = pipe(pair, task="vif")
    np.testing.assert_allclose(rule, classical_source(pair, "vif")[..., 0], atol=1e-6)  # gray in, gray out
    model = pipe(pair, task="vif", gate=False)
    assert np.abs(model - rule).mean() > 1e-3
    (folder / "gate.json").write_text(json.dumps({"gate": always(False).to_dict()}))
    np.testing.assert_array_equal(FusionPipeline.from_pretrained(folder)(pair, task="vif"), model)
    (folder / "gate.json").write_text(json.dumps({"gate": always(True, tasks=("mff",)).to_dict()}))
    only_mff = FusionPipeline.from_pretrained(folder)
    np.testing.assert_array_equal(only_mff(pair, task="vif"), model)  # not gated for this task
    assert only_mff.gate_decision(pair, "vif") == (-1.0, 0.0)
    again = FusionPipeline.from_pretrained(only_mff.save_pretrained(tmp_path / "again"))
    assert again.gate == only_mff.gate
    (folder / "gate.json").write_text(json.dumps({"gate": always(False, blend=0.25).to_dict()}))
    mixed = FusionPipeline.from_pretrained(folder)
    assert mixed.gate_decision(pair, "vif")[1] == pytest.approx(0.25)
    np.testing.assert_allclose(mixed(pair, task="vif"), 0.75 * model + 0.25 * rule, atol=1e-5)
    (folder / "gate.json").write_text(json.dumps({"gate": {"tasks": {"vif": {"bias": 1}}}}))
    with pytest.raises(ValueError, match=r"gate\.json"):
        FusionPipeline.from_pretrained(folder)


def test_a_deblocked_pair_is_never_the_rules_and_a_deconvolved_one_is_not_blended(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.deblock import encode_decode
    from allfuse.io import write_image

    folder = tmp_path / "m"
    shutil.copytree(resolve_model_folder("allfuse-reg"), folder)
    clean = [photo(), photo()[:, ::-1].copy()]
    coded = [encode_decode(x, 18) for x in clean]  # a JPEG of quality 18: the stage deblocks it
    for gate, raw in ((always(True), 1.0), (always(False, blend=0.25), 0.25)):
        (folder / "gate.json").write_text(json.dumps({"gate": gate.to_dict()}))
        pipe = FusionPipeline.from_pretrained(folder)
        assert pipe.gate_choice(clean, "vif")[2] == pytest.approx(raw)  # the gate alone would take the rule
        task, p, weight = pipe.gate_choice(coded, "vif")
        assert (task, weight) == ("vif", 0.0) and p == pytest.approx(float(raw == 1.0), abs=1e-6)
        assert pipe.gate_choice(coded, "vif", deblock=False)[2] == pytest.approx(raw)  # stage off: the gate's
        np.testing.assert_array_equal(pipe(coded, task="vif"), pipe(coded, task="vif", gate=False))
        blurred = [cv2.GaussianBlur(x, (0, 0), 2.0) for x in clean]  # measured blurred: deconvolved
        clean_or_no_blend = 1.0 if raw == 1.0 else 0.0  # measured clean: the rule; else no blend
        assert pipe.gate_choice(blurred, "vif")[2] == clean_or_no_blend
        assert pipe.gate_choice(blurred, "vif", deblur=False)[2] == pytest.approx(raw)
    paths = []
    for i, x in enumerate(coded):
        paths.append(tmp_path / f"in{i}.png")
        write_image(paths[-1], x)
    (folder / "gate.json").write_text(json.dumps({"gate": always(True).to_dict()}))
    out = str(tmp_path / "out.png")
    assert main(["fuse", *map(str, paths), "-o", out, "--task", "vif", "--model", str(folder), "-v"]) == 0
    shown = capsys.readouterr().out.split("gate (vif)")[1].splitlines()[0]
    assert ">= 0.50: the model fuses (an input was deblocked, JPEG quality <= 50: such a pair is" in shown
    (folder / "gate.json").write_text(json.dumps({"gate": always(False, blend=0.25).to_dict()}))
    for path, x in zip(paths, clean, strict=True):
        write_image(path, cv2.GaussianBlur(x, (0, 0), 2.0))
    assert main(["fuse", *map(str, paths), "-o", out, "--task", "vif", "--model", str(folder), "-v"]) == 0
    shown = capsys.readouterr().out.split("gate (vif)")[1].splitlines()[0]
    assert "< 0.50: the model fuses (an input was deconvolved: no blend with the rule)" in shown


def test_a_pair_the_corrector_changed_unevenly_is_not_blended(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import write_image
    from allfuse.pipeline import UNEVEN, uneven_correction

    assert uneven_correction((20.0, 0.5)) and uneven_correction((0.5, 20.0, 0.4))
    assert not uneven_correction((20.0, 18.0))  # an even correction
    assert not uneven_correction((UNEVEN[0] - 0.5, 0.0))  # too small a change to read
    assert not uneven_correction((20.0,)) and not uneven_correction(())
    folder = tmp_path / "m"
    shutil.copytree(resolve_model_folder("allfuse-reg"), folder)
    (folder / "gate.json").write_text(json.dumps({"gate": always(False, blend=0.25).to_dict()}))
    pipe = FusionPipeline.from_pretrained(folder)
    x = photo("astronaut")
    veiled = (0.55 * x + 0.45 * np.array([0.85, 0.87, 0.9], np.float32)).astype(np.float32)
    pair = [veiled, x]  # one input veiled: the corrector lifts its veil and leaves the other
    seen = pipe.stages.restore_gain(pipe.prepare(pair, "mff")[0], "mff")
    assert seen.corrected[0] >= UNEVEN[0] > 5 * seen.corrected[1]
    assert not seen.deblurred and not seen.deblocked
    assert pipe.gate_choice(pair, "mff")[2] == 0.0
    assert pipe.gate_choice(pair, "mff", correct=False)[2] == pytest.approx(0.25)  # no corrector: the blend
    both = [veiled, veiled[:, ::-1].copy()]  # both veiled alike: an even correction keeps the blend
    assert pipe.gate_choice(both, "mff", deblur=False)[2] == pytest.approx(0.25)
    np.testing.assert_array_equal(pipe(pair, task="mff"), pipe(pair, task="mff", gate=False))
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path, im in zip(paths, pair, strict=True):
        write_image(path, im)
    out = str(tmp_path / "out.png")
    assert main(["fuse", *map(str, paths), "-o", out, "--task", "mff", "--model", str(folder), "-v"]) == 0
    shown = capsys.readouterr().out.split("gate (mff)")[1].splitlines()[0]
    assert "the model fuses (the input corrector changed the inputs unevenly, " in shown
    assert "/255: no blend with the rule)" in shown


def test_a_large_pair_is_fused_by_the_rule_in_tiles_without_seams() -> None:
    a = np.clip(cv2.resize(photo("astronaut"), (700, 600), interpolation=cv2.INTER_CUBIC), 0, 1)
    b = cv2.GaussianBlur(a, (0, 0), 3.0)
    whole = rule_fusion([a, b], "mff")
    tiled = rule_fusion([a, b], "mff", tile_pixels=256 * 256)
    assert tiled.shape == whole.shape == (600, 700, 3)
    assert np.abs(tiled - whole).mean() < 2e-3 and np.abs(tiled - whole).max() < 0.1


def test_the_command_line_can_turn_the_gate_off_and_says_what_it_chose(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    folder = tmp_path / "m"
    shutil.copytree(resolve_model_folder("allfuse-reg"), folder)
    (folder / "gate.json").write_text(json.dumps({"gate": always(True).to_dict()}))
    paths = []
    for i, x in enumerate((photo(), photo()[:, ::-1].copy())):
        paths.append(tmp_path / f"in{i}.png")
        write_image(paths[-1], x)
    outs = {flag: tmp_path / f"out{i}.png" for i, flag in enumerate((("-v",), ("--no-gate",)))}
    for flag, out in outs.items():
        args = ["fuse", *map(str, paths), "-o", str(out), "--task", "vif", "--model", str(folder), *flag]
        assert main(args) == 0
    assert "the classical rule gff fuses" in capsys.readouterr().out
    on, off = (read_image(out).astype(np.float32) for out in outs.values())
    assert np.abs(on - off).mean() > 2 / 255  # uint8 PNGs: the gate changed the fusion
    (folder / "gate.json").write_text(json.dumps({"gate": always(False, blend=0.25).to_dict()}))
    mixed = str(tmp_path / "mixed.png")
    assert main(["fuse", *map(str, paths), "-o", mixed, "--task", "vif", "--model", str(folder), "-v"]) == 0
    shown = capsys.readouterr().out
    assert (
        "the model's fusion mixed with 25% of the rule gff's; its latent path runs on the inputs and on"
        in shown
    )
    assert (
        main(
            [
                "fuse",
                *map(str, paths),
                "-o",
                mixed,
                "--task",
                "vif",
                "--model",
                str(folder),
                "-v",
                "--no-mirror",
            ]
        )
        == 0
    )
    assert "mirror" not in capsys.readouterr().out.split("gate (vif)")[1].splitlines()[0]


def test_a_gate_run_draws_training_pairs_only_and_resumes(tmp_path, shared_data) -> None:
    from allfuse.data.sources import validation_pairs

    out = tmp_path / "gate"
    cfg = GateTrainConfig(
        model="allfuse-reg", out_dir=str(out), data=(str(shared_data),), samples=6, max_side=128
    )
    train_gate(cfg, until=3)
    assert len((out / "samples.jsonl").read_text().splitlines()) == 3 and not (out / "gate.json").exists()
    with (out / "samples.jsonl").open("a") as f:
        f.write('{"k": 3, "task": "vif", "fea')  # a run killed while writing
    train_gate(cfg, until=3)
    assert len((out / "samples.jsonl").read_text().splitlines()) == 3
    train_gate(cfg)
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["k"] for r in records] == list(range(6))
    held = {f"{dataset}/{name}" for dataset, name in validation_pairs(shared_data)}
    assert not {r["scene"] for r in records} & held
    gate = GateConfig.from_dict(json.loads((out / "gate.json").read_text())["gate"])
    assert set(gate.tasks) == {"vif", "mef", "mff"}
    assert "cross_validated" in json.loads((out / "report.json").read_text())
    # samples measured by a version with other features are measured again, on the same inputs
    older = [{**r, "features": r["features"][:-2]} for r in records]
    (out / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in older))
    train_gate(cfg)
    again = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [{**r, "features": None} for r in again] == [{**r, "features": None} for r in records]
    # the same inputs; the corrector's multi-threaded sums may differ in their last bits
    np.testing.assert_allclose([r["features"] for r in again], [r["features"] for r in records], atol=1e-3)


def test_export_adds_a_gate_run_to_a_model_folder(tmp_path) -> None:
    from allfuse.cli import main

    run, folder = tmp_path / "run", tmp_path / "m"
    run.mkdir()
    shutil.copytree(resolve_model_folder("allfuse-reg"), folder)
    (folder / "gate.json").unlink(missing_ok=True)
    gate = always(True, tasks=("mef",))
    (run / "gate.json").write_text(json.dumps({"gate": gate.to_dict()}))
    assert main(["export", str(run), str(folder)]) == 0
    assert FusionPipeline.from_pretrained(folder).gate == gate
    assert main(["export", str(run), str(folder), "--tasks", "vif"]) == 2
    # a run fitted for one task replaces that task's gate and leaves the folder's others
    vif = always(False, tasks=("vif",), blend=0.5)
    (run / "gate.json").write_text(json.dumps({"gate": vif.to_dict()}))
    assert main(["export", str(run), str(folder)]) == 0
    merged = FusionPipeline.from_pretrained(folder).gate
    assert merged.tasks == {"mef": gate.tasks["mef"], "vif": vif.tasks["vif"]}
    (run / "gate.json").unlink()
    assert main(["export", str(run), str(folder)]) == 2  # nothing to export


def test_the_web_demo_says_when_the_gate_gave_a_pair_to_the_rule_or_blended_it(tmp_path) -> None:
    from allfuse.io import write_image
    from allfuse.web.backend import DemoBackend

    paths = [write_image(tmp_path / f"{i}.png", x) for i, x in enumerate((photo(), photo()[:, ::-1].copy()))]
    notes = {}
    for name, gate in (("rule", always(True)), ("model", always(False)), ("mix", always(False, blend=0.5))):
        folder = tmp_path / name
        shutil.copytree(resolve_model_folder("allfuse-reg"), folder)
        (folder / "gate.json").write_text(json.dumps({"gate": gate.to_dict()}))
        backend = DemoBackend([str(folder)], [], tmp_path / "out")
        notes[name] = backend.fuse(paths, task="vif", method=str(folder)).status()
    assert "fused by the classical rule gff" in notes["rule"]
    assert "classical rule" not in notes["model"]
    assert "mixed with 50% of the classical rule gff's" in notes["mix"]
