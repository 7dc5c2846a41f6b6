"""The self-check of Exercise 14.1: GAT's attention weights on edges (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.graphs.gat import gat_attention

GAT_ATTENTION = exercise(14, "14.1", "Attention on the edges", "gat_attention")


def reference_gat_attention(alpha_src: Tensor, alpha_dst: Tensor, edge_index: Tensor,
                            negative_slope: float = 0.2) -> Tensor:
    """The course's ``amla.graphs.gat.gat_attention`` with the exercise's signature."""
    return gat_attention(alpha_src, alpha_dst, edge_index, negative_slope)


def _group_softmax(scores: Tensor, index: Tensor, n: int, stable: bool = True) -> Tensor:
    idx = index.unsqueeze(-1).expand_as(scores)
    if stable:
        top = scores.new_full((n, scores.size(1)), -torch.inf).scatter_reduce(0, idx, scores.detach(), "amax")
        e = (scores - top[index]).exp()
    else:
        e = scores.exp()
    return e / scores.new_zeros(n, scores.size(1)).scatter_add(0, idx, e)[index]


def _attention_variant(kind: str) -> Callable[..., Tensor]:
    """An attention function with one typical bug switched on (kind)."""

    def fn(alpha_src: Tensor, alpha_dst: Tensor, edge_index: Tensor, negative_slope: float = 0.2) -> Tensor:
        n = int(edge_index.max()) + 1 if kind == "nodes_from_edges" and edge_index.numel() else alpha_src.size(0)
        loops = torch.arange(n, device=edge_index.device)
        if kind == "no_loops":
            src, dst = edge_index[0], edge_index[1]
        elif kind == "loops_first":
            src, dst = torch.cat([loops, edge_index[0]]), torch.cat([loops, edge_index[1]])
        else:
            src, dst = torch.cat([edge_index[0], loops]), torch.cat([edge_index[1], loops])
        raw = alpha_dst[src] + alpha_src[dst] if kind == "swapped" else alpha_src[src] + alpha_dst[dst]
        slope = {"slope_001": 0.01, "slope_fixed": 0.2}.get(kind, negative_slope)
        if kind == "relu":
            scores = F.relu(raw)
        elif kind == "no_leaky":
            scores = raw
        else:
            scores = F.leaky_relu(raw, slope)
        n_all = alpha_src.size(0)
        if kind == "global":
            return torch.softmax(scores, dim=0)
        if kind == "heads":
            return torch.softmax(scores, dim=1)
        if kind == "outgoing":
            return _group_softmax(scores, src, n_all)
        return _group_softmax(scores, dst, n_all, stable=kind != "no_max")

    return fn


_MISTAKES = [
    Mistake("the softmax runs over each node's outgoing edges (grouped by edge_index[0], the source): GAT normalises "
            "over the incoming edges of each target i, so group by edge_index[1].", _attention_variant("outgoing")),
    Mistake("the score of the edge j -> i uses alpha_src of the target and alpha_dst of the source: it is "
            "alpha_src[j] + alpha_dst[i], with j = edge_index[0] (the source) and i = edge_index[1] (the target).",
            _attention_variant("swapped")),
    Mistake("the softmax runs over all the edges at once (dim 0), not over each node's incoming edges: the weights "
            "of one target must sum to 1, not those of the whole graph.", _attention_variant("global")),
    Mistake("the softmax runs over the heads (dim 1): each head has its own softmax over a node's incoming edges.",
            _attention_variant("heads")),
    Mistake("the exponentials are taken without subtracting each target's maximum score first: exp(1e4) is inf and "
            "inf / inf is NaN. Subtract the maximum over each node's incoming edges (scatter_reduce with 'amax') "
            "before exp.", _attention_variant("no_max")),
    Mistake("the LeakyReLU has slope 0.01, F.leaky_relu's default: GAT uses negative_slope (0.2), pass it on: "
            "F.leaky_relu(scores, negative_slope).", _attention_variant("slope_001")),
    Mistake("the scores go through a ReLU: GAT uses a LeakyReLU (slope negative_slope = 0.2), so negative scores "
            "keep a gradient and an order.", _attention_variant("relu")),
    Mistake("the scores skip the LeakyReLU: apply F.leaky_relu(alpha_src[j] + alpha_dst[i], negative_slope) before "
            "the softmax.", _attention_variant("no_leaky")),
    Mistake("the slope 0.2 is written into the code, so the negative_slope argument is ignored: use the argument.",
            _attention_variant("slope_fixed")),
    Mistake("the self-loops are missing: every node also attends to itself, so add the edges i -> i (one per node, "
            "after the E given edges) before the softmax; the result has E + N rows.", _attention_variant("no_loops")),
    Mistake("the self-loops come first: the result lists the E given edges first, in their order, then the N "
            "self-loops 0 -> 0, ..., N-1 -> N-1 (as torch_geometric.utils.add_self_loops appends them).",
            _attention_variant("loops_first")),
    Mistake("the number of nodes is taken from edge_index.max() + 1, which misses a node without any edge: take it "
            "from alpha_src.shape[0].", _attention_variant("nodes_from_edges")),
]


def _graph(pairs: list[tuple[int, int]]) -> Tensor:
    return torch.tensor(pairs, dtype=torch.long).T.contiguous()


def _random_graph(n: int, e: int, g: torch.Generator) -> Tensor:
    """``e`` distinct directed edges without self-loops, in random order."""
    pairs = torch.randperm(n * n, generator=g)
    pairs = pairs[(pairs // n) != (pairs % n)][:e]
    return torch.stack([pairs // n, pairs % n])


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(141)

    def alphas(n: int, heads: int, scale: float = 1.5, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        return (torch.randn(n, heads, generator=g, dtype=dtype) * scale,
                torch.randn(n, heads, generator=g, dtype=dtype) * scale)

    # in-degrees 3, 1, 2, 0, 1, 2 and out-degrees 2, 2, 1, 3, 1, 0: grouping by source or target differs
    small = _graph([(1, 0), (3, 0), (4, 0), (0, 1), (0, 2), (3, 2), (1, 4), (2, 5), (3, 5)])
    chain = _graph([(0, 1), (1, 2), (2, 3)])  # node 0: only its self-loop; 1, 2, 3: one neighbour each
    isolated = _graph([(0, 1), (1, 0), (2, 1), (1, 3), (3, 2)])  # node 4 has no edge at all
    return [
        Case("a directed graph of 6 nodes and 9 edges, 3 heads (in-degrees 0 to 3, a node with no incoming edge)",
             (*alphas(6, 3), small)),
        Case("a random graph of 30 nodes and 120 edges in random order, 4 heads", (*alphas(30, 4), _random_graph(30, 120, g))),
        Case("a chain 0 -> 1 -> 2 -> 3 (node 0 has only its self-loop, the others one incoming edge), 2 heads",
             (*alphas(4, 2), chain)),
        Case("a last node 4 without any edge (5 nodes, edges among 0..3 only), 2 heads", (*alphas(5, 2), isolated)),
        Case("one head (alpha_src and alpha_dst of shape [6, 1])", (*alphas(6, 1), small)),
        Case("scores as large as 1e4 (alpha_src and alpha_dst about 1e4), 3 heads", (*alphas(6, 3, scale=1e4), small),
             grad=False),
        Case("float64 alpha_src and alpha_dst, 2 heads", (*alphas(6, 2, dtype=torch.float64), small)),
        Case("negative_slope=0.1 passed explicitly, 2 heads", (*alphas(6, 2, scale=3.0), small, 0.1)),
    ]


def _targets(case: Case) -> tuple[Tensor, int]:
    alpha_src, _, edge_index = case.args[:3]
    n = alpha_src.size(0)
    return torch.cat([edge_index[1], torch.arange(n)]), n


def _sums_to_one(case: Case, out: Tensor, rerun: Any) -> str | None:
    target, n = _targets(case)
    if out.shape[0] != target.numel():
        return None
    w = out.detach().double().nan_to_num(nan=0.0)
    sums = torch.zeros(n, out.shape[1], dtype=torch.float64).index_add(0, target, w)
    bad = (sums - 1).abs() > 1e-4
    if bool(bad.any()):
        node, head = (int(i) for i in bad.nonzero()[0])
        return (f"the weights of the edges into node {node} (its self-loop included) sum to {sums[node, head]:.5g} in "
                f"head {head}, not 1")
    return None


def _non_negative(case: Case, out: Tensor, rerun: Any) -> str | None:
    w = out.detach()
    if bool((w < 0).any()) or bool((w > 1 + 1e-6).any()):
        return f"a weight is {float(w.min() if bool((w < 0).any()) else w.max()):.4g}; a softmax weight lies in [0, 1]"
    return None


def _permutation(case: Case, out: Tensor, rerun: Any) -> str | None:
    alpha_src, alpha_dst, edge_index = case.args[:3]
    e = edge_index.size(1)
    if out.shape[0] != e + alpha_src.size(0) or e < 2:
        return None
    perm = torch.randperm(e, generator=torch.Generator().manual_seed(7))
    again = rerun(alpha_src, alpha_dst, edge_index[:, perm], *case.args[3:])
    want = torch.cat([out[:e][perm], out[e:]])
    if not torch.allclose(again.detach().double(), want.detach().double(), atol=1e-5, rtol=1e-4, equal_nan=True):
        return ("listing the same edges in another order changed their weights: row k of the result must follow "
                "column k of edge_index (the self-loops stay at the end)")
    return None


_PROPERTIES = [  # the permutation first: an answer that loses the edge order also breaks the sums
    Property("'permuting the edges permutes the weights'", _permutation),
    Property("'the weights of each node's incoming edges sum to 1'", _sums_to_one),
    Property("'every weight lies in [0, 1]'", _non_negative),
]

_SPEC = Spec(reference=reference_gat_attention, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             differentiable=True, part="attention")


def check_gat_attention(gat_attention_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 14.1: ``gat_attention(alpha_src [N, H], alpha_dst [N, H], edge_index [2, E], negative_slope=0.2)
    -> [E + N, H]``; returns the attention function every GAT layer of the hour uses (yours once it passes)."""
    return check(GAT_ATTENTION, _SPEC, (gat_attention_fn,), (reference_gat_attention,),
                 "weights and gradients match on {cases} cases (a node without incoming edges, a chain, an isolated "
                 "node, one head, scores of 1e4, float64, another negative_slope)")
