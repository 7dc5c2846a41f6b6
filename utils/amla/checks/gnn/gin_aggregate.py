"""The self-check of Exercise 14.2: the GIN aggregation ``(1 + eps) x_i + sum_{j -> i} x_j``.

Cases: a directed graph whose in- and out-neighbours differ (GIN-0, ``eps = 0.0``), an undirected graph with
``eps = 0.25``, a learnable ``eps`` (a 0-d tensor, as ``GINLayer`` passes it; gradients reach it), an isolated
node, a graph of one node and no edge (``edge_index`` of shape (2, 0)), a repeated edge and a self-loop (both
count), a batch of two graphs with the edges in random order, float64 features. Mistakes named: summing into the
source instead of the target, a mean or a max of the neighbours, the self term missing, ``eps`` ignored, ``eps``
without the 1, ``(1 + eps)`` on the neighbours, repeated edges counted once, the graph made undirected, self-loops
dropped. Properties: relabelling the nodes permutes the rows (equivariance); one more edge ``a -> b`` adds
``x_a`` to row ``b`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.graphs.pooling import gin_aggregate

GIN_AGGREGATE = exercise(14, "14.2", "The GIN aggregation", "gin_aggregate")

GinAggregate = Callable[[Tensor, Tensor, Any], Tensor]


def reference_gin_aggregate(x: Tensor, edge_index: Tensor, eps: Any) -> Tensor:
    """The course's ``gin_aggregate`` with the exercise's signature."""
    return gin_aggregate(x, edge_index, eps)


def _gin_variant(kind: str) -> GinAggregate:
    """A GIN aggregation with one typical bug switched on (kind)."""

    def fn(x: Tensor, edge_index: Tensor, eps: Any) -> Tensor:
        source, target = edge_index
        if kind == "source":  # messages flow the wrong way
            source, target = target, source
        if kind == "undirected":
            source, target = torch.cat([source, target]), torch.cat([target, source])
        if kind == "no_loops":
            keep = source != target
            source, target = source[keep], target[keep]
        if kind == "unique":  # a dense adjacency filled with = 1 counts a repeated edge once
            adj = torch.zeros(x.shape[0], x.shape[0], dtype=x.dtype)
            adj[target, source] = 1
            neigh = adj @ x
        else:
            neigh = torch.zeros_like(x).index_add(0, target, x[source])
        if kind == "mean":
            neigh = neigh / torch.bincount(target, minlength=x.shape[0]).clamp(min=1).to(x.dtype)[:, None]
        if kind == "max":
            neigh = torch.zeros_like(x).scatter_reduce(0, target[:, None].expand(-1, x.shape[1]), x[source], "amax",
                                                       include_self=False)
        if kind == "no_self":
            return neigh
        if kind == "no_eps":
            return x + neigh
        if kind == "eps_only":
            return eps * x + neigh
        if kind == "eps_neighbours":
            return x + (1 + eps) * neigh
        return (1 + eps) * x + neigh

    return fn


_GIN_MISTAKES = [
    Mistake("the messages go into the source: an edge (j, i) in edge_index (row 0 the source j, row 1 the target "
            "i) adds x_j to row i, so index_add over edge_index[1] with x[edge_index[0]].", _gin_variant("source")),
    Mistake("the neighbours are averaged: GIN sums them (a mean cannot tell 2 neighbours of one kind from 4 of the "
            "same kind, a sum can).", _gin_variant("mean")),
    Mistake("the neighbours are max-pooled: GIN sums them (a max only sees which features occur, not how often).",
            _gin_variant("max")),
    Mistake("the node's own term (1 + eps) x_i is missing: add it to the sum of the neighbours.",
            _gin_variant("no_self")),
    Mistake("eps is ignored: the node's own features are weighted by (1 + eps), not 1.", _gin_variant("no_eps")),
    Mistake("the 1 of (1 + eps) is missing: with eps = 0 (GIN-0) the node must still count once, (1 + eps) x_i.",
            _gin_variant("eps_only")),
    Mistake("(1 + eps) weights the neighbours instead of the node itself: (1 + eps) x_i + sum_j x_j.",
            _gin_variant("eps_neighbours")),
    Mistake("an edge listed twice is counted once (a dense adjacency filled with `= 1`, or unique edges): every "
            "column of edge_index is one message, so a repeated edge adds its source twice (index_add does that).",
            _gin_variant("unique")),
    Mistake("the graph was made undirected (edges added in both directions): use the edges as given, each column "
            "(j, i) a message from j to i only.", _gin_variant("undirected")),
    Mistake("self-loops were dropped: an edge (i, i) in edge_index is a message like any other and adds x_i once "
            "more.", _gin_variant("no_loops")),
]


def _gin_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1402)

    def feats(n: int, f: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(n, f, generator=g, dtype=dtype)

    def edges(pairs: list[tuple[int, int]]) -> Tensor:
        return torch.tensor(pairs, dtype=torch.long).t().contiguous()

    directed = edges([(0, 1), (0, 2), (1, 2), (3, 2), (2, 4), (4, 5), (5, 0), (3, 5)])
    ring = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (1, 3)]
    undirected = edges(ring + [(b, a) for a, b in ring])
    isolated = edges([(0, 1), (1, 0), (1, 2), (2, 1)])  # node 3 has no edge at all
    repeated = edges([(0, 1), (0, 1), (2, 2), (1, 2), (2, 0)])
    pairs = [(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3), (4, 5), (5, 3), (6, 3)]  # graphs {0,1,2} and {3,...,6}
    order = torch.randperm(len(pairs), generator=g)
    two = edges([pairs[int(k)] for k in order])
    return [
        Case("a directed graph (6 nodes, 8 edges, in- and out-neighbours differ) and eps = 0.0 (GIN-0)",
             (feats(6, 4), directed, 0.0)),
        Case("an undirected graph (5 nodes, each edge in both directions) and eps = 0.25",
             (feats(5, 3), undirected, 0.25)),
        Case("a learnable eps, a 0-d tensor torch.tensor(-0.4), on the directed graph",
             (feats(6, 4), directed, torch.tensor(-0.4))),
        Case("an isolated node (node 3 of 4 has no edge) and eps = 0.5", (feats(4, 2), isolated, 0.5)),
        Case("a graph of one node and no edge (edge_index of shape (2, 0)) and eps = 0.1",
             (feats(1, 3), torch.zeros(2, 0, dtype=torch.long), 0.1)),
        Case("a repeated edge (0 -> 1 twice) and a self-loop (2 -> 2), eps = 0.2", (feats(3, 3), repeated, 0.2)),
        Case("a batch of two graphs (3 and 4 nodes) with the edges in random order, eps = 0.3",
             (feats(7, 5), two, 0.3)),
        Case("float64 features on the directed graph, eps = 0.7", (feats(6, 2, torch.float64), directed, 0.7)),
    ]


def _equivariant(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, edge_index, eps = case.args
    n = x.shape[0]
    if n < 2:
        return None
    perm = torch.roll(torch.arange(n), 1).flip(0)  # new node k is old node perm[k]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(n)
    again = rerun(x[perm], inverse[edge_index], eps)
    if not torch.allclose(again, out[perm], atol=1e-5, rtol=1e-4):
        return ("relabelling the nodes (and the edges with them) should permute the rows of the result the same "
                "way, but the rows changed: the result may not depend on the node order")
    return None


def _one_more_edge(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, edge_index, eps = case.args
    n = x.shape[0]
    if n < 2:
        return None
    a, b = n - 1, 0
    again = rerun(x, torch.cat([edge_index, torch.tensor([[a], [b]])], 1), eps)
    want = out.clone()
    want[b] = want[b] + x[a]
    if not torch.allclose(again, want, atol=1e-5, rtol=1e-4):
        rows = [int(r) for r in (again - want).abs().amax(1).nonzero().flatten()]
        return (f"one more edge {a} -> {b} should add x_{a} to row {b} and change nothing else, but rows {rows} are "
                "not what that gives")
    return None


_GIN_PROPERTIES = [
    Property("'relabelling the nodes permutes the rows (permutation equivariance)'", _equivariant),
    Property("'one more edge a -> b adds x_a to row b only'", _one_more_edge),
]

_GIN_SPEC = Spec(reference=reference_gin_aggregate, cases=_gin_cases, mistakes=_GIN_MISTAKES,
                 properties=_GIN_PROPERTIES, differentiable=True, part="aggregate")


def check_gin_aggregate(gin_aggregate_fn: GinAggregate) -> GinAggregate:
    """Exercise 14.2: ``gin_aggregate(x [N, F], edge_index [2, E], eps) -> [N, F]``; returns the aggregation the
    hour's GIN is built from (yours once it passes)."""
    return check(GIN_AGGREGATE, _GIN_SPEC, (gin_aggregate_fn,), (reference_gin_aggregate,),
                 "values and gradients match on {cases} cases (a directed graph, eps as a float and as a learnable "
                 "tensor, an isolated node, one node without edges, a repeated edge and a self-loop, two graphs in "
                 "one batch, float64)")
