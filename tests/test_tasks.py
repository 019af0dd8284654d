"""Task guessing: on synthetic cases, and on every real benchmark pair."""

from pathlib import Path

import numpy as np

from allfuse.demo import demo_pair
from allfuse.io import scan_pairs
from allfuse.tasks import guess_task


def test_guess_on_demo_and_synthetic_pairs() -> None:
    assert guess_task(demo_pair("mff")) == "mff"
    assert guess_task(demo_pair("mef")) == "mef"
    rng = np.random.default_rng(0)
    gray, rgb = rng.random((32, 32), dtype=np.float32), rng.random((32, 32, 3), dtype=np.float32)
    assert guess_task([gray, rgb]) == "vif"
    assert guess_task([gray, 1.0 - gray]) == "vif"  # anti-correlated gray modalities


def test_guess_is_right_on_every_shared_pair(shared_data: Path) -> None:
    expected = {"ivif": "vif", "mef": "mef", "mff": "mff"}
    for folder in sorted(p for p in shared_data.glob("*/*") if p.is_dir()):
        for pair in scan_pairs(folder).pairs:
            images, _ = pair.load()
            assert guess_task(images) == expected[folder.parent.name], pair.sources[0]
