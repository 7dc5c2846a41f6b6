"""The self-check of Exercise 4.1: splitting the heads (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.nn import split_heads

SPLIT = exercise(4, "4.1", "Split the heads", "split_heads")


def _split_variant(kind: str = "right") -> Callable[[Tensor, int], Tensor]:
    def split(x: Tensor, n_heads: int) -> Tensor:
        b, t, d = x.shape
        dh = d // n_heads
        if kind == "view_bhtd":  # reshape straight to [B, H, T, d_head]
            return x.reshape(b, n_heads, t, dh)
        if kind == "no_transpose":
            return x.reshape(b, t, n_heads, dh)
        if kind == "interleaved":  # head h gets features h, h + H, h + 2H, ...
            return x.reshape(b, t, dh, n_heads).permute(0, 3, 1, 2)
        if kind == "heads_is_dhead":  # n_heads used as the size of a head
            return x.reshape(b, t, d // n_heads, n_heads).transpose(1, 2)
        return x.reshape(b, t, n_heads, dh).transpose(1, 2)

    return split


_SPLIT_MISTAKES = [
    Mistake("x was reshaped straight to [B, H, T, d_head]: the shape is right but each 'head' now holds a block "
            "of whole positions. View the last axis as (H, d_head) first, x.view(B, T, H, d_head), then swap T "
            "and H with .transpose(1, 2).", _split_variant("view_bhtd")),
    Mistake("the head axis was not moved in front of the positions: x.view(B, T, H, d_head) is [B, T, H, d_head]; "
            "add .transpose(1, 2) to get [B, H, T, d_head].", _split_variant("no_transpose")),
    Mistake("the features were split as (d_head, H) instead of (H, d_head), so head h gets the strided features "
            "h, h + H, h + 2H, ...; each head must own a contiguous block of d_head features: "
            "x.view(B, T, H, d_head).", _split_variant("interleaved")),
    Mistake("the number of heads was used as the size of a head: x.view(B, T, d // H, H) gives [B, d_head, T, H] "
            "after the transpose; view the last axis as (H, d_head) = (n_heads, d // n_heads).",
            _split_variant("heads_is_dhead")),
]


def _split_cases() -> list[Case]:
    g = torch.Generator().manual_seed(41)

    def x(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    cases = [
        ("x of shape (2, 5, 12) and n_heads=3 (d_head = 4)", x(2, 5, 12), 3),
        ("x of shape (3, 6, 8) and n_heads=2 (d_head = 4)", x(3, 6, 8), 2),
        ("a single position (T = 1): x of shape (2, 1, 12) and n_heads=3", x(2, 1, 12), 3),
        ("a batch of one: x of shape (1, 5, 12) and n_heads=3", x(1, 5, 12), 3),
        ("one head: x of shape (2, 5, 6) and n_heads=1", x(2, 5, 6), 1),
        ("heads of size 1: x of shape (2, 5, 6) and n_heads=6 (d_head = 1)", x(2, 5, 6), 6),
        ("float64 x of shape (2, 5, 12) and n_heads=3", x(2, 5, 12, dtype=torch.float64), 3),
    ]
    return [Case(label, (t, h)) for label, t, h in cases]


def _merge_inverts(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, _ = case.args
    back = out.detach().transpose(1, 2).reshape(x.shape)
    if not torch.equal(back, x):
        return "merging the heads back, out.transpose(1, 2).reshape(B, T, d), does not give x"
    return None


def _heads_hold_their_features(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, n_heads = case.args
    dh = x.shape[-1] // n_heads
    for h in range(n_heads):
        if not torch.equal(out[:, h].detach(), x[..., h * dh:(h + 1) * dh]):
            return f"head {h} does not hold the features {h * dh} to {(h + 1) * dh - 1} of each position"
    return None


_SPLIT_PROPERTIES = [
    Property("'merge_heads(split_heads(x)) == x'", _merge_inverts),
    Property("'head h holds the features h * d_head to (h + 1) * d_head - 1 of every position'",
             _heads_hold_their_features),
]

_SPLIT_SPEC = Spec(reference=split_heads, cases=_split_cases, mistakes=_SPLIT_MISTAKES, properties=_SPLIT_PROPERTIES,
                   differentiable=True, arg_names=("x", "n_heads"))


def check_split_heads(split_heads_fn: Callable[[Tensor, int], Tensor]) -> Callable[[Tensor, int], Tensor]:
    """Exercise 4.1: ``split_heads(x [B, T, H*d_head], n_heads) -> [B, H, T, d_head]``; returns the function the
    rest of the hour uses (yours once it passes)."""
    return check(SPLIT, _SPLIT_SPEC, (split_heads_fn,), (split_heads,),
                 "values, shapes and gradients match on {cases} cases (one position, a batch of one, "
                 "one head, heads of size 1, float64)")
