import math

import pytest
import torch
from torch import nn

from amla.transformers.attention import causal_mask, padding_mask, to_additive
from amla.transformers.nn import (
    FeedForward,
    LearnedPositionalEncoding,
    MultiHeadAttention,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    TransformerBlock,
    TransformerEncoder,
    merge_heads,
    split_heads,
)

# --- heads -------------------------------------------------------------------------------------------


def test_split_and_merge_heads_are_inverse_and_keep_features_of_a_head_together():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)
    h = split_heads(x, 4)
    assert h.shape == (2, 4, 3, 2)
    assert torch.equal(h[1, 2, 0], x[1, 0, 4:6])  # head 2 of position 0 = features 4..5 of that position
    assert torch.equal(merge_heads(h), x)


# --- MultiHeadAttention equals torch.nn.MultiheadAttention ----------------------------------------


def _pair(d=12, h=3, bias=True, seed=0):
    torch.manual_seed(seed)
    ours = MultiHeadAttention(d, h, bias=bias).eval()
    ref = nn.MultiheadAttention(d, h, bias=bias, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
            ref.out_proj.bias.copy_(ours.out_proj.bias)
    return ours, ref


def _cases():
    """(name, Tq, Tk, torch key_padding_mask [B, Tk] True = ignore, torch attn_mask [Tq, Tk])."""
    b, t, s = 2, 5, 7
    kpm_t = ~padding_mask([5, 3], t)[:, 0]  # torch: True = padding, ignore
    kpm_s = ~padding_mask([7, 4], s)[:, 0]
    bias = -0.3 * (torch.arange(s)[None, :] - torch.arange(t)[:, None]).abs().float()
    return b, [
        ("self, no mask", t, t, None, None),
        ("self, key padding", t, t, kpm_t, None),
        ("self, causal (torch: True = blocked)", t, t, None, ~causal_mask(t)),
        ("self, causal + key padding", t, t, kpm_t, ~causal_mask(t)),
        ("cross, no mask", t, s, None, None),
        ("cross, key padding", t, s, kpm_s, None),
        ("cross, additive bias + key padding", t, s, kpm_s, bias),
    ]


def _our_mask(kpm, attn):
    """torch's two masks as one of ours (bool True = may attend, or additive float) for [B, H, Tq, Tk]."""
    mask = None
    if kpm is not None:
        mask = ~kpm[:, None, None, :]  # [B, 1, 1, Tk]
    if attn is not None:
        if attn.dtype == torch.bool:
            mask = ~attn if mask is None else mask & ~attn
        else:
            mask = attn if mask is None else attn + to_additive(mask)
    return mask


B, CASES = _cases()


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_mha_equals_torch_multihead_attention(case, bias, need_weights):
    _, tq, tk, kpm, attn = next(c for c in CASES if c[0] == case)
    ours, ref = _pair(bias=bias)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, tq, 12, generator=g)
    kv = x if tq == tk and case.startswith("self") else torch.randn(B, tk, 12, generator=g)
    torch_kpm = to_additive(~kpm) if kpm is not None and attn is not None and attn.is_floating_point() else kpm
    expected, expected_w = ref(x, kv, kv, key_padding_mask=torch_kpm, attn_mask=attn, average_attn_weights=False)
    out, w = ours(x, None if kv is x else kv, _our_mask(kpm, attn), need_weights=need_weights)
    assert out.shape == (B, tq, 12)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    if need_weights:
        assert w.shape == (B, 3, tq, tk)
        torch.testing.assert_close(w, expected_w, atol=1e-5, rtol=1e-5)
    else:
        assert w is None


def test_mha_accepts_a_3d_padding_mask_for_all_heads():
    ours, _ = _pair()
    x = torch.randn(2, 5, 12)
    pad = padding_mask([5, 2], 5)  # [B, 1, T]
    a, w = ours(x, mask=pad, need_weights=True)
    b, _ = ours(x, mask=pad[:, None])
    torch.testing.assert_close(a, b)
    assert (w[1, :, :, 2:] == 0).all()


