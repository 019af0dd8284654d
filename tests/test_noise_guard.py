"""The refiner's noise guard: on a strongly noisy multi-focus pair the refiner's change is damped down to a
floor or dropped (refiner.json `noise_guard`), and nothing else changes."""

import json
import shutil

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from allfuse.color import to_gray
from allfuse.denoise import pair_chroma_noise
from allfuse.gate import pair_noise
from allfuse.model_folder import MODELS_DIR, check_noise_guard, load_noise_guard
from allfuse.models.refine import DampedRefiner, Refiner, RefinerConfig, guard_weight
from allfuse.pipeline import FusionPipeline


def _pair(noise: float, seed: int = 0) -> list[np.ndarray]:
    """A synthetic multi-focus pair of the astronaut (left / right half blurred), with Gaussian noise of
    std `noise`/255 on both inputs."""
    x = data.astronaut().astype(np.float32) / 255
    x = resize(x, (160, 160, 3), anti_aliasing=True).astype(np.float32)
    soft = np.stack([np.asarray(resize(resize(c, (40, 40)), (160, 160))) for c in x.transpose(2, 0, 1)], -1)
    a, b = x.copy(), x.copy()
    a[:, 80:], b[:, :80] = soft[:, 80:], soft[:, :80]
    rng = np.random.default_rng(seed)
    return [np.clip(im + rng.normal(0, noise / 255, im.shape), 0, 1).astype(np.float32) for im in (a, b)]


def test_guard_weight_ramps_from_one_to_its_floor() -> None:
    assert guard_weight(2.0, 7.0, 10.0) == 1.0 and guard_weight(12.0, 7.0, 10.0) == 0.0
    assert guard_weight(8.5, 7.0, 10.0) == pytest.approx(0.5)
    assert guard_weight(2.0, 7.0, 10.0, 0.25) == 1.0 and guard_weight(30.0, 7.0, 10.0, 0.25) == 0.25
    assert guard_weight(8.5, 7.0, 10.0, 0.25) == pytest.approx(0.625)


def test_a_damped_refiner_moves_the_fusion_part_of_the_way() -> None:
    torch.manual_seed(0)
    net = Refiner(RefinerConfig(width=8, blocks=(1, 1), mix=True)).eval()
    for p in net.parameters():  # a refiner that changes its input (an untrained one returns it)
        p.data.normal_(0, 0.2)
    fused, inputs = torch.rand(1, 3, 32, 32), [torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)]
    with torch.no_grad():
        full = net(fused, inputs)
        assert not torch.allclose(full, fused)
        torch.testing.assert_close(DampedRefiner(net, 1.0)(fused, inputs), full)
        torch.testing.assert_close(DampedRefiner(net, 0.0)(fused, inputs), fused)
        torch.testing.assert_close(DampedRefiner(net, 0.25)(fused, inputs), fused + 0.25 * (full - fused))
    assert DampedRefiner(net, 0.5).cfg is net.cfg
    with pytest.raises(ValueError, match="weight"):
        DampedRefiner(net, 1.5)


def test_noise_guards_are_checked() -> None:
    assert check_noise_guard({"mff": [7, 10]}) == {"mff": (7.0, 10.0, 0.0, 0.0, 0.0)}
    assert check_noise_guard({"mff": [7, 10, 0.25]}) == {"mff": (7.0, 10.0, 0.25, 0.0, 0.0)}
    assert check_noise_guard({"mff": [7, 10, 0.25, 2.5, 4.5]}) == {"mff": (7.0, 10.0, 0.25, 2.5, 4.5)}
    bad_guards = ({"mff": [10, 7]}, {"mff": [0, 7]}, {"sharpen": [1, 2]}, {"mff": [1]}, [7, 10], {"mff": "7"})
    bad_chroma = ({"mff": [7, 10, 0.2, 4, 2]}, {"mff": [7, 10, 0.2, 0, 2]}, {"mff": [7, 10, 0.2, 1, 0]})
    bad_floor = ({"mff": [7, 10, 1.0]}, {"mff": [7, 10, -0.1]}, {"mff": [7, 10, 0.2, 1]})
    for bad in (*bad_guards, *bad_chroma, *bad_floor):
        with pytest.raises(ValueError, match="noise_guard"):
            check_noise_guard(bad)


