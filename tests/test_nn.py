import math

import pytest
import torch
from torch import nn

from amla.transformers.attention import causal_mask, padding_mask, to_additive
from amla.transformers.encoder import TransformerEncoder, TransformerFunctions
from amla.transformers.nn import (
    FeedForward,
    MultiHeadAttention,
    TransformerBlock,
    block_forward,
    merge_heads,
    mha_forward,
    split_heads,
)
from amla.transformers.positions import (
    LearnedPositionalEncoding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
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


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_with_d_ff_0_has_no_feed_forward_branch(norm_first):
    torch.manual_seed(0)
    block = TransformerBlock(8, 2, 0, norm_first=norm_first).eval()
    assert block.ff is None and block.norm2 is None
    assert not any(name.startswith(("ff.", "norm2.")) for name in block.state_dict())
    attention_only = sum(p.numel() for m in (block.self_attn, block.norm1) for p in m.parameters())
    assert sum(p.numel() for p in block.parameters()) == attention_only == 4 * 8 * 8 + 4 * 8 + 2 * 8
    x = torch.randn(2, 5, 8, requires_grad=True)
    y, w, _ = block(x, need_weights=True)
    expected = x + block.self_attn(block.norm1(x))[0] if norm_first else block.norm1(x + block.self_attn(x)[0])
    torch.testing.assert_close(y, expected, atol=1e-6, rtol=1e-5)
    assert w.shape == (2, 2, 5, 5)
    y.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in block.parameters())


def test_encoder_with_d_ff_0_drops_exactly_the_feed_forward_parameters():
    d, d_ff, layers = 16, 32, 3
    full = TransformerEncoder(11, d, 4, layers, d_ff, 10)
    attention_only = TransformerEncoder(11, d, 4, layers, 0, 10).eval()
    def n(module):
        return sum(p.numel() for p in module.parameters())

    assert n(full) - n(attention_only) == layers * (2 * d * d_ff + d_ff + d + 2 * d)  # two Linears and norm2
    assert all(block.ff is None for block in attention_only.blocks)
    h, w = attention_only(torch.randint(0, 11, (2, 7)), need_weights=True)
    assert h.shape == (2, 7, d) and w.shape == (layers, 2, 4, 7, 7)


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
    (lambda: TransformerBlock(8, 2, -1), r"d_ff must be an int >= 0 \(0: no feed-forward branch\), got -1"),
    (lambda: TransformerBlock(8, 2, 16.0), r"d_ff must be an int >= 0 .*, got 16\.0"),
    (lambda: TransformerEncoder(5, 8, 2, 1, True, 6), r"d_ff must be an int >= 0 .*, got True"),
    (lambda: FeedForward(8, 0), "FeedForward: d_ff must be an int >= 1, got 0"),
])
def test_bad_input_gives_one_line_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "\n" not in str(info.value)


# --- hooks: the student's functions (Hour 04) plug in; the package's own references change nothing ---------

REFERENCES = TransformerFunctions(mha_forward=mha_forward, block_forward=block_forward,
                                  sinusoidal_encoding=sinusoidal_table)


def _twins(make, **hooks):
    """The same module twice (same weights): as the package builds it, and with ``hooks``."""
    torch.manual_seed(0)
    plain = make().eval()
    hooked = make(**hooks).eval()
    hooked.load_state_dict(plain.state_dict())
    return plain, hooked


def _grads(module, *leaves):
    return [t.grad for t in leaves] + [p.grad for p in module.parameters()]


def _close(got, expected):
    scale = max(1.0, expected.abs().max().item()) if expected.dtype == torch.float32 else 1.0
    torch.testing.assert_close(got, expected, atol=1e-6 * scale, rtol=0)


def _same_outputs_and_gradients(plain, hooked, call, inputs):
    """``call(module, *inputs)`` returns a tuple of tensors (None allowed); outputs and the gradients of a fixed
    random projection of them agree to 1e-6; in float32 to 1e-6 of the largest entry of each tensor (float32
    rounding: the fused kernel of the default path sums in another order than the explicit softmax)."""
    results = []
    for module in (plain, hooked):
        leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
        outs = call(module, *leaves)
        g = torch.Generator().manual_seed(5)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs if o is not None)
        loss.backward()
        results.append((outs, _grads(module, *[t for t in leaves if t.is_floating_point()])))
    (outs_a, grads_a), (outs_b, grads_b) = results
    assert len(outs_a) == len(outs_b)
    for a, b in zip(outs_a, outs_b):
        assert (a is None) == (b is None)
        if a is not None:
            _close(b, a)
    for a, b in zip(grads_a, grads_b):
        assert (a is None) == (b is None)
        if a is not None:
            _close(b, a)


