"""Shared fixtures: the real benchmark pairs in ../shared/data, skipped when absent (a user's machine), and
a tiny exported DiT."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real benchmark pairs; skips the test when ../shared is not beside the repo."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip("../shared/data is absent (real benchmark pairs are only on the developers' machines)")
    return data


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported DiT (two training steps) for runs that train a part behind one (test_correct.py has
    its own, trained on a data folder)."""
    from test_train_loop import TINY

    from allfuse.cli import main
    from allfuse.train.config import load_train_config
    from allfuse.train.loop import train

    tmp = tmp_path_factory.mktemp("dit")
    train(load_train_config("tiny-reg", [*TINY, f"out_dir={tmp / 'run'}", "max_steps=2"]))
    assert main(["export", str(tmp / "run"), str(tmp / "model")]) == 0
    return tmp / "model"
