"""WEAT (Caliskan et al. 2017) on sentence embeddings, SEAT-style (May et al. 2019): effect size and a
permutation p-value over equal-size re-partitions of the two target sets.

- ``association(w, A, B) -> [n]``, ``weat_effect_size(X, Y, A, B) -> float``,
  ``weat_p_value(X, Y, A, B, n_perm=10_000, generator=None) -> float``, ``seat_sentences(words, templates)``.

Targets X, Y and attributes A, B are [n, d] embedding matrices (the same d). ``s(w) = mean cos(w, A) - mean cos(w, B)``;
effect size ``d = (mean_X s - mean_Y s) / std_{X u Y} s`` (sample std, ddof=1); the one-sided p-value is the share
of partitions (X', Y') of X u Y with |X'| = |X| whose statistic ``sum_X' s - sum_Y' s`` is >= the observed one:
exact (every partition) when there are at most ``n_perm`` of them, else estimated from ``n_perm`` random partitions
drawn with ``generator`` (default: seeded with 0, so the value is repeatable) as ``(hits + 1) / (n_perm + 1)``, which
never reports 0 for a sampled test.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

__all__ = ["association", "seat_sentences", "weat_effect_size", "weat_p_value"]


def _check(name: str, t: Tensor) -> None:
    if not isinstance(t, Tensor) or t.dim() != 2 or not t.is_floating_point() or t.shape[0] < 1:
        raise ValueError(f"WEAT: {name} must be a float tensor [n >= 1, d], got "
                         f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")


def association(w: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``s(w, A, B)`` for every row of ``w``: mean cosine to A minus mean cosine to B, shape [n]."""
    for name, t in (("w", w), ("A", a), ("B", b)):
        _check(name, t)
    if not w.shape[1] == a.shape[1] == b.shape[1]:
        raise ValueError(f"WEAT: embeddings must share their size d, got w {tuple(w.shape)}, A {tuple(a.shape)}, "
                         f"B {tuple(b.shape)}")
    wn, an, bn = (torch.nn.functional.normalize(t.double(), dim=-1) for t in (w, a, b))
    return (wn @ an.T).mean(1) - (wn @ bn.T).mean(1)


def weat_effect_size(x: Tensor, y: Tensor, a: Tensor, b: Tensor) -> float:
    """Cohen's-d-like effect size of WEAT, in [-2, 2]."""
    sx, sy = association(x, a, b), association(y, a, b)
    both = torch.cat([sx, sy])
    if both.numel() < 2:
        raise ValueError("WEAT: need at least two target words in X and Y together")
    spread = both.std(unbiased=True)
    if float(spread) == 0.0:
        raise ValueError("WEAT: every target word has the same association s(w, A, B); the effect size is undefined")
    return float((sx.mean() - sy.mean()) / spread)


def weat_p_value(x: Tensor, y: Tensor, a: Tensor, b: Tensor, n_perm: int = 10_000,
                 generator: torch.Generator | None = None) -> float:
    """One-sided permutation p-value; exact (all partitions) when there are at most ``n_perm`` of them."""
    if not isinstance(n_perm, int) or n_perm < 1:
        raise ValueError(f"WEAT: n_perm must be a positive int, got {n_perm!r}")
    s = torch.cat([association(x, a, b), association(y, a, b)])
    nx, n = x.shape[0], s.numel()
    total = s.sum()
    observed = 2 * s[:nx].sum() - total
    if math.comb(n, nx) <= n_perm:  # exact: every partition, the observed one included
        idx = torch.tensor(list(itertools.combinations(range(n), nx)), dtype=torch.long)
        stats = 2 * s[idx].sum(1) - total
        return float((stats >= observed - 1e-12).double().mean())
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    idx = torch.rand(n_perm, n, generator=g).argsort(1)[:, :nx]  # n_perm random subsets of size |X|
    stats = 2 * s[idx].sum(1) - total
    return float(((stats >= observed - 1e-12).sum() + 1) / (n_perm + 1))


def seat_sentences(words: list[str], templates: tuple[str, ...] = ("This is {}.", "That is {}.", "Here is {}.")
                   ) -> list[list[str]]:
    """SEAT: each word placed in semantically bleached templates; one list of sentences per word."""
    if not words or not all(isinstance(w, str) and w for w in words):
        raise ValueError("seat_sentences: words must be a non-empty list of non-empty strings")
    return [[t.format(w) for t in templates] for w in words]
