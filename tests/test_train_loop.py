"""The training loop end to end on tiny settings: runs, logs, checkpoints, resumes exactly, runs DDP."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from allfuse.train.config import load_train_config
from allfuse.train.loop import train

# A network of a few thousand parameters on 32 px M3 samples (bundled images, no ../shared needed).
TINY = [
    "tokenizer=pixel-unshuffle-f4",
    "text_encoder=none",
    "model.hidden=32",
    "model.heads=2",
    "model.depth=2",
    "model.expert_hidden=32",
    "model.lora_rank=8",
    "model.pe_features=8",
    "batch_size=2",
    "data.size=32",
    "data.data=[]",
    "data.workers=0",
    "data.length=16",
    "log_every=1",
    "ckpt_every=3",
    "val_every=0",
    "warmup=2",
    "bf16=false",
]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    latest = (run / "latest.json").read_text()
    name = __import__("json").loads(latest)["path"]
    return load_file(run / name / "model.safetensors")


@pytest.mark.parametrize("preset", ["tiny-reg", "tiny-fm"])
def test_resume_gives_the_same_weights(tmp_path: Path, preset: str) -> None:
    # The acceptance: 10 + 10 steps gives the same weights as 20 steps.
    straight = load_train_config(preset, [*TINY, f"out_dir={tmp_path / 'a'}", "max_steps=20"])
    train(straight)
    split = load_train_config(preset, [*TINY, f"out_dir={tmp_path / 'b'}", "max_steps=20", "ckpt_every=5"])
    train(split, until=10)
    assert "step_00000010" in (tmp_path / "b" / "latest.json").read_text()
    with open(tmp_path / "b" / "log.csv", "a") as f:  # an interrupted run logged steps past its checkpoint
        f.write("11,0.1,1,9,9\n12,0.1,1,9,9\n")
    train(split)  # continues from step 10 with the same schedule and data stream
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,lr,it_s") and len(log) == 21
    resumed = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in resumed] == [r.split(",")[0] for r in log]  # each step once
    assert ",aux," in log[0]  # the pixel loss of MMAIF Eq. (9) through the differentiable decoder


def test_training_lowers_the_loss(tmp_path: Path) -> None:
    cfg = load_train_config(
        "tiny-reg",
        [
            *TINY,
            f"out_dir={tmp_path}",
            "max_steps=40",
            "lr=3e-3",
            "data.length=4",
            "log_every=1",
            "ckpt_every=40",
        ],
    )
    train(cfg)
    rows = [r.split(",") for r in (tmp_path / "log.csv").read_text().splitlines()]
    col = rows[0].index("mse")
    mse = [float(r[col]) for r in rows[1:]]
    assert sum(mse[-5:]) / 5 < 0.7 * sum(mse[:5]) / 5  # 4 samples: the network fits them


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(KeyError, match=r"model\.nope"):
        load_train_config("tiny-reg", ["model.nope=1"])


@pytest.mark.dist
def test_torchrun_two_processes(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free rendezvous port, so parallel runs never collide
        "--nproc_per_node=2",
        "-m",
        "allfuse",
        "train",
        "--config",
        "tiny",
        "--max-steps",
        "20",  # the acceptance command
        *TINY,
        f"out_dir={tmp_path}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-1000:]
    assert (tmp_path / "step_00000020" / "model.safetensors").exists()


def test_warm_start_from_a_model_folder(tmp_path: Path) -> None:
    from allfuse.models import FusionDiT
    from allfuse.pipeline import save_pretrained

    cfg = load_train_config("tiny-reg", [*TINY, f"out_dir={tmp_path / 'run'}", "max_steps=1", "lr=0"])
    donor = FusionDiT(dataclasses.replace(cfg.model, latent_channels=48, prompt=False))
    torch.nn.init.normal_(donor.final.linear.weight)  # not the zero init a fresh model has
    save_pretrained(donor, cfg, tmp_path / "donor", dtype=torch.float16)
    train(dataclasses.replace(cfg, init_from=str(tmp_path / "donor")))
    got = _weights(tmp_path / "run")["final.linear.weight"]
    torch.testing.assert_close(got, donor.final.linear.weight.detach().half().float())


def test_export_makes_a_model_folder_the_pipeline_loads(tmp_path: Path) -> None:
    from allfuse.cli import main
    from allfuse.pipeline import FusionPipeline

    cfg = load_train_config("tiny-fm", [*TINY, f"out_dir={tmp_path / 'run'}", "max_steps=2"])
    train(cfg)
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "model")]) == 0
    pipe = FusionPipeline.from_pretrained(tmp_path / "model")
    out = pipe([np.zeros((24, 20), np.float32), np.ones((24, 20), np.float32)], task="mff", steps=2)
    assert out.shape == (24, 20)
