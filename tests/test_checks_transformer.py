"""The self-checks of Hour 04: Exercises 4.1 (multi-head attention, with its heads split and merged), 4.2 (the
sinusoidal table) and 4.3 (the residual block, pre-norm and post-norm).

For every exercise: correct answers written differently pass and are returned, an answer not done yet gets the
reference back, each known mistake is named, and one wrong answer of each class fails: an input changed in place,
a wrong type or dtype, a bug on an edge input only, right values with a wrong gradient, and a bug only a property
catches. Exercise 4.2 takes no tensor (two ints) and is not differentiable: an input changed in place and a wrong
gradient cannot occur there.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from amla.checks import transformer as C
from amla.checks.transformer.mha_forward import _mha_variant, _split_variant
from amla.checks.transformer.sinusoidal import _sinusoidal_variant
from amla.checks.transformer.transformer_block import _block_variant
from amla.transformers import nn as N
from amla.transformers.positions import sinusoidal_table
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 4.1: multi-head attention, the heads split inside it ----------------------------------------


def _split(x, n_heads):
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def _split_reshape_permute(x, n_heads):
    b, t, d = x.shape
    return x.reshape(b, t, n_heads, -1).permute(0, 2, 1, 3)


def _split_unflatten(x, n_heads):
    return x.unflatten(-1, (n_heads, -1)).movedim(2, 1)


def _split_chunks(x, n_heads):  # one slice of features per head, stacked on a new axis 1
    return torch.stack(x.chunk(n_heads, dim=-1), dim=1)


def _split_loop(x, n_heads):
    dh = x.shape[-1] // n_heads
    return torch.stack([x[:, :, h * dh:(h + 1) * dh] for h in range(n_heads)], dim=1)


def _mha_split_by(split):
    """The notebook's solution, with the heads split by ``split``."""

    def forward(mha, x, kv=None, mask=None):
        kv = x if kv is None else kv
        q, k, v = (split(p(s), mha.n_heads) for p, s in ((mha.q_proj, x), (mha.k_proj, kv), (mha.v_proj, kv)))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        return mha.out_proj(N.merge_heads(weights @ v)), weights

    return forward


def _mha(mha, x, kv=None, mask=None):  # the notebook's solution
    return _mha_split_by(_split)(mha, x, kv, mask)


def _mha_einsum_finfo(mha, x, kv=None, mask=None):
    kv = x if kv is None else kv
    q, k, v = (_split_unflatten(p(s), mha.n_heads) for p, s in ((mha.q_proj, x), (mha.k_proj, kv), (mha.v_proj, kv)))
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(mha.d_model // mha.n_heads)
    if mask is not None:
        scores = torch.where(mask, scores, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, -1)
    heads = torch.einsum("bhqk,bhkd->bhqd", weights, v)
    return mha.out_proj(heads.permute(0, 2, 1, 3).flatten(2)), weights


def _mha_loop_over_heads(mha, x, kv=None, mask=None):  # F.linear, one head at a time, -1e9 for blocked keys
    kv = x if kv is None else kv
    q = F.linear(x, mha.q_proj.weight, mha.q_proj.bias)
    k = F.linear(kv, mha.k_proj.weight, mha.k_proj.bias)
    v = F.linear(kv, mha.v_proj.weight, mha.v_proj.bias)
    dh = mha.d_model // mha.n_heads
    outs, weights = [], []
    for h in range(mha.n_heads):
        part = slice(h * dh, (h + 1) * dh)
        s = q[..., part] @ k[..., part].transpose(1, 2) * dh ** -0.5
        if mask is not None:
            s = s.masked_fill(~mask.expand(x.shape[0], mha.n_heads, x.shape[1], kv.shape[1])[:, h], -1e9)
        w = s.softmax(-1)
        outs.append(w @ v[..., part])
        weights.append(w)
    return mha.out_proj(torch.cat(outs, -1)), torch.stack(weights, 1)


def _mha_fused_output(mha, x, kv=None, mask=None):  # PyTorch's fused kernel for the output, the weights by hand
    kv = x if kv is None else kv
    q, k, v = (_split(p(s), mha.n_heads) for p, s in ((mha.q_proj, x), (mha.k_proj, kv), (mha.v_proj, kv)))
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.mT) / q.shape[-1] ** 0.5
    weights = (scores if mask is None else scores.masked_fill(~mask, -math.inf)).softmax(-1)
    return mha.out_proj(N.merge_heads(heads)), weights


