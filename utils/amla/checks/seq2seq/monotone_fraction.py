"""The self-check of Exercise 3.3: how monotone is an alignment (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.seq2seq import monotone_fraction
from amla.transformers.tasks import ISO_FIELDS

MONOTONE = exercise(3, "3.3", "How monotone is an alignment?", "monotone_fraction")


def reference_monotone_fraction(weights: Tensor, groups: Any) -> float:
    """The course's ``monotone_fraction`` with the exercise's signature (groups are not optional)."""
    return monotone_fraction(weights, groups)


def _monotone_variant(*, axis: int = -1, strict: bool = False, across_groups: bool = False,
                      compare_weights: bool = False, wrap: bool = False, backwards: bool = False,
                      per_example: bool = False, per_group: bool = False) -> Callable[..., float]:
    def fraction(weights, groups):  # noqa: ANN001
        where = weights.max(dim=-1).values if compare_weights else weights.argmax(dim=axis)
        if per_group:
            steps = [where[:, list(g)] for g in groups if len(g) > 1]
            return torch.stack([(w[:, 1:] >= w[:, :-1]).float().mean() for w in steps]).mean().item()
        chains = [[t for g in groups for t in g]] if across_groups else [list(g) for g in groups]
        pairs = [(g[k], g[(k + 1) % len(g)]) for g in chains for k in range(len(g) - (0 if wrap else 1))
                 if len(g) > 1]
        before, after = torch.tensor(pairs).T
        moved = where[:, after] - where[:, before]
        ok = (moved > 0) if strict else (moved >= 0)
        if backwards:
            ok = ~ok
        if per_example:
            return ok.float().sum().item() / len(pairs)
        return ok.float().mean().item()

    return fraction


_MONOTONE_MISTAKES = [
    Mistake("the argmax runs over the output steps (dim=1) instead of the input positions (dim=-1).",
            _monotone_variant(axis=1)),
    Mistake("staying on the same input position counts as a step back: 'does not move backwards' means "
            ">=, not >.", _monotone_variant(strict=True)),
    Mistake("the pairs between groups are counted too (e.g. from the last year digit to the first month "
            "digit); only neighbours inside the same group count.", _monotone_variant(across_groups=True)),
    Mistake("the largest weights are compared instead of the positions where they sit (argmax).",
            _monotone_variant(compare_weights=True)),
    Mistake("the pair from the last step of a group back to its first is counted too (the neighbours wrap "
            "around, as with torch.roll); only (g[k], g[k + 1]) for k < len(g) - 1 count.", _monotone_variant(wrap=True)),
    Mistake("the fraction of pairs that move backwards is returned: the question is how often the position does "
            "*not* move backwards (>=).", _monotone_variant(backwards=True)),
    Mistake("the count is divided by the number of pairs but not by the number of examples N: the fraction is "
            "over all pairs of all examples.", _monotone_variant(per_example=True)),
    Mistake("the fractions of the groups are averaged, so the two month digits weigh as much as the four year "
            "digits; count the pairs of all groups together.", _monotone_variant(per_group=True)),
]


def _peaked(g: torch.Generator, n: int, t: int, s: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Peaked alignments that mostly move forward, stay put sometimes, and jump back now and then."""
    pos = torch.cumsum(torch.randint(-1, 3, (n, t), generator=g), dim=1).clamp(0, s - 1)
    logits = torch.randn(n, t, s, generator=g, dtype=dtype)
    logits.scatter_add_(2, pos.unsqueeze(-1), torch.full((n, t, 1), 6.0, dtype=dtype))
    return logits.softmax(-1)


