"""`allfuse fuse`: every user error exits 2 with one line naming the problem, and the ones a user can make
before any model is needed are reported before one loads (`FusionPipeline.from_pretrained` raises here
if it is called)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_io import png_header
from test_pipeline import TINY

from allfuse.cli import main
from allfuse.io import write_image
from allfuse.models import FusionDiT
from allfuse.pipeline import FusionPipeline, save_pretrained
from allfuse.train.config import load_train_config


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the error was reported")

    monkeypatch.setattr(FusionPipeline, "from_pretrained", staticmethod(refuse))


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_image(a, rng.random((24, 32), dtype=np.float32))
    write_image(b, rng.random((24, 32, 3), dtype=np.float32))
    return a, b


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI, expecting exit status 2 and exactly one line on stderr; return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("allfuse: error: "), err
    return err


# Each case of the issue: extra arguments after `fuse a.png b.png -o OUT`, and what the line must say.
BEFORE_THE_MODEL = [
    (["--prompt", ""], "--prompt '': prompt is empty"),
    (["--prompt", "   "], "prompt is empty"),
    (["--prompt", "caf\udce9"], "not valid UTF-8 text (byte 0xe9 at character 3)"),  # undecodable argv byte
    (["--prompt", "[DANCE]. go"], "unknown task tag [DANCE]"),
    (["--prompt", "[FUSION]. <WOBBLY>. fuse"], "unknown subtag <WOBBLY>"),
    # a tag the model was not trained on is refused, never silently ignored (DiTFuse tags)
    (["--prompt", "[CONTROL]. <LIGHT+>. brighter"], "allfuse-reg was not trained for [CONTROL], <LIGHT+>"),
    (["--model", "allfuse-fm", "--prompt", "[SEG]. the car"], "allfuse-fm was not trained for [SEG] (it"),
    (["--cfg-text", "2"], "--cfg-text: allfuse-reg has no classifier-free guidance"),  # JointDiT only
    (["--method", "gff", "--cfg-image", "1.5"], "--cfg-image applies to models"),
    (["--steps", "-3"], "--steps -3: give at least 1"),
    (["--steps", "0"], "--steps 0: give at least 1"),  # used to be ignored silently
    (["--steps", "many"], "argument --steps: invalid int value: 'many'"),
    (["--sampler", "bogus"], "invalid choice: 'bogus' (choose from 'euler', 'midpoint', 'midpoint_reuse'"),
    (["--tile", "-1"], "--tile -1: give a window of at least 4 latents, or 0"),
    (["--tile", "2"], "--tile 2: give a window of at least 4"),
    (["--work-side", "8"], "--work-side 8"),
    (["--max-pixels", "-1"], "--max-pixels -1"),
    (["--max-pixels", "100"], "a.png: 32x24 is 0.000768 MP, more than the pixel limit of 0.0001 MP"),
    (["--model", "allfuse-reg", "--steps", "5"], "--steps: allfuse-reg is a regression model"),
    (["--sampler", "euler"], "--sampler: allfuse-reg is a regression model"),  # the default model
    (["--model", "allfuse-fm", "--sampler", "bridge"], "--sampler bridge: the bridge sampler"),
    (["--method", "bogus"], "--method bogus: unknown method 'bogus'; fusion methods: average"),
    (["--method", "nlm"], "--method nlm restores one image"),
    (["--method", "gff", "--steps", "2"], "--steps applies to models"),
    (["--method", "gff", "--no-deblur"], "--no-deblur applies to models"),
    (["--model", "allfuse-ditfuse", "--no-deblur"], "--no-deblur: allfuse-ditfuse has no deblurring stage"),
    (["--method", "gff", "--no-correct"], "--no-correct applies to models"),
    (["--model", "allfuse-ditfuse", "--no-correct"], "--no-correct: allfuse-ditfuse has no input corrector"),
    (["--method", "gff", "--no-mirror"], "--no-mirror applies to models"),
    (["--model", "allfuse-ditfuse", "--no-mirror"], "--no-mirror: allfuse-ditfuse has no mirrored pass"),
    (["--method", "gff", "--no-pick"], "--no-pick applies to models"),
    (["--model", "allfuse-ditfuse", "--no-pick"], "--no-pick: allfuse-ditfuse has no detail pick"),
    (["--method", "gff", "--no-washout"], "--no-washout applies to models"),
    (["--model", "allfuse-ditfuse", "--no-washout"], "--no-washout: allfuse-ditfuse has no washed-out"),
    (["--method", "gff", "--prompt", "sharper"], "--prompt needs a model"),
    (["--method", "gff", "--model", "allfuse-reg"], "give --model or --method, not both"),
    (["--skip-existing"], "--skip-existing resumes a batch"),
    (["--bits", "12"], "argument --bits: invalid choice"),
]


@pytest.mark.parametrize(("extra", "expected"), BEFORE_THE_MODEL)
def test_flag_and_prompt_errors_come_before_the_model(
    extra: list[str],
    expected: str,
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_model_load: None,
) -> None:
    a, b = pair
    err = one_line_error(capsys, ["fuse", str(a), str(b), "-o", str(tmp_path / "o.png"), *extra])
    assert expected in err
    assert not (tmp_path / "o.png").exists()


def test_a_non_utf8_prompt_from_a_real_command_line(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    argv = [sys.executable, "-m", "allfuse", "fuse", str(a), str(b), "-o", str(tmp_path / "o.png")]
    run = subprocess.run([*argv, "--prompt", b"caf\xe9 au lait"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    line = "allfuse: error: --prompt 'caf\\udce9 au lait': prompt is not valid UTF-8 text (byte 0xe9 at"
    assert run.stderr.strip().splitlines() == [f"{line} character 3)"]


def test_output_path_errors_come_before_the_model(
    pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_model_load: None,
) -> None:
    a, b = pair
    fuse = ["fuse", str(a), str(b), "--model", "allfuse-reg", "-o"]
    assert "is a folder; give a file name such as" in one_line_error(capsys, [*fuse, str(tmp_path)])
    assert "the output must be a .png file" in one_line_error(capsys, [*fuse, str(tmp_path / "o.jpg")])
    assert "would overwrite an input image" in one_line_error(capsys, [*fuse, str(b)])
    err = one_line_error(capsys, [*fuse, str(a / "o.png")])
    assert f"{a} is a file, not a folder" in err
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_access = os.access  # the tests run as root, for whom chmod 555 changes nothing: ask os.access

    def access(path: object, mode: int) -> bool:
        return False if Path(str(path)) == read_only else real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    err = one_line_error(capsys, [*fuse, str(read_only / "sub" / "o.png")])
    assert f"the folder {read_only} is not writable" in err  # used to fail after the whole fusion


def test_input_errors_name_the_file_before_the_model(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_load: None
) -> None:
    a, _ = pair
    out = ["-o", str(tmp_path / "o.png")]
    assert "missing.png: no such file" in one_line_error(
        capsys, ["fuse", str(a), str(tmp_path / "missing.png"), *out]
    )
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(60000, 60000))  # used to be a DecompressionBombError traceback
    err = one_line_error(capsys, ["fuse", str(a), str(bomb), *out])
    assert "bomb.png: the header says 3600 MP, more than the pixel limit of 100 MP" in err
    assert "fuse needs at least two images" in one_line_error(capsys, ["fuse", str(a), *out])


def _tiny_model(folder: Path) -> Path:
    cfg = load_train_config("tiny-fm", [*TINY, "text_encoder=none", "model.prompt=false"])
    return save_pretrained(FusionDiT(cfg.model), cfg, folder)


def test_a_damaged_model_folder_is_named(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = pair
    model = _tiny_model(tmp_path / "model")
    fuse = ["fuse", str(a), str(b), "-o", str(tmp_path / "o.png"), "--model", str(model)]
    assert main(fuse) == 0  # the intact folder fuses
    (model / "model.safetensors").write_bytes(b"not safetensors at all")
    assert f"{model / 'model.safetensors'}: not a readable safetensors file" in one_line_error(capsys, fuse)
    (model / "config.json").write_text('["a", "list"]')
    assert f"{model / 'config.json'}: must hold a JSON object" in one_line_error(capsys, fuse)
    assert "no model here" in one_line_error(capsys, [*fuse[:-1], str(tmp_path / "nowhere")])
