"""Detail pick (allfuse.pick): after the latent path, each of the finest Laplacian bands takes the teacher's
rule's detail wherever it is stronger than the model's; the coarse base stays the model's; noisy inputs get
no pick; bands of rows give the whole-image result."""

import cv2
import numpy as np
import pytest
from photos import resized_photo

from allfuse.gate import pair_noise, rule_fusion
from allfuse.pick import PICK_GAIN, PICK_NOISE, pick_detail
from allfuse.pipeline import PICK, FusionPipeline


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigma)


def fine_energy(x: np.ndarray) -> float:
    return float(np.abs(x - blur(x, 1.0)).mean())


def test_the_sharper_fusions_detail_is_taken_and_the_base_stays_the_models() -> None:
    sharp = resized_photo("astronaut", 128)
    soft = blur(sharp, 1.5)
    brighter = np.clip(soft + 0.1, 0, 1)  # the model's base: a brighter, softer fusion
    out = pick_detail(brighter, sharp)
    assert fine_energy(out) > 0.8 * fine_energy(sharp) > fine_energy(brighter)  # the rule's detail
    # the base is the model's: at coarse scale the output keeps its brightness, not the rule's
    assert abs(float(blur(out, 8.0).mean() - blur(brighter, 8.0).mean())) < 0.01
    # the other way round the model's detail is the stronger almost everywhere: it stays nearly unchanged
    kept = pick_detail(sharp, soft)
    assert np.abs(kept - sharp).mean() < 0.2 * np.abs(soft - sharp).mean()


def test_strength_scales_the_pick_and_bands_match_the_whole_image() -> None:
    rng = np.random.default_rng(0)
    m = blur(rng.random((203, 157, 3)).astype(np.float32), 2.0)
    r = blur(rng.random((203, 157, 3)).astype(np.float32), 0.7)
    np.testing.assert_array_equal(pick_detail(m, r, strength=0.0), m)
    full, half = pick_detail(m, r), pick_detail(m, r, strength=0.5)
    assert 0.3 < np.abs(half - m).mean() / np.abs(full - m).mean() < 0.7
    np.testing.assert_allclose(pick_detail(m, r, band_pixels=157 * 40), full, atol=1e-6)  # 6 bands
    gray = pick_detail(m[..., 0], r[..., 0])
    assert gray.shape == m.shape[:2] and gray.min() >= 0 and gray.max() <= 1
    with pytest.raises(ValueError, match=r"model fusion \(203, 157, 3\) and rule fusion \(203, 157\)"):
        pick_detail(m, r[..., 0])


@pytest.fixture(scope="module")
def pipe() -> FusionPipeline:
    return FusionPipeline.from_pretrained("allfuse-reg")


def test_the_pipeline_picks_on_clean_inputs_and_not_on_noisy_ones(pipe) -> None:
    assert PICK and pipe.pick
    x = resized_photo("astronaut", 128)
    y = blur(x, 2.0)  # a multi-focus-like pair; gate off so the latent path runs
    kw = {"task": "mff", "gate": False}
    restored = pipe.gate_inputs([x, y], "mff")
    assert pair_noise(restored) < PICK_NOISE[0] and pipe.pick_strength(restored) == 1.0
    plain, picked = pipe([x, y], pick=False, **kw), pipe([x, y], **kw)
    assert np.abs(picked - plain).mean() > 1e-3
    # the pick moves the fusion's fine detail toward the rule's where the rule's is the stronger
    rule = rule_fusion(restored, "mff")
    assert np.abs(picked - rule).mean() < np.abs(plain - rule).mean()
    noise = np.random.default_rng(1).normal(0, 12 / 255, x.shape).astype(np.float32)
    noisy = [np.clip(x + noise, 0, 1), np.clip(y + noise[::-1], 0, 1)]
    assert pipe.pick_strength(pipe.gate_inputs(noisy, "mff")) == 0.0  # multi-focus: no denoising stage
    np.testing.assert_array_equal(pipe(noisy, **kw), pipe(noisy, pick=False, **kw))


def test_verbose_fuse_says_how_much_it_picks(tmp_path, capsys) -> None:
    from allfuse.cli import main
    from allfuse.io import write_image

    x = resized_photo("astronaut", 96)
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    write_image(paths[0], x)
    write_image(paths[1], blur(x, 2.0))
    out = str(tmp_path / "f.png")
    args = ["fuse", *map(str, paths), "-o", out, "--task", "mff", "--no-gate", "-v"]
    assert main(args) == 0
    line = [s for s in capsys.readouterr().out.splitlines() if s.startswith("detail pick (mff)")]
    assert (
        line
        and "exposure gain 1.00" in line[0]
        and "takes 100% of the rule focus's fine detail where it is stronger" in line[0]
    )
    assert main([*args, "--no-pick"]) == 0
    assert "detail pick" not in capsys.readouterr().out


def test_the_pick_fades_with_the_exposure_stages_gain(pipe) -> None:
    x = resized_photo("astronaut", 128)
    clean = pipe.gate_inputs([x, blur(x, 2.0)], "mff")
    assert [pipe.pick_strength(clean, g) for g in (1.0, 1.2, 1.35, 1.5, 3.0)] == pytest.approx(
        [1, 1, 0.5, 0, 0]
    )
    dark = [0.12 * x, 0.12 * blur(x, 2.0)]  # under-exposed: the exposure stage brightens it
    gain = pipe.exposure_gain(dark, "mff")
    assert gain >= PICK_GAIN[1]
    kw = {"task": "mff", "gate": False}
    np.testing.assert_array_equal(pipe(dark, **kw), pipe(dark, pick=False, **kw))
