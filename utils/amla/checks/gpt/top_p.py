"""The self-check of Exercise 6.3: top-p probabilities (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.gpt import top_p_probs

TOP_P = exercise(6, "6.3", "Top-p probabilities", "top_p_probs")


def _top_p_variant(kind: str) -> Callable[..., Tensor]:
    """top_p_probs with one typical bug switched on (kind); the default is right."""

    def fn(logits: Tensor, p: float, temperature: float = 1.0) -> Tensor:
        if kind == "temperature_after_softmax":
            probs = logits.softmax(-1) / temperature
            probs = probs / probs.sum(-1, keepdim=True)
        elif kind == "temperature_multiplied":
            probs = (logits * temperature).softmax(-1)
        elif kind == "naive_exp":
            e = (logits / temperature).exp()
            probs = e / e.sum(-1, keepdim=True)
        elif kind == "wrong_dim":
            probs = (logits / temperature).softmax(0)
        else:
            probs = (logits / temperature).softmax(-1)
        if kind == "unsorted":  # the cumulative sum in vocabulary order
            kept = probs.masked_fill(probs.cumsum(-1) - probs >= p, 0.0)
            return kept / kept.sum(-1, keepdim=True)
        s, order = probs.sort(-1, descending=kind != "ascending")
        if kind == "cut_before_crossing":
            keep = s.masked_fill(s.cumsum(-1) > p, 0.0)
            keep[..., 0] = s[..., 0]  # at least the most likely token
        else:
            keep = s.masked_fill(s.cumsum(-1) - s >= p, 0.0)
        if kind == "sorted_order":
            return keep / keep.sum(-1, keepdim=True)
        if kind == "gather":
            kept = keep.gather(-1, order)
        else:
            kept = torch.zeros_like(probs).scatter(-1, order, keep)
        if kind == "not_renormalised":
            return kept
        return kept / kept.sum(-1, keepdim=True)

    return fn


_TOP_P_MISTAKES = [
    Mistake("the cumulative sum runs over the tokens in vocabulary order: sort the probabilities (descending) first.",
            _top_p_variant("unsorted")),
    Mistake("the token whose probability crosses p is cut: keep tokens while the mass *before* them is below p, so "
            "the kept mass reaches p.", _top_p_variant("cut_before_crossing")),
    Mistake("the kept probabilities are not renormalised: divide by their sum so they add up to 1.",
            _top_p_variant("not_renormalised")),
    Mistake("the temperature is applied after the softmax (or not at all): dividing probabilities by it changes "
            "nothing once they are renormalised. Divide the logits by the temperature, then take the softmax.",
            _top_p_variant("temperature_after_softmax")),
    Mistake("the logits are multiplied by the temperature instead of divided by it: a temperature below 1 must "
            "sharpen the distribution, softmax(logits / temperature).", _top_p_variant("temperature_multiplied")),
    Mistake("the exponentials overflow: exp(1e4) is inf, and inf / inf is nan. Use softmax, or subtract each "
            "row's maximum before exp.", _top_p_variant("naive_exp")),
    Mistake("the softmax is taken over the batch (dim=0) instead of over the vocabulary (dim=-1).",
            _top_p_variant("wrong_dim")),
    Mistake("the probabilities are sorted in ascending order, so the least likely tokens are kept: use "
            "sort(dim=-1, descending=True).", _top_p_variant("ascending")),
    Mistake("the result is still in sorted order: put the kept probabilities back at their tokens' places with "
            "torch.zeros_like(probs).scatter(-1, indices, values).", _top_p_variant("sorted_order")),
    Mistake("the sorted values are put back with gather(-1, indices), which applies the permutation the wrong way "
            "round: scatter(-1, indices, values) puts value j at position indices[j].", _top_p_variant("gather")),
]


def _top_p_cases() -> list[Case]:
    g = torch.Generator().manual_seed(6)

    def randn(*shape: int, scale: float = 2.0, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype) * scale

    ties = torch.tensor([[2.0, 2.0, 0.0, -1.0, 1.0], [0.0, 3.0, 3.0, 3.0, -2.0]])
    masked = randn(3, 9)
    masked[0, [1, 4, 5]] = float("-inf")
    masked[1, :6] = float("-inf")
    masked[2, [0, 8]] = float("-inf")
    return [
        Case("logits of shape (4, 12), p=0.9, temperature=0.7", (randn(4, 12), 0.9, 0.7)),
        Case("logits of shape (4, 12), p=0.5, temperature=1.0", (randn(4, 12), 0.5, 1.0)),
        Case("logits of shape (3, 20), p=0.8, temperature=2.0", (randn(3, 20), 0.8, 2.0)),
        Case("p=1.0 (every token kept: a plain softmax), logits (3, 10), temperature=0.8", (randn(3, 10), 1.0, 0.8)),
        Case("a tiny p=0.001 (only the most likely token), logits (3, 10), temperature=1.0",
             (randn(3, 10), 0.001, 1.0)),
        Case("logits as large as 1e4 (shape (2, 8)), p=0.9, temperature=1.0", (randn(2, 8, scale=1e4), 0.9, 1.0),
             grad=False),  # saturated rows: their gradients are 0 up to float32 rounding
        Case("a batch of 1 (logits (1, 15)), p=0.7, temperature=1.0", (randn(1, 15), 0.7, 1.0)),
        Case("a vocabulary of 1 (logits (3, 1)), p=0.9, temperature=1.0", (randn(3, 1), 0.9, 1.0)),
        Case("tied top tokens (logits [[2, 2, 0, -1, 1], [0, 3, 3, 3, -2]]), p=0.9, temperature=1.0",
             (ties, 0.9, 1.0)),
        Case("-inf logits (as top-k filtering leaves them; shape (3, 9)), p=0.9, temperature=1.0",
             (masked, 0.9, 1.0)),
        Case("float64 logits (shape (3, 9)), p=0.8, temperature=1.3", (randn(3, 9, dtype=torch.float64), 0.8, 1.3)),
        Case("the temperature left out: top_p_probs(logits, 0.6) (logits (2, 10))", (randn(2, 10), 0.6)),
    ]


def _args(case: Case) -> tuple[Tensor, float, float]:
    logits, p, *rest = case.args
    return logits, p, rest[0] if rest else 1.0


def _probs64(case: Case) -> tuple[Tensor, float]:
    logits, p, temperature = _args(case)
    return (logits.double() / temperature).softmax(-1), p


def _before64(probs: Tensor) -> Tensor:
    """For each token, the probability of the tokens more likely than it (in vocabulary order)."""
    s, order = probs.sort(-1, descending=True)
    return torch.zeros_like(probs).scatter(-1, order, s.cumsum(-1) - s)


def _rows(out: Tensor) -> Tensor:
    return out.detach().double()


def _finite(case: Case, out: Any, rerun: Any) -> str | None:
    bad = ~torch.isfinite(_rows(out))
    if bool(bad.any()):
        return f"{int(bad.sum())} entries are nan or inf (an exponential overflowed, or 0 / 0)"
    return None


def _sums_to_one(case: Case, out: Any, rerun: Any) -> str | None:
    sums = _rows(out).sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return f"the row sums range from {sums.min().item():.4g} to {sums.max().item():.4g}"
    return None


def _exact_zeros(case: Case, out: Any, rerun: Any) -> str | None:
    probs, p = _probs64(case)
    outside = _before64(probs) >= p + 1e-4  # clearly outside the nucleus
    leaked = _rows(out)[outside]
    if leaked.numel() and bool((leaked != 0).any()):
        return (f"a token outside the nucleus got {leaked.abs().max().item():.3g} instead of exactly 0 "
                "(no epsilon: set the dropped tokens to 0)")
    return None


def _top_token_kept(case: Case, out: Any, rerun: Any) -> str | None:
    probs, _ = _probs64(case)
    top = probs >= probs.amax(-1, keepdim=True) * (1 - 1e-9)
    kept = (_rows(out) > 0) & top
    if not bool(kept.any(-1).all()):
        return "in some row the most likely token got probability 0; it is always in the nucleus"
    return None


def _kept_is_prefix(case: Case, out: Any, rerun: Any) -> str | None:
    probs, _ = _probs64(case)
    kept = _rows(out) > 0
    for row in range(probs.shape[0]):
        k, d = probs[row][kept[row]], probs[row][~kept[row]]
        if k.numel() and d.numel() and k.min() < d.max() * (1 - 1e-6) - 1e-12:
            return (f"in row {row} a token of probability {k.min().item():.3g} is kept while a more likely one "
                    f"({d.max().item():.3g}) is dropped: the nucleus is the most likely tokens")
    return None


def _not_too_many(case: Case, out: Any, rerun: Any) -> str | None:
    probs, p = _probs64(case)
    kept = _rows(out) > 0
    for row in range(probs.shape[0]):
        k = probs[row][kept[row]]
        if k.numel() and (k.sum() - k.min()).item() >= p + 1e-4:
            return (f"in row {row} the kept tokens other than the least likely one already hold "
                    f"{(k.sum() - k.min()).item():.3g} >= p={p}: the nucleus stops at the token that crosses p")
    return None


def _reaches_p(case: Case, out: Any, rerun: Any) -> str | None:
    probs, p = _probs64(case)
    kept = _rows(out) > 0
    for row in range(probs.shape[0]):
        mass = probs[row][kept[row]].sum().item()
        if mass < p - 1e-4:
            return (f"in row {row} the kept tokens hold only {mass:.3g} of the probability, less than p={p}: keep the "
                    "token that crosses p")
    return None


def _proportional(case: Case, out: Any, rerun: Any) -> str | None:
    probs, _ = _probs64(case)
    got = _rows(out)
    kept = got > 0
    want = torch.where(kept, probs, 0)
    want = want / want.sum(-1, keepdim=True)
    if not torch.allclose(got, want, atol=1e-5):
        return ("the kept tokens' probabilities are not softmax(logits / temperature) divided by the kept mass "
                "(is the temperature applied to the logits, before the softmax?)")
    return None


_TOP_P_PROPERTIES = [
    Property("'the result is finite'", _finite),
    Property("'each row sums to 1'", _sums_to_one),
    Property("'tokens outside the nucleus get exactly 0'", _exact_zeros),
    Property("'the most likely token is always kept'", _top_token_kept),
    Property("'the kept tokens are the most likely ones'", _kept_is_prefix),
    Property("'the kept mass before the last kept token is below p'", _not_too_many),
    Property("'the kept tokens hold at least p of the probability'", _reaches_p),
    Property("'a kept token's probability is its tempered softmax divided by the kept mass'", _proportional),
]


def _reference_top_p(logits: Tensor, p: float, temperature: float = 1.0) -> Tensor:
    return top_p_probs(logits, p, temperature)


_TOP_P_SPEC = Spec(reference=_reference_top_p, cases=_top_p_cases, mistakes=_TOP_P_MISTAKES,
                   properties=_TOP_P_PROPERTIES, differentiable=True, atol=1e-6, rtol=1e-5,
                   arg_names=("logits", "p", "temperature"))


def check_top_p(top_p_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 6.3: ``top_p_probs(logits [B, V], p, temperature=1.0) -> probs [B, V]``; returns the top_p_probs the
    rest of the hour uses (yours once it passes)."""
    return check(TOP_P, _TOP_P_SPEC, (top_p_fn,), (_reference_top_p,),
                 "values, dtype and gradients match on {cases} cases (p = 1, a tiny p, logits of 1e4, "
                 "a batch of 1, one token, ties, -inf logits, float64, the default temperature)")
