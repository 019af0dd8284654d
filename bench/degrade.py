"""The bench's own degradations: what a validation capture suffered, drawn independently of training.

Every family here is a different formula (or parameter range) from `allfuse.data` on purpose, so that
`bench/quality.py` measures generalization, not memory of our own generator. This module must never
import `allfuse.data`. Images are float32 in [0, 1], (H, W) or (H, W, 3); every function is pure and
takes an explicit seed or rng.

| family        | here (bench)                                                | training (allfuse.data)      |
|---------------|-------------------------------------------------------------|------------------------------|
| noise         | read + shot noise in linear light (gamma 2.2), chroma-correlated | Gaussian + Poisson      |
| gauss_blur    | anisotropic (elliptic) Gaussian, rotated                    | isotropic, sigma 0.6-3.2     |
| defocus       | polygonal aperture (5-8 blades) with a bright rim           | uniform round disk           |
| motion        | curved random-trajectory PSF                                | straight line, 5-23 px       |
| haze          | depth: height + smoothed luminance; non-uniform beta; blue A | heuristic depth, uniform    |
| low_light     | gain in linear light + sensor noise + 8-bit quantization    | gain and gamma               |
| over_exposure | gain in linear light + tanh highlight shoulder              | gain and gamma, hard clip    |
| jpeg          | OpenCV, separate luma/chroma quality, 4:2:0                 | one quality 10-80            |
| ir_stripes    | row + column fixed pattern, column gain, slow drift         | per-column offsets + noise   |
| weather       | rain segments or snow discs (one family), alpha-over, veil  | blurred seeds, screen blend  |
| low_contrast  | pulled toward the image's own median luminance              | toward a gray of 0.35-0.65   |

Routing follows a real capture (`targets`): for VIF (sources: IR, visible) haze, weather, low light and
over-exposure hit the visible image only, IR stripes and low contrast the IR image only (a thermal camera's
automatic gain on a scene without hot or cold objects: the flat infrared image of the field's
all-in-one fusion papers); everything else, and every
family for MEF/MFF, hits all sources with shared parameters and independent random realizations.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Literal, get_args

import cv2
import numpy as np

Strength = Literal["mild", "strong"]
STRENGTHS: tuple[Strength, ...] = get_args(Strength)
Family = Literal[
    "noise",
    "gauss_blur",
    "defocus",
    "motion",
    "haze",
    "low_light",
    "over_exposure",
    "jpeg",
    "ir_stripes",
    "weather",
    "low_contrast",
]
FAMILIES: tuple[str, ...] = get_args(Family)
MIX = "mix"  # 2-3 random families, applied in ORDER
TASK_FAMILIES: dict[str, tuple[str, ...]] = {
    "vif": FAMILIES,
    "mef": tuple(f for f in FAMILIES if f != "ir_stripes"),
    "mff": tuple(f for f in FAMILIES if f != "ir_stripes"),
}
# what `mix` draws from: the families before low contrast, which came later, so that every mixed capture
# (the main section, the mix cells) stays the one its earlier runs and BRISQUE baseline scored
MIX_FAMILIES: dict[str, tuple[str, ...]] = {
    t: tuple(f for f in fams if f != "low_contrast") for t, fams in TASK_FAMILIES.items()
}
VISIBLE_ONLY = frozenset({"haze", "weather", "low_light", "over_exposure"})
IR_ONLY = frozenset({"ir_stripes", "low_contrast"})
EXCLUSIVE = frozenset({"low_light", "over_exposure"})
# Physical order: scene -> exposure -> optics -> sensor -> codec.
ORDER: tuple[str, ...] = (
    "haze", "weather", "low_light", "over_exposure", "low_contrast", "gauss_blur", "defocus", "motion",
    "noise", "ir_stripes", "jpeg",
)  # fmt: skip
GAMMA = 2.2
Params = dict[str, object]


def seed_for(*parts: str) -> int:
    """A stable seed from names, e.g. seed_for(pair name, family, strength)."""
    return zlib.crc32("|".join(parts).encode())


def pick(strength: Strength, ranges: dict[str, tuple[float, float]], rng: np.random.Generator) -> float:
    """Draw a value uniformly from the range of a strength."""
    lo, hi = ranges[strength]
    return float(rng.uniform(lo, hi))


def luminance(x: np.ndarray) -> np.ndarray:
    """BT.601 luminance of a gray or RGB image."""
    return x if x.ndim == 2 else x @ np.array([0.299, 0.587, 0.114], np.float32)


def finish(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] as float32."""
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, cells: int = 4) -> np.ndarray:
    """A low-frequency random field in about [-1, 1]: a cells x cells grid upsampled bicubically."""
    grid = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC), -1.0, 1.0)


def convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every channel with a normalized PSF, reflecting at the borders."""
    k = (kernel / kernel.sum()).astype(np.float32)
    return finish(cv2.filter2D(x, -1, np.ascontiguousarray(k[::-1, ::-1]), borderType=cv2.BORDER_REFLECT))


def sensor_noise(
    lin: np.ndarray, shot: float, read: float, rho: float, rng: np.random.Generator
) -> np.ndarray:
    """Heteroscedastic read + shot noise on linear light; RGB channels share a fraction rho of it."""
    std = np.sqrt(shot * np.clip(lin, 0.0, None) + read**2)
    n = rng.standard_normal(lin.shape).astype(np.float32)
    if lin.ndim == 3:
        common = rng.standard_normal((*lin.shape[:2], 1)).astype(np.float32)
        n = rho * common + np.sqrt(1.0 - rho**2) * n
    return lin + std * n


# ------------------------------------------------------------------------------------------- kernels


def elliptic_kernel(major: float, minor: float, angle: float) -> np.ndarray:
    """Anisotropic Gaussian PSF with std `major` along `angle` (radians) and `minor` across it."""
    r = int(np.ceil(3.0 * major))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    k = np.exp(-0.5 * ((u / major) ** 2 + (v / minor) ** 2))
    return k / k.sum()


def aperture_kernel(
    radius: float, blades: int, rotation: float, rim: float, supersample: int = 8
) -> np.ndarray:
    """Defocus PSF of a real lens: a regular polygon (the iris blades) of circumradius `radius`, brighter
    towards its edge by (1 + rim (r / radius)^2) as with over-corrected spherical aberration;
    anti-aliased by supersampling."""
    r = int(np.ceil(radius))
    n = (2 * r + 1) * supersample
    c = (np.arange(n) + 0.5) / supersample - (r + 0.5)
    xx, yy = np.meshgrid(c, c)
    normals = rotation + (2 * np.arange(blades) + 1) * np.pi / blades
    reach = np.max([xx * np.cos(a) + yy * np.sin(a) for a in normals], axis=0)
    weight = (reach <= radius * np.cos(np.pi / blades)) * (1.0 + rim * (xx**2 + yy**2) / radius**2)
    k = weight.reshape(2 * r + 1, supersample, 2 * r + 1, supersample).mean(axis=(1, 3))
    return k / k.sum()


def trajectory_kernel(length: float, rng: np.random.Generator, steps: int = 256) -> np.ndarray:
    """Camera-shake PSF: a curved random trajectory of total length `length` px, splatted bilinearly."""
    turn = np.cumsum(rng.normal(0.0, 0.08, steps)) + rng.normal(0.0, 0.02) * np.arange(steps)
    heading = rng.uniform(0.0, 2.0 * np.pi) + turn
    speed = rng.uniform(0.5, 1.5, steps)  # the shake accelerates and slows down
    path = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * speed[:, None], axis=0)
    path *= length / np.sum(speed)
    path -= path.mean(axis=0)  # centroid at the kernel centre: blur without a shift
    r = int(np.ceil(np.abs(path).max())) + 1
    k = np.zeros((2 * r + 1, 2 * r + 1))
    splat(k, path[:, 0] + r, path[:, 1] + r, np.ones(len(path)))
    return k / k.sum()


def splat(k: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
    """Add weights w at the points (x, y) of a kernel k, each shared bilinearly among its 4 pixels."""
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, f in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        np.add.at(k, (y0 + dy, x0 + dx), w * f)


# ------------------------------------------------------------------------------------------ families


def draw_noise(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """Shot gain and read std in linear light, and the chroma correlation."""
    shot = pick(strength, {"mild": (0.002, 0.004), "strong": (0.010, 0.016)}, rng)
    read = pick(strength, {"mild": (0.003, 0.005), "strong": (0.008, 0.012)}, rng)
    return {"shot": shot, "read": read, "rho": float(rng.uniform(0.3, 0.6))}


def apply_noise(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Linearize, add read + shot noise, re-encode."""
    lin = sensor_noise(x**GAMMA, p["shot"], p["read"], p["rho"], rng)
    return finish(np.clip(lin, 0.0, 1.0) ** (1.0 / GAMMA))


