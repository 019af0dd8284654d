"""Shared check for the weightless stages' configs (destripe.json, exposure.json, ...): a model folder
without the file has no stage, save/load round-trips it, and a bad file is an error naming it."""

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from allfuse.model_folder import CONFIG, MODELS_DIR, WEIGHTS

Load = Callable[[Path], Any]
Save = Callable[[Any, Path], Path]


def check_stage_file(folder: Path, cfg: Any, load: Load, save: Save, file: str, bad: str) -> None:
    """`load`/`save` of a stage config `cfg` in a copy of allfuse-reg without the stage; `bad` is a JSON
    text for `file` that must be refused with the file's name."""
    for name in (CONFIG, WEIGHTS):  # a model folder without the stage
        shutil.copy(MODELS_DIR / "allfuse-reg" / name, folder / name)
    assert load(folder) is None
    save(cfg, folder)
    assert load(folder) == cfg
    (folder / file).write_text(bad)
    with pytest.raises(ValueError, match=file.replace(".", r"\.")):
        load(folder)
