"""The self-check of Exercise 13.1: message passing with scatter-add (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.graphs.message_passing import propagate

PROPAGATE = exercise(13, "13.1", "Message passing with scatter-add", "propagate")

PropagateFn = Callable[..., Tensor]


def reference_propagate(x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
    """The course's ``propagate`` with the exercise's signature."""
    return propagate(x, edge_index, edge_weight)


def _propagate_variant(kind: str) -> PropagateFn:
    """``propagate`` with one typical bug switched on (kind)."""

    def fn(x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        source, target = edge_index[0], edge_index[1]
        if kind == "at_source":
            source, target = target, source
        messages = x[target] if kind == "target_features" else x[source]
        if edge_weight is not None and kind != "no_weight":
            messages = messages * edge_weight.unsqueeze(-1)
        n = int(edge_index.max()) + 1 if kind == "size_from_edges" and edge_index.numel() else x.size(0)
        if kind == "overwrite":  # out[target] += messages keeps one message per target
            out = torch.zeros(n, x.size(1), dtype=x.dtype)
            out[target] += messages
            return out
        out = torch.zeros(n, x.size(1), dtype=x.dtype).index_add(0, target, messages)
        if kind == "mean":
            count = torch.zeros(n, dtype=x.dtype).index_add(0, target, torch.ones_like(target, dtype=x.dtype))
            out = out / count.clamp(min=1).unsqueeze(-1)
        if kind == "self":
            out = out + x
        if kind == "max":
            index = target.unsqueeze(-1).expand_as(messages)
            out = torch.zeros(n, x.size(1), dtype=x.dtype).scatter_reduce(0, index, messages, "amax",
                                                                          include_self=False)
        return out

    return fn


_PROPAGATE_MISTAKES = [
    Mistake("the messages are summed at the source instead of the target: column e of edge_index is the edge "
            "edge_index[0, e] -> edge_index[1, e], so x[edge_index[0]] is sent and index_add_ collects it at "
            "edge_index[1].", _propagate_variant("at_source")),
    Mistake("each message carries the target's own features x[edge_index[1]]: a message is the source's features, "
            "x[edge_index[0]], gathered once per edge.", _propagate_variant("target_features")),
    Mistake("`out[target] += messages` does not add up repeated indices (only one message per target survives): "
            "use out.index_add_(0, target, messages) or scatter_add_, which sum every message.",
            _propagate_variant("overwrite")),
    Mistake("the messages are averaged (divided by the in-degree): propagate sums them; the normalisation is "
            "gcn_norm's job (Exercise 13.2).", _propagate_variant("mean")),
    Mistake("the messages are combined with a max: propagate sums them (scatter-add).", _propagate_variant("max")),
    Mistake("each node's own features are added (a self-loop): propagate sums only the messages of the edges "
            "it is given; self-loops are added by gcn_norm.", _propagate_variant("self")),
    Mistake("the edge weights are ignored: when edge_weight is given, each message is edge_weight[e] * "
            "x[edge_index[0, e]].", _propagate_variant("no_weight")),
    Mistake("the number of nodes is taken from edge_index (its largest id + 1): a node without edges at the end "
            "is lost; the output has one row per row of x (x.size(0)).", _propagate_variant("size_from_edges")),
]


def _graph(pairs: list[tuple[int, int]]) -> Tensor:
    return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.contiguous()


def _propagate_cases() -> list[Case]:
    g = torch.Generator().manual_seed(131)

    def feats(n: int, f: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(n, f, generator=g, dtype=dtype)

    directed = _graph([(0, 1), (1, 2), (2, 0), (3, 1), (0, 3), (4, 1), (1, 4), (3, 4)])
    undirected = _graph([(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (3, 0), (0, 3), (4, 2), (2, 4), (5, 4),
                         (4, 5)])
    repeated = _graph([(0, 1), (0, 1), (2, 1), (1, 0), (2, 2), (3, 2), (3, 2), (3, 2)])
    isolated = _graph([(0, 1), (1, 0), (2, 1), (1, 3), (3, 2)])  # node 4 has no edge
    weighted = _graph([(0, 1), (1, 0), (1, 2), (2, 3), (3, 1), (3, 0), (0, 2)])
    return [
        Case("a directed graph of 5 nodes and 8 edges, x of shape (5, 3), no edge_weight (the default)",
             (feats(5, 3), directed)),
        Case("an undirected graph of 6 nodes (both directions of each edge), x of shape (6, 4)",
             (feats(6, 4), undirected)),
        Case("repeated edges (0 -> 1 twice, 3 -> 2 three times) and a self-loop 2 -> 2, x of shape (4, 2)",
             (feats(4, 2), repeated)),
        Case("edge weights (7 edges of 4 nodes, weights between 0.1 and 2), x of shape (4, 3)",
             (feats(4, 3), weighted, torch.rand(7, generator=g) * 1.9 + 0.1)),
        Case("node 4 isolated (no edge at all; x of shape (5, 2), ids up to 3 in edge_index)",
             (feats(5, 2), isolated)),
        Case("a single node and no edge (edge_index of shape (2, 0))", (feats(1, 3), _graph([])), grad=False),
        Case("a single node with a self-loop of weight 0.5", (feats(1, 2), _graph([(0, 0)]), torch.tensor([0.5]))),
        Case("one feature per node (x of shape (5, 1))", (feats(5, 1), directed)),
        Case("float64 features and float64 edge weights (x of shape (4, 3))",
             (feats(4, 3, torch.float64), weighted, torch.rand(7, generator=g, dtype=torch.float64) + 0.5)),
    ]


def _weights(case: Case) -> Tensor:
    x, edge_index = case.args[0], case.args[1]
    w = case.args[2] if len(case.args) > 2 and case.args[2] is not None else None
    return w if w is not None else torch.ones(edge_index.size(1), dtype=x.dtype)


def _total(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, edge_index = case.args[0], case.args[1]
    want = (x[edge_index[0]] * _weights(case).to(x.dtype).unsqueeze(-1)).sum(0)
    if not torch.allclose(out.sum(0), want, atol=1e-4, rtol=1e-4):
        return (f"the columns of your output sum to {[round(v, 4) for v in out.sum(0).tolist()]}, but the messages "
                f"sent (w_e * x[edge_index[0, e]] over all edges) sum to {[round(v, 4) for v in want.tolist()]}")
    return None


def _no_in_edges(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, edge_index = case.args[0], case.args[1]
    silent = torch.ones(x.size(0), dtype=torch.bool)
    silent[edge_index[1]] = False
    if silent.any() and out[silent].abs().max() > 0:
        node = int(silent.nonzero()[0])
        return f"node {node} receives no edge, yet its output row is {[round(v, 4) for v in out[node].tolist()]}, not 0"
    return None


def _permutation(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, edge_index = case.args[0], case.args[1]
    rest = case.args[2:]
    n = x.size(0)
    perm = torch.arange(n - 1, -1, -1)  # new id of node i is perm[i]
    x_new = torch.empty_like(x)
    x_new[perm] = x
    again = rerun(x_new, perm[edge_index], *rest)
    if not torch.allclose(again[perm], out, atol=1e-4, rtol=1e-4):
        return "numbering the nodes in reverse (and the edges with them) did not just renumber your output rows"
    return None


_PROPAGATE_PROPERTIES = [
    Property("'a node that receives no edge gets 0'", _no_in_edges),
    Property("'the output sums to the sum of the messages sent'", _total),
    Property("'renumbering the nodes renumbers the output'", _permutation),
]

_PROPAGATE_SPEC = Spec(reference=reference_propagate, cases=_propagate_cases, mistakes=_PROPAGATE_MISTAKES,
                       properties=_PROPAGATE_PROPERTIES, differentiable=True, part="output",
                       arg_names=("x", "edge_index", "edge_weight"))


def check_propagate(propagate_fn: PropagateFn) -> PropagateFn:
    """Exercise 13.1: ``propagate(x, edge_index, edge_weight=None) -> [N, F]``; returns the message passing the
    rest of the hour uses (yours once it passes)."""
    return check(PROPAGATE, _PROPAGATE_SPEC, (propagate_fn,), (reference_propagate,),
                 "values and gradients match on {cases} graphs (directed, undirected, repeated edges and a "
                 "self-loop, edge weights, an isolated node, a single node, float64)")