def test_mha_is_causal_equals_an_explicit_causal_mask():
    ours, _ = _pair()
    x = torch.randn(2, 6, 12)
    a, _ = ours(x, is_causal=True)
    b, _ = ours(x, mask=causal_mask(6), need_weights=True)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_mha_without_positions_is_permutation_equivariant():
    ours, _ = _pair()
    x = torch.randn(2, 6, 12)
    perm = torch.randperm(6)
    torch.testing.assert_close(ours(x[:, perm])[0], ours(x)[0][:, perm], atol=1e-6, rtol=1e-5)


def test_mha_dropout_only_in_training_and_gradients_flow():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 4, 8, requires_grad=True)
    for need_weights in (False, True):
        out, _ = mha.train()(x, need_weights=need_weights)
        out.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        mha.eval()
        torch.testing.assert_close(mha(x)[0], mha(x, need_weights=True)[0], atol=1e-6, rtol=1e-5)


# --- positions ---------------------------------------------------------------------------------------


def test_sinusoidal_values():
    d = 8
    pe = SinusoidalPositionalEncoding(d, 20)
    table = pe(torch.zeros(1, 20, d))[0]
    assert torch.equal(table[0], torch.tensor([0.0, 1.0] * 4))
    for p in (1, 3, 17):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert table[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    x = torch.randn(2, 4, d)
    torch.testing.assert_close(pe(x, offset=3), x + table[3:7])
    assert not list(pe.parameters()) and "pe" not in pe.state_dict()


def test_learned_positions_are_parameters_added_per_position():
    pe = LearnedPositionalEncoding(6, 10)
    x = torch.zeros(3, 4, 6)
    torch.testing.assert_close(pe(x), pe.embedding.weight[:4].expand(3, 4, 6))
    pe(x).sum().backward()
    assert pe.embedding.weight.grad is not None


def test_rope_scores_depend_only_on_the_relative_position():
    rope = RotaryEmbedding(16, 64)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)

    def score(m, n):
        return (rope.rotate(q, m) * rope.rotate(k, n)).sum().item()

    for shift in (0, 1, 5, -3):
        ref = score(10, 10 + shift)
        for m in (3, 20, 40):
            assert score(m, m + shift) == pytest.approx(ref, abs=1e-4)
    assert score(10, 11) != pytest.approx(score(10, 15), abs=1e-3)  # but it does depend on the offset
    torch.testing.assert_close(rope.rotate(q, 7).norm(), q.norm())  # a rotation keeps the length
    torch.testing.assert_close(rope.rotate(q, 0), q)  # position 0: no rotation


def test_rope_apply_and_mha_with_rope_is_shift_invariant():
    rope = RotaryEmbedding(4, 32)
    q, k = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    rq, rk = rope.apply(q, k, offset=2)
    torch.testing.assert_close(rq[:, :, 1], rope.rotate(q[:, :, 1:2], 3)[:, :, 0])
    torch.testing.assert_close(rk, rope.rotate(k, 2))
    mha = MultiHeadAttention(12, 3).eval()
    x = torch.randn(2, 5, 12)
    a, _ = mha(x, rope=rope)
    b, _ = mha(x, rope=rope, rope_offset=9, need_weights=True)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, mha(x)[0], atol=1e-3)


def test_module_apply_still_works_on_a_model_holding_rope():
    enc = TransformerEncoder(10, 8, 2, 1, 16, 12, pos="rope")
    seen = []
    enc.apply(lambda m: seen.append(type(m).__name__))
    assert "RotaryEmbedding" in seen


# --- blocks and encoder -----------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_pre_and_post_norm(norm_first):
    torch.manual_seed(0)
    block = TransformerBlock(8, 2, 16, norm_first=norm_first).eval()
    x = torch.randn(2, 5, 8)
    y, w, cw = block(x, need_weights=True)
    assert y.shape == x.shape and w.shape == (2, 2, 5, 5) and cw is None
    torch.testing.assert_close(block(x)[0], y, atol=1e-6, rtol=1e-5)
    h = x + block.self_attn(block.norm1(x) if norm_first else x)[0]
    if norm_first:
        expected = h + block.ff(block.norm2(h))
    else:
        h = block.norm1(h)
        expected = block.norm2(h + block.ff(h))
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-5)


