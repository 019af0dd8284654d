"""tools/label_objects.py on synthetic infrared+visible scenes (the HOG part only where OpenCV ships it)."""

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

TOOL = Path(__file__).resolve().parents[1] / "tools" / "label_objects.py"


@pytest.fixture(scope="module")
def lo():
    """The tool loaded as a module from its path."""
    spec = importlib.util.spec_from_file_location("label_objects", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["label_objects"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def figure_scene() -> tuple[np.ndarray, np.ndarray]:
    """A cool noisy IR background (240, 320) with one warm standing figure drawn at x 150..170, y 120..200."""
    rng = np.random.default_rng(0)
    ir = np.clip(rng.normal(80, 6, (240, 320)), 0, 255).astype(np.uint8)
    cv2.circle(ir, (160, 128), 8, 210, -1)  # head
    cv2.rectangle(ir, (151, 136), (169, 170), 210, -1)  # torso
    cv2.rectangle(ir, (152, 170), (158, 200), 200, -1)  # legs
    cv2.rectangle(ir, (162, 170), (168, 200), 200, -1)
    return ir, np.zeros((240, 320, 3), np.uint8)


def test_warm_figure_covers_the_warm_person_and_nothing_else(lo):
    ir, _ = figure_scene()
    mask = lo.warm_figure(ir, (140, 112, 40, 96))  # a 64x128-shaped window around the figure
    assert mask is not None and mask.shape == ir.shape
    drawn = ir > 150
    assert mask[drawn].mean() > 0.9  # the figure is found ...
    assert not mask[:, :148].any() and not mask[:, 172:].any() and not mask[:115].any()  # ... and only it


def test_warm_figure_refuses_a_cool_window_and_a_warm_wall(lo):
    ir, _ = figure_scene()
    assert lo.warm_figure(ir, (20, 40, 40, 80)) is None  # nothing warm
    wall = np.full((240, 320), 60, np.uint8)
    wall[:, 100:260] = 220  # warmth far wider than the window: background, not a person
    assert lo.warm_figure(wall, (140, 100, 40, 80)) is None


def test_empty_scene_writes_classes_but_no_label(lo, tmp_path):
    ir, vi = np.full((120, 160), 90, np.uint8), np.full((120, 160, 3), 120, np.uint8)
    for kind, img in (("ir", ir), ("vi", vi)):
        (tmp_path / "data/ivif/TNO" / kind).mkdir(parents=True)
        Image.fromarray(img).save(tmp_path / "data/ivif/TNO" / kind / "01.png")
    assert lo.detect(ir, vi, None) == []
    done = lo.label_dataset(tmp_path / "data", tmp_path / "out", "TNO", None)
    assert done == {}
    folder = tmp_path / "out/ivif/TNO"
    assert (folder / "classes.txt").read_text().splitlines() == ["background", "person", "car"]
    assert not list((folder / "labels").iterdir())


def test_label_png_round_trips_as_indices(lo, tmp_path, monkeypatch):
    ir, vi = figure_scene()
    for kind, img in (("ir", ir), ("vi", vi)):
        (tmp_path / "data/ivif/MSRS" / kind).mkdir(parents=True)
        Image.fromarray(img).save(tmp_path / "data/ivif/MSRS" / kind / "00001D.png")
    person = lo.warm_figure(ir, (140, 112, 40, 96))
    car = np.zeros(ir.shape, bool)
    car[150:210, 20:110] = True
    dets = [
        lo.Detection(lo.CAR, (20, 150, 90, 60), 1.0, car),
        lo.Detection(lo.PERSON, (140, 112, 40, 96), 1.0, person),
    ]
    monkeypatch.setattr(lo, "detect", lambda *a, **k: dets)
    lo.label_dataset(tmp_path / "data", tmp_path / "out", "MSRS", None)
    png = Image.open(tmp_path / "out/ivif/MSRS/labels/00001D.png")
    labels = np.asarray(png)
    assert png.mode == "L" and labels.dtype == np.uint8 and labels.shape == ir.shape
    assert set(np.unique(labels)) == {0, 1, 2}
    assert (labels == 1).sum() == person.sum() and (labels == 2).sum() == car.sum()


def test_reject_table_drops_a_detection_by_point(lo, monkeypatch):
    ir, vi = figure_scene()
    mask = lo.warm_figure(ir, (140, 112, 40, 96))
    det = lo.Detection(lo.PERSON, (140, 112, 40, 96), 2.0, mask)
    monkeypatch.setattr(lo, "person_detections", lambda *a: [det])
    monkeypatch.setitem(lo.REJECT, "x", [(160, 150)])
    assert lo.detect(ir, vi, object(), "y") == [det]
    assert lo.detect(ir, vi, object(), "x") == []
    monkeypatch.setitem(lo.REJECT, "z", ["person"])  # a class name drops that class in the whole pair
    assert lo.detect(ir, vi, object(), "z") == []


def test_contact_sheet_lays_out_thumbnails(lo):
    ir, vi = figure_scene()
    labels = np.zeros(ir.shape, np.uint8)
    labels[120:200, 150:170] = 1
    thumb = lo.overlay(vi, labels, "pair")
    assert thumb.shape == (180, 240, 3) and (thumb[..., 2] > thumb[..., 1]).any()  # red is drawn
    assert lo.contact_sheet([thumb] * 7, cols=6).shape == (360, 1440, 3)


def test_people_detector_is_opencv4_hog_or_a_clear_error(lo):
    if hasattr(cv2, "HOGDescriptor"):
        assert lo.people_detector().svmDetector.size == 3781
    else:
        with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
            lo.people_detector()
