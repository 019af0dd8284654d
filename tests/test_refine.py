"""The pixel-space refiner: identity at init, any size, trains and resumes exactly behind a frozen DiT,
exports into a model folder that the pipeline then applies."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from allfuse.models.refine import MIX_PRIOR, Refiner, RefinerConfig, widen_state_dict
from allfuse.ops import gaussian_blur
from allfuse.train.refine import RefineTrainConfig, train_refiner


def test_untrained_refiner_is_the_identity_at_any_size() -> None:
    net = Refiner(RefinerConfig(width=8, blocks=(1, 1, 1)))
    fused = torch.rand(2, 3, 37, 22)
    out = net(fused, [torch.rand(2, 1, 37, 22), torch.rand(2, 3, 37, 22)])
    torch.testing.assert_close(out, fused)
    torch.nn.init.normal_(net.tail[0].weight, std=0.1)
    assert net(fused, [torch.rand(2, 3, 37, 22)]).shape == fused.shape
    with pytest.raises(ValueError, match="input images"):
        net(fused, [fused, fused, fused])


def test_mixing_refiner_blends_sources_and_can_copy_an_input_exactly() -> None:
    net = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True))
    fused, a, b = torch.rand(1, 3, 20, 28), torch.rand(1, 1, 20, 28), torch.rand(1, 3, 20, 28)
    w = torch.softmax(torch.tensor([MIX_PRIOR, 0.0, 0.0]), 0)  # untrained: the constant prior
    torch.testing.assert_close(net(fused, [a, b]), w[0] * fused + w[1] * a.expand(-1, 3, -1, -1) + w[2] * b)
    w1 = torch.softmax(torch.tensor([MIX_PRIOR, 0.0]), 0)  # one input: the empty slot gets no weight
    torch.testing.assert_close(net(fused, [b]), w1[0] * fused + w1[1] * b)
    s = net.cfg.unshuffle
    with torch.no_grad():  # logit channel 5 (= input 2) after pixel shuffle: conv channels 5 s^2 ...
        net.tail[0].bias[5 * s * s : 6 * s * s] = 50.0
    torch.testing.assert_close(net(fused, [a, b]), b)  # a region can be copied from an input exactly


def test_two_band_refiner_widens_exactly_and_can_take_base_and_detail_from_different_inputs() -> None:
    one = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True))
    for p in one.parameters():  # a "trained" one-band refiner
        torch.nn.init.normal_(p, std=0.05)
    two = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2))
    two.load_state_dict(widen_state_dict(one.state_dict(), one.cfg, two.cfg))
    fused, a, b = torch.rand(1, 3, 21, 30), torch.rand(1, 1, 21, 30), torch.rand(1, 3, 21, 30)
    torch.testing.assert_close(two(fused, [a, b]), one(fused, [a, b]))  # widening changes nothing

    net = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2))
    s = net.cfg.unshuffle**2
    with torch.no_grad():  # channels: 3 residual, then base logits [fused, a, b], then detail logits
        net.tail[0].bias[4 * s : 5 * s] = 50.0  # base from input 1
        net.tail[0].bias[8 * s : 9 * s] = 50.0  # detail from input 2
    a, b = 0.8 + 0.05 * a, 0.1 + 0.5 * b  # a bright and flat, b dark and detailed
    a3, sigma = a.expand(-1, 3, -1, -1), net.cfg.band_sigma
    want = gaussian_blur(a3, sigma) + b - gaussian_blur(b, sigma)
    torch.testing.assert_close(net(fused, [a, b]), want)
    assert (want - a3).abs().mean() > 0.05 and (want - b).abs().mean() > 0.05  # neither input alone
    with pytest.raises(ValueError, match="bands"):
        RefinerConfig(bands=2)  # two bands need the mix head
    plain = Refiner(RefinerConfig(width=8, blocks=(1, 1)))
    with pytest.raises(ValueError, match="cannot be widened"):
        widen_state_dict(plain.state_dict(), plain.cfg, two.cfg)  # no blend head to widen


def test_detail_gain_widens_exactly_and_can_sharpen_beyond_every_source() -> None:
    two = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2))
    for p in two.parameters():  # a "trained" two-band refiner
        torch.nn.init.normal_(p, std=0.05)
    gained = Refiner(dataclasses.replace(two.cfg, detail_gain=2.0))
    gained.load_state_dict(widen_state_dict(two.state_dict(), two.cfg, gained.cfg))
    fused, a, b = torch.rand(1, 3, 21, 30), torch.rand(1, 1, 21, 30), torch.rand(1, 3, 21, 30)
    torch.testing.assert_close(gained(fused, [a, b]), two(fused, [a, b]))  # gain 1: nothing changes
    one = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True))  # one band -> two bands + gain at once
    both = widen_state_dict(one.state_dict(), one.cfg, gained.cfg)
    gained.load_state_dict(both)
    torch.testing.assert_close(gained(fused, [a, b]), one(fused, [a, b]))

    net = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, detail_gain=2.0))
    s = net.cfg.unshuffle**2
    with torch.no_grad():  # channels: 3 residual, 3 base logits, 3 detail logits, then the gain logit
        net.tail[0].bias[5 * s : 6 * s] = 50.0  # base from input 2
        net.tail[0].bias[8 * s : 9 * s] = 50.0  # detail from input 2
        net.tail[0].bias[9 * s : 10 * s] = 50.0  # tanh -> 1: gain 2
    blur = gaussian_blur(b, net.cfg.band_sigma)
    torch.testing.assert_close(net(fused, [a, b]), blur + 2.0 * (b - blur))  # unsharp masking of input 2
    for bad in (dict(detail_gain=2.0), dict(bands=2, mix=True, detail_gain=0.5)):
        with pytest.raises(ValueError, match="detail_gain"):
            RefinerConfig(**bad)
    with pytest.raises(ValueError, match="cannot be widened"):  # a gain is never silently dropped
        widen_state_dict(gained.state_dict(), gained.cfg, two.cfg)


def test_detail_scale_multiplies_the_detail_band_of_a_trained_refiner() -> None:
    torch.manual_seed(0)
    base = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, detail_gain=2.0))
    for p in base.parameters():  # a "trained" refiner: every output is in play
        torch.nn.init.normal_(p, std=0.05)
    fused, a, b = torch.rand(1, 3, 21, 30), torch.rand(1, 1, 21, 30), torch.rand(1, 3, 21, 30)
    outs = []
    for scale in (1.0, 2.0, 3.0):
        net = Refiner(dataclasses.replace(base.cfg, detail_scale=scale))
        net.load_state_dict(base.state_dict())  # no new weights: a setting of the folder's refiner.json
        with torch.no_grad():
            outs.append(net(fused, [a, b]))
    step = outs[1] - outs[0]  # = the gained detail band, added once more per unit of scale
    assert float(step.abs().mean()) > 1e-3
    torch.testing.assert_close(outs[2] - outs[1], step)
    for bad in (dict(detail_scale=0.0, bands=2, mix=True), dict(detail_scale=1.5)):
        with pytest.raises(ValueError, match="detail_scale"):
            RefinerConfig(**bad)


def test_base_gain_widens_exactly_and_can_lift_a_veil_no_source_lifts() -> None:
    """A smooth gain on the base band (module doc): zero logit = the refiner it widens; a saturated logit
    multiplies the blended base band by M, so the output can be brighter (or, with the residual's offset,
    less veiled) than every input, which a blend of them cannot."""
    gained = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, detail_gain=2.0))
    for p in gained.parameters():
        torch.nn.init.normal_(p, std=0.05)
    based = Refiner(dataclasses.replace(gained.cfg, base_gain=4.0))
    based.load_state_dict(widen_state_dict(gained.state_dict(), gained.cfg, based.cfg))
    fused, a, b = torch.rand(1, 3, 21, 30), torch.rand(1, 1, 21, 30), torch.rand(1, 3, 21, 30)
    torch.testing.assert_close(based(fused, [a, b]), gained(fused, [a, b]))  # gain 1: nothing changes
    one = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True))  # one band -> both gains at once
    based.load_state_dict(widen_state_dict(one.state_dict(), one.cfg, based.cfg))
    torch.testing.assert_close(based(fused, [a, b]), one(fused, [a, b]))

    net = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, base_gain=4.0))
    s = net.cfg.unshuffle**2
    with torch.no_grad():  # channels: 3 residual, 3 base logits, 3 detail logits, then the base gain logit
        net.tail[0].bias[5 * s : 6 * s] = 50.0  # base from input 2
        net.tail[0].bias[8 * s : 9 * s] = 50.0  # detail from input 2
        net.tail[0].bias[9 * s : 10 * s] = 50.0  # tanh -> 1: gain 4
    dark = 0.2 * b
    blur = gaussian_blur(dark, net.cfg.band_sigma)
    out = net(fused, [a, dark])
    torch.testing.assert_close(out, 4.0 * blur + dark - blur)
    assert out.mean() > 2 * dark.mean()  # brighter than any input
    with pytest.raises(ValueError, match="base_gain"):
        RefinerConfig(mix=True, bands=2, base_gain=0.5)
    with pytest.raises(ValueError, match="cannot be widened"):  # a gain is never silently dropped
        widen_state_dict(net.state_dict(), net.cfg, dataclasses.replace(net.cfg, base_gain=0.0))


def test_fine_gain_widens_exactly_and_equalizes_the_detail_band() -> None:
    """A gain on the finest part of the detail band (module doc): zero logit = the refiner it widens; a
    saturated logit multiplies only the detail finer than fine_sigma, so a blur's fine loss can be undone
    more strongly than its coarse loss (or noise suppressed) while the base band stays."""
    gained = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, detail_gain=2.0, base_gain=4.0))
    for p in gained.parameters():
        torch.nn.init.normal_(p, std=0.05)
    fine = Refiner(dataclasses.replace(gained.cfg, fine_gain=3.0))
    fine.load_state_dict(widen_state_dict(gained.state_dict(), gained.cfg, fine.cfg))
    fused, a, b = torch.rand(1, 3, 21, 30), torch.rand(1, 1, 21, 30), torch.rand(1, 3, 21, 30)
    torch.testing.assert_close(fine(fused, [a, b]), gained(fused, [a, b]))  # h = 1: nothing changes

    net = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, detail_gain=2.0, fine_gain=3.0))
    s = net.cfg.unshuffle**2
    with torch.no_grad():  # tail: 3 residual, 3 base logits, 3 detail logits, detail gain; fine: its own
        net.tail[0].bias[5 * s : 6 * s] = 50.0  # base from input 2
        net.tail[0].bias[8 * s : 9 * s] = 50.0  # detail from input 2
        net.fine_tail[0].bias[:] = 50.0  # tanh -> 1: fine gain 3, detail gain stays 1
    base = gaussian_blur(b, net.cfg.band_sigma)
    detail = b - base
    finest = detail - gaussian_blur(detail, net.cfg.fine_sigma)
    torch.testing.assert_close(net(fused, [a, b]), base + detail + 2.0 * finest)
    with pytest.raises(ValueError, match="fine_gain"):  # it needs the detail gain, and a finer split
        RefinerConfig(mix=True, bands=2, fine_gain=3.0)
    with pytest.raises(ValueError, match="fine_gain"):
        RefinerConfig(mix=True, bands=2, detail_gain=2.0, fine_gain=3.0, fine_sigma=3.0)
    with pytest.raises(ValueError, match="cannot be widened"):  # a gain is never silently dropped
        widen_state_dict(net.state_dict(), net.cfg, dataclasses.replace(net.cfg, fine_gain=0.0))


def test_gaussian_blur_keeps_constants_and_removes_fine_detail() -> None:
    flat = torch.full((1, 2, 9, 40), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 3.0), flat)  # image smaller than the kernel works
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2
    out = gaussian_blur(checker.float()[None, None], 2.0)
    assert (out[..., 6:-6, 6:-6] - 0.5).abs().max() < 0.01  # away from the replicated border
    for shape in ((2, 3, 23, 50), (1, 1, 5, 7)):  # OpenCV (no gradient needed) and torch paths agree
        x = torch.rand(shape)
        torch.testing.assert_close(
            gaussian_blur(x, 3.0), gaussian_blur(x.clone().requires_grad_(), 3.0).detach()
        )


def test_xy_gradient_loss_sees_edge_orientation_that_magnitude_misses() -> None:
    from allfuse.objectives.refine import refine_loss

    step = (torch.arange(16) >= 8).float().expand(1, 3, 16, 16)  # a dark-to-bright vertical edge
    flipped = 1 - step  # the same edge strength, opposite direction
    _, mag = refine_loss(flipped, step, 1.0, "magnitude")
    _, xy = refine_loss(flipped, step, 1.0, "xy")
    assert mag["grad"] == 0 and xy["grad"] > 0.1
    assert refine_loss(step, step, 1.0, "xy")[1]["loss"] == 0
    with pytest.raises(ValueError, match="grad_mode"):
        RefineTrainConfig(model="m", grad_mode="laplace")


def _cfg(model: Path, out: Path) -> RefineTrainConfig:
    return RefineTrainConfig(
        model=str(model),
        out_dir=str(out),
        refiner=RefinerConfig(width=8, blocks=(1, 1), mix=True),
        size=32,
        max_steps=4,
        batch_size=2,
        warmup=1,
        workers=0,
        log_every=1,
        ckpt_every=2,
        val_every=2,
        val_samples=2,
    )


def latest_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / json.loads((run / "latest.json").read_text())["path"] / "model.safetensors")


def test_refiner_resumes_exactly_and_ships_in_the_model_folder(dit_folder: Path, tmp_path: Path) -> None:
    from allfuse.cli import main
    from allfuse.pipeline import FusionPipeline

    train_refiner(_cfg(dit_folder, tmp_path / "a"))
    train_refiner(_cfg(dit_folder, tmp_path / "b"), until=2)
    train_refiner(_cfg(dit_folder, tmp_path / "b"))

    a, b = latest_weights(tmp_path / "a"), latest_weights(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert a["tail.0.weight"].abs().max() > 0  # it learned something
    val = [json.loads(line) for line in (tmp_path / "a" / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [2, 4] and all(np.isfinite(v["psnr_refined"]) for v in val)

    model = tmp_path / "model"
    model.mkdir()
    for f in ("model.safetensors", "config.json"):
        (model / f).write_bytes((dit_folder / f).read_bytes())
    assert main(["export", str(tmp_path / "a"), str(model)]) == 0
    assert (model / "refiner.safetensors").is_file()
    pipe = FusionPipeline.from_pretrained(model)
    assert pipe.refiner is not None
    ims = [np.random.default_rng(0).random((24, 20), dtype=np.float32), np.ones((24, 20), np.float32)]
    refined, plain = pipe(ims, task="mff"), pipe(ims, task="mff", refine=False)
    assert refined.shape == plain.shape == (24, 20)
    assert np.abs(refined - plain).max() > 0
    assert main(["export", str(tmp_path / "a"), str(tmp_path / "nowhere")]) == 2
    assert main(["export", str(tmp_path / "a"), str(model), "--work-side", "8"]) == 2  # too small
    assert main(["export", str(dit_folder.parent / "run"), str(model), "--work-side", "64"]) == 2  # a DiT run
    assert main(["export", str(tmp_path / "a"), str(model), "--work-side", "64"]) == 0
    assert FusionPipeline.from_pretrained(model).work_side == 64


def test_guided_upsampling_steps_resume_exactly_and_validate_on_both_paths(
    dit_folder: Path, tmp_path: Path
) -> None:
    from allfuse.train.refine_data import WORK_FACTOR, FrozenFusion

    def cfg(out: Path) -> RefineTrainConfig:  # steps 1 and 3 run the latent path at half size
        return dataclasses.replace(_cfg(dit_folder, out), work_every=2, batch_size=4)

    train_refiner(cfg(tmp_path / "a"))
    train_refiner(cfg(tmp_path / "b"), until=1)  # stops right before a guided-upsampling step
    train_refiner(cfg(tmp_path / "b"))
    a, b = latest_weights(tmp_path / "a"), latest_weights(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    val = [json.loads(line) for line in (tmp_path / "a" / "val.jsonl").read_text().splitlines()]
    assert {"psnr_refined", "psnr_refined_work", "psnr_decoded_work"} <= set(val[-1])

    fusion = FrozenFusion(str(dit_folder))
    rng = torch.Generator().manual_seed(0)
    batch = {"a": torch.rand(1, 3, 64, 48, generator=rng), "b": torch.rand(1, 3, 64, 48, generator=rng)}
    batch |= {"target": torch.rand(1, 3, 64, 48, generator=rng), "prompt": ["fuse"]}
    full, half = (fusion.decoded(batch, torch.Generator().manual_seed(1), f) for f in (1, WORK_FACTOR))
    assert full.shape == half.shape == (1, 3, 64, 48)
    assert 0 <= half.min() and half.max() <= 1 and not torch.allclose(full, half)
    with pytest.raises(ValueError, match="work_every"):
        dataclasses.replace(cfg(tmp_path / "c"), work_every=-1)


def test_train_refiner_command(dit_folder: Path, tmp_path: Path) -> None:
    from allfuse.cli import main

    args = ["max_steps=2", "size=32", "batch_size=2", "refiner.width=8", "workers=0"]
    assert main(["train-refiner", str(dit_folder), str(tmp_path / "run"), *args]) == 0
    assert (tmp_path / "run" / "step_00000002" / "ema.safetensors").is_file()
    assert main(["train-refiner", str(tmp_path / "no-model"), str(tmp_path / "run2"), *args]) == 2
    no_mix = ["refiner.mix=false", "refiner.bands=2"]  # two bands need the mix head
    assert main(["train-refiner", str(dit_folder), str(tmp_path / "run3"), *args, *no_mix]) == 2
    for kinds in ("kinds=vif", "kinds={vif: 2, pan: 1}"):  # not kind: weight; an unknown kind
        assert main(["train-refiner", str(dit_folder), str(tmp_path / "run4"), *args, kinds]) == 2
    assert main(["train-refiner", str(dit_folder), str(tmp_path / "run5"), *args, "work_every=-1"]) == 2
    assert (
        main(["train-refiner", str(dit_folder), str(tmp_path / "run6"), *args, "refiner.detail_gain=2"]) == 2
    )
    tex = ["refiner.bands=2", "refiner.detail_gain=2", "texture_weight=1", "texture_kinds=[vif, mff, m3]"]
    assert main(["train-refiner", str(dit_folder), str(tmp_path / "run7"), *args, *tex]) == 0
    assert main(["train-refiner", str(dit_folder), str(tmp_path / "run8"), *args, "bogus_key=1"]) == 2
    log = (tmp_path / "run7" / "log.csv").read_text().splitlines()
    assert "texture" in log[0].split(",") and len(log) == 2  # batches carry the clean sources


def test_texture_term_needs_clean_sources_and_skips_control_and_seg() -> None:
    from allfuse.data.samples import SAMPLE_KINDS
    from allfuse.objectives.refine import refine_loss, texture_mask

    out, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="clean sources"):
        refine_loss(out, target, 1.0, texture_weight=1.0)
    ids = torch.tensor([SAMPLE_KINDS.index(k) for k in SAMPLE_KINDS])
    assert texture_mask(ids).tolist() == [float(k not in ("control", "seg")) for k in SAMPLE_KINDS]
    clean = (torch.zeros_like(out), torch.zeros_like(out))  # flat sources: the loss is |grad out|
    _, logs = refine_loss(out, target, 1.0, texture_weight=1.0, clean=clean, texture_mask=torch.ones(2))
    _, none = refine_loss(out, target, 1.0, texture_weight=1.0, clean=clean, texture_mask=torch.zeros(2))
    assert (
        logs["texture"] > 1.0
        and none["texture"] == 0
        and logs["loss"] - none["loss"] == pytest.approx(logs["texture"], rel=1e-5)
    )
    assert texture_mask(ids, ("vif", "mff")).tolist() == [float(k in ("vif", "mff")) for k in SAMPLE_KINDS]
    with pytest.raises(ValueError, match="texture"):
        RefineTrainConfig(model="m", texture_weight=-1)
    for kinds in ((), ("vif", "seg")):
        with pytest.raises(ValueError, match="texture_kinds"):
            RefineTrainConfig(model="m", texture_kinds=kinds)
    cfg = RefineTrainConfig(model="m", texture_kinds=("vif", "mff"))
    assert RefineTrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_refiner_run_starts_from_a_shipped_refiner_widened_to_two_bands(
    dit_folder: Path, tmp_path: Path
) -> None:
    from allfuse.model_folder import load_refiner, save_refiner
    from allfuse.train.refine import initial_refiner_state

    model = tmp_path / "model"
    model.mkdir()
    for f in ("model.safetensors", "config.json"):
        (model / f).write_bytes((dit_folder / f).read_bytes())
    with pytest.raises(FileNotFoundError, match="no refiner"):
        initial_refiner_state(str(model), RefinerConfig(width=8, blocks=(1, 1), mix=True))
    one = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True))
    torch.nn.init.normal_(one.tail[0].weight, std=0.05)
    save_refiner(one, model)
    two_cfg = RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2)
    with pytest.raises(ValueError, match="cannot start"):
        initial_refiner_state(str(model), RefinerConfig(width=16, blocks=(1, 1), mix=True, bands=2))
    cfg = dataclasses.replace(
        _cfg(dit_folder, tmp_path / "run"), refiner=two_cfg, init_from=str(model), max_steps=1, lr=1e-12
    )
    train_refiner(cfg)  # one step at a negligible learning rate: the run starts where `one` was
    shipped = load_refiner(model)
    assert shipped is not None and shipped.cfg.bands == 1
    got = latest_weights(tmp_path / "run")
    want = widen_state_dict(one.state_dict(), one.cfg, two_cfg)
    torch.testing.assert_close(got["tail.0.weight"], want["tail.0.weight"], rtol=0, atol=1e-6)


def test_a_run_can_train_only_the_new_fine_gain_head_of_a_shipped_refiner(
    dit_folder: Path, tmp_path: Path
) -> None:
    """trainable=[fine_tail]: everything the shipped refiner learnt stays bit for bit; only the head
    widening added moves. A prefix naming no parameter is refused, naming the refiner's parts."""
    from allfuse.model_folder import save_refiner

    model = tmp_path / "model"
    model.mkdir()
    for f in ("model.safetensors", "config.json"):
        (model / f).write_bytes((dit_folder / f).read_bytes())
    shipped = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, detail_gain=2.0))
    for p in shipped.parameters():
        torch.nn.init.normal_(p, std=0.05)
    save_refiner(shipped, model)
    fine_cfg = dataclasses.replace(shipped.cfg, fine_gain=3.0)
    cfg = dataclasses.replace(
        _cfg(dit_folder, tmp_path / "run"), refiner=fine_cfg, init_from=str(model), max_steps=3, lr=1e-2
    )
    cfg = RefineTrainConfig.from_dict(json.loads(json.dumps({**cfg.to_dict(), "trainable": ["fine_tail"]})))
    assert cfg.trainable == ("fine_tail",)
    train_refiner(cfg)
    got = latest_weights(tmp_path / "run")
    want = widen_state_dict(
        {k: v.to(got[k].dtype) for k, v in shipped.state_dict().items()}, shipped.cfg, fine_cfg
    )
    assert set(got) == set(want)
    for k in want:
        if k.startswith("fine_tail"):
            continue
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
    assert got["fine_tail.0.weight"].abs().max() > 0  # the new head learnt something
    with pytest.raises(ValueError, match=r"name no parameter.*tail"):
        train_refiner(dataclasses.replace(cfg, out_dir=str(tmp_path / "bad"), trainable=("nope",)))