def test_block_with_cross_attention():
    block = TransformerBlock(8, 2, 16, cross_attention=True).eval()
    x, memory = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    y, w, cw = block(x, causal_mask(4), memory, padding_mask([6, 3], 6), need_weights=True)
    assert y.shape == (2, 4, 8) and w.shape == (2, 2, 4, 4) and cw.shape == (2, 2, 4, 6)
    assert (w[..., 0, 1:] == 0).all() and (cw[1, ..., 3:] == 0).all()
    with pytest.raises(ValueError, match="pass memory"):
        block(x)
    with pytest.raises(ValueError, match="no cross-attention"):
        TransformerBlock(8, 2, 16)(x, memory=memory)


@pytest.mark.parametrize("pos", ["sinusoidal", "learned", "rope", "none"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder(pos, norm_first):
    torch.manual_seed(0)
    enc = TransformerEncoder(11, 16, 4, 3, 32, 10, norm_first=norm_first, pos=pos).eval()
    tokens = torch.randint(0, 11, (2, 7))
    h, w = enc(tokens, need_weights=True)
    assert h.shape == (2, 7, 16) and w.shape == (3, 2, 4, 7, 7)
    h2, w2 = enc(tokens)
    assert w2 is None
    torch.testing.assert_close(h, h2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 4, 7))


def test_feed_forward_shape():
    assert FeedForward(8, 32)(torch.randn(2, 3, 8)).shape == (2, 3, 8)


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, match", [
    (lambda: split_heads(torch.randn(2, 3, 10), 4), r"divisible by n_heads=4, got \(2, 3, 10\)"),
    (lambda: split_heads(torch.randn(3, 8), 2), r"\[B, T, D\]"),
    (lambda: merge_heads(torch.randn(2, 3, 8)), r"\[B, H, T, d_head\], got \(2, 3, 8\)"),
    (lambda: MultiHeadAttention(10, 3), "not divisible by n_heads=3"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 3, 6)), r"x must be \[B, Tq, 8\], got \(2, 3, 6\)"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 3, 8), torch.randn(3, 4, 8)), r"kv must be \[B=2, Tk, 8\]"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 3, 8), mask=torch.ones(3, 4, dtype=torch.bool)),
     r"does not broadcast to the scores \[B, H, Tq, Tk\] = \(2, 2, 3, 3\)"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(2, 3, 8), mask=torch.ones(3, 3, dtype=torch.long)), "bool"),
    (lambda: SinusoidalPositionalEncoding(7, 10), "even"),
    (lambda: SinusoidalPositionalEncoding(8, 10)(torch.randn(1, 11, 8)), "exceed max_len=10"),
    (lambda: LearnedPositionalEncoding(8, 10)(torch.randn(1, 4, 6)), r"\[B, T, 8\], got \(1, 4, 6\)"),
    (lambda: RotaryEmbedding(5, 10), "even"),
    (lambda: RotaryEmbedding(4, 10).rotate(torch.randn(1, 2, 3, 6)), r"\[\.\.\., T, 4\], got \(1, 2, 3, 6\)"),
    (lambda: RotaryEmbedding(4, 10).apply(torch.randn(1, 1, 8, 4), torch.randn(1, 1, 8, 4), 5), "max_len=10"),
    (lambda: TransformerEncoder(5, 8, 2, 1, 16, 6)(torch.zeros(1, 7, dtype=torch.long)), "exceeds max_len=6"),
    (lambda: TransformerEncoder(5, 8, 2, 1, 16, 6)(torch.zeros(1, 4)), "integer ids"),
    (lambda: TransformerEncoder(5, 8, 2, 1, 16, 6, pos="alibi"), "pos must be"),
])
def test_bad_input_gives_one_line_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "\n" not in str(info.value)
