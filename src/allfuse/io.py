"""Read and write images, and find fusion pairs in dataset folders.

This is the only module that touches files of pixels. Every image leaves it as float32 in [0, 1] with
shape (H, W) for gray or (H, W, 3) for colour; every failure is a one-line `ImageError` naming the file.

Channel policy (``channels=``):
  * ``"auto"`` (default): gray files, and colour files whose three channels are identical (TNO stores gray
    images as 3-channel PNG), come back as (H, W); other colour files as (H, W, 3).
  * ``"gray"``: always (H, W) BT.601 luminance.  ``"rgb"``: always (H, W, 3), gray replicated.
  * Alpha is dropped (pixels keep their colour values); palette images are expanded to RGB.
Bit depth: 8-bit files are divided by 255, 16-bit files by 65535, float TIFFs are clipped to [0, 1].
EXIF orientation is applied, so a phone JPEG comes back the way it is displayed.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from allfuse.color import to_gray
from allfuse.types import Image, Task

Channels = Literal["auto", "gray", "rgb"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


class ImageError(ValueError):
    """A file that cannot be used as an image, a pair that does not fit together, or a bad pixel limit."""


# --------------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike, channels: Channels = "auto", max_pixels: int | None = None) -> Image:
    """Read an image file into float32 [0, 1], (H, W) or (H, W, 3), following the channel policy.

    max_pixels: refuse images with more pixels, checked from the header before anything is decoded;
    None = `ALLFUSE_MAX_PIXELS` from the environment, else 100 MP; 0 = no limit of ours."""
    path = Path(path)
    limit = max_pixels_limit(max_pixels)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own guard (89 MP), where our limit is the one that applies, and about
            # damaged tags it skips: neither is something a user can act on.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            with PILImage.open(path) as im:  # reads the header only
                check_pixels(path, im.size, limit)
                deep = any(";16" in str(t.args) for t in im.tile)  # 16-bit samples, from the header
                im.load()  # forces a full decode: truncated files fail here, not later
                x = _pil_to_float(path, im, deep)
    except ImageError:
        raise
    except PILImage.DecompressionBombError as e:  # above twice Pillow's guard: refused while opening
        raise _bomb_error(path, e, limit) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError) as e:
        raise ImageError(f"{path}: unreadable or truncated image ({_one_line(e)})") from None
    except Exception as e:  # a damaged header can fail a decoder in many ways (struct.error, ValueError, ...)
        raise ImageError(f"{path}: unreadable image ({type(e).__name__}: {_one_line(e)})") from None
    return _apply_channel_policy(x, channels)


# --------------------------------------------------------------------------------------------- pixel limit

DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "ALLFUSE_MAX_PIXELS"


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: `max_pixels` when given, else $ALLFUSE_MAX_PIXELS, else 100 MP; 0 = none."""
    if max_pixels is None:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(raw)
        except ValueError:
            raise ImageError(
                f"{MAX_PIXELS_ENV}={raw!r}: give a whole number of pixels (0 = no limit)"
            ) from None
        where = MAX_PIXELS_ENV
    else:
        where = "max_pixels"
    if max_pixels < 0:
        raise ImageError(f"{where}={max_pixels}: give a number of pixels >= 0 (0 = no limit)")
    return max_pixels


def check_pixels(path: Path, size: tuple[int, int], limit: int) -> None:
    """Raise ImageError when a (width, height) has more pixels than `limit` (0 = no limit)."""
    w, h = size
    if limit and w * h > limit:
        raise ImageError(
            f"{path}: {w}x{h} is {w * h / 1e6:.4g} MP, more than the pixel limit of {limit / 1e6:.4g} MP "
            f"(raise it with --max-pixels or {MAX_PIXELS_ENV})"
        )


def _bomb_error(path: Path, e: Exception, limit: int) -> ImageError:
    """Pillow's DecompressionBombError as our one-line error, with the pixel count its header gives."""
    m = re.search(r"\((\d+) pixels\)", str(e))
    size = f"{int(m.group(1)) / 1e6:.4g} MP" if m else "too many pixels"
    if limit and m and int(m.group(1)) > limit:
        return ImageError(
            f"{path}: the header says {size}, more than the pixel limit of {limit / 1e6:.4g} MP "
            f"(raise it with --max-pixels or {MAX_PIXELS_ENV})"
        )
    cap = 2 * (PILImage.MAX_IMAGE_PIXELS or 0)
    return ImageError(f"{path}: the header says {size}, more than Pillow decodes ({cap / 1e6:.4g} MP)")


def _one_line(e: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(e).split()) or type(e).__name__