@pytest.mark.parametrize("fn", [_mha, _mha_einsum_finfo, _mha_loop_over_heads, _mha_fused_output],
                         ids=lambda f: f.__name__)
def test_mha_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_mha_forward, fn)
    assert "the rest of this hour uses your `mha_forward`" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("split", [_split_reshape_permute, _split_chunks, _split_loop], ids=lambda f: f.__name__)
def test_mha_accepts_the_heads_split_in_any_correct_way(split):
    passes(C.check_mha_forward, _mha_split_by(split))


def test_mha_names_a_head_split_that_uses_h_as_the_head_size():
    fails(C.check_mha_forward, _mha_split_by(_split_variant("heads_is_dhead")),
          match=r"the weights has shape \(2, 4, 5, 5\), expected \(2, 3, 5, 5\)")


def test_mha_not_done_returns_the_reference(capsys):
    assert not_done(C.check_mha_forward, raise_not_done, capsys=capsys) is N.mha_forward


@pytest.mark.parametrize("variant, phrase", [
    (dict(split="view_bhtd"), "wrong reshape/transpose order"),
    (dict(split="interleaved"), r"split as \(d_head, H\)"),
    (dict(merge="no_transpose"), "merged by reshaping"),
    (dict(out_proj=False), "output projection is missing"),
    (dict(scale="d_model"), r"1/sqrt\(d_model\) instead of 1/sqrt\(d_head\)"),
    (dict(scale="d_head_no_sqrt"), r"divided by d_head instead of sqrt\(d_head\)"),
    (dict(scale="none"), "scores are not scaled"),
    (dict(keys_from="x"), "computed from x instead of kv"),
    (dict(v_proj="k"), "values are computed with k_proj"),
    (dict(mask="ignored"), "mask is ignored"),
    (dict(mask="inverted"), "mask is used the wrong way round"),
    (dict(axis=-2), r"softmax is taken over the queries \(dim=-2\)"),
])
def test_mha_names_the_known_mistakes(variant, phrase):
    fails(C.check_mha_forward, _mha_variant(**variant), match=phrase)


def test_mha_refuses_to_call_the_module_itself():
    fails(C.check_mha_forward, lambda mha, x, kv=None, mask=None: mha(x, kv, mask, need_weights=True),
          match=r"calling the module \(mha\(\.\.\.\)\)")


def test_mha_notices_a_changed_input():
    def switches_to_training(mha, x, kv=None, mask=None):
        mha.train()
        return _mha(mha, x, kv, mask)

    fails(C.check_mha_forward, switches_to_training, match=r"changed its argument `mha` in place")

    def inverts_the_mask_in_place(mha, x, kv=None, mask=None):
        if mask is not None:
            mask.logical_not_()
            mask = ~mask
        return _mha(mha, x, kv, mask)

    fails(C.check_mha_forward, inverts_the_mask_in_place, match=r"changed its argument `mask` in place")


def test_mha_refuses_the_wrong_dtype_and_type():
    fails(C.check_mha_forward, lambda *a: (_mha(*a)[0], _mha(*a)[1].double()),
          match=r"the weights has dtype torch\.float64, expected torch\.float32")
    fails(C.check_mha_forward, lambda *a: _mha(*a)[0], match=r"should be a tuple of 2")