def test_data_overrides_reach_the_refiner_dataset(tmp_path) -> None:
    from types import SimpleNamespace

    from allfuse.train.config import TrainConfig
    from allfuse.train.refine import RefineTrainConfig
    from allfuse.train.refine_data import refiner_dataset

    fusion = SimpleNamespace(cfg=TrainConfig())
    cfg = RefineTrainConfig(
        model="x", data_overrides={"n_ops": [0, 1], "n_weights": [1, 0], "self_pairs": 0.5, "data": []}
    )
    ds = refiner_dataset(fusion, cfg, seed=0)  # type: ignore[arg-type]
    p = ds.sources.config
    assert p.n_ops == (0, 1) and p.n_weights == (1, 0) and p.self_pairs == 0.5 and p.size == cfg.size
    with pytest.raises(KeyError, match=r"data\.bogus"):
        refiner_dataset(fusion, RefineTrainConfig(model="x", data_overrides={"bogus": 1}), seed=0)  # type: ignore[arg-type]


def test_classical_source_widens_into_half_the_decoded_weight_and_can_be_copied_exactly() -> None:
    """A refiner with a classical source (module doc): widening a trained refiner splits the decoded
    fusion's weight between it and the source, so a source equal to the decoded fusion changes nothing and
    any other moves the output; saturated logits copy the source exactly; without it the refiner refuses."""
    from allfuse.models.refine import classical_source

    gained = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, detail_gain=2.0))
    for p in gained.parameters():  # a "trained" refiner
        torch.nn.init.normal_(p, std=0.05)
    cls_cfg = dataclasses.replace(gained.cfg, classical=True)
    widened = Refiner(cls_cfg)
    widened.load_state_dict(widen_state_dict(gained.state_dict(), gained.cfg, cls_cfg))
    fused, a, b, c = (torch.rand(1, 3 if i != 1 else 1, 21, 30) for i in range(4))
    before = gained(fused, [a, b])
    torch.testing.assert_close(widened(fused, [a, b], fused), before)
    assert (widened(fused, [a, b], c) - before).abs().mean() > 0.01
    with pytest.raises(ValueError, match="cannot be widened"):  # the source is never silently dropped
        widen_state_dict(widened.state_dict(), cls_cfg, gained.cfg)
    with pytest.raises(ValueError, match="pass `classical`"):
        widened(fused, [a, b])
    with pytest.raises(ValueError, match="classical needs mix"):
        RefinerConfig(classical=True)

    net = Refiner(cls_cfg)
    s = net.cfg.unshuffle**2
    with torch.no_grad():  # channels: 3 residual, base logits [fused, a, b, classical], detail logits, gain
        net.tail[0].bias[6 * s : 7 * s] = 50.0  # base from the classical source
        net.tail[0].bias[10 * s : 11 * s] = 50.0  # detail from it too
    torch.testing.assert_close(net(fused, [a, b], c), c)
    torch.testing.assert_close(net(fused, [b], c), c)  # one input: the source keeps its slot

    rng = np.random.default_rng(0)
    x = gaussian_blur(torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(0)), 1.0)[0]
    x = x.permute(1, 2, 0).numpy()
    for task in ("vif", "mef", "mff"):  # each rule keeps an image fused with itself
        np.testing.assert_allclose(classical_source([x, x], task), x, atol=1e-5)
    gray = rng.random((40, 36), dtype=np.float32)
    out = classical_source([gray, x], "vif")
    assert out.shape == (40, 36, 3) and out.dtype == np.float32
    assert np.abs(out - x).mean() > 0.01 and np.abs(out - gray[..., None]).mean() > 0.01