_MHA_CALLS = {
    "self, no mask": lambda m, x, z: m(x),
    "self, 3-D padding mask, weights": lambda m, x, z: m(x, mask=padding_mask([5, 3], 5), need_weights=True),
    "self, is_causal": lambda m, x, z: m(x, is_causal=True),
    "self, is_causal and padding, weights": lambda m, x, z: m(x, mask=padding_mask([5, 2], 5)[:, None],
                                                              is_causal=True, need_weights=True),
    "cross, padding mask": lambda m, x, z: m(x, z, padding_mask([7, 4], 7)[:, None]),
    "cross, weights": lambda m, x, z: m(x, z, need_weights=True),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("call", list(_MHA_CALLS), ids=str)
def test_mha_through_the_reference_mha_forward_equals_the_default_path(call, dtype):
    plain, hooked = _twins(lambda **h: MultiHeadAttention(12, 3, **h).to(dtype), mha_forward=mha_forward)
    g = torch.Generator().manual_seed(1)
    x, z = torch.randn(2, 5, 12, generator=g, dtype=dtype), torch.randn(2, 7, 12, generator=g, dtype=dtype)
    _same_outputs_and_gradients(plain, hooked, lambda m, x, z: _MHA_CALLS[call](m, x, z), (x, z))


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kwargs", [dict(), dict(mask="padding"), dict(is_causal=True), dict(need_weights=True),
                                    dict(mask="padding", is_causal=True, need_weights=True)], ids=str)
def test_block_through_the_reference_functions_equals_the_default_path(kwargs, dtype, norm_first):
    plain, hooked = _twins(lambda **h: TransformerBlock(8, 2, 16, norm_first=norm_first, **h).to(dtype),
                           block_forward=block_forward, mha_forward=mha_forward)
    kwargs = dict(kwargs)
    if kwargs.get("mask") == "padding":
        kwargs["mask"] = padding_mask([5, 3], 5)
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(2), dtype=dtype)
    _same_outputs_and_gradients(plain, hooked, lambda m, x: m(x, **kwargs)[:2], (x,))


def test_sinusoidal_encoding_through_the_reference_table_is_the_same_buffer():
    plain = SinusoidalPositionalEncoding(16, 40)
    hooked = SinusoidalPositionalEncoding(16, 40, sinusoidal_encoding=sinusoidal_table)
    assert torch.equal(plain.pe, hooked.pe) and hooked.pe.dtype == torch.float32
    assert not list(hooked.parameters()) and "pe" not in hooked.state_dict()


@pytest.mark.parametrize("pos", ["sinusoidal", "learned", "none"])
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encoder_through_the_reference_functions_equals_the_default_path(pos, norm_first, dtype):
    functions = REFERENCES if pos == "sinusoidal" else TransformerFunctions(mha_forward, block_forward)
    plain, hooked = _twins(lambda **h: TransformerEncoder(11, 16, 4, 2, 32, 10, norm_first=norm_first, pos=pos,
                                                          **h).to(dtype), functions=functions)
    tokens = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(3))
    mask = padding_mask([7, 5, 2], 7)
    _same_outputs_and_gradients(plain, hooked, lambda m, t: m(t, mask, need_weights=True), (tokens,))
    _same_outputs_and_gradients(plain, hooked, lambda m, t: m(t)[:1], (tokens,))


def test_the_hooks_default_to_none_and_the_given_functions_are_the_ones_that_run():
    enc = TransformerEncoder(11, 16, 4, 2, 32, 10)
    assert all(b.block_forward is None and b.self_attn.mha_forward is None for b in enc.blocks)
    calls = {"mha": [], "block": [], "table": []}

    def my_mha(mha, x, kv=None, mask=None):
        calls["mha"].append((kv, mask))
        return mha_forward(mha, x, kv, mask)

    def my_block(block, x, mask=None):
        calls["block"].append(mask)
        return block_forward(block, x, mask)

    def my_table(max_len, d_model):
        calls["table"].append((max_len, d_model))
        return sinusoidal_table(max_len, d_model)

    enc = TransformerEncoder(11, 16, 4, 2, 32, 10, functions=TransformerFunctions(my_mha, my_block, my_table)).eval()
    assert calls["table"] == [(10, 16)]
    enc(torch.randint(0, 11, (2, 6)))
    assert len(calls["block"]) == 2 and len(calls["mha"]) == 2 and all(m is None for m in calls["block"])
    block = TransformerBlock(8, 2, 16, block_forward=my_block, mha_forward=my_mha).eval()
    block(torch.randn(2, 4, 8), is_causal=True)
    mask = calls["block"][-1]
    assert mask.dtype == torch.bool and torch.equal(mask, causal_mask(4))  # is_causal reaches it as a bool mask
    MultiHeadAttention(8, 2, mha_forward=my_mha)(torch.randn(2, 4, 8), mask=padding_mask([4, 2], 4), is_causal=True)
    kv, mask = calls["mha"][-1]
    assert kv is None and mask.dtype == torch.bool and mask.shape == (2, 1, 4, 4)  # 3-D padding & causal, per head
    assert torch.equal(mask[1, 0], causal_mask(4) & torch.tensor([True, True, False, False]))


