"""The input corrector: identity at init, an exact bounded affine map applied by bands, coefficients placed
where the thumbnail puts them, learns to lift a veil, trains and resumes exactly, and ships in a model
folder that the pipeline applies before everything else."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image as PILImage
from test_refine import latest_weights
from test_train_loop import TINY

from allfuse.models.correct import Corrector, CorrectorConfig, apply_coefficients
from allfuse.train.config import load_train_config
from allfuse.train.correct import (
    CorrectTrainConfig,
    correct_loss,
    hazed,
    initial_corrector_state,
    train_corrector,
)
from allfuse.train.loop import train


def test_untrained_corrector_keeps_a_clear_scene_and_lifts_a_veil_at_any_size() -> None:
    net = Corrector(CorrectorConfig(width=8, thumb=32))
    for h, w in ((37, 22), (130, 300), (9, 9)):
        xs = [torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)]
        for x in xs:
            x[:, 0] = 0.0  # a zero dark channel: the prior sees no haze (t_dcp = 1)
        with torch.no_grad():
            for x, y in zip(xs, net(xs, torch.tensor([0, 2])), strict=True):
                torch.testing.assert_close(y, x)
    g = torch.Generator().manual_seed(0)
    clear = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(96, 96), mode="bilinear")
    clear[:, 0] = 0.0
    t = torch.full((1, 1, 96, 96), 0.5)
    t[..., :16, :] = 0.0  # a band of sky: pure airlight
    hazy = clear * t + 0.9 * (1 - t)
    with torch.no_grad():
        out = net([hazy, hazy], torch.tensor([2]))[0]
    before, after = ((z - clear)[..., 16:, :].abs().mean() for z in (hazy, out))
    assert after < 0.8 * before  # half strength (omega_init): the veil is partly lifted


def cells(u, v, m, t, air, size=(8, 8)) -> torch.Tensor:
    """(1, 13, *size) constant cells (u, v, m, t, A) of apply_coefficients."""
    values = [
        torch.as_tensor(q, dtype=torch.float32).reshape(-1).expand(n)
        for q, n in zip((u, v, m, t, air), (3, 3, 3, 1, 3), strict=True)
    ]
    return torch.cat(values)[None, :, None, None].expand(1, 13, *size).clone()


def test_constant_cells_are_a_bounded_affine_map_applied_alike_by_bands() -> None:
    net = Corrector(CorrectorConfig(width=8, thumb=32, max_gain=4.0))
    u, v, m = torch.tensor([0.5, 0.0, -0.5]), torch.tensor([0.0, 0.02, -0.02]), torch.tensor([0.3, 0.5, 0.7])
    x = torch.rand(1, 3, 70, 45)
    gain, shift = (4.0 ** torch.tanh(u))[:, None, None], (4.0 * torch.tanh(v))[:, None, None]
    expected = gain * (x - m[:, None, None]) + m[:, None, None] + shift  # contrast about m, then a shift
    torch.testing.assert_close(apply_coefficients(x, cells(u, v, m, 1.0, 0.5), (16, 16), net), expected)
    big = apply_coefficients(x, cells(1e3, 0.0, m, 1.0, 0.5), (16, 16), net)
    torch.testing.assert_close(big[:, 0], 4.0 * (x[:, 0] - 0.3) + 0.3)  # the gain stops at M
    dehazed = apply_coefficients(x, cells(0.0, 0.0, m, 0.4, [0.8, 0.85, 0.9]), (16, 16), net)
    air = torch.tensor([0.8, 0.85, 0.9])[:, None, None]
    torch.testing.assert_close(dehazed, (x - air) / 0.4 + air)  # He et al. Eq. (22)

    torch.manual_seed(0)
    for p in net.parameters():  # a "trained" corrector
        torch.nn.init.normal_(p, std=0.05)
    big = [torch.rand(1, 3, 600, 40), torch.rand(1, 3, 600, 40)]  # more rows than one band
    with torch.no_grad():
        whole = net(big, torch.tensor([2]))
    assert max(float((w - x).abs().max()) for w, x in zip(whole, big, strict=True)) > 0.01
    for w, b in zip(whole, net.correct(big, "mff"), strict=True):
        torch.testing.assert_close(b, w.clamp(0, 1), rtol=1e-5, atol=1e-5)


def test_coefficients_land_where_the_thumbnail_puts_them() -> None:
    net = Corrector(CorrectorConfig(width=8, thumb=16, max_gain=4.0))
    coef = cells(0.0, 0.0, 0.0, 1.0, 0.5)  # m = 0, t = 1: the map is a gain
    coef[:, :3, :, 4:] = 50.0  # gain M on the right half of the grid (grid = the 16 px thumbnail / 2)
    x = torch.full((1, 3, 64, 64), 0.2)
    y = apply_coefficients(x, coef, (16, 16), net)
    torch.testing.assert_close(y[..., :24], x[..., :24])  # left of the blend: untouched
    torch.testing.assert_close(y[..., 40:], 4.0 * x[..., 40:])  # right of it: the full gain
    assert (y[0, 0, 0, 1:] >= y[0, 0, 0, :-1] - 1e-6).all()  # a monotone ramp between


def test_separable_apply_is_grid_sample_bilinear_with_border_padding() -> None:
    """The two matrix products give F.grid_sample's numbers (bilinear, border, align_corners False) for
    any image and grid size, by bands or whole, and pass gradients to the cells."""
    net = Corrector(CorrectorConfig(width=8, thumb=32, max_gain=4.0))
    g = torch.Generator().manual_seed(0)
    for (hh, ww), thumb, grid in (
        ((64, 64), (32, 32), (16, 16)),
        ((333, 517), (21, 32), (11, 16)),
        ((7, 9), (7, 9), (4, 5)),
        ((40, 300), (4, 32), (2, 16)),
    ):
        coef = torch.randn(2, 13, *grid, generator=g)
        coef[:, 9:10] = torch.rand(2, 1, *grid, generator=g) * 0.8 + 0.2  # t in [0.2, 1]
        x = torch.rand(2, 3, hh, ww, generator=g)
        gain, offset = net.gain_offset(coef)
        th, tw = thumb
        ys = ((torch.arange(hh) + 0.5) * (th / hh)) / grid[0] - 1  # normalised: thumb px / (2 cells)
        xs = ((torch.arange(ww) + 0.5) * (tw / ww)) / grid[1] - 1
        where = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None].expand(2, -1, -1, -1)
        maps = F.grid_sample(torch.cat([gain, offset], 1), where, "bilinear", "border", align_corners=False)
        expected = maps[:, :3] * x + maps[:, 3:]
        torch.testing.assert_close(apply_coefficients(x, coef, thumb, net), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(apply_coefficients(x, coef, thumb, net, 5), expected, rtol=1e-5, atol=1e-5)
    coef.requires_grad_(True)
    apply_coefficients(x, coef, thumb, net).sum().backward()
    assert coef.grad is not None and coef.grad.abs().sum() > 0


def _veiled(n: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Smooth random scenes under uniform haze: I = J t + A (1 - t), a different t and A per sample."""
    g = torch.Generator().manual_seed(seed)
    clean = F.interpolate(torch.rand(2 * n, 3, 6, 6, generator=g), size=(48, 48), mode="bilinear")
    t = 0.35 + 0.4 * torch.rand(2 * n, 1, 1, 1, generator=g)
    a = 0.75 + 0.2 * torch.rand(2 * n, 1, 1, 1, generator=g)
    hazy = clean * t + a * (1 - t)
    return [hazy[:n], hazy[n:]], [clean[:n], clean[n:]]