def test_mha_catches_a_bug_on_an_edge_input_only():
    def needs_a_mask(mha, x, kv=None, mask=None):  # forgets that mask may be None
        kv = x if kv is None else kv
        q, k, v = (_split(p(s), mha.n_heads) for p, s in ((mha.q_proj, x), (mha.k_proj, kv), (mha.v_proj, kv)))
        weights = (q @ k.mT / math.sqrt(q.shape[-1])).masked_fill(~mask, -math.inf).softmax(-1)
        return mha.out_proj(N.merge_heads(weights @ v)), weights

    fails(C.check_mha_forward, needs_a_mask, match=r"with cross-attention, Tq = Tk = 5, mask=None .*raised TypeError")

    def float32_scores(mha, x, kv=None, mask=None):
        kv = x if kv is None else kv
        q, k, v = (_split(p(s), mha.n_heads) for p, s in ((mha.q_proj, x), (mha.k_proj, kv), (mha.v_proj, kv)))
        scores = (q @ k.mT).float() / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, -math.inf)
        weights = scores.softmax(-1)
        return mha.out_proj(N.merge_heads(weights.to(v.dtype) @ v)), weights

    fails(C.check_mha_forward, float32_scores, match=r"with a float64 module.*weights has dtype torch\.float32")


def test_mha_catches_a_wrong_gradient():
    def frozen_weights(mha, x, kv=None, mask=None):  # right values, but no gradient reaches q_proj and k_proj
        out, weights = _mha(mha, x, kv, mask)
        kv = x if kv is None else kv
        v = _split(mha.v_proj(kv), mha.n_heads)
        return mha.out_proj(N.merge_heads(weights.detach() @ v)), weights

    fails(C.check_mha_forward, frozen_weights,
          match=r"values are right but the gradient with respect to `(x|mha\.q_proj\.weight)`")


def test_mha_diagnoses_by_property_when_no_known_mistake_matches():
    def soft_fill(mha, x, kv=None, mask=None):
        kv = x if kv is None else kv
        q, k, v = (_split(p(s), mha.n_heads) for p, s in ((mha.q_proj, x), (mha.k_proj, kv), (mha.v_proj, kv)))
        scores = q @ k.mT / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, -5.0)
        weights = scores.softmax(-1)
        return mha.out_proj(N.merge_heads(weights @ v)), weights

    fails(C.check_mha_forward, soft_fill, match=r"'a blocked key gets weight exactly 0' does not hold")

    def position_bias(mha, x, kv=None, mask=None):  # a bias that favours later keys: attention sees positions
        kv = x if kv is None else kv
        q, k, v = (_split(p(s), mha.n_heads) for p, s in ((mha.q_proj, x), (mha.k_proj, kv), (mha.v_proj, kv)))
        scores = q @ k.mT / math.sqrt(q.shape[-1]) + 0.3 * torch.arange(kv.shape[1], dtype=x.dtype)
        if mask is not None:
            scores = scores.masked_fill(~mask, -math.inf)
        weights = scores.softmax(-1)
        return mha.out_proj(N.merge_heads(weights @ v)), weights

    fails(C.check_mha_forward, position_bias, match=r"'self-attention is permutation-equivariant' does not hold")


# --- Exercise 4.2 ------------------------------------------------------------------------------------------
# No tensor goes in (max_len and d_model are ints) and nothing is differentiated: an input changed in place and
# a wrong gradient cannot occur for this exercise.


def _table(max_len, d_model):  # the notebook's solution, in float32
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    angle = position / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.zeros(max_len, d_model)
    table[:, 0::2], table[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return table


def _table_loops(max_len, d_model):
    pe = torch.zeros(max_len, d_model)
    for p in range(max_len):
        for i in range(d_model // 2):
            pe[p, 2 * i] = math.sin(p / 10000 ** (2 * i / d_model))
            pe[p, 2 * i + 1] = math.cos(p / 10000 ** (2 * i / d_model))
    return pe


def _table_exp_log(max_len, d_model):  # the frequencies as exp(-2i ln(10000) / d), sin/cos interleaved by stacking
    freq = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
    angle = torch.arange(max_len).float()[:, None] * freq
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)


def _table_float64(max_len, d_model):  # computed in float64, returned as float32
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    angle = pos * torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    return torch.cat([angle.sin()[..., None], angle.cos()[..., None]], -1).reshape(max_len, d_model).float()


@pytest.mark.parametrize("fn", [_table, _table_loops, _table_exp_log, _table_float64], ids=lambda f: f.__name__)
def test_sinusoidal_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_sinusoidal, fn)
    assert "the rest of this hour uses your `sinusoidal_encoding`" in capsys.readouterr().out.lower()


