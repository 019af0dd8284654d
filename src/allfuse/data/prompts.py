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
from typing import Any, Literal, get_args

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
    """(natural instruction, DiTFuse tagged prompt) for one sample. The instruction (MMAIF style) is a task
    sentence (the control level's for kind "control", which needs one) plus one sentence per degradation,
    shuffled; the tagged prompt wraps it with the sample's task tag and subtag (task_tags)."""
    task, sub = task_tags(kind, control)
    if kind == "control":
        head = pick(phrases("control", control, split), rng)  # type: ignore[arg-type]  # task_tags: a level
    else:
        head = fill(pick(phrases("tasks", kind, split), rng), 2, rng, cls)
    tails = [fill(pick(phrases("degradations", op, split), rng), level, rng) for op, level in ops]
    rng.shuffle(tails)
    parts = [head, *tails] if rng.random() < 0.7 else [*tails, head]
    instruction = " ".join(p[0].upper() + p[1:] for p in parts)
    return instruction, tagged_prompt(task, sub, instruction)


def compose_instruction(*args: Any, **kwargs: Any) -> str:
    """The natural instruction of `make_prompts` alone (its arguments)."""
    return make_prompts(*args, **kwargs)[0]


# Reading a user's instruction. DiTFuse tags every training prompt; users mostly do not, so words asking
# for brightness/contrast control or segmentation map to the tag and subtag the model was trained with.
# A rule reader, not a language model: it knows the wording of requests like those of the bank, and says
# what it understood (`Intent.source`) so a caller can show it.

