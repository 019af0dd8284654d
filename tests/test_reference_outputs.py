"""The shipped models return what they returned before a refactor: max abs difference <= 1e-6 on the demo
pairs against tests/data/reference_outputs.npz (made by tests/make_reference_outputs.py)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import make_reference_outputs as ref


def test_shipped_models_give_the_reference_outputs():
    saved = np.load(ref.OUT)
    if str(saved["cpu"]) != ref.cpu_kernels():
        pytest.skip(f"reference made with {saved['cpu']} kernels; bf16 sums differ on other CPU kernels")
    for model, _ in ref.CASES:
        assert str(saved[f"{model}/digest"]) == ref.weights_digest(model), (
            f"{model}'s weights changed: if on purpose, run python tests/make_reference_outputs.py"
        )
    new = ref.outputs()
    for model, task in ref.CASES:
        key = f"{model}/{task}"
        assert new[key].shape == saved[key].shape
        assert float(np.abs(new[key] - saved[key]).max()) <= 1e-6, key
