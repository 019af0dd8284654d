"""House rules a newcomer relies on: inference does not import training (and back), and nothing shipped
holds a machine's absolute path."""

import json
import re
import subprocess
import sys
from pathlib import Path

import allfuse

PACKAGE = Path(allfuse.__file__).parent
TEXT = (".py", ".json", ".md", ".yaml", ".yml", ".txt", ".cfg", ".toml")
ABSOLUTE = re.compile(r"(?<![\w.~])(/(?:home|root|work|Users|mnt|data|scratch|opt)/\w|[A-Za-z]:\\\\\w)")


def loaded_modules(statement: str) -> set[str]:
    """The allfuse modules a fresh interpreter has loaded after `statement`."""
    names = "sorted(m for m in sys.modules if 'allfuse' in m)"
    code = f"import sys, json; {statement}; print(json.dumps({names}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_inference_and_training_do_not_import_each_other():
    inference = loaded_modules("import allfuse.pipeline, allfuse.joint_pipeline, allfuse.model_folder")
    assert {"allfuse.pipeline", "allfuse.joint_pipeline", "allfuse.sampling.joint"} <= inference
    assert not {m for m in inference if m.startswith("allfuse.train")}, "inference imports training code"
    training = loaded_modules("import allfuse.train.loop, allfuse.train.refine, allfuse.train.tokenizer")
    assert "allfuse.train.loop" in training and "allfuse.model_folder" in training
    assert "allfuse.pipeline" not in training, "training imports the inference pipeline"
    assert "allfuse.joint_pipeline" not in training and "allfuse.train.network" in training


def test_no_shipped_file_holds_an_absolute_local_path():
    offenders = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in TEXT and path.is_file():
            for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if ABSOLUTE.search(line):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{n}: {line.strip()[:80]}")
    assert not offenders, "\n".join(offenders)


def test_the_path_check_can_fail():
    assert ABSOLUTE.search('"out_dir": "/work/runs/reg"') and ABSOLUTE.search(r'"C:\\Users\\me"')
    assert not ABSOLUTE.search('"data": ["../shared/data"]') and not ABSOLUTE.search("a/work/b")
