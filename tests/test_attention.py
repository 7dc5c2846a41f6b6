import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from amla.attention import (
    causal_mask,
    nadaraya_watson,
    padding_mask,
    scaled_dot_product_attention,
    softmax,
    to_additive,
)
from amla.checks import CheckFailed
from amla.checks import attention as A

# --- the reference equals torch's scaled_dot_product_attention ---------------------------------------


def _qkv(*lead, tq, tk, d=8, dv=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*lead, tq, d, generator=g), torch.randn(*lead, tk, d, generator=g),
            torch.randn(*lead, tk, dv, generator=g))


def _masks(lead, tq, tk):
    """Every mask kind, for scores [*lead, tq, tk] with lead = (B,) or (B, H); no query sees no key."""
    batch = lead[0]
    lengths = [tk - i % max(1, tk - 1) for i in range(batch)]  # every sequence keeps at least one key
    pad = padding_mask(lengths, tk)  # [B, 1, Tk]
    pad = pad[:, None] if len(lead) == 2 else pad
    causal = causal_mask(tq, tk)
    bias = -0.5 * (torch.arange(tk)[None, :] - torch.arange(tq)[:, None]).abs().float()
    return {
        "none": None,
        "padding bool": pad,
        "causal bool": causal,
        "causal bottom-right bool": causal_mask(tq, tk, align="bottom_right") if tk >= tq else causal,
        "padding & causal bool": pad & causal,
        "padding additive": to_additive(pad),
        "causal additive": to_additive(causal),
        "float bias": bias,
        "bias + padding additive": bias + to_additive(pad),
    }


SHAPES = {
    "self [B, T, d]": ((3,), 6, 6),
    "cross Tq < Tk": ((2,), 4, 7),
    "cross Tq > Tk": ((2,), 7, 4),
    "multi-head [B, H, T, d]": ((2, 3), 5, 5),
    "multi-head Tq != Tk": ((2, 4), 3, 6),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_reference_equals_torch_sdpa_for_every_mask_kind(shape):
    lead, tq, tk = SHAPES[shape]
    q, k, v = _qkv(*lead, tq=tq, tk=tk)
    for kind, mask in _masks(lead, tq, tk).items():
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert (out - expected).abs().max() < 1e-5, (shape, kind)
        assert weights.shape == (*lead, tq, tk)
        assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5), (shape, kind)
        assert torch.allclose(out, weights @ v, atol=1e-6)


def test_causal_mask_matches_is_causal_and_torch_bias_helpers():
    from torch.nn.attention.bias import causal_lower_right, causal_upper_left

    for tq, tk in [(5, 5), (3, 7), (7, 3)]:
        q, k, v = _qkv(2, tq=tq, tk=tk, seed=tq)
        out, _ = scaled_dot_product_attention(q, k, v, causal_mask(tq, tk))
        assert (out - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max() < 1e-5
        assert torch.equal(causal_mask(tq, tk), causal_upper_left(tq, tk)._materialize())
        with warnings.catch_warnings():  # torch warns that tq > tk leaves the first rows with no key (documented)
            warnings.simplefilter("ignore", UserWarning)
            lower_right = causal_lower_right(tq, tk)._materialize()
        assert torch.equal(causal_mask(tq, tk, align="bottom_right"), lower_right)


def test_custom_scale_and_float64():
    q, k, v = _qkv(2, tq=3, tk=4)
    out, _ = scaled_dot_product_attention(q, k, v, scale=0.3)
    assert (out - F.scaled_dot_product_attention(q, k, v, scale=0.3)).abs().max() < 1e-5
    q, k, v = (t.double() for t in (q, k, v))
    out, weights = scaled_dot_product_attention(q, k, v, causal_mask(3, 4))
    assert out.dtype == weights.dtype == torch.float64
    assert (out - F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(3, 4))).abs().max() < 1e-12


