"""The self-check of Exercise 3.1: additive attention (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.seq2seq import additive_attention

ATTENTION = exercise(3, "3.1", "Additive attention", "additive_attention")


def reference_additive_attention(query: Tensor, keys: Tensor, W_q: Tensor, W_k: Tensor, v: Tensor,  # noqa: N803
                                 mask: Tensor) -> tuple[Tensor, Tensor]:
    """The course's ``additive_attention`` with the exercise's signature (the mask is not optional)."""
    return additive_attention(query, keys, W_q, W_k, v, mask)


def _attention_variant(*, softmax_dim: int = -1, tanh: bool = True, use_v: bool = True, mask: str = "before",
                       context_from: str = "keys", unsqueeze: bool = True
                       ) -> Callable[..., tuple[Tensor, Tensor]]:
    """Additive attention with one typical bug switched on (the defaults give the correct function)."""

    def attention(query, keys, W_q, W_k, v, mask_):  # noqa: ANN001, N803
        k_proj = keys @ W_k
        q_proj = query @ W_q
        hidden = (q_proj.unsqueeze(1) if unsqueeze else q_proj) + k_proj
        if tanh:
            hidden = torch.tanh(hidden)
        raw = hidden @ v if use_v else hidden.sum(-1)
        scores = raw
        if mask == "before":
            scores = raw.masked_fill(~mask_, float("-inf"))
        elif mask == "zero":
            scores = raw.masked_fill(~mask_, 0.0)
        elif mask == "inverted":
            scores = raw.masked_fill(mask_, float("-inf"))
        weights = scores.softmax(dim=softmax_dim)
        if mask == "after":
            weights = weights.masked_fill(~mask_, 0.0)
        mix, values = weights, keys
        if context_from == "projected":
            values = k_proj
        elif context_from == "raw_scores":
            mix = raw
        elif context_from == "masked_scores":
            mix = scores
        return (mix.unsqueeze(1) @ values).squeeze(1), weights

    return attention


_ATTENTION_MISTAKES = [
    Mistake("the softmax runs over the batch axis (dim=0); each query's weights must sum to 1 over the "
            "source positions (dim=-1).", _attention_variant(softmax_dim=0)),
    Mistake("the tanh is missing: e_j = v . tanh(W_q s + W_k h_j). Without it the query's part of the score "
            "is the same for every position and cancels in the softmax, so the weights ignore the query.",
            _attention_variant(tanh=False)),
    Mistake("v is missing: the scores sum tanh(...) over the attention dimension instead of taking its "
            "dot product with the learned vector v.", _attention_variant(use_v=False)),
    Mistake("the padding mask is not applied, so padded positions get attention weight; set their "
            "scores to -inf before the softmax.", _attention_variant(mask="none")),
    Mistake("the mask is applied after the softmax: padding gets weight 0 but the remaining weights no "
            "longer sum to 1; mask the scores (-inf) before the softmax.", _attention_variant(mask="after")),
    Mistake("padded scores are set to 0 instead of -inf: exp(0) = 1, so padding still gets weight.",
            _attention_variant(mask="zero")),
    Mistake("the mask is inverted: it is True at real tokens (keep those) and False at padding.",
            _attention_variant(mask="inverted")),
    Mistake("the context is a weighted sum of the projected keys (keys @ W_k) instead of the encoder "
            "states themselves (keys).", _attention_variant(context_from="projected")),
    Mistake("the context is computed from the scores instead of the softmax weights.",
            _attention_variant(context_from="raw_scores")),
    Mistake("the context is computed from the scores instead of the softmax weights.",
            _attention_variant(context_from="masked_scores")),
    Mistake("the projected query [B, A] is added to the projected keys [B, S, A] without .unsqueeze(1): "
            "broadcasting then lines the batch axis up with the source positions (it only runs when B == S, "
            "and gives nonsense there). Add query @ W_q as [B, 1, A].", _attention_variant(unsqueeze=False)),
]


def _attention_inputs(g: torch.Generator, b: int, s: int, dq: int, dk: int, a: int, real: Tensor,
                      dtype: torch.dtype = torch.float32, v_scale: float = 1.0) -> tuple[Any, ...]:
    """query [b, dq], keys [b, s, dk], W_q [dq, a], W_k [dk, a], v [a], and the mask ``real`` [b, s]."""
    query = torch.randn(b, dq, generator=g, dtype=dtype) * 1.5
    keys = torch.randn(b, s, dk, generator=g, dtype=dtype) * 1.5
    W_q = torch.randn(dq, a, generator=g, dtype=dtype) / dq**0.5 * 1.5  # noqa: N806
    W_k = torch.randn(dk, a, generator=g, dtype=dtype) / dk**0.5 * 1.5  # noqa: N806
    v = torch.randn(a, generator=g, dtype=dtype) * v_scale
    assert real.shape == (b, s) and real.dtype == torch.bool
    return query, keys, W_q, W_k, v, real


def _lengths(lengths: list[int], s: int) -> Tensor:
    return torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]


def _attention_cases() -> list[Case]:
    g = torch.Generator().manual_seed(31)
    left = torch.tensor([[False, False, False, True, True, True], [True] * 6, [False, True, True, True, True, True]])
    dead = _lengths([5, 0, 3], 5)  # row 1: no real position at all
    live = torch.tensor([True, False, True])
    return [
        Case("right padding (lengths 7, 4, 2; query [3, 5], keys [3, 7, 6], A = 6)",
             _attention_inputs(g, 3, 7, 5, 6, 6, _lengths([7, 4, 2], 7))),
        Case("no padding and as many sequences as positions (B = S = 4; query [4, 5], keys [4, 4, 3], A = 7)",
             _attention_inputs(g, 4, 4, 5, 3, 7, _lengths([4, 4, 4, 4], 4))),
        Case("left padding (mask False at the start of rows 0 and 2; keys [3, 6, 4], A = 5)",
             _attention_inputs(g, 3, 6, 5, 4, 5, left)),
        Case("a batch of one (query [1, 5], keys [1, 5, 4], length 3)",
             _attention_inputs(g, 1, 5, 5, 4, 7, _lengths([3], 5))),
        Case("a source of length 1 (keys [3, 1, 4])", _attention_inputs(g, 3, 1, 5, 4, 7, _lengths([1, 1, 1], 1))),
        Case("float64 inputs (keys [2, 6, 4], lengths 6 and 3)",
             _attention_inputs(g, 2, 6, 5, 4, 7, _lengths([6, 3], 6), dtype=torch.float64)),
        Case("large scores (v scaled by 1e3, so the scores reach a few thousand; keys [3, 6, 4])",
             _attention_inputs(g, 3, 6, 5, 4, 7, _lengths([6, 5, 2], 6), v_scale=1e3),
             grad=False),  # saturated weights: float32 rounding dominates their tiny gradients
        Case("a row with no real position (row 1 of the mask is all False; any answer for that row)",
             _attention_inputs(g, 3, 5, 5, 4, 7, dead), grad=False,
             view=lambda out: (out[0][live], out[1][live])),
    ]


def _live(case: Case) -> Tensor:
    return case.args[5].any(-1)


def _attention_sums_to_one(case: Case, result: Any, rerun: Any) -> str | None:
    sums = result[1].detach().double().sum(-1)[_live(case)]
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return f"the sums over the source positions range from {sums.min().item():.4g} to {sums.max().item():.4g}"
    return None


def _padding_gets_zero(case: Case, result: Any, rerun: Any) -> str | None:
    mask = case.args[5]
    padded = ~mask & _live(case)[:, None]
    weights = result[1].detach()
    if bool(padded.any()) and bool((weights[padded] != 0).any()):
        return f"a padded position got weight {weights[padded].abs().max().item():.3g}; it must get exactly 0"
    return None


def _context_is_weighted_keys(case: Case, result: Any, rerun: Any) -> str | None:
    context, weights = result
    keys = case.args[1]
    live = _live(case)
    mixed = torch.einsum("bs,bsd->bd", weights.detach().double(), keys.double())
    if not torch.allclose(context.detach().double()[live], mixed[live], atol=1e-4, rtol=1e-4):
        return "the context is not the returned weights times the keys (context = sum_j weights_j keys_j)"
    return None


def _source_order_does_not_matter(case: Case, result: Any, rerun: Any) -> str | None:
    query, keys, W_q, W_k, v, mask = case.args  # noqa: N806
    s = keys.shape[1]
    if s < 2:
        return None
    perm = torch.randperm(s, generator=torch.Generator().manual_seed(3))
    if bool((perm == torch.arange(s)).all()):
        perm = perm.flip(0)
    context2, weights2 = rerun(query, keys[:, perm], W_q, W_k, v, mask[:, perm])
    live = _live(case)
    same_w = torch.allclose(weights2.detach()[live], result[1].detach()[:, perm][live], atol=1e-5, rtol=1e-4)
    same_c = torch.allclose(context2.detach()[live], result[0].detach()[live], atol=1e-4, rtol=1e-4)
    if not (same_w and same_c):
        return ("listing the source positions in another order (keys and mask together) should permute the weights "
                "the same way and leave the context unchanged")
    return None


_ATTENTION_PROPERTIES = [
    Property("'the weights sum to 1 over the real positions'", _attention_sums_to_one),
    Property("'padding gets weight exactly 0'", _padding_gets_zero),
    Property("'context = weights times keys'", _context_is_weighted_keys),
    Property("'the order of the source positions does not matter'", _source_order_does_not_matter),
]

_ATTENTION_SPEC = Spec(reference=reference_additive_attention, cases=_attention_cases, mistakes=_ATTENTION_MISTAKES,
                       properties=_ATTENTION_PROPERTIES, differentiable=True, items=("context", "weights"),
                       arg_names=("query", "keys", "W_q", "W_k", "v", "mask"))


def check_additive_attention(additive_attention_fn: Callable[..., tuple[Tensor, Tensor]]
                             ) -> Callable[..., tuple[Tensor, Tensor]]:
    """Exercise 3.1: ``additive_attention(query, keys, W_q, W_k, v, mask) -> (context, weights)``; returns the
    attention the rest of the hour uses (yours once it passes)."""
    return check(ATTENTION, _ATTENTION_SPEC, (additive_attention_fn,), (reference_additive_attention,),
                 "context, weights and gradients match on {cases} cases (right and left padding, "
                 "B = S, a batch of one, one source position, float64, large scores, a row with no real position)")
