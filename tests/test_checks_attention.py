"""The self-checks of Hour 02: Exercise 2.1 (stable softmax) and 2.2 (scaled dot-product attention)."""

import math

import pytest
import torch

from amla.checks import attention as A
from amla.checks.attention.attention import _attention_variant
from amla.checks.attention.softmax import _softmax_variant
from amla.transformers.attention import scaled_dot_product_attention, softmax
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 2.1 ------------------------------------------------------------------------------------------


def _softmax(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def _softmax_logsumexp(x, dim=-1):
    return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))


def _softmax_max_values(x, dim=-1):  # .max(dim).values with keepdim, then a division written as a multiplication
    e = (x - x.max(dim=dim, keepdim=True).values).exp()
    return e * e.sum(dim, keepdim=True).reciprocal()


def _softmax_moved_axis(x, dim=-1):  # move dim to the end, work there, move it back
    y = x.movedim(dim, -1)
    e = torch.exp(y - y.amax(-1, keepdim=True))
    return (e / e.sum(-1, keepdim=True)).movedim(-1, dim)


@pytest.mark.parametrize("fn", [_softmax, _softmax_logsumexp, _softmax_max_values, _softmax_moved_axis],
                         ids=lambda f: f.__name__)
def test_softmax_accepts_correct_answers_written_differently(fn, capsys):
    passes(A.check_softmax, fn)
    assert "the rest of this hour uses your `softmax`" in capsys.readouterr().out.lower()


def test_softmax_not_done_returns_the_reference(capsys):
    assert not_done(A.check_softmax, raise_not_done, capsys=capsys) is softmax


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
def test_softmax_names_the_known_mistakes(kind, phrase):
    fails(A.check_softmax, _softmax_variant(kind), match=phrase)


def test_softmax_refuses_the_library_softmax():
    fails(A.check_softmax, lambda x, dim=-1: x.softmax(dim), match="calling a library softmax")


def test_softmax_notices_a_changed_input():
    def in_place(x, dim=-1):
        x -= x.amax(dim=dim, keepdim=True)
        x.exp_()
        return x / x.sum(dim=dim, keepdim=True)

    fails(A.check_softmax, in_place, match=r"changed its argument `x` in place")


def test_softmax_refuses_the_wrong_dtype_and_type():
    fails(A.check_softmax, lambda x, dim=-1: _softmax(x.double(), dim), match=r"dtype torch\.float64, expected torch\.float32")
    fails(A.check_softmax, lambda x, dim=-1: _softmax(x, dim).tolist(), match=r"should be a tensor")
    fails(A.check_softmax, lambda x, dim=-1: None, match=r"returned None.*forget the `return`")


def test_softmax_catches_a_bug_on_an_edge_input_only():
    def float32_only(x, dim=-1):  # right for float32, silently casts float64 down
        return _softmax(x.float(), dim)

    fails(A.check_softmax, float32_only, match=r"with float64 input.*dtype torch\.float32, expected torch\.float64")

    def first_axis_wrong(x, dim=-1):  # treats dim=0 like dim=-1 (an index trick that only works for dim < 0)
        return _softmax(x, -1 if dim == 0 else dim)

    fails(A.check_softmax, first_axis_wrong, match=r"with x of shape \(5, 3\), dim=0")


def test_softmax_catches_a_wrong_gradient():
    fails(A.check_softmax, lambda x, dim=-1: _softmax(x, dim).detach(), match=r"values are right but the result is detached")

    def frozen_sum(x, dim=-1):  # the denominator is treated as a constant: right values, wrong gradient
        e = torch.exp(x - x.amax(dim=dim, keepdim=True))
        return e / e.sum(dim=dim, keepdim=True).detach()

    fails(A.check_softmax, frozen_sum, match=r"values are right but the gradient with respect to `x` differs")


def test_softmax_diagnoses_by_property_when_no_known_mistake_matches():
    def no_exp(x, dim=-1):  # positive weights that sum to 1, but not exponentials
        e = (x - x.amax(dim=dim, keepdim=True)).clamp(min=-30) + 31
        return e / e.sum(dim=dim, keepdim=True)

    fails(A.check_softmax, no_exp, match=r"'an entry of -inf gets exactly 0' does not hold")

    def off_by_a_bit(x, dim=-1):  # a tiny epsilon keeps the result finite but breaks the sum
        e = torch.exp(x - x.amax(dim=dim, keepdim=True))
        return e / (e.sum(dim=dim, keepdim=True) + 0.01)

    fails(A.check_softmax, off_by_a_bit, match=r"'the entries along dim sum to 1' does not hold")


def test_softmax_reports_the_line_that_raised():
    def crashes(x, dim=-1):
        top = x.amax(dim=dim, keepdim=True)
        return torch.exp(x - top) / top.sum(dim=5)

    fails(A.check_softmax, crashes, match=r"your code raised IndexError: .*\(line \d+ of your code: `return torch\.exp")


# --- Exercise 2.2 ------------------------------------------------------------------------------------------


def _attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def _attention_einsum_finfo(q, k, v, mask=None):
    scores = torch.einsum("...qd,...kd->...qk", q, k) / q.shape[-1] ** 0.5
    if mask is not None:
        blocked = torch.finfo(scores.dtype).min
        scores = torch.where(mask, scores, blocked) if mask.dtype == torch.bool else scores + mask
    weights = scores.softmax(-1)
    return torch.einsum("...qk,...kv->...qv", weights, v), weights