def test_fully_masked_rows_give_zeros_like_torch_and_no_nan_gradient():
    q, k, v = _qkv(1, tq=3, tk=4)
    q.requires_grad_(True)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False  # query 1 may attend to nothing
    for m in (mask, to_additive(mask)):
        out, weights = scaled_dot_product_attention(q, k, v, m)
        assert torch.equal(weights[0, 1], torch.zeros(4)) and torch.equal(out[0, 1], torch.zeros(5))
        assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=m), atol=1e-6)
        (grad,) = torch.autograd.grad(out.sum(), q)
        assert torch.isfinite(grad).all() and torch.equal(grad[0, 1], torch.zeros(8))


def test_gradients_match_torch():
    q, k, v = (t.requires_grad_(True) for t in _qkv(2, 2, tq=4, tk=5))
    mask = padding_mask([5, 3], 5)[:, None]
    mine = torch.autograd.grad(scaled_dot_product_attention(q, k, v, mask)[0].square().sum(), (q, k, v))
    theirs = torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, attn_mask=mask).square().sum(), (q, k, v))
    for a, b in zip(mine, theirs):
        assert (a - b).abs().max() < 1e-5


# --- softmax, masks, kernel regression --------------------------------------------------------------


def test_softmax_is_stable_on_large_inputs():
    x = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0], [0.0, -math.inf, 1.0]])
    with torch.no_grad():
        naive = x.exp() / x.exp().sum(-1, keepdim=True)
    assert torch.isnan(naive[0]).all() and torch.isnan(naive[1]).all()  # what the exercise warns about
    got = softmax(x)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, torch.softmax(x, -1), atol=1e-7)
    assert got[2, 1] == 0
    y = torch.randn(3, 4, 5) * 50
    for dim in (0, 1, -1):
        assert torch.allclose(softmax(y, dim), torch.softmax(y, dim), atol=1e-6)
    assert torch.equal(softmax(torch.full((2, 3), -math.inf)), torch.zeros(2, 3))


def test_masks_shapes_and_conventions():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    assert causal_mask(2, 4, align="bottom_right").tolist() == [[True, True, True, False], [True, True, True, True]]
    pad = padding_mask([3, 1], 4)
    assert pad.shape == (2, 1, 4) and pad.dtype == torch.bool
    assert pad[:, 0].tolist() == [[True, True, True, False], [True, False, False, False]]
    assert padding_mask(torch.tensor([2, 3])).shape == (2, 1, 3)
    add = to_additive(pad)
    assert add.dtype == torch.float32 and add[1, 0].tolist() == [0.0, -math.inf, -math.inf, -math.inf]
    assert to_additive(add) is add


