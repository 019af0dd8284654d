"""Person and car label masks for the real infrared+visible pairs, made offline by classical detectors.

    python tools/label_objects.py ../shared/data OUT [--sheet docs/labels_contact_sheet.jpg] [--only-val]

For every pair `ivif/<DS>/{ir,vi}/NAME.ext` of RoadScene, MSRS and TNO under the data root this writes
`OUT/ivif/<DS>/labels/NAME.png` (uint8 mode "L": 0 background, 1 person, 2 car) when at least one object
was found, and `OUT/ivif/<DS>/classes.txt`. Labels favour precision over recall: a missed object is
background, a labelled one should really be there.

- Person: OpenCV's HOG people detector (Dalal-Triggs SVM, shipped inside OpenCV 4) on the visible and
  infrared images upscaled 2x and 3x, plus tall warm infrared blobs scored by the same SVM. A window is
  kept only if it holds a warm upright infrared figure (Otsu in the enlarged window), the SVM also scores
  the infrared window >= 0.5 and the figure's feet are below 0.56 of the height; the mask is the figure.
- Car: a car seen from behind shows two alike tail lamps on one row, redder than anything else in these
  pale JPEGs, below the horizon by a fraction of the car's width. Lamp pairs give a box, kept when the
  infrared box is mirror-symmetric; GrabCut on the visible+infrared stack (convex hull) gives the mask.
- REJECT drops detections that were checked by eye on the contact sheet and found wrong.

OpenCV 5 moved the HOG detector out of the main package: run this in an environment with
opencv-python-headless<5 (the project allows >=4.8), e.g. a venv made with --system-site-packages.
"""

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

CLASSES = ("background", "person", "car")
PERSON, CAR = 1, 2
DATASETS = ("RoadScene", "MSRS", "TNO")
Box = tuple[int, int, int, int]  # x, y, w, h in pixels of the pair

# Detections found wrong on the contact sheets, rejected by eye: pair name -> points (x, y), an object
# whose box holds one drops, or a class name, every object of that class in the pair drops.
REJECT: dict[str, list[tuple[int, int] | str]] = {
    "FLIR_00018": [(398, 160)],  # a flag banner wrapped round a tree trunk
    "FLIR_04735": [(447, 200)],  # a yellow pedestrian-crossing sign on a warm fence
    "FLIR_06953": [(374, 210)],  # a lit shop front (people stand nearby, but the mask is not on them)
    "FLIR_08874": [(428, 140)],  # a lit shop wall
    "FLIR_08999": [(70, 110)],  # a lit shop wall
    "FLIR_09573": [(323, 140)],  # a sign post under a street lamp
    "FLIR_video_00595": [(400, 125)],  # a shop window's frame
    "FLIR_01463": ["person"],  # the warm rear of a parked car
    "FLIR_04215": ["person"],  # a warm patch at the image edge
    "FLIR_04269": ["person"],  # rubbish bins and a hedge
    "FLIR_04302": ["person"],  # the warm rear of a car
    "FLIR_04593": ["person"],  # a building and the image edge
    "FLIR_04701": ["person"],  # a bush
    "FLIR_04932": ["person"],  # a tree above parked cars
    "FLIR_04968": ["person"],  # a bush at the image edge
    "FLIR_05005": ["person"],  # the warm rear of a car
    "FLIR_05072": ["person"],  # the rear of a car
    "FLIR_05573": ["person"],  # blobs at the image edge
    "FLIR_05759": ["person"],  # a lit hedge
    "FLIR_05857": ["person"],  # a building front
    "FLIR_05879": ["person"],  # an unclear small blob
    "FLIR_05893": ["person"],  # a box-shaped blob
    "FLIR_06236": ["person"],  # lamps and fragments
    "FLIR_06282": ["person"],  # under a traffic light
    "FLIR_06874": ["person"],  # an unclear small blob
    "FLIR_06962": ["person"],  # a pole base
    "FLIR_07028": ["person"],  # a lit wall
    "FLIR_07060": ["person"],  # lit trees
    "FLIR_07166": ["person"],  # a palm trunk
    "FLIR_07190": ["person"],  # a lit bush
    "FLIR_07428": ["person"],  # a car at the image edge
    "FLIR_07504": ["person"],  # glare
    "FLIR_07555": ["person"],  # a bicycle rack
    "FLIR_07786": ["person"],  # the rear of a car
    "FLIR_08058": ["person"],  # a bus
    "FLIR_08094": ["person"],  # an unclear small blob
    "FLIR_08191": ["person"],  # a shop front
    "FLIR_08248": ["person"],  # a shop front
    "FLIR_08284": ["person"],  # a shop front
    "FLIR_08721": ["person"],  # an unclear small blob
    "FLIR_08932": ["person"],  # beside the real group, not on it
    "FLIR_09616": ["person"],  # the image edge
    "FLIR_09624": ["person"],  # a lit shop front
    "FLIR_09636": ["person"],  # beside the real people
    "FLIR_video_00727": ["person"],  # the image edge
    "03": ["person"],  # the mask runs up the railing posts
    "18": ["person"],  # a house corner
    "25": ["person"],  # a lamp post
}


