"""Batch fusion (`allfuse fuse --data DIR -o OUT`); `allfuse eval` with models beside classical methods."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import TINY

from allfuse.cli import main
from allfuse.io import read_image, write_image
from allfuse.models import FusionDiT
from allfuse.pipeline import FusionPipeline, save_pretrained
from allfuse.train.config import load_train_config


def _dataset(root: Path, names: tuple[str, ...] = ("p1", "p2", "p3")) -> Path:
    """A tiny MEF folder (under/over) with one pair per name."""
    rng = np.random.default_rng(1)
    for name in names:
        base = rng.random((20, 24), dtype=np.float32)
        write_image(root / "under" / f"{name}.png", base * 0.4)
        write_image(root / "over" / f"{name}.png", 0.5 + base * 0.5)
    return root


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(FusionPipeline, "from_pretrained", staticmethod(refuse))


def test_failed_pairs_are_counted_and_the_rest_is_fused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _dataset(tmp_path / "data", ("p1", "p2", "p3", "p4"))
    (data / "over" / "p2.png").write_bytes(b"not a png")  # unreadable input
    write_image(data / "over" / "p3.png", np.zeros((8, 8), np.float32))  # size mismatch
    write_image(data / "under" / "lonely.png", np.zeros((8, 8), np.float32))  # no partner
    out = tmp_path / "out"
    (out / "p4.png").mkdir(parents=True)  # an output that cannot be written: the batch goes on
    assert main(["fuse", "--data", str(data), "-o", str(out), "--method", "average"]) == 1  # used to be 0
    captured = capsys.readouterr()
    assert "fused 1 of 4 pairs" in captured.out and "3 failed; 1 file(s) without a partner" in captured.out
    problems = [line for line in captured.err.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 4
    assert any("p2.png: not a readable image" in p for p in problems)
    assert any("p3.png: size mismatch" in p for p in problems)
    assert any("p4.png: cannot write (Is a directory)" in p for p in problems)
    assert read_image(out / "p1.png").shape == (20, 24)


def test_an_unwritable_output_folder_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_model_load: None
) -> None:
    data = _dataset(tmp_path / "data")
    out = tmp_path / "ro"
    out.mkdir()
    real_access = os.access  # root ignores chmod: make the folder read-only for os.access

    monkeypatch.setattr(os, "access", lambda p, m: False if Path(str(p)) == out else real_access(p, m))
    assert main(["fuse", "--data", str(data), "-o", str(out / "fused"), "--model", "allfuse-reg"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"allfuse: error: -o {out / 'fused'}: the folder {out} is not writable"
    file_out = tmp_path / "file.png"
    file_out.write_bytes(b"")
    assert main(["fuse", "--data", str(data), "-o", str(file_out)]) == 2
    assert "is a file; with --data, -o names the output folder" in capsys.readouterr().err
    assert main(["fuse", "--data", str(tmp_path / "nowhere"), "-o", str(tmp_path / "o")]) == 2
    assert "no known pair layout" in capsys.readouterr().err


def test_resume_skips_existing_outputs_and_removes_stale_temp_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_load: None
) -> None:
    data = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    # a killed run: one finished output, one temp file of write_image's atomic write (named as it names it)
    write_image(out / "p1.png", np.full((20, 24), 0.5, np.float32))
    fd, stale = tempfile.mkstemp(prefix=".p2.png.", suffix=".tmp", dir=out)
    os.close(fd)
    (out / ".keep").write_text("not ours")
    before = (out / "p1.png").read_bytes()
    batch = ["fuse", "--data", str(data), "-o", str(out), "--method", "average"]
    assert main([*batch, "--skip-existing"]) == 0
    captured = capsys.readouterr().out
    assert "removed 1 unfinished file(s)" in captured and "fused 2 of 3 pairs" in captured
    assert "1 skipped (already fused)" in captured
    assert not Path(stale).exists() and (out / ".keep").exists()
    assert (out / "p1.png").read_bytes() == before  # left as it was
    assert sorted(p.name for p in out.glob("*.png")) == ["p1.png", "p2.png", "p3.png"]
    # everything done: a second resume fuses nothing and loads no model
    assert (
        main(["fuse", "--data", str(data), "-o", str(out), "--model", "allfuse-reg", "--skip-existing"]) == 0
    )
    assert "fused 0 of 3 pairs" in capsys.readouterr().out
    assert main(batch) == 0  # without --skip-existing every pair is fused again
    assert (out / "p1.png").read_bytes() != before


def test_eval_scores_models_next_to_classical_methods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _dataset(tmp_path / "mef" / "toy")
    loads: list[str] = []

    class Fake:  # stands in for the embedded models: the test checks names, loading once, the report
        def __init__(self, name: str) -> None:
            loads.append(name)
            self.gain = 0.9 if name == "allfuse-reg" else 0.8

        def __call__(self, images: list[np.ndarray], task: str = "auto") -> np.ndarray:
            assert task == "mef"
            return np.mean(images, axis=0) * self.gain

    monkeypatch.setattr(FusionPipeline, "from_pretrained", staticmethod(Fake))
    out = tmp_path / "R"
    methods = "allfuse-reg,allfuse-fm,gff"
    rc = main(["eval", "--data", str(data), "--methods", methods, "--metrics", "SF,EN", "--out", str(out)])
    assert rc == 0 and loads == ["allfuse-reg", "allfuse-fm"]  # each model loaded once, for all pairs
    scores = json.loads((out / "results.json").read_text())["datasets"]["toy"]
    assert list(scores) == ["allfuse-reg", "allfuse-fm", "gff"]  # used to be "unknown method"
    assert "| allfuse-reg |" in (out / "results.md").read_text()
    assert (out / "img" / "toy" / "p1_allfuse-fm.png").exists()
    loads.clear()
    rc = main(["eval", "--data", str(data), "--methods", "allfuse-reg,gf", "--out", str(out)])
    assert rc == 2 and loads == []  # every name is checked before any model loads
    err = capsys.readouterr().err
    assert "unknown method 'gf'" in err
    assert "models: allfuse-reg, allfuse-fm, allfuse-ditfuse or a model folder" in err
    assert main(["eval", "--data", str(data), "--methods", str(tmp_path), "--out", str(out)]) == 2
    assert f"{tmp_path}: no model here" in capsys.readouterr().err


def test_eval_runs_a_model_folder(tmp_path: Path) -> None:
    cfg = load_train_config("tiny-fm", [*TINY, "text_encoder=none", "model.prompt=false", "sampler.steps=1"])
    model = save_pretrained(FusionDiT(cfg.model), cfg, tmp_path / "models" / "tiny")
    data = _dataset(tmp_path / "mef" / "toy", ("p1",))
    out = tmp_path / "R"
    rc = main(
        ["eval", "--data", str(data), "--methods", f"{model},average", "--metrics", "SF", "--out", str(out)]
    )
    assert rc == 0
    scores = json.loads((out / "results.json").read_text())["datasets"]["toy"]
    assert set(scores) == {str(model), "average"} and np.isfinite(scores[str(model)]["SF"])
    thumbs = sorted(p.name for p in (out / "img" / "toy").iterdir())
    assert any(n.startswith("p1_") and "models_tiny" in n for n in thumbs)  # a path is a safe file name