def test_nadaraya_watson_is_attention():
    g = torch.Generator().manual_seed(0)
    x_train, y_train = torch.rand(30, generator=g) * 5, torch.randn(30, generator=g)
    x_query = torch.linspace(0, 5, 11)
    h = 0.4
    pred, weights = nadaraya_watson(x_query, x_train, y_train, bandwidth=h)
    assert pred.shape == (11,) and weights.shape == (11, 30)
    assert torch.allclose(weights.sum(-1), torch.ones(11))
    # The Gaussian kernel is dot-product attention with 2-d queries [x/h, 1] and keys [x_i/h, -x_i^2/(2h^2)].
    q = torch.stack([x_query / h, torch.ones_like(x_query)], -1)
    k = torch.stack([x_train / h, -(x_train**2) / (2 * h**2)], -1)
    out, _ = scaled_dot_product_attention(q, k, y_train[:, None], scale=1.0)
    assert torch.allclose(out[:, 0], pred, atol=1e-5)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: scaled_dot_product_attention(torch.randn(2, 5, 8), torch.randn(2, 7, 16), torch.randn(2, 7, 4)),
         r"q has d=8 but k has d=16 \(q \(2, 5, 8\), k \(2, 7, 16\)\)"),
        (lambda: scaled_dot_product_attention(torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 6, 4)),
         r"k has Tk=7 keys but v has 6 values \(k \(2, 7, 8\), v \(2, 6, 4\)\)"),
        (lambda: scaled_dot_product_attention(torch.randn(2, 5, 8), torch.randn(3, 7, 8), torch.randn(3, 7, 4)),
         r"leading \(batch, head\) dims of q \(2, 5, 8\), k \(3, 7, 8\) and v \(3, 7, 4\) do not broadcast"),
        (lambda: scaled_dot_product_attention(torch.randn(8), torch.randn(7, 8), torch.randn(7, 4)),
         r"q must have shape \[\.\.\., T, d\].*got \(8,\)"),
        (lambda: scaled_dot_product_attention(torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 4),
                                              torch.ones(2, 7, 1, dtype=torch.bool)),
         r"mask of shape \(2, 7, 1\) does not broadcast to the scores' shape \(2, 5, 7\) = \[\.\.\., Tq, Tk\]"),
        (lambda: scaled_dot_product_attention(torch.randn(2, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 4),
                                              torch.ones(2, 1, 1, 7, dtype=torch.bool)),
         r"mask of shape \(2, 1, 1, 7\) does not broadcast to the scores' shape \(2, 5, 7\)"),
        (lambda: scaled_dot_product_attention(torch.randn(5, 8), torch.randn(7, 8), torch.randn(7, 4),
                                              torch.ones(5, 7, dtype=torch.long)),
         r"mask must be bool \(True = may attend\) or float \(added to the scores\), got dtype torch.int64"),
        (lambda: softmax(torch.tensor([1, 2, 3])), r"floating-point tensor, got dtype torch.int64"),
        (lambda: causal_mask(0), r"tq must be an int >= 1, got 0"),
        (lambda: padding_mask([3, 5], 4), r"lengths \[3, 5\] must lie in 0..max_len=4"),
        (lambda: to_additive(torch.ones(3, dtype=torch.long)), r"expects a bool mask"),
        (lambda: nadaraya_watson(torch.rand(3), torch.rand(4), torch.rand(5)), r"y_train must be \[N\] or \[N, dv\]"),
    ],
)
def test_bad_input_gives_one_line_errors_naming_shapes(call, message):
    with pytest.raises((ValueError, TypeError), match=message) as info:
        call()
    assert "\n" not in str(info.value)


# --- the self-checks ----------------------------------------------------------------------------------


def _student_softmax(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def _student_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def test_checks_pass_correct_solutions_without_moving_the_rng(capsys):
    before = torch.get_rng_state()
    A.check_softmax(_student_softmax)
    A.check_attention(_student_attention)
    A.check_attention(lambda q, k, v, mask=None: scaled_dot_product_attention(q, k, v, mask))

    def with_minus_1e9(q, k, v, mask=None):  # the classic -1e9 fill is as good as -inf here
        scores = q @ k.mT / q.shape[-1] ** 0.5
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9) if mask.dtype == torch.bool else scores + mask
        weights = _student_softmax(scores)
        return weights @ v, weights

    A.check_attention(with_minus_1e9)
    assert torch.equal(before, torch.get_rng_state())
    out = capsys.readouterr().out
    assert "Exercise 2.1 (stable softmax) passed" in out and "Exercise 2.2 (scaled dot-product attention) passed" in out


@pytest.mark.parametrize(
    "kind, phrase",
    [
        ("naive", r"exp\(1000\) is inf in float32, and inf / inf is nan"),
        ("global_max", "maximum of the whole tensor is subtracted instead of each row's"),
        ("min", "minimum is subtracted instead of the maximum"),
        ("no_keepdim", "without keepdim=True"),
        ("wrong_axis", "softmax is taken over the wrong axis"),
        ("ignores_dim", "`dim` argument is ignored"),
        ("no_normalise", "not divided by their sum"),
        ("global_sum", "sum over the whole tensor"),
    ],
)
def test_softmax_check_names_the_mistake(kind, phrase):
    with pytest.raises(CheckFailed, match=phrase):
        A.check_softmax(A._softmax_variant(kind))


