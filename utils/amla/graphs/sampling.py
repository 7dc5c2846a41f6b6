"""Neighbour sampling for mini-batch GraphSAGE (Hour 14), written by the course because PyG's ``NeighborLoader``
needs a compiled extension (pyg-lib or torch-sparse) the course does not install.

An L-layer GNN computes a node's output from its L-hop neighbourhood. GraphSAGE (Hamilton et al., 2017) trains
on mini-batches: for a batch of **seed** nodes, take up to ``k_1`` in-neighbours of each seed, then up to ``k_2``
in-neighbours of each node just added, and so on for every layer; run the model on that small sub-graph (node ids
relabelled ``0..n-1``, the seeds first) and keep the outputs of the seeds. With fan-outs at least the largest
in-degree nothing is dropped and the seeds' outputs are exactly the full-batch outputs (the test checks it).

- ``sample_neighbors(edge_index, num_nodes, seeds, fanouts)``: one sampled sub-graph (``Subgraph``), the same
  layout as PyG's ``NeighborLoader`` (``n_id`` with the seeds first, relabelled ``edge_index``, ``batch_size``);
- ``neighbor_batches(data, fanouts, batch_size)``: the seed batches of one epoch, shuffled, as sub-graphs;
- ``SageConv``, ``SAGE``: the GraphSAGE layer (mean aggregation; equal to PyG's ``SAGEConv``, tested) and a
  stack of them for node classification;
- ``train_sage(model, data, fanouts=..., ...)``: mini-batch (``fanouts`` given) or full-batch (``None``) training
  with the time and the peak activation memory of every epoch (``SageRun``);
- ``saved_bytes()``: a context that adds up the bytes of the tensors autograd keeps for the backward pass: the
  activation memory of a step, measured the same way on CPU and GPU.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from amla.graphs.message_passing import degrees, propagate

__all__ = ["SAGE", "SageConv", "SageRun", "Subgraph", "neighbor_batches", "sample_neighbors", "saved_bytes",
           "train_sage"]


@dataclass
class Subgraph:
    """A sampled sub-graph: ``n_id[k]`` is the global id of local node ``k`` (the ``batch_size`` seeds come
    first), ``edge_index`` uses local ids, ``e_id`` are the ids of the kept edges in the full ``edge_index``."""

    n_id: Tensor
    edge_index: Tensor
    e_id: Tensor
    batch_size: int

    @property
    def num_nodes(self) -> int:
        return int(self.n_id.numel())


def _by_target(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Edge ids sorted by target node, and ``ptr`` with the in-edges of node ``v`` at ``order[ptr[v]:ptr[v+1]]``
    (the CSC layout samplers use)."""
    target = edge_index[1]
    order = torch.argsort(target, stable=True)
    counts = torch.bincount(target, minlength=num_nodes)
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    ptr[1:] = torch.cumsum(counts, 0)
    return order, ptr


def sample_neighbors(edge_index: Tensor, num_nodes: int, seeds: Tensor, fanouts: list[int],
                     generator: torch.Generator | None = None, csc: tuple[Tensor, Tensor] | None = None) -> Subgraph:
    """Sample up to ``fanouts[l]`` in-neighbours (sources ``j`` of edges ``j -> i``) of every node added at hop
    ``l``, without replacement; a node with fewer in-neighbours keeps them all. ``fanouts[0]`` is for the seeds
    (the model's last layer); ``-1`` takes every neighbour. Each node's in-edges are sampled once, at the hop
    where it enters, so with fan-outs that take everything an L-layer model on the sub-graph gives the seeds
    their full-batch outputs."""
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"sample_neighbors: edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
    if seeds.dim() != 1 or seeds.numel() == 0:
        raise ValueError(f"sample_neighbors: seeds must be a non-empty 1-d tensor of node ids, got shape "
                         f"{tuple(seeds.shape)}")
    if len(torch.unique(seeds)) != seeds.numel():
        raise ValueError("sample_neighbors: the seeds contain repeated node ids")
    dev = edge_index.device
    order, ptr = csc if csc is not None else _by_target(edge_index, num_nodes)
    local = torch.full((num_nodes,), -1, dtype=torch.long, device=dev)  # global id -> local id (-1: not taken)
    n_id = seeds.to(dev).long()
    local[n_id] = torch.arange(n_id.numel(), device=dev)
    frontier, kept = n_id, []
    for k in fanouts:
        start, deg = ptr[frontier], ptr[frontier + 1] - ptr[frontier]
        owner = torch.repeat_interleave(torch.arange(frontier.numel(), device=dev), deg)  # frontier slot per edge
        offset = torch.arange(owner.numel(), device=dev) - torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
        candidates = order[start[owner] + offset]  # every in-edge of the frontier, grouped by target
        if k >= 0:  # a random rank within each target's group: keep the first k
            keys = torch.rand(candidates.numel(), generator=generator).to(dev)
            perm = torch.argsort(keys)
            perm = perm[torch.argsort(owner[perm], stable=True)]  # sort by owner, random within an owner
            candidates, owner = candidates[perm], owner[perm]
            rank = torch.arange(owner.numel(), device=dev) - torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
            candidates = candidates[rank < k]
        kept.append(candidates)
        sources = edge_index[0, candidates]
        new = torch.unique(sources[local[sources] < 0])  # unique() sorts: the local order does not depend on k
        local[new] = torch.arange(n_id.numel(), n_id.numel() + new.numel(), device=dev)
        n_id = torch.cat([n_id, new])
        frontier = new
        if new.numel() == 0:
            break
    e_id = torch.cat(kept) if kept else torch.zeros(0, dtype=torch.long, device=dev)
    return Subgraph(n_id=n_id, edge_index=local[edge_index[:, e_id]], e_id=e_id, batch_size=int(seeds.numel()))


