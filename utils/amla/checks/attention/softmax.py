"""The self-check of Exercise 2.1: a numerically stable softmax (what it checks: the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.attention._common import _NEG_INF
from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.attention import softmax

SOFTMAX = exercise(2, "2.1", "Stable softmax", "softmax")


def _softmax_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    big = torch.randn(4, 7, generator=g) * 3
    big[0] += 1000.0  # exp(1000) overflows float32
    big[1] -= 1000.0  # far below the tensor's maximum: needs the *row* maximum
    big[2, [1, 4]] = _NEG_INF  # masked entries must get weight exactly 0
    dead = torch.randn(3, 5, generator=g)
    dead[1] = _NEG_INF  # a slice with no finite entry: any answer there; the other slices must be right
    keep_rows = torch.tensor([True, False, True])
    return [
        Case("x of shape (4, 7) holding values near +1000 and near -1000 and two -inf, dim=-1", (big, -1)),
        Case("x of shape (3, 5, 6), dim=-1", (torch.randn(3, 5, 6, generator=g) * 4, -1)),
        Case("x of shape (3, 5, 6), dim=1", (torch.randn(3, 5, 6, generator=g) * 4, 1)),
        Case("x of shape (5, 3), dim=0", (torch.randn(5, 3, generator=g), 0)),
        Case("x of shape (2, 4, 3), dim=-2", (torch.randn(2, 4, 3, generator=g), -2)),
        Case("logits as large as 1e4 (shape (2, 6)), dim=-1", (torch.randn(2, 6, generator=g) * 1e4, -1),
             grad=False),  # saturated rows: float32 rounding dominates their tiny gradients
        Case("a single entry along dim (shape (3, 1)), dim=-1", (torch.randn(3, 1, generator=g), -1)),
        Case("float64 input (shape (2, 5)), dim=-1", (torch.randn(2, 5, generator=g, dtype=torch.float64), -1)),
        Case("a row that is all -inf (shape (3, 5), row 1), dim=-1", (dead, -1), grad=False,
             view=lambda out: out[keep_rows]),
    ]


def _softmax_variant(kind: str) -> Callable[[Tensor, int], Tensor]:
    """A softmax with one typical bug switched on (kind)."""

    def fn(x: Tensor, dim: int = -1) -> Tensor:
        if kind == "ignores_dim":
            dim = -1
        elif kind == "wrong_axis":
            dim = (dim - 1) if dim != 0 else 1
        if kind == "naive":
            shifted = x
        elif kind == "global_max":
            shifted = x - x.max()
        elif kind == "min":
            shifted = x - x.amin(dim=dim, keepdim=True)
        elif kind == "no_keepdim":
            shifted = x - x.max(dim=dim).values
        else:
            shifted = x - x.amax(dim=dim, keepdim=True)
        e = torch.exp(shifted)
        if kind == "no_normalise":
            return e
        if kind == "global_sum":
            return e / e.sum()
        return e / e.sum(dim=dim, keepdim=True)

    return fn


_SOFTMAX_MISTAKES = [
    Mistake("the exponentials overflow: exp(1000) is inf in float32, and inf / inf is nan. Subtract the maximum "
            "of each row first, x - x.amax(dim, keepdim=True); it cancels in the ratio.", _softmax_variant("naive")),
    Mistake("the maximum of the whole tensor is subtracted instead of each row's: a row far below it (here around "
            "-1000) underflows to exp(...) = 0 everywhere, and 0 / 0 is nan. Use x.amax(dim, keepdim=True).",
            _softmax_variant("global_max")),
    Mistake("the minimum is subtracted instead of the maximum, so the largest exponentials still overflow.",
            _softmax_variant("min")),
    Mistake("the maximum is taken without keepdim=True, so it cannot broadcast back against x "
            "(x.amax(dim, keepdim=True) keeps the reduced axis with size 1).", _softmax_variant("no_keepdim")),
    Mistake("the softmax is taken over the wrong axis: normalise along `dim`.", _softmax_variant("wrong_axis")),
    Mistake("the `dim` argument is ignored: the softmax is always taken over the last axis.",
            _softmax_variant("ignores_dim")),
    Mistake("the exponentials are not divided by their sum along `dim`, so they do not sum to 1.",
            _softmax_variant("no_normalise")),
    Mistake("the exponentials are divided by the sum over the whole tensor instead of along `dim` "
            "(use .sum(dim, keepdim=True)).", _softmax_variant("global_sum")),
]


def _finite_slices(x: Tensor, dim: int) -> Tensor:
    return torch.isfinite(x).any(dim=dim, keepdim=True).expand_as(x)


def _softmax_finite(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, dim = case.args
    bad = ~torch.isfinite(out) & _finite_slices(x, dim)
    if bool(bad.any()):
        return f"{int(bad.sum())} entries are nan or inf: an exponential overflowed (or 0 / 0); subtract the maximum first"
    return None


def _softmax_sums_to_one(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, dim = case.args
    rows = torch.isfinite(x).any(dim=dim)
    sums = out.double().sum(dim=dim)[rows]
    if sums.numel() and not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return f"the sums along dim={dim} range from {sums.min().item():.4g} to {sums.max().item():.4g}"
    return None


def _softmax_zero_at_minus_inf(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, dim = case.args
    masked = (x == _NEG_INF) & _finite_slices(x, dim)
    if bool(masked.any()) and bool((out[masked] != 0).any()):
        return f"an entry of -inf got {out[masked].abs().max().item():.3g} instead of exactly 0"
    return None


def _softmax_shift_invariant(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, dim = case.args
    if x.abs().max() > 100:  # only where adding 7 cannot overflow a correct solution
        return None
    shifted = rerun(x + 7.0, dim)
    if isinstance(shifted, Tensor) and shifted.shape == out.shape and not torch.allclose(shifted, out, atol=1e-5):
        return "adding 7 to every entry changed the result, but the softmax of x + c equals the softmax of x"
    return None


_SOFTMAX_PROPERTIES = [
    Property("'the result is finite'", _softmax_finite),
    Property("'the entries along dim sum to 1'", _softmax_sums_to_one),
    Property("'an entry of -inf gets exactly 0'", _softmax_zero_at_minus_inf),
    Property("'softmax(x + c) = softmax(x)'", _softmax_shift_invariant),
]


def _no_library_softmax(source: str) -> str | None:
    if re.search(r"\.softmax\s*\(|\bSoftmax\s*\(|\bsoftmax\s*\(", source.replace("def softmax", "")):
        return "write it with torch.exp, amax and sum: calling a library softmax skips the point of the exercise."
    return None


_SOFTMAX_SPEC = Spec(reference=softmax, cases=_softmax_cases, mistakes=_SOFTMAX_MISTAKES,
                     properties=_SOFTMAX_PROPERTIES, differentiable=True, source_rules=[_no_library_softmax])


def check_softmax(softmax_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 2.1: ``softmax(x, dim)``; returns the softmax the rest of the hour uses (yours once it passes)."""
    return check(SOFTMAX, _SOFTMAX_SPEC, (softmax_fn,), (softmax,),
                 "stable near +-1000 and 1e4, exact zeros for -inf, any dim, float64 kept, gradients right "
                 "({cases} cases)")