def test_softmax_check_refuses_the_library_softmax_and_says_not_implemented():
    def lazy(x, dim=-1):
        return x.softmax(dim)

    with pytest.raises(CheckFailed, match="calling a library softmax"):
        A.check_softmax(lazy)

    def not_done(x, dim=-1):
        raise NotImplementedError

    with pytest.raises(CheckFailed, match="not implemented yet"):
        A.check_softmax(not_done)


@pytest.mark.parametrize(
    "variant, phrase",
    [
        (dict(scale="none"), "scores are not scaled"),
        (dict(scale="d"), "divided by d_k instead of sqrt\\(d_k\\)"),
        (dict(scale="mul"), "multiplied by sqrt\\(d_k\\) instead of divided"),
        (dict(scale="dv"), "size of the values"),
        (dict(scale="tk"), "number of keys Tk"),
        (dict(axis=-2), "softmax is taken over the queries \\(dim=-2\\)"),
        (dict(normalise=False), "weights are not normalised"),
        (dict(mask_at="ignored"), "the mask is ignored"),
        (dict(mask_at="after"), "mask is applied after the softmax"),
        (dict(mask_at="after_fill"), "mask is applied after the softmax"),
        (dict(fill=0.0), "set to 0 instead of -inf"),
        (dict(inverted=True), "boolean mask is used the wrong way round"),
        (dict(float_mask="as_bool"), "additive \\(float\\) mask was used like a boolean one"),
        (dict(float_mask="bool_only"), "only boolean masks are handled"),
        (dict(transpose_mask=True), "mask is applied along the wrong dimension \\(transposed\\)"),
        (dict(transpose_mask=True, fill=-1e9), "mask is applied along the wrong dimension \\(transposed\\)"),
        (dict(keys_first=True), "scores are k q\\^T instead of q k\\^T"),
        (dict(plain_T=True), "`k.T` was used on a batched tensor"),
    ],
)
def test_attention_check_names_the_mistake(variant, phrase):
    with pytest.raises(CheckFailed, match=phrase):
        A.check_attention(A._attention_variant(**variant))


def test_attention_check_explains_shapes_and_other_wrong_results():
    def drops_batch(q, k, v, mask=None):
        out, weights = _student_attention(q, k, v, mask)
        return out[0], weights[0]

    with pytest.raises(CheckFailed, match=r"with no mask \(q \(2, 3, 4\), k \(2, 5, 4\), v \(2, 5, 6\)\), "
                                          r"the output has shape \(3, 6\), expected \(2, 3, 6\)"):
        A.check_attention(drops_batch)

    with pytest.raises(CheckFailed, match=r"should return a tuple \(output, weights\) of 2 tensors, got Tensor"):
        A.check_attention(lambda q, k, v, mask=None: _student_attention(q, k, v, mask)[0])

    def output_not_weighted(q, k, v, mask=None):
        out, weights = _student_attention(q, k, v, mask)
        return out + 1, weights

    with pytest.raises(CheckFailed, match=r"weights are right but the output is not: it should be weights @ v"):
        A.check_attention(output_not_weighted)

    def scores_as_weights(q, k, v, mask=None):
        out, weights = _student_attention(q, k, v, mask)
        return out, weights * 2

    with pytest.raises(CheckFailed, match=r"output is right but the returned weights are not"):
        A.check_attention(scores_as_weights)

    def crashes(q, k, v, mask=None):
        raise ValueError("boom")

    with pytest.raises(CheckFailed, match=r"with no mask \(q \(2, 3, 4\), k \(2, 5, 4\), v \(2, 5, 6\)\), "
                                          r"your code raised ValueError: boom"):
        A.check_attention(crashes)