Source = Literal["tags", "words", "default"]
_STRONG = (
    "much|lot|lots|far|greatly|great deal|significantly|substantially|strongly|considerably|dramatically|"
    "heavily|very|way|hugely|massively|really|drastically|extremely|large|big|tons|flood\\w*"
)
_WEAK = "slightly|little|bit|touch|somewhat|gently|mildly|nudge|tad|small|subtly|marginally|just"
_UP = (
    "more|higher|increase|increased|raise|boost|bump|lift|push|turn up|crank|pump|add|stronger|enhance|"
    "strengthen"
)
_DOWN = "less|lower|decrease|decreased|reduce|reduced|cut|drop|turn down|tone down|take away|weaker|remove"
_BRIGHTNESS = r"(?:brightness|exposure|luminance|lightness|light)"
_PREDICATE = (
    r"\b(?:make|makes|making)\s+(?:the\s+)?(?:fusion|fused \w+|result|output|image|picture|it|everything)"
)
# (pattern, direction): +1 brighter, -1 darker
_LIGHT_RULES: tuple[tuple[str, int], ...] = (
    (r"\b(?:brighter|brighten\w*|lighter|lighten\w*|light up|lights up|illuminat\w+)\b", 1),
    (r"\bmore (?:luminous|light|bright)\b", 1),
    (rf"{_PREDICATE}\s+(?:\w+\s+)?bright\b", 1),
    (rf"\b(?:{_UP})\b(?:\s+\w+){{0,4}}\s+{_BRIGHTNESS}\b(?!(?:\s+\w+){{0,2}}\s+down\b)", 1),
    (r"\bflood\w*\b(?:\s+\w+){0,4}\s+light\b", 1),
    (rf"\b{_BRIGHTNESS}\s+(?:\w+\s+){{0,2}}(?:up|higher)\b", 1),
    (r"\b(?:darker|darken\w*|dimmer|dim|dims|dimmed)\b", -1),
    (r"\bless (?:luminous|light|bright)\b", -1),
    (rf"{_PREDICATE}\s+(?:\w+\s+)?dark\b", -1),
    (rf"\b(?:{_DOWN})\b(?:\s+\w+){{0,3}}\s+{_BRIGHTNESS}\b", -1),
    (rf"\b{_BRIGHTNESS}\s+(?:\w+\s+){{0,2}}(?:down|lower)\b", -1),
)
_GAP = r"(?:\s+\w+){0,2}\s+(?:gap|difference|contrast)\s+between"
_CONTRAST_RULES: tuple[tuple[str, int], ...] = (
    (rf"\b(?:{_UP}|deepen|stretch|punchier|crisper|vivid)\b(?:[\s-]+\w+){{0,3}}[\s-]+contrast", 1),
    (r"\bcontrast\s+(?:\w+\s+){0,2}(?:up|higher|stronger|vivid|punchier|deeper|crisper)\b", 1),
    (r"\b(?:more contrasty|contrastier|punchier|pop more)\b", 1),
    (r"\b(?:make|let)\s+(?:the\s+)?(?:tones|colou?rs|image|picture|it)\s+pop\b", 1),
    (r"\b(?:widen|expand|stretch|spread)\b(?:\s+\w+){0,2}\s+(?:tonal range|tones)\b", 1),
    (rf"\b(?:{_UP}|deepen|widen)\b{_GAP}", 1),
    (rf"\b(?:{_DOWN}|soften|flatten|gentler|muted)\b(?:[\s-]+\w+){{0,3}}[\s-]+contrast", -1),
    (r"\bcontrast\s+(?:\w+\s+){0,2}(?:down|lower|weaker|softer|muted|gentler|flatter)\b", -1),
    (r"\b(?:softer|gentler|weaker|lower|flatter)\s+in\s+contrast\b", -1),
    (r"\b(?:less contrasty|flatter)\b", -1),
    (r"\b(?:narrow|compress|squash)\b(?:\s+\w+){0,2}\s+(?:tonal range|tones)\b", -1),
    (rf"\b(?:{_DOWN}|narrow|shrink|close)\b{_GAP}", -1),
    (r"\bdarks? and brights? closer\b", -1),
)
# Restoration wording: a request to repair a degraded INPUT is a fusion instruction, not a control level.
_RESTORE = re.compile(
    r"\b(?:under-?expos\w*|over-?expos\w*|low[\s-]light|night\w*|washed|faded|dull\w*|glare|blown|clipped|"
    r"restore|recover|correct|fix|undo|repair|reveal|too dark|too bright|flat image|low contrast|"
    r"dark (?:input|image|scene|one)|bright (?:input|image|one)|dim lighting)\b"
)
# The user judges the OUTPUT ("the fusion is a bit too bright"): a request to change it, not a restoration.
_OUTPUT_TOO = re.compile(
    r"\b(?:fusion|fused (?:image|picture|result)|result|output)\s+(?:is|looks|seems|came out|comes out)"
    r"(?:\s+\w+){0,2}\s+too\s+(?P<how>bright|dark)\b"
)
# A time of day asked of the OUTPUT ("make it look like dusk", "as if at midday"): a strong level change.
_TIME_OF_DAY = re.compile(
    r"\b(?:look|looks|looking|feel|feels|appear|appears|seem|seems|as if|as though|turn\w*|into)\s+"
    r"(?:\w+\s+){0,3}(?:(?:taken|shot)\s+)?(?:at|in|like|into)?\s*(?:a\s+|the\s+)?"
    r"(?:(?P<dark>dusk|twilight|nightfall|night|night-time|nighttime|evening|midnight|moonlight)|"
    r"(?P<bright>noon|midday|daylight|daytime|broad daylight|full sun|sunshine))\b"
)
_SEG_VERB = r"segment|highlight|mask|outline|mark|locate|find|isolate|pick out|tint|shade|select|detect|label"
_CLASS = r"(?P<cls>[a-z][a-z\-]*(?: [a-z][a-z\-]*){0,2}?)"
_CLASS_END = (
    r"(?=\s+(?:in|on|with|from|after|and|then|using|within|region|regions|pixels|area|areas|blue|to|so|by|"
    r"that|which|at|is|are|of|for|should|must|please|now)\b|\s*[?.!,;:]|\s*$)"
)
_DETS = r"(?:(?:all|every|each|any|the|a|an|me)\s+)*"
_PART = r"(?:(?:regions?|pixels?|parts?|areas?)\s+(?:belonging\s+to|of|that\s+belong\s+to)\s+(?:the\s+)?)?"
_MARKED = r"(?:highlighted|segmented|marked|masked|tinted|shaded|coloured|colored)"
_SEG_RULES = (
    re.compile(rf"\b(?:{_SEG_VERB})[\s:]+{_DETS}{_PART}{_CLASS}{_CLASS_END}"),
    re.compile(rf"\b(?:colou?r|paint|show(?:\s+me)?)\s+{_DETS}{_CLASS}{_CLASS_END}(?=.*\bblue\b)"),
    re.compile(rf"\bwhere\s+(?:is|are)\s+(?:the\s+)?{_CLASS}{_CLASS_END}"),
    re.compile(rf"\bwhere\s+the\s+{_CLASS}\s+(?:is|are)\b"),
    re.compile(
        rf"\bthe\s+{_CLASS}\s+(?:(?:should|must|to|is|are|be|get|gets)\s+){{0,2}}{_MARKED}(?=\s+(?:in|with|by)\b|\s*[.,;!?]|\s*$)"
    ),
)
_NOT_CLASSES = {"it", "them", "this", "that", "image", "images", "result", "fusion", "picture", "output"}
_FILLER = {
    "the", "a", "an", "and", "or", "of", "to", "in", "on", "it", "is", "be", "me", "please", "image",
    "images", "picture", "pictures", "photo", "photos", "this", "that", "these", "with", "for", "so", "some",
    "just",
}  # fmt: skip