def _monotone_cases() -> list[Case]:
    g = torch.Generator().manual_seed(33)
    two = torch.rand(6, 11, 8, generator=g).argsort(-1)[..., :2]  # two different positions per step
    ties = torch.zeros(6, 11, 8).scatter_(2, two, 0.5)  # two equal largest weights: the first one counts
    digits = tuple(t for field in ISO_FIELDS for t in field)
    return [
        Case("12 peaked alignments (weights [12, 11, 12]) and groups ISO_FIELDS = ((0, 1, 2, 3), (5, 6), (8, 9))",
             (_peaked(g, 12, 11, 12), ISO_FIELDS)),
        Case(f"one group of non-neighbouring steps {list(digits)} (weights [10, 11, 12])",
             (_peaked(g, 10, 11, 12), [digits])),
        Case("a single example (weights [1, 11, 12]) and ISO_FIELDS", (_peaked(g, 1, 11, 12), ISO_FIELDS)),
        Case("groups of one step next to longer ones ((0, 1, 2), (4,), (6, 7, 8), (10,))",
             (_peaked(g, 8, 11, 12), ((0, 1, 2), (4,), (6, 7, 8), (10,)))),
        Case("ties in the argmax (two equal largest weights of 0.5: the first one counts, as torch.argmax)",
             (ties, ISO_FIELDS)),
        Case("float64 weights [9, 11, 12] and ISO_FIELDS", (_peaked(g, 9, 11, 12, torch.float64), ISO_FIELDS)),
        Case("fewer input positions than output steps (weights [8, 11, 5])", (_peaked(g, 8, 11, 5), ISO_FIELDS)),
    ]


def _one_hot(case: Case, positions: Tensor) -> Tensor:
    weights = case.args[0]
    out = torch.zeros_like(weights)
    out.scatter_(2, positions.expand(weights.shape[:2]).unsqueeze(-1), 1.0)
    return out


def _in_unit_interval(case: Case, result: Any, rerun: Any) -> str | None:
    value = float(result)
    if not 0.0 <= value <= 1.0:
        return f"the result is {value:.6g}"
    return None


def _diagonal_gives_one(case: Case, result: Any, rerun: Any) -> str | None:
    weights, groups = case.args
    t, s = weights.shape[1:]
    diagonal = _one_hot(case, torch.arange(t).clamp(max=s - 1)[None, :])
    got = float(rerun(diagonal, groups))
    if not abs(got - 1.0) <= 1e-6:
        return f"an alignment that only moves forward (step t looks at position t) gave {got:.6g} instead of 1.0"
    return None


def _reversed_gives_zero(case: Case, result: Any, rerun: Any) -> str | None:
    weights, groups = case.args
    t, s = weights.shape[1:]
    if s < t:
        return None
    backwards = _one_hot(case, (t - 1 - torch.arange(t))[None, :])
    got = float(rerun(backwards, groups))
    if not abs(got) <= 1e-6:
        return f"an alignment that always moves backwards (step t looks at position T - 1 - t) gave {got:.6g} instead of 0.0"
    return None


def _only_the_argmax_matters(case: Case, result: Any, rerun: Any) -> str | None:
    weights, groups = case.args
    got = float(rerun(weights**2, groups))  # squaring keeps every row's largest weight where it is
    if not abs(got - float(result)) <= 1e-6:
        return f"squaring the weights (the largest one stays where it is) changed the result from {float(result):.6g} to {got:.6g}"
    return None


def _example_order_does_not_matter(case: Case, result: Any, rerun: Any) -> str | None:
    weights, groups = case.args
    if weights.shape[0] < 2:
        return None
    got = float(rerun(weights.flip(0), groups))
    if not abs(got - float(result)) <= 1e-6:
        return f"listing the examples in reverse order changed the result from {float(result):.6g} to {got:.6g}"
    return None


_MONOTONE_PROPERTIES = [
    Property("'the result lies in [0, 1]'", _in_unit_interval),
    Property("'an alignment that moves forward gives 1.0'", _diagonal_gives_one),
    Property("'an alignment that moves backwards gives 0.0'", _reversed_gives_zero),
    Property("'only the position of the largest weight matters'", _only_the_argmax_matters),
    Property("'the order of the examples does not matter'", _example_order_does_not_matter),
]

_MONOTONE_SPEC = Spec(reference=reference_monotone_fraction, cases=_monotone_cases, mistakes=_MONOTONE_MISTAKES,
                      properties=_MONOTONE_PROPERTIES, part="fraction", arg_names=("weights", "groups"))


def check_monotone_fraction(monotone_fraction_fn: Callable[..., float]) -> Callable[..., float]:
    """Exercise 3.3: ``monotone_fraction(weights, groups) -> float``; returns the function the analysis cells use
    (yours once it passes)."""
    return check(MONOTONE, _MONOTONE_SPEC, (monotone_fraction_fn,), (reference_monotone_fraction,),
                 "the fraction matches on {cases} cases (ISO fields, non-neighbouring steps, one "
                 "example, groups of one step, ties in the argmax, float64, fewer inputs than outputs)")
