"""Layers of FusionDiT: 2D RoPE, MoE routing and balance loss, NAFBlock, value residual, per-block PE."""

import torch

from allfuse.models.layers import Attention, BlockPE, NAFBlock, apply_rope, rope_2d, rope_2d_angles
from allfuse.models.moe import MoEGLU, balance_loss


def test_rope_scores_depend_only_on_relative_offsets() -> None:
    torch.manual_seed(0)
    h, w, d = 5, 7, 16
    rope = rope_2d(h, w, d, base=2000.0)  # (cos, sin), each (h*w, d/2)
    q, k = torch.randn(d), torch.randn(d)
    # The same q at every position and the same k at every position: score must depend on offset only.
    qr = apply_rope(q.expand(1, 1, h * w, d).contiguous(), rope)[0, 0].view(h, w, d)
    kr = apply_rope(k.expand(1, 1, h * w, d).contiguous(), rope)[0, 0].view(h, w, d)
    s = torch.einsum("abd,ced->abce", qr, kr)  # score of query (a, b) with key (c, e)
    for dy, dx in [(1, 2), (-2, 3), (0, -4), (3, 0)]:
        vals = [
            s[a, b, a + dy, b + dx] for a in range(h) for b in range(w) if 0 <= a + dy < h and 0 <= b + dx < w
        ]
        torch.testing.assert_close(torch.stack(vals), vals[0].expand(len(vals)), atol=1e-4, rtol=1e-4)
    # Rows and columns are not interchangeable: offset (1, 2) differs from (2, 1).
    assert not torch.allclose(s[0, 0, 1, 2], s[0, 0, 2, 1])


def test_rope_text_tokens_unrotated_and_norm_preserved() -> None:
    angles = rope_2d_angles(3, 4, 8, n_text=2)
    assert angles.shape == (2 + 12, 4) and angles[:2].abs().max() == 0
    x = torch.randn(2, 1, 14, 8)
    rope = (angles.cos(), angles.sin())
    torch.testing.assert_close(apply_rope(x, rope).norm(dim=-1), x.norm(dim=-1))


def test_moe_routes_each_token_to_exactly_k_experts() -> None:
    torch.manual_seed(0)
    moe = MoEGLU(dim=16, hidden=8, experts=4, top_k=2, shared=1)
    x = torch.randn(3, 10, 16)
    _, idx, weights = moe.route(x.reshape(-1, 16))
    assert idx.shape == (30, 2)
    assert (idx[:, 0] != idx[:, 1]).all()  # two distinct experts per token
    torch.testing.assert_close(weights.sum(-1), torch.ones(30))
    y, aux = moe(x)
    assert y.shape == x.shape and aux.ndim == 0
    # Vectorised dispatch equals the per-token reference computation.
    flat = x.reshape(-1, 16)
    ref = moe.shared(flat).clone()
    for i in range(flat.shape[0]):
        for j in range(2):
            e = idx[i, j]
            gate, up = (flat[i] @ moe.w_in[e]).chunk(2)
            ref[i] += weights[i, j] * ((torch.nn.functional.silu(gate) * up) @ moe.w_out[e])
    torch.testing.assert_close(y.reshape(-1, 16), ref, atol=1e-5, rtol=1e-5)


def test_balance_loss_is_minimal_under_uniform_routing() -> None:
    n, e, k = 64, 4, 2
    uniform = torch.full((n, e), 1.0 / e)
    idx = torch.stack([torch.arange(n) % e, (torch.arange(n) + 1) % e], dim=1)
    assert torch.isclose(balance_loss(uniform, idx, e), torch.tensor(1.0))
    # Collapsed routing (every token prefers experts 0 and 1) costs more.
    skew = torch.tensor([0.6, 0.3, 0.05, 0.05]).expand(n, e)
    idx_skew = torch.tensor([0, 1]).expand(n, k)
    assert balance_loss(skew, idx_skew, e) > 1.5
    # Masked-out tokens do not count.
    valid = torch.zeros(n, dtype=torch.bool)
    valid[:8] = True
    probs = torch.cat([uniform[:8], skew[8:]])
    assert torch.isclose(balance_loss(probs, idx, e, valid), torch.tensor(1.0))


def test_nafblock_identity_at_init_and_shapes() -> None:
    block = NAFBlock(12, expand=2)
    x = torch.randn(2, 12, 5, 7)
    torch.testing.assert_close(block(x), x)


def test_value_residual_eta_zero_is_plain_attention_and_eta_one_copies_previous_value() -> None:
    torch.manual_seed(0)
    attn = Attention(16, heads=2, value_residual=True)
    x, v_prev = torch.randn(2, 6, 16), torch.randn(2, 2, 6, 8)
    out0, _ = attn(x, None, None, None)
    out1, _ = attn(x, None, None, v_prev)
    torch.testing.assert_close(out0, out1)  # eta = 0 at init
    with torch.no_grad():
        attn.eta.fill_(1.0)
    _, v2 = attn(x, None, None, v_prev)
    torch.testing.assert_close(v2, v_prev)


def test_block_pe_shape_any_grid() -> None:
    pe = BlockPE(16, features=8)
    assert pe(3, 5).shape == (15, 16)
    a = pe(3, 5).view(3, 5, 16)
    # BroadcastAdd: differences between rows do not depend on the column.
    torch.testing.assert_close(a[1] - a[0], (a[1] - a[0])[:1].expand(5, 16))
