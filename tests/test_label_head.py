"""The dense, LSeg-style label head of the JointDiT: its loss over each sample's own label set, the batch's
labels in one set, where its gradient goes, and how windowed inference reads it."""

import numpy as np
import pytest
import torch

from allfuse.models.joint import MASK_CELLS, JointConfig, JointDiT, LabelHead
from allfuse.objectives.batch import SegLabels
from allfuse.objectives.joint import dense_label_loss
from allfuse.sampling.joint import predict_mask
from allfuse.train.data import Frozen

MICRO = dict(latent_channels=4, hidden=32, heads=2, depth=2, ffn_hidden=64, lora_rank=8, text_dim=8)
LABELS = ("background", "circle", "square")


def seg_labels(labels: torch.Tensor, allowed: torch.Tensor) -> SegLabels:
    k = allowed.shape[1]
    return SegLabels(labels, allowed, torch.randn(k, 3, 8), torch.ones(k, 3, dtype=torch.bool), LABELS[:k])


def onehot_logits(labels: torch.Tensor, k: int, scale: float) -> torch.Tensor:
    """Logits (B, K, H/4, W/4) that say each cell's label (labels constant on 4 px cells)."""
    cells = labels[:, 0, ::4, ::4]
    return scale * torch.nn.functional.one_hot(cells, k).permute(0, 3, 1, 2).float()


def test_the_loss_rewards_the_right_label_and_ignores_the_unlabelled() -> None:
    labels = torch.zeros(2, 1, 16, 16, dtype=torch.int64)
    labels[0, :, :8, :8] = 1
    labels[1, :, 8:, :] = 2
    allowed = torch.ones(2, 3, dtype=torch.bool)
    seg = seg_labels(labels, allowed)
    right = dense_label_loss(onehot_logits(labels, 3, 20.0), seg)
    wrong = dense_label_loss(onehot_logits((labels + 1) % 3, 3, 20.0), seg)
    assert right.item() < 1e-3 and wrong.item() > 10
    # a sample without labels adds nothing, whatever its logits
    more = torch.cat([labels, torch.full_like(labels[:1], -1)])
    logits = torch.cat([onehot_logits(labels, 3, 20.0), torch.randn(1, 3, 4, 4)])
    seg_more = seg_labels(more, torch.ones(3, 3, dtype=torch.bool))
    assert dense_label_loss(logits, seg_more).item() == pytest.approx(right.item(), abs=1e-6)
    none = torch.randn(1, 3, 4, 4, requires_grad=True)
    zero = dense_label_loss(
        none, seg_labels(torch.full((1, 1, 16, 16), -1), torch.ones(1, 3, dtype=torch.bool))
    )
    assert zero.item() == 0.0 and zero.requires_grad


def test_labels_outside_a_samples_set_get_no_probability() -> None:
    labels = torch.zeros(1, 1, 16, 16, dtype=torch.int64)
    labels[0, :, :8] = 1
    logits = onehot_logits(labels, 3, 5.0)
    only_two = seg_labels(labels, torch.tensor([[True, True, False]]))
    base = dense_label_loss(logits, only_two)
    logits[:, 2] = 50.0  # a label this sample cannot have scores highest everywhere
    assert dense_label_loss(logits, only_two).item() == pytest.approx(base.item(), rel=1e-6)
    assert dense_label_loss(logits, seg_labels(labels, torch.ones(1, 3, dtype=torch.bool))).item() > 10


def test_a_small_shape_weighs_as_much_as_the_background() -> None:
    """Class-balanced half: missing a 4-cell shape costs far more than its share of the pixels."""
    labels = torch.zeros(1, 1, 64, 64, dtype=torch.int64)
    labels[0, :, :8, :8] = 1  # 4 of 256 cells
    seg = seg_labels(labels, torch.ones(1, 3, dtype=torch.bool))
    miss = onehot_logits(torch.zeros_like(labels), 3, 10.0)
    # plain cross-entropy alone: 10 nats on 4 of 256 cells = 0.16; the balanced half: (0 + 10) / 2 labels
    assert dense_label_loss(miss, seg).item() == pytest.approx(0.5 * (10 * 4 / 256 + 10 / 2), rel=0.01)


class FakeText:
    dim = 8

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.stack([torch.full((3, 8), float(len(t))) for t in texts])
        return rows, torch.ones(len(texts), 3, dtype=torch.bool)


