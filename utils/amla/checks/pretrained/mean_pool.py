"""The self-check of Exercise 7.2: masked mean pooling of token embeddings (what it checks: the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.pretrained import mean_pool

MEAN_POOL = exercise(7, "7.2", "Masked mean pooling", "mean_pool")

PoolFn = Callable[[Tensor, Tensor], Tensor]


def reference_mean_pool(token_embeddings: Tensor, attention_mask: Tensor) -> Tensor:
    """The course's ``amla.transformers.pretrained.mean_pool``: the mean of the real tokens' vectors, [B, D]."""
    return mean_pool(token_embeddings, attention_mask)


def _variant(kind: str) -> PoolFn:
    def fn(token_embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        m = attention_mask.to(token_embeddings.dtype)
        if kind == "padding":
            return token_embeddings.mean(1)
        if kind == "by_t":
            return (token_embeddings * m.unsqueeze(-1)).sum(1) / token_embeddings.shape[1]
        if kind == "no_broadcast":  # [B, T, D] * [B, T]: an error, or silently the wrong axes when B = 1 and T = D
            return (token_embeddings * m).sum(1) / m.sum(1, keepdim=True)
        if kind == "batch_count":
            return (token_embeddings * m.unsqueeze(-1)).sum(1) / m.sum()
        if kind == "sum":
            return (token_embeddings * m.unsqueeze(-1)).sum(1)
        return (token_embeddings * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)
    return fn


_MISTAKES = [
    Mistake("the padding positions are averaged too: multiply by the mask before summing over T and divide by the "
            "number of real tokens, mask.sum(1).", _variant("padding")),
    Mistake("the masked sum is divided by T (the padded length): divide by each row's number of real tokens, "
            "attention_mask.sum(1, keepdim=True).", _variant("by_t")),
    Mistake("the mask [B, T] is not broadcast over the embedding dimension: [B, T, D] * [B, T] lines the mask up "
            "with the last two axes (an error, or the wrong axes when B = 1 and T = D); use "
            "attention_mask.unsqueeze(-1).", _variant("no_broadcast")),
    Mistake("the sum is divided by the number of real tokens of the whole batch: divide each row by its own count, "
            "attention_mask.sum(1, keepdim=True).", _variant("batch_count")),
    Mistake("the masked sum is not divided by the number of real tokens: a mean divides by the count.",
            _variant("sum")),
]


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(7)

    def randn(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    def lengths_mask(lengths: list[int], t: int, left: bool = False) -> Tensor:
        pos = torch.arange(t)
        n = torch.tensor(lengths).unsqueeze(1)
        return (pos >= t - n if left else pos < n).long()

    holes = torch.tensor([[1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 0, 0]])
    return [
        Case("right padding (lengths 5, 3, 2, 4), a long 0/1 mask, embeddings (4, 5, 8)",
             (randn(4, 5, 8), lengths_mask([5, 3, 2, 4], 5))),
        Case("left padding and a bool mask, embeddings (3, 6, 4)",
             (randn(3, 6, 4), lengths_mask([2, 6, 4], 6, left=True).bool())),
        Case("a row with one real token (lengths 1, 4), embeddings (2, 4, 3)", (randn(2, 4, 3), lengths_mask([1, 4], 4))),
        Case("an all-ones mask (no padding), embeddings (3, 4, 5)", (randn(3, 4, 5), torch.ones(3, 4, dtype=torch.long))),
        Case("float64 embeddings (2, 5, 3), lengths 3, 5", (randn(2, 5, 3, dtype=torch.float64), lengths_mask([3, 5], 5))),
        Case("a batch of one with T = D = 4 (mask [1, 1, 0, 0])", (randn(1, 4, 4), lengths_mask([2], 4))),
        Case("masks with holes (not only padding at an end), embeddings (2, 6, 3)", (randn(2, 6, 3), holes)),
        Case("embeddings as large as 1e4 (2, 3, 4), lengths 2, 3", (randn(2, 3, 4) * 1e4, lengths_mask([2, 3], 3)),
             rtol=1e-5),
    ]


def _padding_ignored(case: Case, out: Any, rerun: Any) -> str | None:
    x, mask = case.args
    pad = ~mask.bool()
    if not bool(pad.any()):
        return None
    changed = x.masked_fill(pad.unsqueeze(-1), 123.0)
    again = rerun(changed, mask)
    if torch.allclose(again, out, atol=1e-4, rtol=1e-4):
        return None
    return "setting the padded positions' vectors to 123 changed the result: padding must not count"


def _constant_rows(case: Case, out: Any, rerun: Any) -> str | None:
    x, mask = case.args
    v = torch.linspace(-1.0, 1.0, x.shape[-1], dtype=x.dtype)
    again = rerun(v.expand_as(x).clone(), mask)
    if torch.allclose(again, v.expand(x.shape[0], -1), atol=1e-5):
        return None
    return "when every token has the same vector v, the mean of the real tokens should be v"


_PROPERTIES = [Property("'the vectors at padded positions do not matter'", _padding_ignored),
               Property("'the mean of identical vectors is that vector'", _constant_rows)]

_SPEC = Spec(reference=reference_mean_pool, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             differentiable=True, part="pooled embeddings", arg_names=("token_embeddings", "attention_mask"))


def check_mean_pool(mean_pool: PoolFn) -> PoolFn:
    """Exercise 7.2: ``mean_pool(token_embeddings [B, T, D], attention_mask [B, T]) -> [B, D]``; returns the pooling
    the hour's sentence embeddings use (yours once it passes)."""
    return check(MEAN_POOL, _SPEC, (mean_pool,), (reference_mean_pool,),
                 "the pooled vectors and their gradients match on {cases} batches (right and left padding, bool and "
                 "long masks, one real token, no padding, float64, B = 1 with T = D, masks with holes)")