def test_head_ablation_works_on_attention_through_mha_forward():
    from amla.transformers.ablation import heads_removed

    plain, hooked = _twins(lambda **h: MultiHeadAttention(8, 2, **h), mha_forward=mha_forward)
    x = torch.randn(2, 4, 8)
    with heads_removed(plain.out_proj, [1], n_heads=2), heads_removed(hooked.out_proj, [1], n_heads=2):
        torch.testing.assert_close(hooked(x)[0], plain(x)[0], atol=1e-6, rtol=0)
        assert not torch.allclose(hooked(x)[0], MultiHeadAttention(8, 2).eval().requires_grad_(False)(x)[0])


def _returns_wrong_shape(block, x, mask=None):
    return x[:, :1]


@pytest.mark.parametrize("call, match", [
    (lambda: MultiHeadAttention(8, 2, mha_forward=mha_forward)(torch.randn(2, 3, 8), rope=RotaryEmbedding(4, 8)),
     "mha_forward knows no rope"),
    (lambda: MultiHeadAttention(8, 2, 0.1, mha_forward=mha_forward).train()(torch.randn(2, 3, 8)),
     r"applies no attention dropout, but dropout=0\.1 and the module is training"),
    (lambda: MultiHeadAttention(8, 2, mha_forward=mha_forward)(torch.randn(2, 3, 8), mask=torch.zeros(3, 3)),
     "mha_forward takes bool masks"),
    (lambda: MultiHeadAttention(8, 2, mha_forward=lambda m, x, kv, mask: (x[:, :1], None))(torch.randn(2, 3, 8)),
     r"mha_forward must return \(out \(2, 3, 8\), weights\), got out \(2, 1, 8\)"),
    (lambda: MultiHeadAttention(8, 2, mha_forward="mine"), r"mha_forward must be a function like .* or None, got str"),
    (lambda: TransformerBlock(8, 2, 16, cross_attention=True, block_forward=block_forward),
     "block_forward knows no cross-attention"),
    (lambda: TransformerBlock(8, 2, 16, block_forward=block_forward)(torch.randn(2, 3, 8), rope=RotaryEmbedding(4, 8)),
     "block_forward knows no rope"),
    (lambda: TransformerBlock(8, 2, 0, block_forward=block_forward), "block_forward uses block.ff, but d_ff=0"),
    (lambda: TransformerEncoder(5, 8, 2, 1, 0, 6, functions=TransformerFunctions(block_forward=block_forward)),
     "block_forward uses block.ff, but d_ff=0 builds no feed-forward branch"),
    (lambda: TransformerBlock(8, 2, 16, 0.1, block_forward=block_forward).train()(torch.randn(2, 3, 8)),
     r"block_forward applies no dropout, but dropout=0\.1"),
    (lambda: TransformerBlock(8, 2, 16, block_forward=block_forward)(torch.randn(2, 3, 8), memory=torch.randn(2, 4, 8)),
     "no cross-attention"),
    (lambda: TransformerBlock(8, 2, 16, block_forward=_returns_wrong_shape)(torch.randn(2, 3, 8)),
     r"block_forward must return x \(2, 3, 8\), got \(2, 1, 8\)"),
    (lambda: SinusoidalPositionalEncoding(8, 10, sinusoidal_encoding=lambda n, d: torch.zeros(d, n)),
     r"must return a float tensor \[10, 8\], got \(8, 10\)"),
    (lambda: TransformerEncoder(5, 8, 2, 1, 16, 6, pos="rope", functions=TransformerFunctions(mha_forward)),
     "know no rope"),
    (lambda: TransformerEncoder(5, 8, 2, 1, 16, 6, pos="learned",
                                functions=TransformerFunctions(sinusoidal_encoding=sinusoidal_table)),
     "sinusoidal_encoding is given but pos='learned'"),
    (lambda: TransformerEncoder(5, 8, 2, 1, 16, 6, functions=dict(mha_forward=mha_forward)),
     "functions must be a TransformerFunctions or None, got dict"),
])
def test_hooks_refuse_what_the_students_functions_cannot_do_in_one_line(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        call()
    assert "\n" not in str(info.value)
