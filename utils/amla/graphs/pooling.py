"""Graph-level tasks (Hour 14): readouts, GIN, and a graph-classification data set made in code.

A graph classifier computes node embeddings by message passing, then a **readout** pools each graph's nodes
into one vector: ``sum``, ``mean`` or ``max`` over the nodes of the graph (``batch[i]`` says which graph node
``i`` belongs to). The **GIN** layer (Xu et al., 2019, "How powerful are graph neural networks?") aggregates
with a sum, the one injective choice on multisets, and an MLP:

    h_i <- MLP((1 + eps) h_i + sum_{j -> i} h_j),

as strong as the 1-Weisfeiler-Lehman test at telling graphs apart.

- ``readout(x, batch, num_graphs, kind)``: sum / mean / max pooling (an empty graph gets zeros, as in PyG);
- ``gin_aggregate(x, edge_index, eps)``: ``(1 + eps) x_i + sum_{j -> i} x_j`` (Exercise 14.2);
- ``GINLayer``, ``GIN``: the layer (tested equal to PyG's ``GINConv``) and a classifier that reads out every
  layer and sums the per-layer scores, built from the ``aggregate`` function it is given;
- ``house_or_k23(num_graphs, seed)``: random trees with a planted 5-node, 6-edge motif, the **house** (a square
  with a roof: one triangle) for class 1 or the complete bipartite ``K_{2,3}`` (no triangle) for class 0.
  The two motifs have the same degree sequence (3, 3, 2, 2, 2) and are attached the same way, so node count,
  edge count and degree histogram carry no information about the class;
- ``collate(graphs)``, ``EdgeBlind`` (an MLP on summed node features and node counts: it never sees an edge),
  ``DegreeMLP`` (an MLP on the degree histogram: edges, but no structure), ``train_graphs``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from amla.graphs.message_passing import propagate

__all__ = ["GIN", "DegreeMLP", "EdgeBlind", "GINLayer", "GraphBatch", "GraphRun", "collate", "gin_aggregate",
           "house_or_k23", "readout", "train_graphs"]

KINDS = ("sum", "mean", "max")
Aggregate = Callable[[Tensor, Tensor, Tensor], Tensor]


def readout(x: Tensor, batch: Tensor, num_graphs: int, kind: str = "sum") -> Tensor:
    """Pool node features ``x`` [N, F] into ``[num_graphs, F]``: row ``g`` is the sum, mean or max of the rows
    ``i`` with ``batch[i] == g``; a graph without nodes gets zeros (PyG's ``global_*_pool`` with ``size``)."""
    if kind not in KINDS:
        raise ValueError(f"readout: kind must be one of {KINDS}, got {kind!r}")
    if x.dim() != 2 or batch.shape != (x.shape[0],):
        raise ValueError(f"readout: expected x [N, F] and batch [N], got {tuple(x.shape)} and {tuple(batch.shape)}")
    index = batch[:, None].expand_as(x)
    if kind == "max":
        out = x.new_zeros(num_graphs, x.shape[1])
        return out.scatter_reduce(0, index, x, reduce="amax", include_self=False)
    total = x.new_zeros(num_graphs, x.shape[1]).scatter_add(0, index, x)
    if kind == "sum":
        return total
    count = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(x.dtype)
    return total / count[:, None]


def gin_aggregate(x: Tensor, edge_index: Tensor, eps: Tensor | float = 0.0) -> Tensor:
    """``(1 + eps) x_i + sum_{j -> i} x_j``: every edge ``(j, i)`` (``edge_index[0]`` the source, ``[1]`` the
    target) adds the source's features to the target's row; an edge listed twice counts twice."""
    return (1 + eps) * x + propagate(x, edge_index)


class GINLayer(nn.Module):
    """``mlp(aggregate(x, edge_index, eps))``; ``eps`` is a learned scalar when ``train_eps`` (else a buffer)."""

    def __init__(self, mlp: nn.Module, eps: float = 0.0, train_eps: bool = False,
                 aggregate: Aggregate = gin_aggregate):
        super().__init__()
        self.mlp, self.aggregate = mlp, aggregate
        if train_eps:
            self.eps = nn.Parameter(torch.tensor(float(eps)))
        else:
            self.register_buffer("eps", torch.tensor(float(eps)))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.mlp(self.aggregate(x, edge_index, self.eps))


def _mlp(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Linear(b, b), nn.ReLU())


class GIN(nn.Module):
    """``num_layers`` GIN layers (MLP: Linear, BatchNorm, ReLU, Linear, ReLU); the ``kind`` readout of the input
    and of every layer goes through its own linear map to class scores, and the scores are summed (Xu et al.'s
    graph classifier). ``aggregate`` is the function every layer aggregates with (the one Exercise 14.2 returns)."""

    def __init__(self, in_channels: int, hidden: int, num_classes: int, num_layers: int = 4, kind: str = "sum",
                 aggregate: Aggregate = gin_aggregate, dropout: float = 0.0):
        super().__init__()
        sizes = [in_channels] + [hidden] * num_layers
        self.layers = nn.ModuleList(GINLayer(_mlp(a, b), train_eps=True, aggregate=aggregate)
                                    for a, b in zip(sizes[:-1], sizes[1:]))
        self.heads = nn.ModuleList(nn.Linear(s, num_classes) for s in sizes)
        self.kind, self.dropout = kind, dropout

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        states = [x]
        for layer in self.layers:
            states.append(layer(states[-1], edge_index))
        return sum(nn.functional.dropout(head(readout(h, batch, num_graphs, self.kind)), self.dropout, self.training)
                   for head, h in zip(self.heads, states))


class EdgeBlind(nn.Module):
    """The baseline that ignores the edges: an MLP on ``[sum of the node features, number of nodes]``."""

    def __init__(self, in_channels: int, hidden: int, num_classes: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_channels + 1, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        count = torch.bincount(batch, minlength=num_graphs).to(x.dtype)[:, None]
        return self.net(torch.cat([readout(x, batch, num_graphs, "sum"), count], 1))


class DegreeMLP(nn.Module):
    """A baseline that sees the edges only through the degrees: an MLP on each graph's degree histogram
    (how many nodes have degree 0, 1, ..., ``max_degree`` or more)."""

    def __init__(self, hidden: int, num_classes: int, max_degree: int = 6):
        super().__init__()
        self.max_degree = max_degree
        self.net = nn.Sequential(nn.Linear(max_degree + 1, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        deg = torch.bincount(edge_index[1], minlength=x.shape[0]).clamp(max=self.max_degree)
        onehot = nn.functional.one_hot(deg, self.max_degree + 1).to(x.dtype)
        return self.net(readout(onehot, batch, num_graphs, "sum"))


HOUSE = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4)]  # a square 0-1-2-3 with the roof 4 on 0-1
K23 = [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)]  # 0, 1 on one side, 2, 3, 4 on the other
# both: two nodes of degree 3 and three of degree 2; each hangs on the tree by its node 2 (degree 2 in both)


def house_or_k23(num_graphs: int, seed: int = 0, tree_nodes: tuple[int, int] = (8, 16)) -> list[Any]:
    """``num_graphs`` PyG ``Data`` graphs, half of each class (``y`` 1: a house is planted, 0: a ``K_{2,3}``),
    in a shuffled order fixed by ``seed``. Each is a uniform random recursive tree on ``tree_nodes`` nodes (node
    ``k`` joins a random earlier node) plus the 5-node motif, hung on a random tree node by one edge from the
    motif's node 2 (degree 2 in both); node ids are shuffled; ``x`` is all ones [n, 1]; edges in both directions.
    Both classes have the same node counts, edge counts and degree histograms in distribution."""
    from torch_geometric.data import Data

    if num_graphs < 2 or num_graphs % 2:
        raise ValueError(f"house_or_k23: num_graphs must be even and at least 2, got {num_graphs}")
    rng = random.Random(seed)
    labels = [1, 0] * (num_graphs // 2)
    rng.shuffle(labels)
    graphs = []
    for y in labels:
        n_tree = rng.randint(*tree_nodes)
        edges = [(k, rng.randrange(k)) for k in range(1, n_tree)]
        motif = HOUSE if y == 1 else K23
        edges += [(n_tree + a, n_tree + b) for a, b in motif]
        edges.append((n_tree + 2, rng.randrange(n_tree)))
        n = n_tree + 5
        perm = list(range(n))
        rng.shuffle(perm)
        pairs = torch.tensor([(perm[a], perm[b]) for a, b in edges], dtype=torch.long).t()
        edge_index = torch.cat([pairs, pairs.flip(0)], 1)
        graphs.append(Data(x=torch.ones(n, 1), edge_index=edge_index, y=torch.tensor([y]), num_nodes=n))
    return graphs


@dataclass
class GraphBatch:
    """Graphs stacked into one big disconnected graph: ``batch[i]`` is the graph of node ``i``."""

    x: Tensor
    edge_index: Tensor
    batch: Tensor
    y: Tensor
    num_graphs: int

    def to(self, device: torch.device | str) -> "GraphBatch":
        return GraphBatch(self.x.to(device), self.edge_index.to(device), self.batch.to(device), self.y.to(device),
                          self.num_graphs)


def collate(graphs: list[Any]) -> GraphBatch:
    """Stack graphs: node ids of graph ``g`` shifted by the nodes before it (PyG's ``Batch.from_data_list``)."""
    offsets = torch.cumsum(torch.tensor([0] + [g.num_nodes for g in graphs]), 0)
    return GraphBatch(
        x=torch.cat([g.x for g in graphs]),
        edge_index=torch.cat([g.edge_index + offsets[k] for k, g in enumerate(graphs)], 1),
        batch=torch.cat([torch.full((g.num_nodes,), k, dtype=torch.long) for k, g in enumerate(graphs)]),
        y=torch.cat([g.y for g in graphs]),
        num_graphs=len(graphs),
    )


@dataclass
class GraphRun:
    """Accuracies after the last epoch, the per-epoch loss and the training seconds."""

    train_acc: float
    test_acc: float
    losses: list[float]
    seconds: float


@torch.no_grad()
def _accuracy(model: nn.Module, data: GraphBatch) -> float:
    model.eval()
    pred = model(data.x, data.edge_index, data.batch, data.num_graphs).argmax(-1)
    return float((pred == data.y).float().mean())


def train_graphs(model: nn.Module, train: list[Any], test: list[Any], *, epochs: int, batch_size: int = 32,
                 lr: float = 0.01, seed: int = 0, device: torch.device | str = "cpu") -> GraphRun:
    """Adam on the cross-entropy of the graph labels, shuffled mini-batches of ``batch_size`` graphs; the test
    accuracy after the last epoch (no model selection on the test set)."""
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    torch.manual_seed(seed)
    order = random.Random(seed)
    batches = [collate(train[i:i + batch_size]) for i in range(0, len(train), batch_size)]
    losses, start = [], time.perf_counter()
    for _ in range(epochs):
        model.train()
        order.shuffle(batches)  # the same batches each epoch, in a new order (cheap; enough shuffling here)
        total = 0.0
        for b in batches:
            b = b.to(device)
            loss = nn.functional.cross_entropy(model(b.x, b.edge_index, b.batch, b.num_graphs), b.y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * b.num_graphs
        losses.append(total / len(train))
    seconds = time.perf_counter() - start
    return GraphRun(_accuracy(model, collate(train).to(device)), _accuracy(model, collate(test).to(device)), losses,
                    seconds)
