"""The self-check of Exercise 13.2: the GCN normalisation (what it checks: the package docstring).

The edges may come back in any order (self-loops first or last), so what is compared is the matrix they make:
``A_hat [N, N]`` with ``A_hat[i, j]`` = the summed weight of the returned edges ``j -> i``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.graphs.message_passing import gcn_norm

GCN_NORM = exercise(13, "13.2", "The GCN normalisation", "gcn_norm")

NormFn = Callable[..., tuple[Tensor, Tensor]]


def reference_gcn_norm(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None,
                       add_self_loops: bool = True) -> tuple[Tensor, Tensor]:
    """The course's ``gcn_norm`` with the exercise's signature."""
    return gcn_norm(edge_index, num_nodes, edge_weight, add_self_loops)


def _as_matrix(fn: NormFn, edge_index: Tensor, num_nodes: int, *rest: Any) -> Tensor:
    """Call ``fn`` and turn its ``(edge_index, edge_weight)`` into the dense ``A_hat [N, N]`` (order-free)."""
    out = fn(edge_index, num_nodes, *rest)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"gcn_norm must return the pair (edge_index, edge_weight), got {type(out).__name__}"
                        + (f" of {len(out)} items" if isinstance(out, (tuple, list)) else ""))
    ei, w = out
    if not isinstance(ei, Tensor) or ei.dtype != torch.long or ei.dim() != 2 or ei.size(0) != 2:
        what = f"dtype {ei.dtype}, shape {tuple(ei.shape)}" if isinstance(ei, Tensor) else type(ei).__name__
        raise TypeError(f"the edge_index returned must be a torch.long tensor of shape [2, E], got {what}")
    if not isinstance(w, Tensor) or tuple(w.shape) != (ei.size(1),):
        what = f"shape {tuple(w.shape)}" if isinstance(w, Tensor) else type(w).__name__
        raise TypeError(f"the edge_weight returned must have one weight per returned edge, shape ({ei.size(1)},), "
                        f"got {what}")
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
        raise ValueError(f"the edge_index returned holds node ids outside [0, {num_nodes - 1}]")
    a = torch.zeros(num_nodes, num_nodes, dtype=w.dtype)
    return a.index_put((ei[1], ei[0]), w, accumulate=True)


def _gcn_norm_variant(kind: str) -> NormFn:
    """``gcn_norm`` with one typical bug switched on (kind)."""

    def fn(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None,
           add_self_loops: bool = True) -> tuple[Tensor, Tensor]:
        w = edge_weight if edge_weight is not None and kind != "no_weight" else torch.ones(edge_index.size(1))
        loops = (add_self_loops or kind == "loops_always") and kind != "no_loops"
        ei = edge_index
        deg_a = torch.zeros(num_nodes, dtype=w.dtype).index_add(0, ei[1], w)
        if loops:
            keep = ei[0] != ei[1] if kind != "double_loops" else torch.ones(ei.size(1), dtype=torch.bool)
            loop_w = torch.ones(num_nodes, dtype=w.dtype)
            if kind != "double_loops":
                loop_w = loop_w.index_put((ei[0][~keep],), w[~keep])
            nodes = torch.arange(num_nodes)
            ei = torch.cat([ei[:, keep], torch.stack([nodes, nodes])], 1)
            w = torch.cat([w[keep], loop_w])
        source, target = ei[0], ei[1]
        deg_at = source if kind == "deg_source" else target
        count = torch.ones_like(w) if kind == "deg_unweighted" else w
        deg = torch.zeros(num_nodes, dtype=w.dtype).index_add(0, deg_at, count)
        if kind == "deg_before_loops":
            deg = deg_a
        if kind == "d_inv":
            inv = deg.pow(-1.0).masked_fill(deg == 0, 0.0)
            return ei, w * inv[target]
        if kind == "d_inv_both":
            inv = deg.pow(-1.0).masked_fill(deg == 0, 0.0)
            return ei, inv[source] * w * inv[target]
        inv_sqrt = deg.pow(-0.5)
        if kind != "inf":
            inv_sqrt = inv_sqrt.masked_fill(deg == 0, 0.0)
        if kind == "one_side":
            return ei, w * inv_sqrt[target]
        return ei, inv_sqrt[source] * w * inv_sqrt[target]

    return fn


_GCN_NORM_MISTAKES = [
    Mistake("the self-loops are missing: A_hat is A + I, so add the edge i -> i (weight 1) to every node that has "
            "none before counting the degrees.", _gcn_norm_variant("no_loops")),
    Mistake("self-loops are added even with add_self_loops=False: add them only when it is True.",
            _gcn_norm_variant("loops_always")),
    Mistake("a node that already has a self-loop gets a second one: like GCNConv (add_remaining_self_loops), add "
            "self-loops only to the nodes without one, and keep the weight of an existing loop.",
            _gcn_norm_variant("double_loops")),
    Mistake("the degree is counted before the self-loops are added: D is the degree of A + I (each node's degree "
            "includes its own loop).", _gcn_norm_variant("deg_before_loops")),
    Mistake("the normalisation is D^-1 A_hat (each edge divided by the target's degree), the random-walk "
            "normalisation: GCN's is symmetric, w_ji / sqrt(d_j d_i).", _gcn_norm_variant("d_inv")),
    Mistake("the degrees enter as D^-1 on both sides: each side takes D^-1/2, deg.pow(-0.5), so the edge j -> i "
            "gets w_ji / sqrt(d_j d_i).", _gcn_norm_variant("d_inv_both")),
    Mistake("only one side is normalised (w_ji / sqrt(d_i)): the edge j -> i gets deg^-1/2 of its source *and* of "
            "its target.", _gcn_norm_variant("one_side")),
    Mistake("the degree is counted at the source (out-degree, edge_index[0]): GCNConv counts it at the target, "
            "edge_index[1], the node that sums the messages.", _gcn_norm_variant("deg_source")),
    Mistake("the degree counts edges but ignores their weights: with edge_weight given, d_i is the sum of the "
            "weights of the edges into i (self-loop included).", _gcn_norm_variant("deg_unweighted")),
    Mistake("the edge weights are ignored: start from edge_weight when it is given (ones otherwise).",
            _gcn_norm_variant("no_weight")),
    Mistake("a zero degree gives deg^-1/2 = inf (and inf * 0 = nan): set deg^-1/2 to 0 where the degree is 0, e.g. "
            "deg_inv_sqrt.masked_fill(deg == 0, 0).", _gcn_norm_variant("inf")),
]


def _graph(pairs: list[tuple[int, int]]) -> Tensor:
    return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.contiguous()


def _gcn_norm_cases() -> list[Case]:
    g = torch.Generator().manual_seed(132)
    undirected = _graph([(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (3, 1), (3, 4), (4, 3)])
    # node 0 only sends, node 4 only receives: in- and out-degrees differ
    directed = _graph([(0, 1), (0, 2), (1, 2), (2, 3), (3, 1), (3, 4), (1, 4), (0, 4)])
    looped = _graph([(0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 0)])  # node 1 has a self-loop already
    isolated = _graph([(0, 1), (1, 0), (1, 2), (2, 1)])  # nodes 3 and 4 have no edge
    weighted = torch.rand(8, generator=g) * 1.9 + 0.1
    return [
        Case("an undirected graph of 5 nodes (the defaults: no edge_weight, add_self_loops=True)", (undirected, 5)),
        Case("a directed graph of 5 nodes (node 0 only sends, node 4 only receives)", (directed, 5)),
        Case("a directed graph and add_self_loops=False (node 0 receives nothing: its degree is 0)",
             (directed, 5, None, False)),
        Case("edge weights between 0.1 and 2 on a directed graph", (directed, 5, weighted)),
        Case("edge weights and add_self_loops=False", (directed, 5, weighted, False)),
        Case("a graph where node 1 already has a self-loop of weight 3", (looped, 3, torch.tensor(
            [1.0, 1.0, 3.0, 1.0, 0.5, 2.0]))),
        Case("two isolated nodes (num_nodes=5, ids up to 2 in edge_index)", (isolated, 5)),
        Case("a single node and no edge (edge_index of shape (2, 0))", (_graph([]), 1)),
        Case("a single node, no edge and add_self_loops=False", (_graph([]), 1, None, False)),
        Case("float64 edge weights (the weights returned stay float64)",
             (directed, 5, torch.rand(8, generator=g, dtype=torch.float64) + 0.5)),
    ]


def _finite(case: Case, out: Tensor, rerun: Any) -> str | None:
    if not bool(out.isfinite().all()):
        return "some weights are inf or nan (a degree of 0 raised to the power -1/2?)"
    return None


def _symmetric(case: Case, out: Tensor, rerun: Any) -> str | None:
    edge_index, n = case.args[0], case.args[1]
    a = torch.zeros(n, n).index_put((edge_index[1], edge_index[0]), torch.ones(edge_index.size(1)), accumulate=True)
    if len(case.args) > 2 or not torch.equal(a, a.T):
        return None  # only for undirected, unweighted graphs
    if not torch.allclose(out, out.T, atol=1e-5):
        return "on an undirected graph the weight of i -> j must equal that of j -> i (D^-1/2 on both sides)"
    return None


def _eigenvector(case: Case, out: Tensor, rerun: Any) -> str | None:
    edge_index, n = case.args[0], case.args[1]
    a = torch.zeros(n, n).index_put((edge_index[1], edge_index[0]), torch.ones(edge_index.size(1)), accumulate=True)
    if len(case.args) > 2 or not torch.equal(a, a.T):
        return None
    d = (a + torch.eye(n) * (a.diagonal() == 0)).sum(1).to(out.dtype)
    if not torch.allclose(out @ d.sqrt(), d.sqrt(), atol=1e-4):
        return ("A_hat sqrt(d) should equal sqrt(d) (d: the degrees of A + I), as it does for D^-1/2 (A + I) D^-1/2; "
                f"got {[round(v, 3) for v in (out @ d.sqrt()).tolist()]} for {[round(v, 3) for v in d.sqrt().tolist()]}")
    return None


_GCN_NORM_PROPERTIES = [
    Property("'every weight is finite'", _finite),
    Property("'an undirected graph gives a symmetric A_hat'", _symmetric),
    Property("'A_hat sqrt(d) = sqrt(d) on an undirected graph'", _eigenvector),
]

_GCN_NORM_SPEC = Spec(reference=reference_gcn_norm, cases=_gcn_norm_cases, mistakes=_GCN_NORM_MISTAKES,
                      properties=_GCN_NORM_PROPERTIES, invoke=_as_matrix, differentiable=True,
                      part="A_hat (the matrix your edges and weights make)",
                      arg_names=("edge_index", "num_nodes", "edge_weight", "add_self_loops"))


def check_gcn_norm(gcn_norm_fn: NormFn) -> NormFn:
    """Exercise 13.2: ``gcn_norm(edge_index, num_nodes, edge_weight=None, add_self_loops=True) -> (edge_index,
    edge_weight)``; returns the normalisation the rest of the hour uses (yours once it passes)."""
    return check(GCN_NORM, _GCN_NORM_SPEC, (gcn_norm_fn,), (reference_gcn_norm,),
                 "A_hat and its gradients match on {cases} graphs (undirected, directed, add_self_loops=False with "
                 "a zero degree, edge weights, an existing self-loop, isolated nodes, a single node, float64)")