def test_corrector_learns_to_lift_a_veil_on_scenes_it_never_saw() -> None:
    torch.manual_seed(0)
    net = Corrector(CorrectorConfig(width=8, thumb=48))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    task = torch.zeros(8, dtype=torch.long)
    for step in range(150):
        xs, ys = _veiled(8, step)
        loss = sum((o - y).abs().mean() for o, y in zip(net(xs, task), ys, strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
    xs, ys = _veiled(8, 10_000)  # unseen scenes and veils
    with torch.no_grad():
        before = sum(float((x - y).abs().mean()) for x, y in zip(xs, ys, strict=True))
        untrained = Corrector(CorrectorConfig(width=8, thumb=48))(xs, task)
        at_init = sum(float((o - y).abs().mean()) for o, y in zip(untrained, ys, strict=True))
        after = sum(float((o - y).abs().mean()) for o, y in zip(net(xs, task), ys, strict=True))
    # no single gain and offset does this (the best one for all samples, least squares: 0.96 of the error);
    # the veil is read off each whole image
    assert after < 0.6 * before and after < 0.8 * at_init


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported DiT whose training data is a folder of random multi-focus pairs."""
    from allfuse.cli import main

    tmp = tmp_path_factory.mktemp("corrector")
    rng = np.random.default_rng(0)
    for sub in ("near", "far"):
        (tmp / "pairs" / "mff" / "Set" / sub).mkdir(parents=True)
        for n in ("a", "b", "c"):
            x = (rng.random((48, 56, 3)) * 255).astype(np.uint8)
            PILImage.fromarray(x).save(tmp / "pairs" / "mff" / "Set" / sub / f"{n}.png")
    data = [f"data.data=[{tmp / 'pairs'}]", "data.kinds={mff: 1}"]
    train(load_train_config("tiny-reg", [*TINY, *data, f"out_dir={tmp / 'run'}", "max_steps=1"]))
    assert main(["export", str(tmp / "run"), str(tmp / "model")]) == 0
    return tmp / "model"


def _cfg(model: Path, out: Path) -> CorrectTrainConfig:
    return CorrectTrainConfig(
        model=str(model),
        out_dir=str(out),
        corrector=CorrectorConfig(width=8, thumb=16),
        size=32,
        max_steps=4,
        batch_size=2,
        warmup=1,
        kinds={"mff": 1.0},
        workers=0,
        log_every=1,
        ckpt_every=2,
        val_every=2,
        val_samples=2,
    )


def test_corrector_resumes_exactly_and_ships_in_the_model_folder(dit_folder: Path, tmp_path: Path) -> None:
    from allfuse.cli import main
    from allfuse.pipeline import FusionPipeline

    train_corrector(_cfg(dit_folder, tmp_path / "a"))
    train_corrector(_cfg(dit_folder, tmp_path / "b"), until=2)
    train_corrector(_cfg(dit_folder, tmp_path / "b"))
    a, b = latest_weights(tmp_path / "a"), latest_weights(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert a["head.weight"].abs().max() > 0  # it learned something
    val = [json.loads(line) for line in (tmp_path / "a" / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [2, 4]
    assert all(np.isfinite(v.get("l1_corrected", v.get("change_clean", np.nan))) for v in val)

    model = tmp_path / "model"
    model.mkdir()
    for f in ("model.safetensors", "config.json"):
        (model / f).write_bytes((dit_folder / f).read_bytes())
    assert main(["export", str(tmp_path / "a"), str(model), "--work-side", "64"]) == 2  # not a refiner
    assert main(["export", str(tmp_path / "a"), str(model), "--tasks", "mef,sharpen"]) == 2  # unknown task
    assert main(["export", str(dit_folder.parent / "run"), str(tmp_path / "m2"), "--tasks", "mff"]) == 2
    assert main(["export", str(tmp_path / "a"), str(model), "--dtype", "fp32", "--tasks", "mef"]) == 0
    assert FusionPipeline.from_pretrained(model).corrector.cfg.tasks == ("mef",)
    ims = [np.random.default_rng(0).random((24, 20), dtype=np.float32), np.full((24, 20), 0.9, np.float32)]
    pipe = FusionPipeline.from_pretrained(model)
    skipped, plain = pipe(ims, task="mff"), pipe(ims, task="mff", correct=False)
    np.testing.assert_array_equal(skipped, plain)  # not run for a task it is not enabled for
    assert main(["export", str(tmp_path / "a"), str(model), "--dtype", "fp32"]) == 0
    assert json.loads((model / "config.json").read_text())["corrector"]["weights"] == "corrector.safetensors"
    pipe = FusionPipeline.from_pretrained(model)
    assert pipe.corrector is not None
    ims = [np.random.default_rng(0).random((24, 20), dtype=np.float32), np.full((24, 20), 0.9, np.float32)]
    corrected, plain = pipe(ims, task="mff"), pipe(ims, task="mff", correct=False)
    assert corrected.shape == plain.shape == (24, 20)
    assert np.abs(corrected - plain).max() > 0

    again = pipe.save_pretrained(tmp_path / "again")  # a saved pipeline keeps its corrector
    loaded = FusionPipeline.from_pretrained(again).corrector
    torch.testing.assert_close(loaded.state_dict(), pipe.corrector.state_dict())
    # a run can continue the folder's corrector (init_from), of the same architecture only
    cont = dataclasses.replace(_cfg(dit_folder, tmp_path / "c"), init_from=str(model), max_steps=1, lr=1e-12)
    train_corrector(cont)
    start = latest_weights(tmp_path / "c")
    for k, v in pipe.corrector.state_dict().items():
        torch.testing.assert_close(start[k], v, rtol=1e-4, atol=1e-6, msg=k)
    with pytest.raises(ValueError, match="cannot start"):
        initial_corrector_state(str(model), CorrectorConfig(width=4, thumb=16))
    with pytest.raises(FileNotFoundError, match="no corrector"):
        initial_corrector_state(str(dit_folder), CorrectorConfig(width=8, thumb=16))
    (model / "corrector.json").write_text('{"corrector": {"width": "wide"}}')
    with pytest.raises(ValueError, match=r"corrector\.json"):
        FusionPipeline.from_pretrained(model)


def test_corrector_runs_refuse_sample_kinds_that_are_not_fusion_tasks() -> None:
    with pytest.raises(ValueError, match="not fusion tasks"):
        CorrectTrainConfig(model="allfuse-reg", kinds={"m3": 1.0})
    with pytest.raises(ValueError, match="max_gain"):
        CorrectorConfig(max_gain=1.0)
    with pytest.raises(ValueError, match="omega_init"):
        CorrectorConfig(omega_init=1.0)


def test_the_haze_label_teaches_the_strength_which_input_was_hazed() -> None:
    meta = json.dumps({"ops": [{"op": "haze", "images": [0]}, {"op": "noise", "images": [0, 1]}]})
    assert hazed([meta, json.dumps({"ops": []})]).tolist() == [[1.0, 0.0], [0.0, 0.0]]
    torch.manual_seed(0)
    clear = torch.rand(4, 3, 32, 32)
    batch = {
        "a": 0.5 * clear + 0.45,  # veiled
        "b": clear,
        "clean_a": clear,
        "clean_b": clear,
        "task_id": torch.full((4,), 2),
        "meta": [meta] * 4,
    }
    net = Corrector(CorrectorConfig(width=8, thumb=32))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(30):
        loss, logs = correct_loss(net, batch, grad_weight=0.0, haze_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, strength = net.forward_with_strength([batch["a"], batch["b"]], torch.full((4,), 2))
    assert (strength[:, 0] > 0.7).all() and (strength[:, 1] < 0.3).all()
    assert "haze_bce" in logs and "haze_bce" not in correct_loss(net, batch, 1.0)[1]


def test_the_command_line_can_skip_the_corrector_and_says_what_it_changes(tmp_path: Path, capsys) -> None:
    """A scanned page has no dark pixels, which the shipped corrector's haze prior (the dark channel) reads
    as a veil: fused with itself it comes back darker, and `-v` says by how much; `--no-correct` keeps it,
    and the clean pair then goes to the rule unchanged."""
    from skimage import data

    from allfuse.cli import main
    from allfuse.io import read_image, write_image

    page = tmp_path / "page.png"
    write_image(page, data.page().astype(np.float32) / 255.0)
    outs = {flag: tmp_path / f"out{len(flag)}.png" for flag in ((), ("--no-correct",))}
    lines = {}
    for flag, out in outs.items():
        assert main(["fuse", str(page), str(page), "-o", str(out), "--task", "mff", "-v", *flag]) == 0
        lines[flag] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("input corrector")]
    x = read_image(page).astype(np.float32)
    on, off = (read_image(out).astype(np.float32) for out in outs.values())
    np.testing.assert_array_equal(off, x)  # without the corrector: the rule's fusion of a clean pair
    assert on.mean() < x.mean() - 5 / 255  # with it: darkened as a veil would be
    (line,) = lines[()]
    change = float(line.split("input 1 ")[1].split("/255")[0])
    assert change == pytest.approx(255 * (on.mean() - x.mean()), abs=1.0) and "--no-correct" in line
    assert lines[("--no-correct",)] == []