def test_sinusoidal_not_done_returns_the_reference(capsys):
    assert not_done(C.check_sinusoidal, raise_not_done, capsys=capsys) is sinusoidal_table


@pytest.mark.parametrize("kind, phrase", [
    ("swapped", "sin and cos are swapped"),
    ("halves", "first half of the features"),
    ("i_not_2i", "pair index i instead of 2i"),
    ("no_d", "not divided by d_model"),
    ("times", "multiplied by 10000"),
    ("base_1000", "base is 1000"),
])
def test_sinusoidal_names_the_known_mistakes(kind, phrase):
    fails(C.check_sinusoidal, _sinusoidal_variant(kind), match=phrase)


def test_sinusoidal_refuses_the_wrong_dtype_and_type():
    fails(C.check_sinusoidal, lambda n, d: _table(n, d).double(), match=r"dtype torch\.float64, expected torch\.float32")
    fails(C.check_sinusoidal, lambda n, d: _table(n, d).tolist(), match=r"should be a tensor")


def test_sinusoidal_catches_a_bug_on_an_edge_input_only():
    def at_most_100_positions(max_len, d_model):  # a table made once for 100 positions
        return _table(100, d_model)[:max_len]

    fails(C.check_sinusoidal, at_most_100_positions,
          match=r"with a long table: max_len=512, d_model=64, the table has shape \(100, 64\), expected \(512, 64\)")


def test_sinusoidal_diagnoses_by_property_when_no_known_mistake_matches():
    def stretched(max_len, d_model):  # positions rescaled to the table's length: a code that depends on max_len
        position = torch.arange(max_len, dtype=torch.float32)[:, None] * (20.0 / max_len)
        angle = position / 10000 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
        return torch.stack([angle.sin(), angle.cos()], -1).flatten(1)

    fails(C.check_sinusoidal, stretched,
          match=r"'the rows of a shorter table are the first rows of a longer one' does not hold")


# --- Exercise 4.3 ------------------------------------------------------------------------------------------


def _block(block, x, mask=None):  # the notebook's solution
    if block.norm_first:
        x = x + block.self_attn(block.norm1(x), mask=mask)[0]
        return x + block.ff(block.norm2(x))
    x = block.norm1(x + block.self_attn(x, mask=mask)[0])
    return block.norm2(x + block.ff(x))


def _block_residual_helper(block, x, mask=None):  # one helper for both branches, kv passed explicitly
    def residual(x, norm, f):
        return x + f(norm(x)) if block.norm_first else norm(x + f(x))

    x = residual(x, block.norm1, lambda h: block.self_attn(h, h, mask)[0])
    return residual(x, block.norm2, block.ff)


def _block_step_by_step(block, x, mask=None):  # the sums spelled out, the FFN's layers called one by one
    attn_in = block.norm1(x) if block.norm_first else x
    h = x + block.self_attn(attn_in, None, mask)[0]
    if not block.norm_first:
        h = block.norm1(h)
    ff_in = block.norm2(h) if block.norm_first else h
    y = ff_in
    for layer in block.ff.net:
        y = layer(y)
    out = h + y
    return out if block.norm_first else block.norm2(out)


@pytest.mark.parametrize("fn", [_block, _block_residual_helper, _block_step_by_step], ids=lambda f: f.__name__)
def test_block_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_transformer_block, fn)
    assert "the rest of this hour uses your `block_forward`" in capsys.readouterr().out.lower()


def test_block_not_done_returns_the_reference(capsys):
    assert not_done(C.check_transformer_block, raise_not_done, capsys=capsys) is N.block_forward