def test_classical_refiner_trains_behind_the_corrector_resumes_and_ships(
    dit_folder: Path, tmp_path: Path
) -> None:
    from allfuse.cli import main
    from allfuse.data.samples import SAMPLE_KINDS
    from allfuse.model_folder import save_corrector
    from allfuse.models.correct import Corrector, CorrectorConfig
    from allfuse.pipeline import FusionPipeline
    from allfuse.train.refine_data import FrozenFusion, classical_tasks

    model = tmp_path / "model"
    model.mkdir()
    for f in ("model.safetensors", "config.json", "training.json"):
        (model / f).write_bytes((dit_folder / f).read_bytes())
    with pytest.raises(ValueError, match="no input corrector"):
        FrozenFusion(str(model), correct=True)
    corrector = Corrector(CorrectorConfig(width=8, thumb=16, tasks=("mef",)))
    save_corrector(corrector, model)

    def cfg(out: Path) -> RefineTrainConfig:
        refiner = RefinerConfig(width=8, blocks=(1, 1), mix=True, bands=2, classical=True)
        return dataclasses.replace(_cfg(model, out), refiner=refiner, correct=True)

    train_refiner(cfg(tmp_path / "a"))
    train_refiner(cfg(tmp_path / "b"), until=2)
    train_refiner(cfg(tmp_path / "b"))
    a, b = latest_weights(tmp_path / "a"), latest_weights(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)

    fusion = FrozenFusion(str(model), correct=True)  # the corrector runs on its tasks' samples only
    veiled = 0.5 + 0.3 * torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([SAMPLE_KINDS.index("vif"), SAMPLE_KINDS.index("mef")])
    got = fusion.corrected({"a": veiled, "b": veiled.flip(-1), "task_id": ids})
    torch.testing.assert_close(got["a"][0], veiled[0])
    want = corrector([veiled[1:], veiled[1:].flip(-1)], torch.tensor([1]))[0].clamp(0, 1)
    torch.testing.assert_close(got["a"][1], want[0])
    assert (got["a"][1] - veiled[1]).abs().mean() > 0.01  # the untrained corrector lifts a veil
    assert classical_tasks(torch.tensor([SAMPLE_KINDS.index(k) for k in ("vif", "m3")])) == ["vif", "mff"]
    with pytest.raises(ValueError, match="classical source trains on"):
        classical_tasks(torch.tensor([SAMPLE_KINDS.index("seg")]))

    assert main(["export", str(tmp_path / "a"), str(model)]) == 0
    pipe = FusionPipeline.from_pretrained(model)
    assert pipe.refiner is not None and pipe.refiner.cfg.classical
    rng = np.random.default_rng(0)
    ims = [rng.random((40, 36), dtype=np.float32), rng.random((40, 36, 3), dtype=np.float32)]
    assert pipe(ims, task="vif").shape == (40, 36, 3)
    big = [np.repeat(np.repeat(im, 2, axis=0), 2, axis=1) for im in ims]  # 80 x 72 px: tiled above 4096 px
    whole, tiled = pipe(big, task="vif"), pipe(big, task="vif", tile_pixels=4096)
    assert np.abs(tiled - whole).max() < 0.05  # the classical source is tiled with the inputs