def test_a_bad_guard_in_refiner_json_is_named(tmp_path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(MODELS_DIR / "allfuse-reg", folder)
    meta = json.loads((folder / "refiner.json").read_text())
    meta["noise_guard"] = {"mff": [10, 3]}
    (folder / "refiner.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"refiner\.json: noise_guard"):
        load_noise_guard(folder)
    with pytest.raises(ValueError, match=r"refiner\.json"):
        FusionPipeline.from_pretrained(folder)


def test_the_shipped_guard_measures_the_pair_and_spares_clean_and_other_tasks() -> None:
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    assert set(pipe.noise_guard) == {"mff"}
    clean, noisy = _pair(0.0), _pair(25.0)
    assert pair_noise(clean) < 3 and pair_noise(noisy) > 12  # luminance averages the channels
    assert pipe.refiner_weight(clean, "mff") == 1.0
    assert pipe.refiner_weight(noisy, "mff") == pipe.noise_guard["mff"][2] < 1
    assert pipe.refiner_weight(noisy, "vif") == 1.0


def test_the_chroma_bounds_guard_colour_noise_the_luminance_reads_as_texture() -> None:
    """Per-channel noise of 5/255 reads below the luminance's `low` but above `chroma_high` on the colour
    pair; the same pair in gray, whose luminance reads the same, keeps all of the refiner's change."""
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    low, high, floor, chroma_low, chroma_high = pipe.noise_guard["mff"]
    assert 0 < chroma_low < chroma_high < low
    colour = _pair(5.0)
    gray = [np.repeat(to_gray(x)[..., None], 3, axis=2) for x in colour]
    assert pair_noise(colour) < low and pair_chroma_noise(colour) > chroma_high
    assert pair_noise(gray) == pytest.approx(pair_noise(colour)) and pair_chroma_noise(gray) == 0.0
    assert pipe.refiner_weight(colour, "mff") == floor
    assert pipe.refiner_weight(gray, "mff") == 1.0
    assert pipe.refiner_weight(_pair(0.0), "mff") == 1.0  # the clean colour pair
    pipe.noise_guard = {"mff": (low, high, floor)}  # without the chroma bounds
    assert pipe.refiner_weight(colour, "mff") == 1.0


def test_no_clean_multi_focus_pair_reaches_the_chroma_bound(shared_data) -> None:
    """The card's calibration: every clean multi-focus pair of the shared benchmark reads below the shipped
    guard's chroma_low, so the chroma bounds damp no clean pair's refiner."""
    from allfuse.io import find_pairs

    chroma_low = FusionPipeline.from_pretrained("allfuse-reg").noise_guard["mff"][3]
    for folder in ("mff/Lytro", "mff/MFI-WHU"):
        for pair in find_pairs(shared_data / folder):
            assert pair_chroma_noise(pair.load()[0]) < chroma_low, pair.name


def test_a_guarded_refiner_keeps_its_floor_of_the_change_and_the_guard_survives_saving(tmp_path) -> None:
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    pipe.mean_tasks = ()  # the guard alone: keep_mean's shift would clip some outputs differently
    noisy = _pair(25.0)
    plain = pipe(noisy, task="mff", gate=False, refine=False, work_side=pipe.work_side)
    pipe.noise_guard = {}
    full = pipe(noisy, task="mff", gate=False)
    assert np.abs(full - plain).max() > 0.02
    pipe.noise_guard = {"mff": (7.0, 10.0)}  # no floor: the refiner is dropped
    np.testing.assert_allclose(pipe(noisy, task="mff", gate=False), plain, atol=1e-6)
    pipe.noise_guard = {"mff": (7.0, 10.0, 0.25)}  # the floor: a quarter of the refiner's change
    floor = pipe(noisy, task="mff", gate=False)
    inside = (full > 0.01) & (full < 0.99)  # where the output's clipping to [0, 1] did not cut the change
    np.testing.assert_allclose(floor[inside], (plain + 0.25 * (full - plain))[inside], atol=2e-3)
    pipe.noise_guard = {"mff": (30.0, 40.0, 0.5, 2.0, 3.0), "mef": (5.0, 6.0, 0.0)}
    folder = pipe.save_pretrained(tmp_path / "copy")
    again = FusionPipeline.from_pretrained(folder)
    assert again.noise_guard == {"mff": (30.0, 40.0, 0.5, 2.0, 3.0), "mef": (5.0, 6.0, 0.0, 0.0, 0.0)}
    saved = json.loads((folder / "refiner.json").read_text())["noise_guard"]
    assert saved == {"mff": [30.0, 40.0, 0.5, 2.0, 3.0], "mef": [5.0, 6.0, 0.0]}  # no chroma bounds: 3 values


def test_the_command_line_reports_the_guard(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import write_image

    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for p, im in zip(paths, _pair(25.0), strict=True):
        write_image(p, im)
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "out.png"), "--task", "mff", "-v"]) == 0
    said = capsys.readouterr().out
    assert "noise guard 7-10/255, colour " in said
    assert "(guard 2.5-4.5/255) (at least 25%): keeps 25% of its change" in said
    assert main(["fuse", *map(str, paths), "-o", str(tmp_path / "vif.png"), "--task", "vif", "-v"]) == 0
    assert "noise guard" not in capsys.readouterr().out  # no guard for infrared + visible pairs