def test_a_batch_of_different_label_sets_shares_one() -> None:
    frozen = Frozen.__new__(Frozen)
    frozen.text = FakeText()
    label = torch.tensor([[[0, 1], [2, 0]], [[0, 2], [1, 1]], [[-1, -1], [-1, -1]]])[:, None]
    batch = {"label": label, "classes": ["background|circle|star", "background|person|car", ""]}
    seg = frozen.seg_labels(batch)
    assert seg.names == ("background", "circle", "star", "person", "car")
    assert seg.labels[0, 0].tolist() == [[0, 1], [2, 0]]
    assert seg.labels[1, 0].tolist() == [[0, 4], [3, 3]]  # person -> 3, car -> 4
    assert (seg.labels[2] == -1).all()
    assert seg.allowed.tolist() == [
        [True, True, True, False, False],
        [True, False, False, True, True],
        [False] * 5,
    ]
    assert seg.text.shape == (5, 3, 8) and seg.text[3, 0, 0] == len("person")
    assert frozen.seg_labels({"label": label[2:], "classes": [""]}) is None


def label_model() -> JointDiT:
    torch.manual_seed(0)
    model = JointDiT(JointConfig(**MICRO, mask_head=True, mask_labels=LABELS)).eval()
    for q in model.parameters():  # off the zero init, so every part of the graph carries signal
        q.data.add_(0.05 * torch.randn_like(q))
    return model


def test_only_the_head_is_in_the_graph_and_reads_pixels_and_labels() -> None:
    model = label_model()
    assert isinstance(model.mask_head, LabelHead)
    conds = [torch.randn(2, 4, 8, 8) for _ in range(2)]
    pixels = [torch.rand(2, 3, 64, 64) for _ in range(2)]
    text, tmask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    ltext, lmask = torch.randn(3, 4, 8), torch.ones(3, 4, dtype=torch.bool)
    logits = model.label_logits(conds, pixels, text, tmask, ltext, lmask)
    assert logits.shape == (2, 3, 8 // 2 * MASK_CELLS, 8 // 2 * MASK_CELLS)
    logits.sum().backward()
    assert all(q.grad is None for n, q in model.named_parameters() if not n.startswith("mask_head."))
    assert model.mask_head.pixels[0].weight.grad.abs().max() > 0
    assert model.mask_head.query[1].weight.grad.abs().max() > 0
    with torch.no_grad():
        other = model.label_logits(conds, [1 - p for p in pixels], text, tmask, ltext, lmask)
        assert not torch.allclose(other, logits)  # the pixels matter
        swapped = model.label_logits(conds, pixels, text, tmask, ltext.flip(0), lmask)
        torch.testing.assert_close(swapped, logits.detach().flip(1))  # a label's score follows its text
    with pytest.raises(ValueError, match="mask_labels"):
        JointConfig(**MICRO, mask_labels=LABELS)  # no head
    with pytest.raises(ValueError, match="background"):
        JointConfig(**MICRO, mask_head=True, mask_labels=("circle", "background"))


def test_windowed_label_probabilities() -> None:
    model = label_model()
    conds = [torch.randn(1, 4, 12, 10) for _ in range(2)]
    pixels = [torch.rand(1, 3, 96, 80) for _ in range(2)]
    text, tmask = torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool)
    labels = (torch.randn(3, 4, 8), torch.ones(3, 4, dtype=torch.bool))
    whole = predict_mask(model, conds, text, tmask, 0, pixels, labels)
    assert whole.shape == (1, 3, 24, 20)
    torch.testing.assert_close(whole.sum(1), torch.ones(1, 24, 20))
    direct = torch.softmax(model.label_logits(conds, pixels, text, tmask, *labels), dim=1)
    torch.testing.assert_close(whole, direct)
    windows = predict_mask(model, conds, text, tmask, 6, pixels, labels)
    assert windows.shape == whole.shape
    torch.testing.assert_close(windows.sum(1), torch.ones(1, 24, 20))
    agree = (windows.argmax(1) == whole.argmax(1)).float().mean()
    assert agree > 0.5  # windows see less context, but the same cells
    with pytest.raises(ValueError, match="pixels"):
        predict_mask(model, conds, text, tmask, 0, [p[..., :90, :] for p in pixels], labels)
    assert np.isfinite(windows.numpy()).all()
