"""Pre-fusion stages as one object (allfuse.stages) and the DiT loop's staged training data."""

import json

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata
from torch.utils.data import Dataset

from allfuse.data.datasets import as_item
from allfuse.deblur import edge_width
from allfuse.pipeline import FusionPipeline
from allfuse.stages import InputStages
from allfuse.train.config import load_train_config
from allfuse.train.data import StagedDataset, training_dataset


@pytest.fixture(scope="module")
def stages() -> InputStages:
    return InputStages.from_folder("allfuse-reg")


@pytest.fixture(scope="module")
def blurred_pair() -> list[np.ndarray]:
    """A sharp photo and its IR-like grey copy, both blurred by sigma 2.5: the deblurring stage fires."""
    vis = skdata.astronaut()[::2, ::2].astype(np.float32) / 255.0
    ir = cv2.cvtColor(vis, cv2.COLOR_RGB2GRAY)
    return [cv2.GaussianBlur(x, (0, 0), 2.5) for x in (ir, vis)]


def test_a_model_folder_has_every_stage(stages: InputStages) -> None:
    assert stages.deblock and stages.destripe and stages.denoise and stages.exposure and stages.deblur
    assert stages.corrector
    assert not stages.corrector.training and not any(p.requires_grad for p in stages.corrector.parameters())


def test_restore_deblurs_a_blurred_pair_and_the_pipeline_does_the_same(
    stages: InputStages, blurred_pair: list[np.ndarray]
) -> None:
    out = stages.restore(blurred_pair, "vif")
    kept = stages.restore(blurred_pair, "vif", deblur=False)
    assert all(np.array_equal(a, b) for a, b in zip(kept, blurred_pair, strict=True))  # nothing else fires
    assert [x.shape for x in out] == [x.shape for x in blurred_pair]
    assert edge_width(out[1]) < edge_width(blurred_pair[1]) - 0.3
    pipe = FusionPipeline.from_pretrained("allfuse-reg")
    via_pipe = pipe.restore_inputs(list(blurred_pair), "vif")
    assert all(np.allclose(a, b) for a, b in zip(via_pipe, out, strict=True))


class Items(Dataset):
    """Two fixed samples: a blurred VIF pair (IR grey as three equal channels) and an M3 pair."""

    def __init__(self, pair: list[np.ndarray]) -> None:
        ir, vis = pair
        self.items = [
            as_item(np.repeat(ir[..., None], 3, axis=2), vis, vis, "vif", "p", {}, (vis, vis)),
            as_item(vis, vis, vis, "m3", "p", {}, (vis, vis)),
        ]
        self.epoch = -1

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in self.items[i].items()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def sample(self, i: int) -> str:
        return f"sample {i}"


def test_staged_dataset_stages_fusion_samples_only(
    stages: InputStages, blurred_pair: list[np.ndarray]
) -> None:
    raw = Items(blurred_pair)
    ds = StagedDataset(raw, stages)
    vif, m3 = ds[0], ds[1]
    expected = stages.restore(blurred_pair, "vif")
    a = vif["a"].numpy()
    assert torch.equal(vif["a"][0], vif["a"][1]) and torch.equal(vif["a"][1], vif["a"][2])  # still grey
    assert np.abs(a[0] - np.clip(expected[0], 0, 1)).max() < 1e-6
    assert np.abs(vif["b"].permute(1, 2, 0).numpy() - np.clip(expected[1], 0, 1)).max() < 1e-6
    assert torch.equal(vif["target"], raw[0]["target"])  # the target is never staged
    assert all(torch.equal(m3[k], raw[1][k]) for k in ("a", "b", "target"))
    ds.set_epoch(3)
    assert raw.epoch == 3 and ds.sample(1) == "sample 1" and len(ds) == 2
    assert json.loads(vif["meta"]) == {}


def test_stages_from_wraps_the_training_dataset() -> None:
    cfg = load_train_config("tiny-reg", ["data.data=[]", "data.length=4", "data.size=32"])
    assert not isinstance(training_dataset(cfg, 0), StagedDataset)
    staged = training_dataset(load_train_config("tiny-reg", ["data.data=[]", "stages_from=allfuse-reg"]), 0)
    assert isinstance(staged, StagedDataset) and staged.stages.deblur is not None


def test_refiner_training_data_through_the_stages() -> None:
    from types import SimpleNamespace

    from allfuse.train.refine import RefineTrainConfig
    from allfuse.train.refine_data import refiner_dataset

    fusion = SimpleNamespace(cfg=load_train_config("tiny-reg", ["data.data=[]", "data.length=4"]))
    plain = refiner_dataset(fusion, RefineTrainConfig(model="allfuse-reg", size=32), 0)  # type: ignore[arg-type]
    assert not isinstance(plain, StagedDataset)
    cfg = RefineTrainConfig(model="allfuse-reg", size=32, stages=True)
    staged = refiner_dataset(fusion, cfg, 0)  # type: ignore[arg-type]
    assert isinstance(staged, StagedDataset) and staged.stages.corrector is not None
    assert staged[0]["a"].shape == plain[0]["a"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="already runs the input corrector"):
        RefineTrainConfig(model="allfuse-reg", stages=True, correct=True)
