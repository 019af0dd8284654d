"""The ONE table of degradation parameters: per op, per parameter, a range (or choices) per severity level.

MMAIF Sect. 3.1: general ops for every task (Gaussian blur, motion blur, downsample, noise, JPEG, rain,
haze, snow) plus task-specific ones (VIF: low exposure, low contrast, IR stripes; MEF: low contrast; MFF:
low and high exposure). Beyond the paper, VIF also gets high exposure on the visible image (glare,
headlights, a camera metering for the dark): real visible cameras over-expose as often as they
under-expose; and MFF gets low contrast (a dull scene or a veiling glare is a property of the scene, not of
the focus; without it a multi-focus model learns to copy tones and leaves a veil in place). Severity
levels are 1 (mild), 2 (moderate), 3 (severe); a parameter is drawn uniformly from its level's range.
Images are float in [0, 1], so intensities are on that scale; lengths that depend on image size are
fractions of the short side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

Level = Literal[1, 2, 3]
LEVELS: tuple[int, ...] = get_args(Level)
SEVERITY_NAMES: dict[int, str] = {1: "mild", 2: "moderate", 3: "severe"}
Spec = int | Mapping[str, float]  # a severity level, or explicit parameters (replay)
Params = dict[str, float]

OpName = Literal[
    "gaussian_blur",
    "motion_blur",
    "downsample",
    "noise",
    "jpeg",
    "rain",
    "haze",
    "snow",
    "low_exposure",
    "high_exposure",
    "low_contrast",
    "ir_stripes",
]
OP_NAMES: tuple[str, ...] = get_args(OpName)
Kind = Literal["float", "int", "choice", "seed"]


@dataclass(frozen=True)
class Param:
    """One parameter: per-level (lo, hi) for float/int, per-level choices for 'choice'; 'seed' has none."""

    kind: Kind
    levels: tuple[tuple[float, ...], ...] = ()
    doc: str = ""

    def sample(self, level: int, rng: np.random.Generator) -> float:
        """Draw a value for a severity level."""
        if self.kind == "seed":
            return int(rng.integers(0, 2**31 - 1))
        v = self.levels[level - 1]
        if self.kind == "choice":
            return float(v[int(rng.integers(len(v)))])
        x = float(rng.uniform(v[0], v[1]))
        return float(round(x)) if self.kind == "int" else x


def _lv(a: tuple[float, ...], b: tuple[float, ...], c: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    return (a, b, c)


ANY_ANGLE = ((0.0, 180.0),) * 3
SEED = Param("seed", doc="random realization (noise, streak/flake positions)")

# op -> parameter -> Param. Everything the pipeline samples comes from here.
TABLE: dict[str, dict[str, Param]] = {
    "gaussian_blur": {
        "sigma": Param("float", _lv((0.6, 1.2), (1.2, 2.0), (2.0, 3.2)), "std, px"),
        "kernel": Param("choice", ((0, 1),) * 3, "0 Gaussian; 1 defocus disk of radius 2 sigma (same std)"),
    },
    "motion_blur": {
        "length": Param("int", _lv((5, 9), (9, 15), (15, 23)), "line kernel length, px"),
        "angle": Param("float", ANY_ANGLE, "degrees"),
    },
    "downsample": {
        "factor": Param("choice", _lv((2,), (2, 4), (4,)), "downscale factor, then bicubic back"),
        "down": Param("choice", ((0, 1, 2),) * 3, "down interpolation: 0 area, 1 bilinear, 2 bicubic"),
    },
    "noise": {
        "sigma": Param("float", _lv((0.005, 0.02), (0.02, 0.04), (0.04, 0.08)), "Gaussian std"),
        "peak": Param("float", _lv((1000, 3000), (300, 1000), (80, 300)), "Poisson photons at white"),
        "seed": SEED,
    },
    "jpeg": {"quality": Param("int", _lv((55, 80), (30, 55), (10, 30)), "JPEG quality")},
    "rain": {
        "density": Param("float", _lv((0.002, 0.004), (0.004, 0.008), (0.008, 0.014)), "drops per px"),
        "length": Param("float", _lv((0.04, 0.08), (0.08, 0.14), (0.14, 0.22)), "streak length / short side"),
        "angle": Param("float", ((-25.0, 25.0),) * 3, "degrees from vertical"),
        "alpha": Param("float", _lv((0.45, 0.6), (0.6, 0.8), (0.8, 0.95)), "streak opacity"),
        "seed": SEED,
    },
    "haze": {
        "beta": Param("float", _lv((0.5, 1.0), (1.0, 1.8), (1.8, 3.0)), "scattering coeff, depth in [0,1]"),
        "airlight": Param("float", _lv((0.7, 0.85), (0.78, 0.92), (0.85, 1.0)), "atmospheric light A"),
    },
    "snow": {
        "density": Param("float", _lv((0.002, 0.004), (0.004, 0.007), (0.007, 0.012)), "flakes per px"),
        "size": Param("float", _lv((0.004, 0.007), (0.006, 0.009), (0.008, 0.012)), "largest flake / side"),
        "motion": Param("float", _lv((0.0, 0.02), (0.01, 0.04), (0.02, 0.06)), "fall streak / short side"),
        "angle": Param("float", ((-30.0, 30.0),) * 3, "degrees from vertical"),
        "veil": Param("float", _lv((0.0, 0.08), (0.05, 0.15), (0.1, 0.25)), "whitening of the scene"),
        "seed": SEED,
    },
    "low_exposure": {
        "gain": Param("float", _lv((0.45, 0.65), (0.3, 0.45), (0.15, 0.3)), "linear gain"),
        "gamma": Param("float", _lv((1.1, 1.4), (1.3, 1.7), (1.5, 2.2)), "x ** gamma before gain"),
        "peak": Param("float", _lv((600, 1200), (300, 600), (150, 300)), "Poisson photons at white"),
        "sigma": Param("float", _lv((0.002, 0.004), (0.003, 0.006), (0.004, 0.008)), "read-noise std"),
        "seed": SEED,
    },
    "high_exposure": {
        "gain": Param("float", _lv((1.3, 1.6), (1.6, 2.1), (2.1, 3.0)), "linear gain, then clip"),
        "gamma": Param("float", _lv((0.85, 0.95), (0.75, 0.85), (0.6, 0.75)), "x ** gamma before gain"),
    },
    "low_contrast": {
        "factor": Param("float", _lv((0.55, 0.75), (0.35, 0.55), (0.2, 0.35)), "kept fraction of contrast"),
        "pivot": Param("float", ((0.35, 0.65),) * 3, "gray level contrast shrinks toward"),
    },
    "ir_stripes": {
        "stripe": Param("float", _lv((0.01, 0.03), (0.03, 0.06), (0.06, 0.10)), "column offset std"),
        "noise": Param("float", _lv((0.005, 0.01), (0.01, 0.02), (0.02, 0.04)), "Gaussian std"),
        "seed": SEED,
    },
}

GENERAL_OPS: tuple[str, ...] = (
    "gaussian_blur",
    "motion_blur",
    "downsample",
    "noise",
    "jpeg",
    "rain",
    "haze",
    "snow",
)
WEATHER_OPS: tuple[str, ...] = ("rain", "haze", "snow")
# MMAIF Sect. 3.1: the task-specific additions to the general set.
TASK_EXTRA: dict[str, tuple[str, ...]] = {
    "vif": ("low_exposure", "high_exposure", "low_contrast", "ir_stripes"),  # high: beyond the paper
    "mef": ("low_contrast",),
    "mff": ("low_exposure", "high_exposure", "low_contrast"),  # low contrast: beyond the paper
}
TASK_OPS: dict[str, tuple[str, ...]] = {t: GENERAL_OPS + extra for t, extra in TASK_EXTRA.items()}
EXCLUSIVE: tuple[frozenset[str], ...] = (frozenset({"low_exposure", "high_exposure"}),)
# Physical order of application: scene (weather) -> exposure -> optics -> sampling -> sensor -> codec.
ORDER: tuple[str, ...] = (
    "haze", "rain", "snow", "low_exposure", "high_exposure", "low_contrast",
    "gaussian_blur", "motion_blur", "downsample", "noise", "ir_stripes", "jpeg",
)  # fmt: skip


def sample_params(op: str, level: int, rng: np.random.Generator) -> Params:
    """Draw every parameter of `op` at a severity level (1..3), in table order."""
    if op not in TABLE:
        raise ValueError(f"unknown degradation {op!r}; choose from {', '.join(OP_NAMES)}")
    if level not in LEVELS:
        raise ValueError(f"severity must be 1, 2 or 3, got {level!r}")
    return {name: p.sample(level, rng) for name, p in TABLE[op].items()}


def resolve(op: str, spec: Spec, rng: np.random.Generator) -> Params:
    """Turn a severity level into sampled parameters, or check an explicit parameter mapping."""
    if isinstance(spec, Mapping):
        missing = set(TABLE[op]) - set(spec)
        if missing:
            raise ValueError(f"{op}: missing parameters {sorted(missing)}")
        return {k: int(spec[k]) if TABLE[op][k].kind == "seed" else float(spec[k]) for k in TABLE[op]}
    return sample_params(op, int(spec), rng)


def resolve_seeded(op: str, spec: Spec, rng: np.random.Generator) -> tuple[Params, np.random.Generator]:
    """`resolve` for an op with a "seed" parameter, plus the generator of its random realization, seeded
    from that parameter so the op replays from its params alone."""
    p = resolve(op, spec, rng)
    return p, np.random.default_rng(int(p["seed"]))


def tasks_of(op: str) -> list[str]:
    """The fusion tasks whose degradation set contains `op`."""
    return [t for t, ops in TASK_OPS.items() if op in ops]


def describe_table() -> list[dict]:
    """Every op with its parameters, per-level ranges and tasks (for `allfuse synth --list`)."""
    rows = []
    for op in OP_NAMES:
        params = {
            name: {
                "kind": p.kind,
                "doc": p.doc,
                "levels": {SEVERITY_NAMES[i + 1]: list(v) for i, v in enumerate(p.levels)},
            }
            for name, p in TABLE[op].items()
        }
        rows.append({"op": op, "tasks": tasks_of(op), "weather": op in WEATHER_OPS, "params": params})
    return rows