@dataclass(frozen=True)
class Intent:
    """What a prompt asks for: a task tag and subtag, the instruction, the class a [SEG] prompt names, and
    how it was read: "tags" (the user's own), "words" (mapped from the wording) or "default" (nothing
    recognised: plain fusion with the default instruction, which is then empty here)."""

    task: str
    subtag: str | None
    instruction: str
    target: str = ""
    source: Source = "tags"

    def describe(self) -> str:
        """One line for a user: '[CONTROL] <LIGHT+> "make it brighter" (read from the words)'."""
        head = f"[{self.task}]" + (f" <{self.subtag}>" if self.subtag else "")
        head += f" class {self.target!r}" if self.target else ""
        how = {
            "tags": "from its tags",
            "words": "read from the words",
            "default": "no instruction understood: plain fusion",
        }
        text = f'"{self.instruction}"' if self.instruction else "default instruction"
        return f"{head} {text} ({how[self.source]})"


def control_level(text: str) -> str | None:
    """The control subtag a wording asks for (LIGHT++ .. CONTRAST-), or None."""
    t = " ".join(re.sub(r"[^a-z+\-' ]", " ", text.lower()).split())
    contrast = {d for pat, d in _CONTRAST_RULES if re.search(pat, t)}
    light = {d for pat, d in _LIGHT_RULES if re.search(pat, t)}
    if light == {1, -1} and re.search(r"\bdarks? darker\b|\bbrights? brighter\b", t):
        contrast, light = contrast | {1}, set()  # "make darks darker and brights brighter"
    judged = _OUTPUT_TOO.search(t)  # "the result is too dark": the output, not an input, is judged
    time_of_day = _TIME_OF_DAY.search(t)
    if judged:
        light = {-1} if judged.group("how") == "bright" else {1}
    elif time_of_day and not (contrast or light):
        return "LIGHT--" if time_of_day.group("dark") else "LIGHT++"
    elif _RESTORE.search(t):
        return None
    if len(contrast) == 1:
        return "CONTRAST+" if contrast == {1} else "CONTRAST-"
    if len(light) != 1:
        return None
    strong = re.search(rf"\b(?:{_STRONG})\b", t) and not re.search(rf"\b(?:{_WEAK})\b", t)
    up = light == {1}
    return ("LIGHT++" if up else "LIGHT--") if strong else ("LIGHT+" if up else "LIGHT-")


def seg_target(text: str) -> str | None:
    """The class a segmentation request names ("highlight the car" -> "car"), or None."""
    t = " ".join(re.sub(r"[^a-z\-'?.!,;: ]", " ", text.lower()).split())
    for rule in _SEG_RULES:
        for m in rule.finditer(t):
            cls = clean_class(m.group("cls"))
            if cls and cls.split()[0] not in _NOT_CLASSES:
                return cls
    return None


def clean_class(text: str) -> str:
    """A class name without leading articles and quantifiers or trailing punctuation: "the car." -> "car"."""
    return re.sub(r"^(?:(?:the|all|every|each|any|a|an)\s+)+", "", text.strip(" .!?;:,").lower())


@cache
def _vocabulary() -> frozenset[str]:
    """Content words of the bank's instructions: a prompt with none of them is not understood."""
    words: set[str] = set()
    for group in ("tasks", "control", "degradations"):
        for entry in bank()[group].values():
            for phrase in entry["train"] + entry["held_out"]:
                words |= set(re.findall(r"[a-z]{3,}", phrase.lower()))
    return frozenset(words - _FILLER)


def read_intent(prompt: str | None) -> Intent:
    """What a prompt asks for (`Intent`): its tags when it has them, else brightness/contrast wording ->
    [CONTROL] and its level, "segment/highlight the X" -> [SEG] X, other wording a fusion instruction, and a
    prompt without any word an instruction uses -> plain fusion. Unknown [TAGS] raise (parse_prompt)."""
    if prompt is None:
        return Intent("FUSION", None, "", source="default")
    parsed = parse_prompt(prompt)
    text = parsed.instruction
    if parsed.task is not None:
        sub = parsed.subtags[0] if parsed.subtags else None
        if parsed.task == "CONTROL" and sub is None:
            sub = control_level(text)
        target = (seg_target(text) or clean_class(text)) if parsed.task == "SEG" else ""
        return Intent(parsed.task, sub, text, target, "tags")
    target = seg_target(text)
    if target:
        return Intent("SEG", None, text, target, "words")
    level = control_level(text)
    if level:
        return Intent("CONTROL", level, text, source="words")
    if set(re.findall(r"[a-z]{3,}", text.lower())) & _vocabulary():
        return Intent("FUSION", parsed.subtags[0] if parsed.subtags else None, text, source="words")
    return Intent("FUSION", None, "", source="default")