def _pil_to_float(path: Path, im: PILImage.Image, deep: bool = False) -> np.ndarray:
    """Decode an opened PIL image to float32 [0, 1], EXIF-oriented, without losing 16-bit precision
    (deep: the file stores 16-bit samples)."""
    if deep and im.mode in ("RGB", "RGBA") and im.format in ("PNG", "TIFF"):
        colour = _read_16bit_colour(path)  # PIL silently reduces 16-bit colour to 8 bits
        if colour is not None:
            return colour
    im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode in ("1", "L", "P", "PA", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        if mode in ("1", "L"):
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        if mode == "LA":
            return np.asarray(im, dtype=np.float32)[..., 0] / 255.0
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if mode.startswith("I;16"):
        return np.asarray(im, dtype=np.float32) / 65535.0
    if mode == "I":
        a = np.asarray(im, dtype=np.float64)
        scale = 65535.0 if a.max(initial=0) > 255 or im.format in ("PNG", "TIFF") else 255.0
        return np.clip(a / scale, 0.0, 1.0).astype(np.float32)
    if mode == "F":
        return np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32)), 0.0, 1.0)
    raise ImageError(f"{path}: unsupported image mode {mode!r}")


def _read_16bit_colour(path: Path) -> np.ndarray | None:
    """Return a 16-bit colour PNG/TIFF as float RGB via OpenCV (EXIF-oriented), or None when 8-bit."""
    a = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if a is None or a.dtype != np.uint16:
        return None
    rgb = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    return rgb.astype(np.float32) / 65535.0


def _apply_channel_policy(x: np.ndarray, channels: Channels) -> Image:
    """Return (H, W) or (H, W, 3) as `channels` asks (see module docstring)."""
    if channels == "gray":
        return to_gray(x)
    if channels == "rgb":
        return x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=2)
    if channels != "auto":
        raise ValueError(f"channels must be 'auto', 'gray' or 'rgb', got {channels!r}")
    if x.ndim == 3 and np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2]):
        return np.ascontiguousarray(x[..., 0])
    return x


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return (width, height) of an image file as displayed (EXIF orientation applied), reading the header."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # as in read_image
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            with PILImage.open(path) as im:
                w, h = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    w, h = h, w
                return w, h
    except PILImage.DecompressionBombError as e:
        raise _bomb_error(path, e, 0) from None
    except Exception as e:  # unreadable, unknown format, or a damaged header
        raise ImageError(f"{path}: not a readable image ({_one_line(e)})") from None


# --------------------------------------------------------------------------------------------- writing


