"""The `allfuse` command line: demo main job, fuse, eval, and its one-line errors."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from allfuse.cli import main
from allfuse.demo import _near_mask
from allfuse.io import read_image, write_image


def test_main_job_fuses_the_demo_pair(tmp_path: Path) -> None:
    out = tmp_path / "fused.png"
    assert main(["fuse", "-o", str(out)]) == 0
    fused = read_image(out)
    inputs = [read_image(tmp_path / f"fused_demo_input{i}.png") for i in (1, 2)]
    assert fused.shape == inputs[0].shape == inputs[1].shape
    # the multi-focus demo: in each region the result is sharper than the input that is blurred there
    head = _near_mask(*fused.shape[:2])
    for region, blurred in ((head > 0.99, inputs[1]), (head < 0.01, inputs[0])):
        grad = [np.abs(np.diff(x.mean(axis=2), axis=1))[region[:, 1:]].mean() for x in (fused, blurred)]
        assert grad[0] > grad[1]


def test_fuse_real_pair_keeps_size(tmp_path: Path, shared_data: Path) -> None:
    ir, vi = (shared_data / f"ivif/RoadScene/{m}/FLIR_00211.jpg" for m in ("ir", "vi"))
    out = tmp_path / "o.png"
    assert main(["fuse", str(ir), str(vi), "-o", str(out), "--method", "average"]) == 0
    src = read_image(vi)
    assert read_image(out).shape == src.shape  # colour kept from the visible image, same size


def test_fuse_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_image(a, np.zeros((8, 8), np.float32))
    write_image(b, np.zeros((9, 8), np.float32))
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "b.png: size mismatch" in err and len(err.splitlines()) == 1
    no_model = ["--model", str(tmp_path / "no-model")]  # the inputs are checked before any model load
    assert main(["fuse", str(a), str(b), *no_model, "-o", str(tmp_path / "o.png")]) == 2
    assert "b.png: size mismatch" in capsys.readouterr().err
    assert main(["fuse", str(a), str(a), "--work-side", "8", "-o", str(tmp_path / "o.png")]) == 2
    assert "--work-side 8" in capsys.readouterr().err
    assert main(["fuse", str(a), str(a), "-o", str(a)]) == 2
    assert "overwrite an input" in capsys.readouterr().err
    (tmp_path / "c.png").write_bytes(b"garbage")
    assert main(["fuse", str(a), str(tmp_path / "c.png")]) == 2
    assert "c.png" in capsys.readouterr().err
    assert main(["eval", "--data", str(tmp_path), "--methods", "nope", "--out", str(tmp_path / "r")]) == 2
    assert "unknown method" in capsys.readouterr().err


def _tiny_dataset(root: Path) -> Path:
    rng = np.random.default_rng(1)
    base = rng.random((40, 48, 3)).astype(np.float32)
    for folder, gain in (("under", 0.4), ("over", 1.6)):
        for name in ("p1", "p2"):
            write_image(root / folder / f"{name}.png", np.clip(base * gain, 0, 1))
    PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(root / "under" / "lonely.png")
    return root


def test_eval_writes_every_format(tmp_path: Path) -> None:
    data = _tiny_dataset(tmp_path / "mef" / "toy")
    out = tmp_path / "R"
    rc = main(
        [
            "eval",
            "--data",
            str(data),
            "--methods",
            "average,laplacian",
            "--metrics",
            "EN,SF,Qabf",
            "--out",
            str(out),
            "--format",
            "md,csv,json,html",
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["datasets"]["toy"]) == {"average", "laplacian"}
    for scores in results["datasets"]["toy"].values():
        assert set(scores) == {"EN", "SF", "Qabf"} and all(math.isfinite(v) for v in scores.values())
    assert any("lonely.png: missing partner" in p for p in results["problems"])
    csv_lines = (out / "per_image.csv").read_text().splitlines()
    assert csv_lines[0] == "dataset,pair,method,task,EN,SF,Qabf" and len(csv_lines) == 5
    md = (out / "results.md").read_text()
    assert "| Method | EN ↑ | SF ↑ | Qabf ↑ |" in md and "**" in md
    html = (out / "report.html").read_text()
    assert "plots/SF.svg" in html and (out / "plots" / "SF.svg").stat().st_size > 0
    assert "img/toy/p1_laplacian.png" in html and (out / "img/toy/p1_laplacian.png").exists()
