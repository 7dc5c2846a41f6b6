import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from amla.transformers.attention import (
    causal_mask,
    nadaraya_watson,
    padding_mask,
    scaled_dot_product_attention,
    softmax,
    to_additive,
)

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