def write_image(path: str | os.PathLike, x: np.ndarray, bits: Literal[8, 16] = 8) -> Path:
    """Write float [0, 1] (H, W) or (H, W, 3) as PNG (8 or 16-bit), atomically (temp file + rename)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ImageError(f"{path}: output must be a .png file")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    x = np.asarray(x, dtype=np.float32)
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (1, 3))):
        raise ImageError(f"{path}: cannot write an array of shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ImageError(f"{path}: refusing to write an image with NaN or inf values")
    peak = 255.0 if bits == 8 else 65535.0
    q = np.round(np.clip(x, 0.0, 1.0) * peak).astype(np.uint8 if bits == 8 else np.uint16)
    if q.ndim == 3 and q.shape[2] == 3:
        q = cv2.cvtColor(q, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", q)
    if not ok:
        raise ImageError(f"{path}: PNG encoding failed")
    _atomic_write_bytes(path, buf.tobytes())
    return path


# The temp file of an atomic write: ".NAME.XXXXXXXX.tmp" beside NAME (tempfile.mkstemp's random part).
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to a temp file beside `path`, fsync, then rename over it: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())  # mkstemp makes 0600; give the mode open() would have
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files that atomic writes into `folder` left behind when their process was killed
    (only files named as `_atomic_write_bytes` names them); return them. Not while another process writes
    there."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in sorted(folder.iterdir()) if p.is_file() and _TEMP_NAME.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def umask_mode(directory: bool = False) -> int:
    """0o666 (0o777 for a directory) minus the process umask: what open(path, "w") / mkdir would create;
    for files made by mkstemp / mkdtemp, which are private (0600 / 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (reports, tables, JSON)."""
    path = Path(path)
    _atomic_write_bytes(path, text.encode("utf-8"))
    return path


def atomic_write_safetensors(path: str | os.PathLike, tensors: dict) -> Path:
    """Write a safetensors file atomically, with the mode open() would give (safetensors' own save_file
    writes in place, 0600)."""
    from safetensors.torch import save

    path = Path(path)
    _atomic_write_bytes(path, save(tensors))
    return path


# --------------------------------------------------------------------------------------------- pairs

# Folder-name layouts, each (first, second) -> task. Matching is case-insensitive.
LAYOUTS: dict[tuple[str, str], Task | None] = {
    ("ir", "vi"): "vif",
    ("ir", "vis"): "vif",
    ("infrared", "visible"): "vif",
    ("lwir", "visible"): "vif",
    ("thermal", "rgb"): "vif",
    ("under", "over"): "mef",
    ("underexposed", "overexposed"): "mef",
    ("ue", "oe"): "mef",
    ("low", "high"): "mef",
    ("near", "far"): "mff",
    ("near_focus", "far_focus"): "mff",
    ("foreground", "background"): "mff",
    ("image1", "image2"): None,
    ("source1", "source2"): None,
    ("source_1", "source_2"): None,
    ("a", "b"): None,
    ("1", "2"): None,
}
GT_FOLDERS = ("gt", "groundtruth", "ground_truth", "reference", "target", "fused")
# Path components that name a task when the layout itself does not (e.g. data/mef/MEFB/A,B).
TASK_ALIASES: dict[str, Task] = {
    "ivif": "vif",
    "vif": "vif",
    "irvis": "vif",
    "mef": "mef",
    "mff": "mff",
}


@dataclass(frozen=True)
class Pair:
    """One fusion sample on disk: the source files (in layout order), an optional reference, its task."""

    name: str
    sources: tuple[Path, ...]
    task: Task | None
    dataset: str
    reference: Path | None = None

    def load(
        self, channels: Channels = "auto", max_pixels: int | None = None
    ) -> tuple[list[Image], Image | None]:
        """Read the sources (and the reference), checking that all sizes agree (max_pixels: read_image)."""
        images = [read_image(p, channels, max_pixels) for p in self.sources]
        ref = read_image(self.reference, channels, max_pixels) if self.reference else None
        check_same_size(
            list(self.sources) + ([self.reference] if ref is not None else []),
            images + ([ref] if ref is not None else []),
        )
        return images, ref


def check_same_size(paths: list[Path], images: list[np.ndarray]) -> None:
    """Raise ImageError naming both files when two images of one sample differ in size."""
    h0, w0 = images[0].shape[:2]
    for p, im in zip(paths[1:], images[1:], strict=True):
        h, w = im.shape[:2]
        if (h, w) != (h0, w0):
            raise ImageError(f"{p}: size mismatch, {w}x{h} but {paths[0].name} is {w0}x{h0}")


@dataclass
class PairScan:
    """Result of scanning a dataset folder: usable pairs, and one message per file that has no partner."""

    pairs: list[Pair] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def find_layout(root: Path) -> tuple[tuple[Path, Path], Task | None]:
    """Find the two source folders of a dataset folder and the task their names imply."""
    subdirs = {d.name.lower(): d for d in sorted(root.iterdir()) if d.is_dir()} if root.is_dir() else {}
    for (a, b), task in LAYOUTS.items():
        if a in subdirs and b in subdirs:
            return (subdirs[a], subdirs[b]), task
    known = ", ".join(f"{a}/{b}" for a, b in LAYOUTS)
    raise ImageError(
        f"{root}: no known pair layout (sub-folders found: {sorted(subdirs) or 'none'}; "
        f"expected one of {known})"
    )


def infer_task(root: Path, layout_task: Task | None) -> Task | None:
    """Task from the layout, else from a path component such as 'ivif' or 'mef', else None."""
    if layout_task is not None:
        return layout_task
    for part in reversed(root.resolve().parts):
        if part.lower() in TASK_ALIASES:
            return TASK_ALIASES[part.lower()]
    return None


def _images_by_stem(folder: Path) -> dict[str, Path]:
    """Map file stem -> path for the image files of a folder; two files sharing a stem are an error."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            if p.stem in out:
                raise ImageError(f"{p}: ambiguous, {out[p.stem].name} has the same stem")
            out[p.stem] = p
    return out


def scan_pairs(root: str | os.PathLike) -> PairScan:
    """Pair the files of a dataset folder by stem; files without a partner become `problems`."""
    root = Path(root)
    (dir_a, dir_b), layout_task = find_layout(root)
    task = infer_task(root, layout_task)
    a, b = _images_by_stem(dir_a), _images_by_stem(dir_b)
    subdirs = {d.name.lower(): d for d in root.iterdir() if d.is_dir()}
    gt_dir = next((subdirs[g] for g in GT_FOLDERS if g in subdirs), None)
    gt = _images_by_stem(gt_dir) if gt_dir else {}
    scan = PairScan()
    for stem in sorted(set(a) | set(b)):
        if stem not in b:
            scan.problems.append(f"{a[stem]}: missing partner, no file named {stem}.* in {dir_b}")
        elif stem not in a:
            scan.problems.append(f"{b[stem]}: missing partner, no file named {stem}.* in {dir_a}")
        else:
            scan.pairs.append(Pair(stem, (a[stem], b[stem]), task, root.name, gt.get(stem)))
    return scan


def find_pairs(root: str | os.PathLike) -> list[Pair]:
    """Pair the files of a dataset folder, raising ImageError on the first file without a partner."""
    scan = scan_pairs(root)
    if scan.problems:
        raise ImageError(scan.problems[0])
    return scan.pairs
