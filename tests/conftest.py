"""Shared fixtures: the real benchmark pairs in ../shared/data, skipped when absent (a user's machine)."""

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