@dataclass
class Detection:
    """One labelled object: its class index, box, score and pixel mask (H, W) bool."""

    label: int
    box: Box
    score: float
    mask: np.ndarray


def read_pair(ir_path: Path, vi_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Infrared as uint8 (H, W) and visible as uint8 BGR (H, W, 3)."""
    ir = np.asarray(Image.open(ir_path).convert("L"))
    vi = cv2.cvtColor(np.asarray(Image.open(vi_path).convert("RGB")), cv2.COLOR_RGB2BGR)
    return ir, vi


def people_detector() -> "cv2.HOGDescriptor":
    """OpenCV's default HOG people detector; OpenCV 5 no longer ships it (use opencv-python-headless<5)."""
    if not hasattr(cv2, "HOGDescriptor"):
        raise RuntimeError(
            f"OpenCV {cv2.__version__} has no HOGDescriptor: run with opencv-python-headless<5"
        )
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area (1 when one box holds the other)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, min(a[2] * a[3], b[2] * b[3]))


def suppress(dets: list[Detection], thresh: float = 0.5) -> list[Detection]:
    """Greedy non-maximum suppression: keep the best score, drop those overlapping a kept one."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(overlap(d.box, k.box) < thresh and not (d.mask & k.mask).any() for k in kept):
            kept.append(d)
    return kept


def hog_boxes(
    img: np.ndarray, hog: "cv2.HOGDescriptor", upscale: float, hit: float
) -> list[tuple[Box, float]]:
    """HOG people windows (box in `img` pixels, SVM score) on `img` upscaled so small people fit 64x128."""
    up = cv2.resize(img, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    rects, weights = hog.detectMultiScale(
        up, hitThreshold=hit, winStride=(8, 8), padding=(16, 16), scale=1.07
    )
    out = []
    for r, s in zip(np.reshape(rects, (-1, 4)), np.ravel(weights), strict=True):
        out.append((tuple(round(float(v) / upscale) for v in r), float(s)))
    return out


def hog_score(img: np.ndarray, hog: "cv2.HOGDescriptor", box: Box) -> float:
    """The people SVM's score of one window `box` (64x128 aspect) of `img`, resampled to 64x128."""
    x, y, w, h = box
    pad = max(w, h)
    big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    patch = cv2.resize(
        big[y + pad : y + pad + h, x + pad : x + pad + w], (64, 128), interpolation=cv2.INTER_AREA
    )
    svm = np.ravel(hog.svmDetector)
    return float(np.ravel(hog.compute(patch)) @ svm[:-1] + svm[-1])


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` (bool) with its enclosed holes filled."""
    inv = np.pad(~mask, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(inv, None, (0, 0), 0)
    return mask | inv[1:-1, 1:-1].astype(bool)


def warm_figure(ir: np.ndarray, box: Box) -> np.ndarray | None:
    """The warm upright figure inside a person window `box`, as an (H, W) bool mask, or None.

    Pixels above Otsu's threshold of the enlarged window (and 20 grey levels above the median of the
    ring around the window) that touch the window's core form the figure; it must be upright, fill a
    plausible part of the window, stand out from the ring and lie mostly inside the window.
    """
    x, y, w, h = box
    H, W = ir.shape
    x0, x1, y0, y1 = max(0, x - w // 2), min(W, x + w + w // 2), max(0, y - h // 4), min(H, y + h + h // 4)
    region = ir[y0:y1, x0:x1]
    inner = np.zeros(region.shape, bool)
    inner[max(0, y - y0) : y + h - y0, max(0, x - x0) : x + w - x0] = True
    if (~inner).sum() < 50:
        return None
    bg = float(np.median(region[~inner]))
    otsu = cv2.threshold(region, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0]
    hot = (region > max(otsu, bg + 20)).astype(np.uint8)
    hot = cv2.morphologyEx(hot, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    hot = cv2.morphologyEx(hot, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 5)))
    _, comp = cv2.connectedComponents(hot)
    cx, cy = x - x0 + w // 2, y - y0 + h // 2
    core = comp[cy - h // 4 : cy + h // 4, cx - max(1, w // 8) : cx + max(1, w // 8) + 1]
    ids = [i for i in np.unique(core) if i > 0]
    if not ids:
        return None
    blob = np.isin(comp, ids)
    top = hot[: max(1, y - y0)].mean()  # above the head there should be no warmth (a wall, a tree)
    if top > 0.3 or (blob & ~inner).sum() > 1.5 * w * h:  # warmth spreading far: background
        return None
    fig = blob & inner
    feet = np.arange(len(fig))[:, None] >= y - y0 + 3 * h // 4
    fig &= ~(feet & (fig.sum(axis=1, keepdims=True) > 0.6 * w))  # wide rows at the feet: warm ground
    n, comp, stats, _ = cv2.connectedComponentsWithStats(fig.astype(np.uint8))
    if n < 2:
        return None
    fig = fill_holes(comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])))  # one figure per window
    ys, xs = np.nonzero(fig)
    fh, fw = np.ptp(ys) + 1, np.ptp(xs) + 1
    if not (0.06 <= fig.sum() / (w * h) <= 0.7 and fh >= 0.45 * h and fh >= 1.3 * fw):
        return None
    if float(region[fig].mean()) - bg < 30:
        return None
    mask = np.zeros(ir.shape, bool)
    mask[y0:y1, x0:x1] = fig
    return mask


def warm_blobs(ir: np.ndarray) -> list[Box]:
    """Tall narrow warm components of the infrared image as 64x128-shaped person windows."""
    H, W = ir.shape
    local = ir.astype(np.int16) - cv2.medianBlur(ir, 2 * (max(H, W) // 40) + 1)
    hot = (local > max(30, np.percentile(local, 98))).astype(np.uint8)
    hot = cv2.morphologyEx(hot, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 5)))
    _, _, stats, _ = cv2.connectedComponentsWithStats(hot)
    boxes = []
    for x, y, w, h, area in stats[1:]:
        if 24 <= h <= 0.7 * H and 1.5 <= h / w <= 4.5 and area >= 0.3 * w * h and y + h > 0.4 * H:
            wh = int(h / 0.75)  # a HOG window holds the figure in its middle 3/4 of the height
            boxes.append((int(x + w / 2 - wh / 4), int(y + h / 2 - wh / 2), wh // 2, wh))
    return boxes


def person_detections(ir: np.ndarray, vi: np.ndarray, hog: "cv2.HOGDescriptor") -> list[Detection]:
    """People: HOG windows on visible and infrared plus warm blobs, each kept only with a warm figure."""
    ir3 = cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR)
    cands = [c for img in (vi, ir3) for up in (2.0, 3.0) for c in hog_boxes(img, hog, up, 0.0)]
    for box in warm_blobs(ir):
        score = max(hog_score(vi, hog, box), hog_score(ir3, hog, box))
        if score > 0.0:
            cands.append((box, score))
    dets = []
    for box, score in cands:
        mask = warm_figure(ir, box)
        # The infrared must look like a person too (signs and lit walls fool the visible HOG) and the
        # feet stand on the ground, below the horizon of these road cameras (tree tops, lamps do not).
        if mask is None or hog_score(ir3, hog, box) < 0.5 or np.nonzero(mask)[0].max() < 0.56 * ir.shape[0]:
            continue
        dets.append(Detection(PERSON, box, max(score, hog_score(ir3, hog, box)), mask))
    return suppress(dets)


def lamp_spots(vi: np.ndarray) -> np.ndarray:
    """Red spots (tail lamps) below the top third of the visible image: rows (cx, cy, w, h, area)."""
    bgr = vi.astype(np.int16)
    redness = bgr[..., 2] - np.maximum(
        bgr[..., 0], bgr[..., 1]
    )  # these JPEGs are pale: lamps are only redder
    red = (redness >= max(18.0, np.percentile(redness, 99.7))).astype(np.uint8)
    red = cv2.morphologyEx(red, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    _, _, stats, cents = cv2.connectedComponentsWithStats(red)
    rows = [
        (cx, cy, w, h, a)
        for (_, _, w, h, a), (cx, cy) in zip(stats[1:], cents[1:], strict=True)
        if a >= 5 and 0.25 <= w / h <= 4 and cy > vi.shape[0] / 3
    ]
    return np.array(rows, float).reshape(-1, 5)


def lamp_pair_boxes(vi: np.ndarray) -> list[Box]:
    """Car boxes from pairs of alike tail lamps on one row (a car seen from behind is ~1.3 lamp gaps wide)."""
    spots = lamp_spots(vi)
    H, W = vi.shape[:2]
    boxes = []
    for i, (cx, cy, w, h, a) in enumerate(spots):
        for cx2, cy2, w2, h2, a2 in spots[i + 1 :]:
            size = max(w, w2, h, h2)
            dx = abs(cx2 - cx)
            alike = max(a, a2) <= 3 * min(a, a2) and abs(cy2 - cy) <= max(3, 0.5 * max(h, h2))
            if alike and max(16, 2.5 * size) <= dx <= min(0.7 * W, 14 * size):
                wc = dx / 0.75
                hc = 0.85 * wc  # rear view of a car, lamps ~0.4 of the height from its top
                x, y = (cx + cx2) / 2 - wc / 2, (cy + cy2) / 2 - 0.4 * hc
                # lamps (~0.9 m high) lie below the horizon (~0.4 H, camera ~1.5 m) by ~1/3 of the car
                # width (take 1/4): this drops traffic lights and shop signs paired up above the road
                if (cy + cy2) / 2 >= 0.35 * H + 0.25 * wc:
                    boxes.append((int(x), int(y), int(wc), int(hc)))
    return boxes


def mirror_similarity(img: np.ndarray, box: Box) -> float:
    """Correlation of the `box` crop of `img` with its left-right mirror (a car's rear is symmetric)."""
    x, y, w, h = box
    crop = img[max(0, y) : y + h, max(0, x) : x + w].astype(np.float64)
    if crop.shape[0] < 8 or crop.shape[1] != w or x < 0:
        return -1.0
    a, b = crop - crop.mean(), crop[:, ::-1] - crop.mean()
    return float((a * b).sum() / max(1e-6, np.sqrt((a * a).sum() * (b * b).sum())))


def cut_car(ir: np.ndarray, vi: np.ndarray, box: Box) -> np.ndarray | None:
    """GrabCut of the car inside `box` on the visible+infrared stack, as an (H, W) bool mask, or None."""
    x, y, w, h = box
    H, W = ir.shape
    x0, x1, y0, y1 = max(0, x - w // 4), min(W, x + w + w // 4), max(0, y - h // 4), min(H, y + h + h // 4)
    gray = cv2.cvtColor(vi, cv2.COLOR_BGR2GRAY)
    stack = np.dstack([gray, ir, ((gray.astype(np.uint16) + ir) // 2).astype(np.uint8)])[y0:y1, x0:x1]
    gc = np.full(stack.shape[:2], cv2.GC_BGD, np.uint8)
    bx, by = x - x0, y - y0
    gc[max(0, by) : by + h, max(0, bx) : bx + w] = cv2.GC_PR_BGD
    gc[by + h // 5 : by + h - h // 8, bx + w // 6 : bx + w - w // 6] = cv2.GC_PR_FGD
    gc[by + h // 3 : by + 2 * h // 3, bx + w // 3 : bx + 2 * w // 3] = cv2.GC_FGD
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation draws random numbers: keep the labels deterministic
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(stack, gc, None, bgd, fgd, 4, cv2.GC_INIT_WITH_MASK)
    fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    inbox = np.zeros_like(fg)
    inbox[max(0, by) : by + h, max(0, bx) : bx + w] = 1
    n, comp, stats, _ = cv2.connectedComponentsWithStats(fg & inbox)
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 0.05 * w * h]
    if not big:
        return None
    # GrabCut often splits a car at its dark rear window: the convex hull of the parts rejoins it
    hull = cv2.convexHull(np.column_stack(np.nonzero(np.isin(comp, big)))[:, ::-1].astype(np.int32))
    car = np.zeros_like(fg)
    cv2.fillConvexPoly(car, hull, 1)
    car = (car & inbox).astype(bool)
    xs = np.nonzero(car)[1]
    if not (0.35 <= car.sum() / (w * h) <= 0.95 and np.ptp(xs) + 1 >= 0.7 * w and np.ptp(xs) + 1 <= 1.25 * w):
        return None
    mask = np.zeros(ir.shape, bool)
    mask[y0:y1, x0:x1] = car
    return mask


def car_detections(ir: np.ndarray, vi: np.ndarray) -> list[Detection]:
    """Cars seen from behind: tail-lamp pair boxes that are symmetric in the infrared, cut out by GrabCut."""
    H = ir.shape[0]
    dets = []
    for box in lamp_pair_boxes(vi):
        _, y, _, h = box
        sym = mirror_similarity(ir, box)
        if y < 0.2 * H or y + h < 0.55 * H or y + h > 1.1 * H or sym < 0.5:
            continue
        mask = cut_car(ir, vi, box)
        if mask is not None:
            dets.append(Detection(CAR, box, sym, mask))
    return suppress(dets, 0.3)


def detect(
    ir: np.ndarray, vi: np.ndarray, hog: "cv2.HOGDescriptor | None", name: str = ""
) -> list[Detection]:
    """People (when a HOG detector is given) and cars of one pair, less those in REJECT[name]."""
    dets = car_detections(ir, vi) + (person_detections(ir, vi, hog) if hog is not None else [])
    drop = REJECT.get(name, [])
    return [d for d in dets if CLASSES[d.label] not in drop and not any(inside(p, d.box) for p in drop)]


def inside(point: tuple[int, int] | str, box: Box) -> bool:
    """Whether `point` (x, y) lies in `box` (a class name in REJECT is no point)."""
    if isinstance(point, str):
        return False
    return box[0] <= point[0] < box[0] + box[2] and box[1] <= point[1] < box[1] + box[3]


def label_map(shape: tuple[int, int], dets: list[Detection]) -> np.ndarray:
    """The (H, W) uint8 index map: cars first, people painted over them (a person stands in front)."""
    out = np.zeros(shape, np.uint8)
    for d in sorted(dets, key=lambda d: d.label == PERSON):
        out[d.mask] = d.label
    return out


def overlay(vi: np.ndarray, labels: np.ndarray, name: str, width: int = 240) -> np.ndarray:
    """A thumbnail `width` px wide: the visible image, people red and cars green, filled and outlined."""
    out = vi.copy()
    for label, colour in ((PERSON, (0, 0, 255)), (CAR, (0, 255, 0))):
        m = labels == label
        out[m] = (0.55 * out[m] + 0.45 * np.array(colour)).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, 2)
    h = round(vi.shape[0] * width / vi.shape[1])
    out = cv2.resize(out, (width, h), interpolation=cv2.INTER_AREA)
    cv2.rectangle(out, (0, 0), (width, 14), (0, 0, 0), -1)
    cv2.putText(out, name, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def contact_sheet(thumbs: list[np.ndarray], cols: int = 6) -> np.ndarray:
    """Thumbnails (BGR) laid out in rows of `cols`, each cell as tall as the tallest thumbnail."""
    ch, cw = max(t.shape[0] for t in thumbs), max(t.shape[1] for t in thumbs)
    rows = -(-len(thumbs) // cols)
    sheet = np.zeros((rows * ch, cols * cw, 3), np.uint8)
    for i, t in enumerate(thumbs):
        r, c = divmod(i, cols)
        sheet[r * ch : r * ch + t.shape[0], c * cw : c * cw + t.shape[1]] = t
    return sheet


def list_pairs(root: Path, dataset: str) -> list[tuple[str, Path, Path]]:
    """(name, ir path, vi path) of every pair of `root`/ivif/`dataset`, sorted by name."""
    vis = {p.stem: p for p in (root / "ivif" / dataset / "vi").iterdir()}
    irs = sorted((root / "ivif" / dataset / "ir").iterdir())
    return [(p.stem, p, vis[p.stem]) for p in irs if p.stem in vis]


def label_dataset(
    root: Path, out: Path, dataset: str, hog: "cv2.HOGDescriptor | None", keep: set[str] | None = None
) -> dict[str, np.ndarray]:
    """Write the label PNGs and classes.txt of one dataset; returns {name: label map} of labelled pairs."""
    folder = out / "ivif" / dataset
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    done = {}
    for name, ir_path, vi_path in list_pairs(root, dataset):
        if keep is not None and name not in keep:
            continue
        ir, vi = read_pair(ir_path, vi_path)
        labels = label_map(ir.shape, detect(ir, vi, hog, name))
        if labels.any():
            Image.fromarray(labels, mode="L").save(folder / "labels" / f"{name}.png")
            done[name] = labels
    return done


def main(argv: list[str] | None = None) -> None:
    """Label RoadScene, MSRS and TNO under DATA into OUT; optionally render a contact sheet."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="the shared data root (holds ivif/ and splits.json)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--sheet", type=Path, help="JPEG contact sheet of the labelled pairs")
    split = ap.add_mutually_exclusive_group()
    split.add_argument("--only-val", action="store_true", help="only the validation pairs of splits.json")
    split.add_argument("--no-val", action="store_true", help="leave out the validation pairs")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    hog = people_detector()
    val = json.loads((args.data / "splits.json").read_text())["val"]
    thumbs = []
    for ds in DATASETS:
        names = {n for n, _, _ in list_pairs(args.data, ds)}
        keep = names & set(val.get(ds, [])) if args.only_val else names - set(val.get(ds, []))
        done = label_dataset(args.data, args.out, ds, hog, keep if (args.only_val or args.no_val) else None)
        n_person = sum(bool((m == PERSON).any()) for m in done.values())
        n_car = sum(bool((m == CAR).any()) for m in done.values())
        print(f"{ds}: {len(done)} labelled pairs ({n_person} with people, {n_car} with cars)")
        for name, labels in sorted(done.items()):
            vi = read_pair(*next((i, v) for n, i, v in list_pairs(args.data, ds) if n == name))[1]
            thumbs.append(overlay(vi, labels, name))
    if args.sheet and thumbs:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.sheet), contact_sheet(thumbs), [cv2.IMWRITE_JPEG_QUALITY, 80])


if __name__ == "__main__":
    main()