def draw_gauss_blur(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """An elliptic Gaussian PSF: major std, axis ratio, orientation."""
    major = pick(strength, {"mild": (1.4, 1.9), "strong": (3.4, 4.2)}, rng)
    minor = major * float(rng.uniform(0.35, 0.6))
    return {"kernel": elliptic_kernel(major, minor, float(rng.uniform(0.0, np.pi)))}


def draw_defocus(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """A polygonal-aperture PSF: radius, number of blades, rotation, rim brightening."""
    radius = pick(strength, {"mild": (2.2, 3.2), "strong": (4.8, 6.5)}, rng)
    blades = int(rng.integers(5, 9))
    rim = float(rng.uniform(0.5, 1.5))
    return {"kernel": aperture_kernel(radius, blades, float(rng.uniform(0.0, np.pi)), rim)}


def draw_motion(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """A curved camera-shake trajectory PSF."""
    length = pick(strength, {"mild": (8.0, 12.0), "strong": (18.0, 26.0)}, rng)
    return {"kernel": trajectory_kernel(length, rng)}


def apply_kernel(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Convolve with the drawn PSF."""
    return convolve(x, p["kernel"])


def haze_depth(images: Sequence[np.ndarray]) -> np.ndarray:
    """Relative depth in [0.15, 1] (1 = far): 55 % image height (top is far), 45 % smoothed luminance."""
    lum = np.mean([luminance(x) for x in images], axis=0).astype(np.float32)
    h, w = lum.shape
    smooth = cv2.GaussianBlur(lum, (0, 0), 0.06 * min(h, w))
    smooth = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-6)  # bright, smooth areas: sky
    rows = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] ** 1.5
    d = 0.55 * rows + 0.45 * smooth
    d = (d - d.min()) / max(float(np.ptp(d)), 1e-6)
    return (0.15 + 0.85 * d).astype(np.float32)


def draw_haze(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """Shared geometry: depth, a non-uniform scattering map, a slightly blue airlight."""
    depth = haze_depth(images)
    beta = pick(strength, {"mild": (0.7, 1.0), "strong": (1.6, 2.2)}, rng)
    beta_map = beta * (1.0 + 0.3 * smooth_field(depth.shape, rng))
    a = float(rng.uniform(0.75, 0.95))
    tint = float(rng.uniform(0.5, 1.0))
    airlight = np.clip(a + tint * np.array([-0.03, 0.0, 0.04]), 0.0, 1.0).astype(np.float32)
    return {"t": np.exp(-beta_map * depth).astype(np.float32), "airlight": airlight}


def apply_haze(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Koschmieder scattering with a per-pixel transmission and a per-channel airlight."""
    t, a = p["t"], p["airlight"]
    if x.ndim == 2:
        return finish(x * t + float(a.mean()) * (1.0 - t))
    return finish(x * t[..., None] + a[None, None, :] * (1.0 - t[..., None]))


def draw_low_light(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """Exposure gain in linear light and the sensor's noise at that light level."""
    gain = pick(strength, {"mild": (0.18, 0.28), "strong": (0.05, 0.09)}, rng)
    return {"gain": gain, "shot": 0.002, "read": 0.003, "rho": float(rng.uniform(0.3, 0.6))}


def apply_low_light(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Under-expose in linear light, add sensor noise, re-encode to 8 bits."""
    lin = sensor_noise(x**GAMMA * p["gain"], p["shot"], p["read"], p["rho"], rng)
    out = np.clip(lin, 0.0, 1.0) ** (1.0 / GAMMA)
    return finish(np.round(out * 255.0) / 255.0)


def draw_over_exposure(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """Exposure gain in linear light and the knee of the highlight shoulder."""
    gain = pick(strength, {"mild": (1.8, 2.3), "strong": (3.2, 4.2)}, rng)
    return {"gain": gain, "knee": 0.75 if strength == "mild" else 0.85}


def apply_over_exposure(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Over-expose in linear light; highlights roll off (tanh) above the knee, then saturate."""
    lin, knee = x**GAMMA * p["gain"], p["knee"]
    rolled = knee + (1.0 - knee) * np.tanh((lin - knee) / (1.0 - knee))
    return finish(np.where(lin < knee, lin, rolled) ** (1.0 / GAMMA))


def draw_low_contrast(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """The fraction of its distance to the median each value keeps."""
    return {"keep": pick(strength, {"mild": (0.45, 0.6), "strong": (0.25, 0.4)}, rng)}


def apply_low_contrast(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Pull every value toward the image's median luminance, keeping `keep` of the distance; 8 bits."""
    med = float(np.median(luminance(x)))
    return finish(np.round((med + p["keep"] * (x - med)) * 255.0) / 255.0)


def draw_jpeg(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """Luma and chroma qualities."""
    luma = round(pick(strength, {"mild": (35.0, 42.0), "strong": (14.0, 18.0)}, rng))
    return {"luma": luma, "chroma": max(5, luma // 2)}


def apply_jpeg(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Encode and decode with OpenCV's libjpeg, 4:2:0 chroma subsampling."""
    q = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    flags = [cv2.IMWRITE_JPEG_QUALITY, p["luma"], cv2.IMWRITE_JPEG_LUMA_QUALITY, p["luma"]]
    flags += [cv2.IMWRITE_JPEG_CHROMA_QUALITY, p["chroma"]]
    flags += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(q, cv2.COLOR_RGB2BGR) if q.ndim == 3 else q, flags)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR if q.ndim == 3 else cv2.IMREAD_GRAYSCALE)
    dec = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB) if q.ndim == 3 else dec
    return finish(dec.astype(np.float32) / 255.0)


def draw_ir_stripes(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """Fixed-pattern amplitudes: column offsets (rows get 40 % of it), column gain spread, drift."""
    col = pick(strength, {"mild": (0.012, 0.02), "strong": (0.035, 0.05)}, rng)
    drift = pick(strength, {"mild": (0.02, 0.04), "strong": (0.06, 0.09)}, rng)
    return {"col": col, "row": 0.4 * col, "gain": 0.5 * col, "drift": drift}


def apply_ir_stripes(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """Microbolometer non-uniformity: x * column gain + column and row offsets + a slow 2-D drift."""
    h, w = x.shape[:2]
    wobble = 1.0 + 0.5 * np.sin(np.linspace(0.0, rng.uniform(1.0, 3.0) * np.pi, h) + rng.uniform(0, 6.3))
    cols = rng.normal(0.0, p["col"], (1, w)) * wobble[:, None]  # offsets drift slowly down the frame
    rows = rng.normal(0.0, p["row"], (h, 1))
    gain = 1.0 + rng.normal(0.0, p["gain"], (1, w))
    offset = (cols + rows + p["drift"] * smooth_field((h, w), rng, cells=3)).astype(np.float32)
    if x.ndim == 3:
        return finish(x * gain[..., None] + offset[..., None])
    return finish(x * gain + offset)


def draw_weather(strength: Strength, rng: np.random.Generator, images: Sequence[np.ndarray]) -> Params:
    """Rain or snow (one family): particle density per 10k px, streak length, wind angle, veil."""
    kind = "rain" if rng.random() < 0.5 else "snow"
    dens = {
        "rain": {"mild": (5.0, 7.0), "strong": (14.0, 18.0)},
        "snow": {"mild": (4.0, 6.0), "strong": (12.0, 16.0)},
    }
    return {
        "kind": kind,
        "density": pick(strength, dens[kind], rng),
        "length": pick(strength, {"mild": (0.03, 0.06), "strong": (0.07, 0.12)}, rng),
        "angle": float(rng.uniform(-20.0, 20.0)),
        "alpha": pick(strength, {"mild": (0.45, 0.6), "strong": (0.7, 0.85)}, rng),
        "veil": pick(strength, {"mild": (0.02, 0.05), "strong": (0.08, 0.14)}, rng),
    }


def weather_layer(shape: tuple[int, int], p: Params, rng: np.random.Generator) -> np.ndarray:
    """Opacity layer (H, W) in [0, 1]: anti-aliased rain segments or soft snow discs of random depth."""
    h, w = shape
    layer = np.zeros((4 * h, 4 * w), np.float32)  # drawn at 4x, area-downscaled: anti-aliasing
    n = max(1, round(p["density"] * h * w / 1e4))
    near = rng.random(n) ** 2  # most particles are far (small, faint)
    xs, ys = rng.uniform(0, 4 * w, n), rng.uniform(0, 4 * h, n)
    for x, y, z in zip(xs, ys, near, strict=True):
        if p["kind"] == "rain":
            ang = np.deg2rad(p["angle"] + rng.normal(0.0, 3.0))
            ln = 4 * min(h, w) * p["length"] * (0.4 + 0.6 * z)
            dx, dy = ln * np.sin(ang) / 2, ln * np.cos(ang) / 2
            pts = (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy))
            cv2.line(layer, *pts, float(0.6 + 0.4 * z), 3 + round(6 * z), cv2.LINE_AA)
        else:
            r = 2 + round(3 * (1 + 4 * z) * min(h, w) / 256)
            cv2.circle(layer, (int(x), int(y)), r, float(0.6 + 0.4 * z), -1, cv2.LINE_AA)
    small = cv2.resize(layer, (w, h), interpolation=cv2.INTER_AREA)
    return np.clip(cv2.GaussianBlur(small, (0, 0), 0.8), 0.0, 1.0)


def apply_weather(x: np.ndarray, p: Params, rng: np.random.Generator) -> np.ndarray:
    """A veil of scattered light, then the particles alpha-composited in near-white."""
    a = p["alpha"] * weather_layer(x.shape[:2], p, rng)
    if x.ndim == 3:
        a = a[..., None]
    veiled = x * (1.0 - p["veil"]) + p["veil"] * 0.85
    return finish(veiled * (1.0 - a) + 0.92 * a)


Draw = Callable[[Strength, np.random.Generator, Sequence[np.ndarray]], Params]
Apply = Callable[[np.ndarray, Params, np.random.Generator], np.ndarray]
SPECS: dict[str, tuple[Draw, Apply]] = {
    "noise": (draw_noise, apply_noise),
    "gauss_blur": (draw_gauss_blur, apply_kernel),
    "defocus": (draw_defocus, apply_kernel),
    "motion": (draw_motion, apply_kernel),
    "haze": (draw_haze, apply_haze),
    "low_light": (draw_low_light, apply_low_light),
    "over_exposure": (draw_over_exposure, apply_over_exposure),
    "jpeg": (draw_jpeg, apply_jpeg),
    "ir_stripes": (draw_ir_stripes, apply_ir_stripes),
    "weather": (draw_weather, apply_weather),
    "low_contrast": (draw_low_contrast, apply_low_contrast),
}


# ------------------------------------------------------------------------------------------ captures


def targets(task: str, family: str, n: int) -> list[int]:
    """Which sources a family hits: VIF routes by modality (source 0 = IR), MEF/MFF hit all."""
    if task != "vif":
        return list(range(n))
    if family in IR_ONLY:
        return [0]
    if family in VISIBLE_ONLY:
        return list(range(1, n))
    return list(range(n))


def plan(
    task: str,
    family: str,
    strength: Strength | None,
    rng: np.random.Generator,
    families: dict[str, tuple[str, ...]] = TASK_FAMILIES,
    order: tuple[str, ...] = ORDER,
    exclusive: frozenset[str] = EXCLUSIVE,
    mix_families: dict[str, tuple[str, ...]] | None = None,
) -> list[tuple[str, Strength]]:
    """The (family, strength) steps of one capture; `mix` draws 2-3 of `mix_families` (None: MIX_FAMILIES
    for this generator's own families, else `families`; strength None: each random) in `order`, never all
    of `exclusive`. The defaults are this generator's; bench/degrade_alb.py passes its own."""
    if family != MIX:
        if family not in families[task]:
            raise ValueError(f"family {family!r} is not defined for task {task!r}")
        return [(family, strength or "mild")]
    if mix_families is None:
        mix_families = MIX_FAMILIES if families is TASK_FAMILIES else families
    while True:
        k = int(rng.integers(2, 4))
        chosen = set(rng.choice(mix_families[task], size=k, replace=False).tolist())
        if not exclusive <= chosen:
            break
    steps = []
    for f in (f for f in order if f in chosen):
        steps.append((f, strength or STRENGTHS[int(rng.integers(len(STRENGTHS)))]))
    return steps


def degrade_each(
    images: Sequence[np.ndarray],
    task: str,
    family: str,
    strength: Strength | None,
    seed: int,
    plan: Callable[[str, str, Strength | None, np.random.Generator], list[tuple[str, Strength]]],
    targets: Callable[[str, str, int], list[int]],
    apply: Callable[[np.ndarray, str, Strength, int], np.ndarray],
) -> tuple[list[np.ndarray], list[str]]:
    """degrade_pair's contract for a cross-check generator that draws each source on its own: the steps of
    `plan`, each applied by `apply(image, family, strength, seed)` to the sources `targets` names, every
    source with a seed of its own from the capture's stream."""
    rng = np.random.default_rng(seed)
    out = [np.asarray(x, np.float32) for x in images]
    steps = plan(task, family, strength, rng)
    for fam, st in steps:
        for i in targets(task, fam, len(out)):
            out[i] = apply(out[i], fam, st, int(rng.integers(2**31)))
    return out, [f"{f}:{s}" for f, s in steps]


def degrade_pair(
    images: Sequence[np.ndarray], task: str, family: str, strength: Strength | None, seed: int
) -> tuple[list[np.ndarray], list[str]]:
    """Degrade the sources of one capture; returns the images and the steps taken ('haze:strong')."""
    rng = np.random.default_rng(seed)
    out = [np.asarray(x, np.float32) for x in images]
    steps = plan(task, family, strength, rng)
    for fam, st in steps:
        draw, apply = SPECS[fam]
        idx = targets(task, fam, len(out))
        params = draw(st, rng, [out[i] for i in idx])
        for i in idx:
            out[i] = apply(out[i], params, np.random.default_rng(rng.integers(2**63)))
    return out, [f"{f}:{s}" for f, s in steps]


def degrade(image: np.ndarray, family: str, strength: Strength, seed: int) -> np.ndarray:
    """Degrade one image with one family (MEF/MFF routing: nothing is skipped)."""
    draw, apply = SPECS[family]
    rng = np.random.default_rng(seed)
    x = np.asarray(image, np.float32)
    params = draw(strength, rng, [x])
    return apply(x, params, np.random.default_rng(rng.integers(2**63)))
