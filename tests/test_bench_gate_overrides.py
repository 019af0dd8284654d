"""bench/gate_overrides.py: its rows, and its reconstruction of the gate's own choice."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the script imports its bench neighbours (degrade, cases, machine)
from test_bench_degrade import load_bench_module  # noqa: E402
from test_gate import always, photo  # noqa: E402

from allfuse.model_folder import resolve_model_folder  # noqa: E402
from allfuse.pipeline import REPAIRED_JPEG, FusionPipeline  # noqa: E402

G = load_bench_module(BENCH / "gate_overrides.py")


def test_each_case_falls_in_the_row_of_what_the_stages_did_and_the_gate_chose() -> None:
    assert G.category(0, False, 0.0) is None  # the latent path's anyway: nothing to compare
    assert G.category(30, True, 0.0) is None
    assert G.category(30, False, 1.0) == G.category(REPAIRED_JPEG, True, 0.4) == "deblocked"
    assert G.category(REPAIRED_JPEG + 5, False, 1.0) is None  # a quality the override leaves to the gate
    assert G.category(REPAIRED_JPEG + 5, True, 0.4) == "deconvolved, blended"
    assert G.category(0, True, 1.0) == "deconvolved, clean"
    assert G.category(0, False, 0.3) == "not repaired, blended"
    assert G.category(0, False, 0.3, (20.0, 0.5)) == "corrected unevenly, blended"
    assert G.category(0, False, 0.3, (20.0, 18.0)) == "not repaired, blended"  # an even correction
    assert G.category(0, False, 1.0, (20.0, 0.5)) is None  # the rule alone: no blend to take away
    assert G.category(0, False, 1.0) is None  # a clean pair the rule fuses: not what the bench is about


def test_the_gates_own_choice_is_what_the_pipeline_gives_where_no_override_applies(tmp_path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(resolve_model_folder("allfuse-reg"), folder)
    pair = [photo(), photo()[:, ::-1].copy()]  # sharp and clean: neither repair runs
    (folder / "gate.json").write_text(json.dumps({"gate": always(False, blend=0.25).to_dict()}))
    pipe = FusionPipeline.from_pretrained(folder)
    row, scored = G.measure(pipe, "vif", pair, pair)
    assert row == "not repaired, blended"
    expected = G.score({"gate": pipe(pair, task="vif"), "model": pipe(pair, task="vif", gate=False)}, pair,
                       list(G.METRICS))  # fmt: skip
    for name in ("gate", "model"):
        for metric in G.METRICS:
            assert np.isclose(scored[name][metric], expected[name][metric], atol=1e-4), (name, metric)
    lines = G.summary({row: [scored]})
    assert lines[0].startswith("| cases | n | Qabf higher") and "| not repaired, blended | 1 |" in lines[-1]