def neighbor_batches(data: Any, fanouts: list[int], batch_size: int, *, input_nodes: Tensor | None = None,
                     shuffle: bool = True, generator: torch.Generator | None = None) -> Iterator[Subgraph]:
    """The sub-graphs of one epoch: ``input_nodes`` (default: the ``train_mask`` nodes) in batches of
    ``batch_size`` seeds, shuffled with ``generator``, each with its sampled neighbourhood (like PyG's
    ``NeighborLoader(data, num_neighbors=fanouts, batch_size=..., input_nodes=...)``)."""
    nodes = input_nodes if input_nodes is not None else data.train_mask.nonzero().flatten()
    if nodes.dtype == torch.bool:
        nodes = nodes.nonzero().flatten()
    if shuffle:
        nodes = nodes[torch.randperm(nodes.numel(), generator=generator).to(nodes.device)]
    csc = _by_target(data.edge_index, data.num_nodes)
    for i in range(0, nodes.numel(), batch_size):
        yield sample_neighbors(data.edge_index, data.num_nodes, nodes[i:i + batch_size], fanouts, generator, csc)


class SageConv(nn.Module):
    """The GraphSAGE layer with mean aggregation, ``W_l mean_{j -> i} x_j + b + W_r x_i``, the same function and
    parameters (``lin_l`` with the bias, ``lin_r`` without) as PyG's ``SAGEConv``. It multiplies by ``W_l``
    *before* averaging (a mean commutes with a linear map), so the 1,433-wide Cora features are never copied
    onto the 10,556 edges: the messages are ``out_channels`` wide."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.lin_l = nn.Linear(in_channels, out_channels, bias=True)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = x @ self.lin_l.weight.t()
        count = degrees(edge_index, x.shape[0]).clamp(min=1).to(h.dtype)  # in-degrees; a node with none keeps 0
        return propagate(h, edge_index) / count[:, None] + self.lin_l.bias + self.lin_r(x)


class SAGE(nn.Module):
    """GraphSAGE for node classification: ``num_layers`` ``SageConv`` layers (mean of the in-neighbours plus a
    separate linear map of the node itself), ReLU and dropout between them (as in PyG's GraphSAGE example)."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, num_layers: int = 2, dropout: float = 0.5):
        super().__init__()
        sizes = [in_channels] + [hidden] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(SageConv(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = dropout

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            if i > 0:  # dropout between the layers, not on the 1,433 input features (a costly mask on CPU)
                x = nn.functional.dropout(x.relu(), self.dropout, self.training)
            x = conv(x, edge_index)
        return x


@contextmanager
def saved_bytes(*inputs: Tensor) -> Iterator[list[int]]:
    """Inside the block, ``box[0]`` grows by the bytes of every distinct tensor storage autograd saves for the
    backward pass (the activations of a step), counting the ``inputs`` (features, edges) once up front, so a
    saved input is not counted twice; ``box = [bytes]`` after the block."""
    box, seen = [0], set()

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in seen:
            seen.add(key)
            box[0] += storage.nbytes()
        return t

    for t in inputs:
        pack(t)

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield box


@dataclass
class SageRun:
    """What ``train_sage`` measured: test accuracy at the best validation epoch, the seconds of every epoch,
    the peak bytes of a step (the features and edges it reads plus what autograd saves; the largest step), the
    mean sub-graph size, and the per-epoch history."""

    test_acc: float
    val_acc: float
    best_epoch: int
    epoch_seconds: list[float]
    peak_bytes: int
    mean_nodes: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds)


def train_sage(model: nn.Module, data: Any, *, epochs: int, lr: float = 0.01, weight_decay: float = 5e-4,
               fanouts: list[int] | None = None, batch_size: int = 32, seed: int = 0,
               device: torch.device | str | None = None) -> SageRun:
    """Train ``model(x, edge_index)`` on the ``train_mask`` nodes: mini-batches of ``batch_size`` seeds with
    sampled neighbourhoods when ``fanouts`` is given, else one full-batch step per epoch. Evaluation is always
    full-batch (every neighbour, dropout off). Only the training steps are timed and measured."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    data = data.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    seconds: list[float] = []
    peak, nodes, steps = 0, 0, 0
    best: dict[str, float] = {}
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        if fanouts is None:
            batches: Iterator[Subgraph | None] = iter([None])
        else:
            batches = neighbor_batches(data, fanouts, batch_size, generator=gen)
        for sub in batches:
            if sub is None:
                x, edge_index, y, rows = data.x, data.edge_index, data.y, data.train_mask
            else:
                x, edge_index = data.x[sub.n_id], sub.edge_index
                y, rows = data.y[sub.n_id[:sub.batch_size]], slice(0, sub.batch_size)
            with saved_bytes(x, edge_index) as box:
                logits = model(x, edge_index)
                loss = nn.functional.cross_entropy(logits[rows], y if sub is not None else y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            peak = max(peak, box[0])
            nodes, steps = nodes + x.shape[0], steps + 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            pred = model(data.x, data.edge_index).argmax(-1)
        record = {"epoch": epoch, "loss": float(loss.detach())}
        for key in ("train", "val", "test"):
            mask = getattr(data, f"{key}_mask")
            record[f"{key}_acc"] = float((pred[mask] == data.y[mask]).float().mean())
        history.append(record)
        if not best or record["val_acc"] > best["val_acc"]:
            best = record
    return SageRun(test_acc=best["test_acc"], val_acc=best["val_acc"], best_epoch=int(best["epoch"]),
                   epoch_seconds=seconds, peak_bytes=peak, mean_nodes=nodes / steps, history=history)