def _attention_loops(q, k, v, mask=None):  # one query at a time, with the student's own softmax
    rows = []
    for i in range(q.shape[-2]):
        s = (q[..., i : i + 1, :] * k).sum(-1) / math.sqrt(q.shape[-1])  # [..., Tk]
        if mask is not None:
            m = mask.expand(*mask.shape[:-2], q.shape[-2], mask.shape[-1])[..., i, :]
            s = s.masked_fill(~m, -1e9) if m.dtype == torch.bool else s + m
        rows.append(_softmax(s))
    weights = torch.stack(rows, dim=-2)
    return weights @ v, weights


def _attention_scaled_q(q, k, v, mask=None):  # scale q first, additive masks via to_additive-like where
    q = q * q.shape[-1] ** -0.5
    scores = q @ k.mT
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros_like(scores).masked_fill(~mask, float("-inf"))
    if mask is not None:
        scores = scores + mask
    weights = _softmax_logsumexp(scores)
    return weights @ v, weights


@pytest.mark.parametrize("fn", [_attention, _attention_einsum_finfo, _attention_loops, _attention_scaled_q,
                                lambda q, k, v, mask=None: scaled_dot_product_attention(q, k, v, mask)],
                         ids=["plain", "einsum_finfo_min", "loops_minus_1e9", "scaled_q_logsumexp", "reference"])
def test_attention_accepts_correct_answers_written_differently(fn):
    passes(A.check_attention, fn)


def test_attention_not_done_returns_a_reference_with_the_students_signature(capsys):
    reference = not_done(A.check_attention, raise_not_done, capsys=capsys)
    q, k, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    out, weights = reference(q, k, v)
    assert out.shape == (2, 3, 6) and weights.shape == (2, 3, 5)


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
def test_attention_names_the_known_mistakes(variant, phrase):
    fails(A.check_attention, _attention_variant(**variant), match=phrase)


def test_attention_notices_a_changed_input():
    def scales_q_in_place(q, k, v, mask=None):
        q /= math.sqrt(q.shape[-1])
        scores = q @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        weights = scores.softmax(-1)
        return weights @ v, weights

    fails(A.check_attention, scales_q_in_place, match=r"changed its argument `q` in place")


def test_attention_refuses_the_wrong_dtype_and_type():
    fails(A.check_attention, lambda q, k, v, mask=None: _attention(q.double(), k.double(), v.double(), mask),
          match=r"the output has dtype torch\.float64, expected torch\.float32")
    fails(A.check_attention, lambda q, k, v, mask=None: _attention(q, k, v, mask)[0],
          match=r"should be a tuple of 2, got a tensor of shape \(2, 3, 6\)")
    fails(A.check_attention, lambda q, k, v, mask=None: list(_attention(q, k, v, mask))[:1],
          match=r"should have 2 items, got 1")


def test_attention_catches_a_bug_on_an_edge_input_only():
    def squeezes(q, k, v, mask=None):  # .squeeze() drops the query axis when there is a single query
        out, weights = _attention(q, k, v, mask)
        return out.squeeze(), weights.squeeze()

    fails(A.check_attention, squeezes, match=r"with a single query \(Tq = 1\).*has shape \(2, 6\), expected \(2, 1, 6\)")

    def mask_on_the_right_only(q, k, v, mask=None):  # assumes padding sits on the right: uses the count of real keys
        if mask is None or mask.dtype != torch.bool or mask.shape[-2] != 1:
            return _attention(q, k, v, mask)
        lengths = mask.sum(-1, keepdim=True)
        right = torch.arange(k.shape[-2]) < lengths
        return _attention(q, k, v, right)

    fails(A.check_attention, mask_on_the_right_only, match=r"with left padding")


def test_attention_catches_a_wrong_gradient():
    def detached_keys(q, k, v, mask=None):
        return _attention(q, k.detach(), v, mask)

    fails(A.check_attention, detached_keys, match=r"values are right but no gradient reaches `k`")

    def rebuilt_weights(q, k, v, mask=None):  # weights rebuilt from numbers: right values, no graph
        out, weights = _attention(q, k, v, mask)
        return out, torch.tensor(weights.tolist(), dtype=weights.dtype)

    fails(A.check_attention, rebuilt_weights, match=r"values are right but the result is detached")


def test_attention_diagnoses_by_property_when_no_known_mistake_matches():
    def output_not_weighted(q, k, v, mask=None):
        out, weights = _attention(q, k, v, mask)
        return out + 0.5, weights

    fails(A.check_attention, output_not_weighted, match=r"'output = weights @ v' does not hold")

    def leaky_mask(q, k, v, mask=None):  # blocked keys get a small weight (a fill of -5 instead of -inf)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, -5.0) if mask.dtype == torch.bool else scores + mask.clamp(min=-5)
        weights = scores.softmax(-1)
        return weights @ v, weights

    fails(A.check_attention, leaky_mask, match=r"'a blocked key gets weight exactly 0' does not hold")

    def position_bias(q, k, v, mask=None):  # a made-up bias that favours the first keys
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) - 0.3 * torch.arange(k.shape[-2])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        weights = scores.softmax(-1)
        return weights @ v, weights

    fails(A.check_attention, position_bias, match=r"'the order in which the keys are listed does not matter'")


def test_attention_names_a_mistake_only_when_it_matches_every_case():
    unscaled = _attention_variant(scale="none")

    def unscaled_only_with_masks(q, k, v, mask=None):  # wrong only when a mask is given
        return unscaled(q, k, v, mask) if mask is not None else _attention(q, k, v, mask)

    message = fails(A.check_attention, unscaled_only_with_masks, match=r"with a padding mask")
    assert "scores are not scaled" not in message