@pytest.mark.parametrize("kind, phrase", [
    ("swapped", "pre-norm and post-norm are swapped"),
    ("residual_normed", "residual adds the normalised input"),
    ("no_attn_residual", "residual connection around the attention is missing"),
    ("no_ff_residual", "residual connection around the feed-forward net is missing"),
    ("same_norm", r"same LayerNorm \(norm1\) is used for both"),
    ("norm_branch", "applied to the branch output before the residual sum"),
    ("no_mask", "mask is not passed on to the attention"),
])
def test_block_names_the_known_mistakes(kind, phrase):
    fails(C.check_transformer_block, _block_variant(kind), match=phrase)


def test_block_refuses_to_call_the_block_itself():
    fails(C.check_transformer_block, lambda block, x, mask=None: block(x, mask)[0],
          match=r"calling the block itself \(block\(\.\.\.\)\)")


def test_block_notices_a_changed_input():
    def trains(block, x, mask=None):  # dropout is 0 here, so the values are right; the caller's block is not
        block.train()
        return _block(block, x, mask)

    fails(C.check_transformer_block, trains, match=r"changed its argument `block` in place")

    def clamps_the_norm(block, x, mask=None):
        block.norm1.weight.data.clamp_(max=1.0)
        return _block(block, x, mask)

    fails(C.check_transformer_block, clamps_the_norm, match=r"changed its argument `block` in place")

    def adds_in_place(block, x, mask=None):
        if not block.norm_first:
            return _block(block, x, mask)
        x += block.self_attn(block.norm1(x), mask=mask)[0]
        return x + block.ff(block.norm2(x))

    fails(C.check_transformer_block, adds_in_place, match=r"changed its argument `x` in place")


def test_block_refuses_the_wrong_dtype_and_type():
    fails(C.check_transformer_block, lambda block, x, mask=None: (_block(block, x, mask), None),
          match=r"the output should be a tensor")
    fails(C.check_transformer_block, lambda block, x, mask=None: _block(block, x, mask).double(),
          match=r"dtype torch\.float64, expected torch\.float32")


def test_block_catches_a_bug_on_an_edge_input_only():
    def batch_one_breaks(block, x, mask=None):
        y = _block(block, x, mask)
        return y.squeeze(0) if y.shape[0] == 1 else y

    fails(C.check_transformer_block, batch_one_breaks,
          match=r"with a batch of one.*has shape \(6, 8\), expected \(1, 6, 8\)")


def test_block_catches_a_wrong_gradient():
    def frozen_ff(block, x, mask=None):
        if block.norm_first:
            x = x + block.self_attn(block.norm1(x), mask=mask)[0]
            return x + block.ff(block.norm2(x)).detach()
        x = block.norm1(x + block.self_attn(x, mask=mask)[0])
        return block.norm2(x + block.ff(x).detach())

    fails(C.check_transformer_block, frozen_ff, match=r"values are right but the gradient with respect to `block\.")


def test_block_diagnoses_by_property_when_no_known_mistake_matches():
    def halved_residual(block, x, mask=None):  # (x + f(x)) / 2: the residual path is no longer an identity
        if block.norm_first:
            x = (x + block.self_attn(block.norm1(x), mask=mask)[0]) / 2
            return (x + block.ff(block.norm2(x))) / 2
        return _block(block, x, mask)

    fails(C.check_transformer_block, halved_residual,
          match=r"'a pre-norm block whose attention and feed-forward net output 0 is the identity' does not hold")

    def mask_in_pre_norm_only(block, x, mask=None):  # the post-norm branch forgets the mask
        if block.norm_first:
            return _block(block, x, mask)
        x = block.norm1(x + block.self_attn(x)[0])
        return block.norm2(x + block.ff(x))

    fails(C.check_transformer_block, mask_in_pre_norm_only,
          match=r"with a post-norm block and a padding mask .*'padded positions do not change the outputs of the "
                r"other positions' does not hold")
