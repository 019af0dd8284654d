"""Tiled inference: windows cover the latent with the promised overlap, blending reproduces any pointwise
network exactly, and a real FusionDiT samples through the wrapper at sizes beyond its window."""

import itertools

import pytest
import torch
from torch import Tensor, nn

from allfuse.config import ModelConfig, SamplerConfig
from allfuse.models import build_model
from allfuse.models.dit import DiTOutput
from allfuse.sampling import sample_latent
from allfuse.sampling.tiling import TiledModel, ramp, window_starts


@pytest.mark.parametrize(("size", "window", "overlap"), [(16, 16, 4), (17, 16, 4), (40, 16, 4), (128, 16, 4)])
def test_windows_cover_with_overlap(size: int, window: int, overlap: int) -> None:
    starts = window_starts(size, window, overlap)
    assert starts[0] == 0 and starts[-1] + window == max(size, window)
    assert all(b - a <= window - overlap for a, b in itertools.pairwise(starts))
    assert ramp(window, overlap).min() > 0 and ramp(window, overlap).max() == 1


class Pointwise(nn.Module):
    """A 'network' whose output at a cell depends only on that cell: tiling must not change it."""

    cfg = ModelConfig(latent_channels=4, hidden=32, heads=2, text_dim=8)

    def forward(self, conds, prompt=None, prompt_mask=None, x=None, t=None, later_pass=False) -> DiTOutput:
        z = torch.stack(list(conds), 1) if not isinstance(conds, Tensor) else conds
        out = z[:, 0] * 2 - z[:, 1] + (0 if x is None else x * t.view(-1, 1, 1, 1))
        later = torch.as_tensor(later_pass).float().expand(z.shape[0]).view(-1, 1, 1, 1)
        return DiTOutput(out + 0.5 * later, torch.zeros(()))


def test_windows_keep_which_samples_are_a_later_pass() -> None:
    conds = [torch.randn(3, 4, 37, 50) for _ in range(2)]
    later = torch.tensor([True, False, True])
    full = Pointwise()(conds, later_pass=later).sample
    tiled = TiledModel(Pointwise(), window=16)(conds, later_pass=later).sample
    torch.testing.assert_close(tiled, full)
    assert not torch.allclose(full[0], Pointwise()(conds).sample[0])
    every = TiledModel(Pointwise(), window=16)(conds, later_pass=True).sample
    torch.testing.assert_close(every, Pointwise()(conds, later_pass=True).sample)


def test_blending_is_exact_for_a_pointwise_network() -> None:
    conds = [torch.randn(2, 4, 37, 50) for _ in range(2)]
    x, t = torch.randn(2, 4, 37, 50), torch.tensor([0.3, 0.7])
    full = Pointwise()(conds, x=x, t=t).sample
    tiled = TiledModel(Pointwise(), window=16)(conds, x=x, t=t).sample
    torch.testing.assert_close(tiled, full)


def test_tiled_fusion_dit_samples_any_size() -> None:
    small = dict(latent_channels=4, hidden=32, depth=1, heads=2, expert_hidden=16, lora_rank=8, text_dim=8)
    torch.manual_seed(0)
    model = build_model(ModelConfig(**small)).eval()
    conds = [torch.randn(1, 4, 21, 30) for _ in range(2)]
    tiled = TiledModel(model, window=8, chunk=3)
    out = sample_latent(tiled, conds, torch.randn(1, 3, 8), cfg=SamplerConfig(method="euler", steps=2))
    assert out.x.shape == (1, 4, 21, 30) and torch.isfinite(out.x).all() and out.nfe == 2
    small_in = [c[..., :8, :8] for c in conds]  # fits one window: the wrapper is the network itself
    xt, tt = torch.randn(1, 4, 8, 8), torch.tensor([0.5])
    torch.testing.assert_close(tiled(small_in, x=xt, t=tt).sample, model(small_in, x=xt, t=tt).sample)
    with pytest.raises(ValueError):
        TiledModel(model, window=8, overlap=8)
