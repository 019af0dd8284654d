"""Prompts: an offline paraphrase bank, MMAIF-style instructions, the DiTFuse tagged template and its parser.

MMAIF Sect. 3.1 pairs every degraded sample with a restoration prompt drawn from 10-20 ChatGPT paraphrases
per degradation; we ship a hand-written bank (`prompt_bank.json`, >= 20 training paraphrases per task,
control level and degradation, with severity words) plus a disjoint held-out bank for evaluating unseen
wording. DiTFuse Sect. III-B2 (Fig. 6) wraps the instruction in a fixed template with a task tag and a
subtask tag; `tagged_prompt` writes it and `parse_prompt` reads it back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal, get_args

import numpy as np

TaskTag = Literal["FUSION", "CONTROL", "SEG"]
SubTag = Literal[
    "MULTI-MODALITIES", "MULTI-EXPOSURE", "MULTI-FOCUS",
    "LIGHT++", "LIGHT+", "LIGHT-", "LIGHT--", "CONTRAST+", "CONTRAST-",
]  # fmt: skip
TASK_TAGS: tuple[str, ...] = get_args(TaskTag)
SUBTAGS: tuple[str, ...] = get_args(SubTag)
CONTROL_TAGS: tuple[str, ...] = SUBTAGS[3:]
FUSION_SUBTAG: dict[str, str] = {"vif": "MULTI-MODALITIES", "mef": "MULTI-EXPOSURE", "mff": "MULTI-FOCUS"}
Split = Literal["train", "held_out"]

# DiTFuse Fig. 6: the fixed instruction template around the free-form requirement.
TEMPLATE = (
    "This is the first image <img><|image_1|></img>, and this is the second image <img><|image_2|></img>. "
    "Please generate the image based on the following requirements: "
)
_TAG_RE = re.compile(r"^\s*\[(?P<task>[A-Z]+)\]\s*\.?\s*")
_SUB_RE = re.compile(r"^<(?P<sub>[A-Z+\-]+)>\s*\.?\s*")


@cache
def bank() -> dict:
    """The paraphrase bank (read once, on first use)."""
    return json.loads(resources.files("allfuse.data").joinpath("prompt_bank.json").read_text("utf-8"))


def phrases(group: str, key: str, split: Split = "train") -> list[str]:
    """Paraphrases of one entry: group is 'tasks', 'control' or 'degradations'."""
    return list(bank()[group][key][split])


def fill(template: str, level: int, rng: np.random.Generator, cls: str = "") -> str:
    """Replace {sev}/{sevly} by a severity word of `level` and {cls} by a class name."""
    b = bank()
    sev = b["severity"][str(level)]
    adv = b["severity_adverb"][str(level)]
    out = template.replace("{sev}", sev[int(rng.integers(len(sev)))])
    return out.replace("{sevly}", adv[int(rng.integers(len(adv)))]).replace("{cls}", cls)


def pick(options: Sequence[str], rng: np.random.Generator) -> str:
    """One element, uniformly."""
    return options[int(rng.integers(len(options)))]


def compose_instruction(
    kind: str,
    rng: np.random.Generator,
    ops: Sequence[tuple[str, int]] = (),
    control: str | None = None,
    cls: str = "",
    split: Split = "train",
) -> str:
    """A natural instruction (MMAIF style): a task sentence plus one sentence per degradation, shuffled."""
    if kind == "control":
        head = pick(phrases("control", control or "LIGHT+", split), rng)
    else:
        head = fill(pick(phrases("tasks", kind, split), rng), 2, rng, cls)
    tails = [fill(pick(phrases("degradations", op, split), rng), level, rng) for op, level in ops]
    rng.shuffle(tails)
    parts = [head, *tails] if rng.random() < 0.7 else [*tails, head]
    return " ".join(p[0].upper() + p[1:] for p in parts)


def task_tags(kind: str, control: str | None = None) -> tuple[str, str | None]:
    """DiTFuse (task tag, subtag) of a sample kind: fusion tasks, m3, control, seg."""
    if kind in FUSION_SUBTAG:
        return "FUSION", FUSION_SUBTAG[kind]
    if kind == "m3":
        return "FUSION", None
    if kind == "control":
        if control not in CONTROL_TAGS:
            raise ValueError(f"control level must be one of {CONTROL_TAGS}, got {control!r}")
        return "CONTROL", control
    if kind == "seg":
        return "SEG", None
    raise ValueError(f"unknown sample kind {kind!r}")


def tagged_prompt(task: str, subtag: str | None, instruction: str) -> str:
    """DiTFuse format: ``[TASK]. <SUBTASK>. This is the first image ... requirements: <instruction>``."""
    if task not in TASK_TAGS:
        raise ValueError(f"task tag must be one of {TASK_TAGS}, got {task!r}")
    if subtag is not None and subtag not in SUBTAGS:
        raise ValueError(f"subtag must be one of {SUBTAGS}, got {subtag!r}")
    head = f"[{task}]. " + (f"<{subtag}>. " if subtag else "")
    return head + TEMPLATE + instruction


@dataclass(frozen=True)
class ParsedPrompt:
    """What `parse_prompt` recovers: task tag (None if absent), subtags, and the free-form requirement."""

    task: str | None
    subtags: tuple[str, ...]
    instruction: str


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Recover task tag, subtags and instruction from a tagged (or untagged) prompt; unknown tags raise."""
    rest = prompt
    task = None
    m = _TAG_RE.match(rest)
    if m:
        task = m.group("task")
        if task not in TASK_TAGS:
            raise ValueError(f"unknown task tag [{task}]; expected one of {TASK_TAGS}")
        rest = rest[m.end() :]
    subtags = []
    while (m := _SUB_RE.match(rest)) is not None:
        if m.group("sub") not in SUBTAGS:
            raise ValueError(f"unknown subtag <{m.group('sub')}>; expected one of {SUBTAGS}")
        subtags.append(m.group("sub"))
        rest = rest[m.end() :]
    marker = "following requirements:"
    instruction = rest.split(marker, 1)[1] if marker in rest else rest
    return ParsedPrompt(task, tuple(subtags), instruction.strip())


def make_prompts(
    kind: str,
    rng: np.random.Generator,
    ops: Sequence[tuple[str, int]] = (),
    control: str | None = None,
    cls: str = "",
    split: Split = "train",
) -> tuple[str, str]:
    """(natural instruction, DiTFuse tagged prompt) for one sample."""
    instruction = compose_instruction(kind, rng, ops, control, cls, split)
    task, sub = task_tags(kind, control)
    return instruction, tagged_prompt(task, sub, instruction)
