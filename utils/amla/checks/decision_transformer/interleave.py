"""The self-check of Exercise 18.2: interleaving the tokens (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.rl.decision_transformer import interleave_tokens

INTERLEAVE = exercise(18, "18.2", "Interleaving the tokens", "interleave_tokens")

InterleaveFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def reference_interleave_tokens(returns: Tensor, states: Tensor, actions: Tensor) -> Tensor:
    """The course's ``interleave_tokens`` with the exercise's signature."""
    return interleave_tokens(returns, states, actions)


def _interleave_variant(kind: str) -> InterleaveFn:
    """``interleave_tokens`` with one typical bug switched on (kind)."""

    def fn(returns: Tensor, states: Tensor, actions: Tensor) -> Tensor:
        B, T, C = returns.shape
        order = {"s_r_a": (states, returns, actions), "r_a_s": (returns, actions, states),
                 "a_s_r": (actions, states, returns)}.get(kind, (returns, states, actions))
        if kind == "grouped":  # R_1..R_T, s_1..s_T, a_1..a_T
            return torch.cat(order, dim=1)
        if kind == "features":  # stacked on the last axis: the features of the three tokens get mixed
            return torch.stack(order, dim=-1).reshape(B, 3 * T, C)
        if kind == "batch":  # stacked on the batch axis: rows of different sequences get mixed
            return torch.stack(order, dim=0).reshape(B, 3 * T, C)
        return torch.stack(order, dim=2).reshape(B, 3 * T, C)

    return fn


_MISTAKES = [
    Mistake("the tokens are grouped by kind (R_1 .. R_T, then s_1 .. s_T, then a_1 .. a_T, as torch.cat(..., dim=1) "
            "makes them): each step's three tokens must sit together, R_t, s_t, a_t, e.g. torch.stack(..., dim=2) "
            "then reshape(B, 3 * T, C).", _interleave_variant("grouped")),
    Mistake("the order inside a step is s_t, R_t, a_t: the return-to-go comes first (R_t, s_t, a_t), so the state "
            "token sees the return it must reach.", _interleave_variant("s_r_a")),
    Mistake("the order inside a step is R_t, a_t, s_t: the action comes after the state it answers (R_t, s_t, "
            "a_t).", _interleave_variant("r_a_s")),
    Mistake("the order inside a step is reversed (a_t, s_t, R_t): it is R_t, s_t, a_t.", _interleave_variant("a_s_r")),
    Mistake("the three embeddings are stacked on the last axis (dim=-1), so reshape mixes the features of different "
            "tokens: stack on a new axis after T (dim=2), [B, T, 3, C], then reshape to [B, 3T, C].",
            _interleave_variant("features")),
    Mistake("the three embeddings are stacked on the batch axis (dim=0), so reshape mixes different sequences of the "
            "batch: stack on a new axis after T (dim=2), [B, T, 3, C].", _interleave_variant("batch")),
]


def _three(B: int, T: int, C: int, g: torch.Generator, dtype: torch.dtype = torch.float32) -> tuple[Tensor, ...]:
    return tuple(torch.randn(B, T, C, generator=g, dtype=dtype) for _ in range(3))


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(182)
    return [
        Case("a batch of 2 windows of 3 steps, 4 features", _three(2, 3, 4, g)),
        Case("a batch of one window (B=1, T=4, C=2)", _three(1, 4, 2, g)),
        Case("a single step (T=1)", _three(3, 1, 4, g)),
        Case("one feature per token (C=1)", _three(2, 5, 1, g)),
        Case("float64 embeddings", _three(2, 3, 4, g, torch.float64)),
        Case("the hour's shapes (B=4, T=10, C=16)", _three(4, 10, 16, g)),
    ]


def _slots(case: Case, out: Tensor, rerun: Any) -> str | None:
    names = ("R_t", "s_t", "a_t")
    for k, (name, x) in enumerate(zip(names, case.args)):
        got = out[:, k::3]
        if got.shape != x.shape or not torch.allclose(got, x):
            return f"out[:, {k}::3] should be the {name} tokens (the {('returns', 'states', 'actions')[k]} input)"
    return None


def _rows(case: Case, out: Tensor, rerun: Any) -> str | None:
    r, s, a = case.args
    if r.size(0) < 2:
        return None
    again = rerun(r.clone().index_fill(0, torch.tensor([1]), 7.0), s, a)
    if not torch.equal(again[0], out[0]):
        return "changing the second window of the batch changed the tokens of the first"
    return None


_PROPERTIES = [
    Property("'token 3t is R_t, token 3t + 1 is s_t, token 3t + 2 is a_t'", _slots),
    Property("'each window of the batch uses only its own embeddings'", _rows),
]

_SPEC = Spec(reference=reference_interleave_tokens, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             differentiable=True, part="token sequence", arg_names=("returns", "states", "actions"))


def check_interleave_tokens(interleave_fn: InterleaveFn) -> InterleaveFn:
    """Exercise 18.2: ``interleave_tokens(returns, states, actions) -> [B, 3T, C]``; returns the function the hour's
    Decision Transformer is built with (yours once it passes)."""
    return check(INTERLEAVE, _SPEC, (interleave_fn,), (reference_interleave_tokens,),
                 "the token sequence and its gradients match on {cases} batches (batch of one, a single step, one "
                 "feature, float64, the hour's shapes)")
