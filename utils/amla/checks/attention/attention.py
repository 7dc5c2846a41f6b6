"""The self-check of Exercise 2.2: scaled dot-product attention with masks
(what it checks: the package docstring)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.attention._common import _NEG_INF
from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.toolkit.errors import shape_text
from amla.transformers.attention import causal_mask, padding_mask, scaled_dot_product_attention, to_additive

ATTENTION = exercise(2, "2.2", "Scaled dot-product attention", "scaled_dot_product_attention")


def _attention_variant(
    *,
    scale: str = "sqrt_d",
    axis: int = -1,
    mask_at: str = "scores",
    fill: float = _NEG_INF,
    inverted: bool = False,
    float_mask: str = "add",
    transpose_mask: bool = False,
    normalise: bool = True,
    keys_first: bool = False,
    plain_T: bool = False,
) -> Callable[..., tuple[Tensor, Tensor]]:
    """Scaled dot-product attention with one typical bug switched on (the defaults are correct).

    ``mask_at``: "scores" (right), "after" (zero the weights after the softmax), "after_fill" (fill the weights
    with ``fill``), "ignored". ``float_mask``: "add" (right), "as_bool" (``masked_fill(mask == 0, -inf)``),
    "bool_only" (``~mask``, which fails on a float mask).
    """

    def fn(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        d = q.shape[-1]
        factor = {"sqrt_d": 1 / math.sqrt(d), "none": 1.0, "d": 1 / d, "mul": math.sqrt(d),
                  "dv": 1 / math.sqrt(v.shape[-1]), "tk": 1 / math.sqrt(k.shape[-2])}[scale]
        with warnings.catch_warnings():  # torch warns that x.T on a batched tensor is deprecated
            warnings.simplefilter("ignore", UserWarning)
            kt = k.T if plain_T else k.transpose(-2, -1)
        scores = (k @ q.transpose(-2, -1) if keys_first else q @ kt) * factor
        if mask is not None and transpose_mask:
            mask = mask.transpose(-2, -1)
        allowed = None
        if mask is not None:
            if mask.dtype == torch.bool:
                allowed = mask if not inverted else ~mask
            elif float_mask == "as_bool":
                allowed = ~(mask == 0)
            elif float_mask == "bool_only":
                allowed = ~mask  # TypeError on a float tensor, the error the student sees
        if mask is not None and mask_at == "scores":
            scores = scores + mask if allowed is None else scores.masked_fill(~allowed, fill)
        e = torch.exp(scores - scores.amax(dim=axis, keepdim=True))
        weights = e / e.sum(dim=axis, keepdim=True) if normalise else e
        if mask is not None and mask_at in ("after", "after_fill"):
            if allowed is None:
                weights = weights + mask if mask_at == "after_fill" else weights * (mask == 0)
            else:
                weights = weights.masked_fill(~allowed, 0.0 if mask_at == "after" else fill)
        return weights @ v, weights

    return fn


_MASK_AFTER = ("the mask is applied after the softmax, so the weights of the keys left over no longer sum to 1. "
               "Mask the scores first (fill them with -inf, or add the additive mask), then take the softmax.")
_TRANSPOSED = ("the mask is applied along the wrong dimension (transposed): a padding mask [B, 1, Tk] hides the padded "
               "keys from every query; turned into [B, Tk, 1] it hides queries instead. Use the mask as given, it "
               "already broadcasts to [..., Tq, Tk].")

_ATTENTION_MISTAKES = [
    Mistake("`k.T` was used on a batched tensor: it reverses all the dimensions. Swap only the last two: "
            "k.transpose(-2, -1) (or k.mT).", _attention_variant(plain_T=True)),
    Mistake("the scores are k q^T instead of q k^T: rows must be queries and columns keys, [..., Tq, Tk].",
            _attention_variant(keys_first=True)),
    Mistake("the scores are not scaled: multiply q k^T by 1/sqrt(d_k) (d_k = q.shape[-1]), otherwise their "
            "variance grows with d_k and the softmax saturates.", _attention_variant(scale="none")),
    Mistake("the scores are divided by d_k instead of sqrt(d_k).", _attention_variant(scale="d")),
    Mistake("the scores are multiplied by sqrt(d_k) instead of divided by it.", _attention_variant(scale="mul")),
    Mistake("the scale uses the size of the values, v.shape[-1], instead of d_k = q.shape[-1].",
            _attention_variant(scale="dv")),
    Mistake("the scale uses the number of keys Tk instead of the key dimension d_k = q.shape[-1].",
            _attention_variant(scale="tk")),
    Mistake("the softmax is taken over the queries (dim=-2) instead of over the keys (dim=-1): each query's "
            "weights must sum to 1 over the keys.", _attention_variant(axis=-2)),
    Mistake("the weights are not normalised: after exp, divide by the sum over the keys so that each query's "
            "weights sum to 1.", _attention_variant(normalise=False)),
    Mistake("the mask is ignored. Note that masked_fill returns a new tensor: write scores = scores.masked_fill(...).",
            _attention_variant(mask_at="ignored")),
    Mistake(_MASK_AFTER, _attention_variant(mask_at="after")),
    Mistake(_MASK_AFTER, _attention_variant(mask_at="after_fill")),
    Mistake("the masked scores are set to 0 instead of -inf: exp(0) is not 0, so masked keys still get weight. "
            "Use scores.masked_fill(~mask, float('-inf')).", _attention_variant(fill=0.0)),
    Mistake("the boolean mask is used the wrong way round: in torch's convention True means 'may attend', so fill "
            "the scores where the mask is False: scores.masked_fill(~mask, float('-inf')).",
            _attention_variant(inverted=True)),
    Mistake("the additive (float) mask was used like a boolean one: in a float mask 0 means 'may attend' and -inf "
            "'blocked' (other values are a bias); add it to the scores: scores + mask.",
            _attention_variant(float_mask="as_bool")),
    Mistake("only boolean masks are handled: a float mask is additive, add it to the scores (scores + mask); "
            "use masked_fill(~mask, -inf) only when mask.dtype == torch.bool.",
            _attention_variant(float_mask="bool_only")),
    Mistake(_TRANSPOSED, _attention_variant(transpose_mask=True)),
    Mistake(_TRANSPOSED, _attention_variant(transpose_mask=True, fill=-1e9)),
]


def _attention_cases() -> list[Case]:
    """Cases where the listed mistakes give different answers (d_k = 4 != dv = 6, Tq != Tk, asymmetric masks),
    then the edge inputs."""
    g = torch.Generator().manual_seed(20)

    def qkv(*lead: int, tq: int, tk: int, d: int = 4, dv: int = 6, dtype: torch.dtype = torch.float32,
            size: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        return (torch.randn(*lead, tq, d, generator=g, dtype=dtype) * size,
                torch.randn(*lead, tk, d, generator=g, dtype=dtype) * size,
                torch.randn(*lead, tk, dv, generator=g, dtype=dtype))

    cases: list[tuple[str, tuple[Tensor, Tensor, Tensor], Tensor | None, dict[str, Any]]] = []
    cases.append(("no mask", qkv(2, tq=3, tk=5), None, {}))
    cases.append(("a padding mask (bool, lengths 4 and 2) in self-attention", qkv(2, tq=5, tk=5),
                  padding_mask([4, 2], 5), {}))
    cases.append(("a causal mask (bool)", qkv(2, tq=3, tk=5), causal_mask(3, 5), {}))
    pattern = causal_mask(3, 5, align="bottom_right") & padding_mask([5, 4], 5)  # [2, 3, 5], no empty row
    cases.append(("an additive mask (float, 0 where allowed and -inf where blocked)", qkv(2, tq=3, tk=5),
                  to_additive(pattern), {}))
    cases.append(("multi-head inputs (2 sequences, 3 heads) and a padding mask (bool)", qkv(2, 3, tq=4, tk=6),
                  padding_mask([6, 3], 6)[:, None], {}))
    distance = (torch.arange(5)[None, :] - torch.arange(3)[:, None]).abs().float()
    cases.append(("an additive bias (float, finite values: -0.7 * |i - j|)", qkv(2, tq=3, tk=5), -0.7 * distance, {}))
    left = torch.tensor([[False, False, True, True, True], [True] * 5])[:, None, :]  # padding at the start
    cases.append(("left padding (bool: the first 2 keys of sequence 0 are padding)", qkv(2, tq=5, tk=5), left, {}))
    cases.append(("a single query (Tq = 1) and a padding mask (bool)", qkv(2, tq=1, tk=5), padding_mask([5, 3], 5), {}))
    cases.append(("a single key (Tk = 1)", qkv(1, tq=3, tk=1), None, {}))
    cases.append(("large scores (q and k scaled by 30, batch of 1)", qkv(1, tq=4, tk=6, size=30.0), None,
                  dict(grad=False)))  # saturated rows: float32 rounding dominates their tiny gradients
    cases.append(("float64 inputs and a causal mask (bool)", qkv(2, tq=4, tk=4, dtype=torch.float64),
                  causal_mask(4), {}))
    empty = causal_mask(4, 4).clone()
    empty[2] = False  # query 2 may attend to nothing
    keep = torch.tensor([True, True, False, True])
    cases.append(("a mask (bool) where query 2 may attend to no key at all", qkv(2, tq=4, tk=4), empty,
                  dict(grad=False, view=lambda out: (out[0][..., keep, :], out[1][..., keep, :]))))
    out = [Case(f"{label} (q {shape_text(q)}, k {shape_text(k)}, v {shape_text(v)}"
                + (f", mask {shape_text(mask)})" if mask is not None else ")"), (q, k, v, mask), **extra)
           for label, (q, k, v), mask, extra in cases]
    q, k, v = qkv(2, tq=3, tk=4)
    out.append(Case(f"no mask argument at all: attention(q, k, v) (q {shape_text(q)}, k {shape_text(k)}, v {shape_text(v)})",
                    (q, k, v)))
    return out


def _reference_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    return scaled_dot_product_attention(q, k, v, mask)


def _mask_of(case: Case) -> Tensor | None:
    return case.args[3] if len(case.args) > 3 else None


def _allowed(case: Case, weights: Tensor) -> Tensor:
    mask = _mask_of(case)
    if mask is None:
        return torch.ones(weights.shape, dtype=torch.bool)
    allowed = mask if mask.dtype == torch.bool else mask != _NEG_INF
    return allowed.expand(weights.shape)


def _weights_sum_to_one(case: Case, result: Any, rerun: Any) -> str | None:
    weights = result[1].detach().double()
    live = _allowed(case, weights).any(-1)
    sums = weights.sum(-1)[live]
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return f"the row sums range from {sums.min().item():.4g} to {sums.max().item():.4g}"
    return None


def _masked_keys_get_zero(case: Case, result: Any, rerun: Any) -> str | None:
    weights = result[1].detach()
    allowed = _allowed(case, weights)
    blocked = ~allowed & allowed.any(-1, keepdim=True)
    if bool(blocked.any()) and bool((weights[blocked] != 0).any()):
        return f"a blocked key got weight {weights[blocked].abs().max().item():.3g}; it must get exactly 0"
    return None


def _output_is_weights_times_v(case: Case, result: Any, rerun: Any) -> str | None:
    out, weights = result
    live = _allowed(case, weights).any(-1, keepdim=True)
    mixed = weights.detach().double() @ case.args[2].double()
    if not torch.allclose(torch.where(live, out.detach().double(), 0), torch.where(live, mixed, 0), atol=1e-4):
        return "the output is not the returned weights times v (output = weights @ v)"
    return None


def _blocked_values_do_not_matter(case: Case, result: Any, rerun: Any) -> str | None:
    q, k, v = case.args[:3]
    mask = _mask_of(case)
    if mask is None or mask.dtype != torch.bool:
        return None
    visible = mask.expand(*q.shape[:-1], k.shape[-2]).any(-2)  # [..., Tk]: keys that some query may see
    if bool(visible.all()):
        return None
    noisy = v.clone()
    noisy[~visible] += 100.0
    out2 = rerun(q, k, noisy, mask)[0]
    rows = mask.expand(*q.shape[:-1], k.shape[-2]).any(-1)
    if not torch.allclose(out2.detach()[rows], result[0].detach()[rows], atol=1e-4):
        return "changing the values of keys that no query may see changed the output"
    return None


def _equivariant_in_the_keys(case: Case, result: Any, rerun: Any) -> str | None:
    q, k, v = case.args[:3]
    mask = _mask_of(case)
    perm = torch.arange(k.shape[-2]).flip(0)
    permuted_mask = None if mask is None else mask[..., perm] if mask.shape[-1] > 1 else mask
    out2, w2 = rerun(q, k[..., perm, :], v[..., perm, :], permuted_mask)
    live = _allowed(case, result[1]).any(-1, keepdim=True)
    same_out = torch.allclose(torch.where(live, out2.detach(), 0), torch.where(live, result[0].detach(), 0), atol=1e-4)
    same_w = torch.allclose(torch.where(live, w2.detach(), 0),
                            torch.where(live, result[1].detach()[..., perm], 0), atol=1e-4)
    if not (same_out and same_w):
        return "listing the keys (with their values and mask columns) in reverse order changed the answer"
    return None


_ATTENTION_PROPERTIES = [
    Property("'each query's weights sum to 1 over the keys'", _weights_sum_to_one),
    Property("'a blocked key gets weight exactly 0'", _masked_keys_get_zero),
    Property("'output = weights @ v'", _output_is_weights_times_v),
    Property("'keys no query may see do not change the output'", _blocked_values_do_not_matter),
    Property("'the order in which the keys are listed does not matter'", _equivariant_in_the_keys),
]

_ATTENTION_SPEC = Spec(reference=_reference_attention, cases=_attention_cases, mistakes=_ATTENTION_MISTAKES,
                       properties=_ATTENTION_PROPERTIES, differentiable=True, items=("output", "weights"),
                       arg_names=("q", "k", "v", "mask"))


def check_attention(attention_fn: Callable[..., tuple[Tensor, Tensor]]) -> Callable[..., tuple[Tensor, Tensor]]:
    """Exercise 2.2: ``scaled_dot_product_attention(q, k, v, mask) -> (output, weights)``; returns the attention the
    rest of the hour uses (yours once it passes)."""
    return check(ATTENTION, _ATTENTION_SPEC, (attention_fn,), (_reference_attention,),
                 "output, weights and gradients match on {cases} cases (no mask, padding, causal, "
                 "additive, multi-head, bias, left padding, one query, one key, large scores, float64, a query "
                 "with no key)")
