"""Graph attention from scratch (Hour 14): GAT's attention on edges, the layer, and the paper's model.

A GAT layer (Velickovic et al., 2018) lets every node ``i`` weigh its neighbours ``j`` (and itself) with learned
weights. With ``h = W x`` split into ``H`` heads of ``C`` channels, for an edge ``j -> i`` and head ``k``:

- score ``e_ij = LeakyReLU(a_k . [h_i || h_j], 0.2) = LeakyReLU(alpha_dst[i] + alpha_src[j], 0.2)``, where
  ``alpha_src = (h * att_src).sum(-1)`` and ``alpha_dst = (h * att_dst).sum(-1)`` (one number per node and head:
  the concatenated dot product splits into two halves, so no ``[E, 2C]`` tensor is ever built);
- weight ``a_ij = softmax_j(e_ij)`` over the **incoming** edges of ``i``, its self-loop included
  (``edge_softmax``: subtract each target's maximum first, so scores of 1e4 stay finite);
- output ``h'_i = sum_j a_ij h_j`` per head, then the heads are concatenated (hidden layers) or averaged (the
  output layer), plus a bias.

``gat_attention(alpha_src, alpha_dst, edge_index, negative_slope=0.2) -> [E + N, H]`` is Exercise 14.1: it
adds one self-loop per node **after** the ``E`` given edges (node 0 first, as ``torch_geometric.utils.add_self_loops``
does) and returns one weight per edge and head. ``GATLayer(..., attention=...)`` takes the student's function
through that parameter; ``GATLayer`` equals PyG's ``GATConv`` with copied weights (``copy_from_pyg``).
``GAT`` is the paper's two-layer transductive model (``paper_settings`` has its hyper-parameters).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GAT", "GATLayer", "Attention", "add_self_loops", "edge_softmax", "gat_attention", "paper_settings",
           "remove_self_loops"]

Attention = Callable[..., Tensor]
"""``attention(alpha_src [N, H], alpha_dst [N, H], edge_index [2, E], negative_slope) -> weights [E + N, H]``."""


def remove_self_loops(edge_index: Tensor) -> Tensor:
    """The edges ``j -> i`` with ``j != i`` (in their order)."""
    return edge_index[:, edge_index[0] != edge_index[1]]


def add_self_loops(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``edge_index`` followed by one self-loop per node, ``0 -> 0, ..., N-1 -> N-1`` (PyG's order)."""
    loops = torch.arange(num_nodes, device=edge_index.device, dtype=edge_index.dtype)
    return torch.cat([edge_index, torch.stack([loops, loops])], dim=1)


def edge_softmax(scores: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    """Softmax of ``scores [E, H]`` over the edges that share a target: ``index [E]`` is each edge's target node.

    Each group's maximum is subtracted before ``exp`` (it does not change the result, and keeps 1e4 finite); the
    maximum is detached, as PyG's ``softmax`` does: the gradient is the same, the graph smaller."""
    if scores.dim() == 1:
        return edge_softmax(scores.unsqueeze(-1), index, num_nodes).squeeze(-1)
    idx = index.unsqueeze(-1).expand_as(scores)
    top = scores.new_full((num_nodes, scores.size(1)), -math.inf)
    top = top.scatter_reduce(0, idx, scores.detach(), reduce="amax", include_self=True)
    e = (scores - top[index]).exp()
    total = scores.new_zeros(num_nodes, scores.size(1)).scatter_add(0, idx, e)
    return e / total[index]


def gat_attention(alpha_src: Tensor, alpha_dst: Tensor, edge_index: Tensor, negative_slope: float = 0.2) -> Tensor:
    """GAT's attention weights ``[E + N, H]``: the ``E`` edges of ``edge_index`` (``[2, E]``, rows source and target,
    no self-loops), then one self-loop per node. ``alpha_src``/``alpha_dst`` ``[N, H]`` are each node's halves of
    the score; the weights of each node's incoming edges (its self-loop included) sum to 1 per head."""
    if alpha_src.dim() != 2 or alpha_src.shape != alpha_dst.shape:
        raise ValueError(f"gat_attention: alpha_src and alpha_dst must both be [N, H], got "
                         f"{tuple(alpha_src.shape)} and {tuple(alpha_dst.shape)}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"gat_attention: edge_index must be [2, E], got {tuple(edge_index.shape)}")
    n = alpha_src.size(0)
    src, dst = add_self_loops(edge_index, n)
    scores = F.leaky_relu(alpha_src[src] + alpha_dst[dst], negative_slope)
    return edge_softmax(scores, dst, n)


class GATLayer(nn.Module):
    """One graph attention layer, written out; equal to ``torch_geometric.nn.GATConv`` (same defaults: existing
    self-loops removed, one per node added, bias on).

    ``attention`` computes the weights (default ``gat_attention``; the hour passes the student's Exercise 14.1).
    ``dropout`` is applied to the attention weights in training, as in the paper. ``forward(x, edge_index,
    return_attention=True)`` also returns ``(edge_index_with_self_loops [2, E'], weights [E', H])``."""

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1, concat: bool = True,
                 dropout: float = 0.0, negative_slope: float = 0.2, *, attention: Attention | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        if min(in_channels, out_channels, heads) < 1:
            raise ValueError(f"GATLayer: in_channels, out_channels and heads must be >= 1, got {in_channels}, "
                             f"{out_channels}, {heads}")
        self.in_channels, self.out_channels, self.heads, self.concat = in_channels, out_channels, heads, concat
        self.dropout, self.negative_slope = dropout, negative_slope
        self.attention: Attention = attention if attention is not None else gat_attention
        self.lin = nn.Linear(in_channels, heads * out_channels, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(heads, out_channels))
        width = heads * out_channels if concat else out_channels
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and attention vectors, zero bias (PyG's initialisation)."""
        nn.init.xavier_uniform_(self.lin.weight)
        for att in (self.att_src, self.att_dst):
            bound = math.sqrt(6.0 / (att.size(0) + att.size(1)))  # PyG's glorot on its [1, H, C] parameter
            nn.init.uniform_(att, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor, return_attention: bool = False) -> Any:
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"GATLayer: x must be [N, {self.in_channels}], got {tuple(x.shape)}")
        n, heads, c = x.size(0), self.heads, self.out_channels
        h = self.lin(x).view(n, heads, c)
        alpha_src = (h * self.att_src).sum(-1)  # [N, H]
        alpha_dst = (h * self.att_dst).sum(-1)
        edges = remove_self_loops(edge_index)
        weights = self.attention(alpha_src, alpha_dst, edges, self.negative_slope)
        if weights.shape != (edges.size(1) + n, heads):
            raise ValueError(f"GATLayer: the attention function returned shape {tuple(weights.shape)}, expected "
                             f"({edges.size(1) + n}, {heads}): one weight per edge and head, self-loops appended")
        full = add_self_loops(edges, n)
        kept = F.dropout(weights, self.dropout, self.training)
        messages = h[full[0]] * kept.unsqueeze(-1)  # [E', H, C]: weighted features of each edge's source
        out = h.new_zeros(n, heads, c).index_add_(0, full[1], messages)
        out = out.reshape(n, heads * c) if self.concat else out.mean(dim=1)
        if self.bias is not None:
            out = out + self.bias
        return (out, (full, weights)) if return_attention else out

    @torch.no_grad()
    def copy_from_pyg(self, conv: nn.Module) -> "GATLayer":
        """Take the weights of a ``torch_geometric.nn.GATConv`` of the same shape (for the equality test)."""
        self.lin.weight.copy_(conv.lin.weight)
        self.att_src.copy_(conv.att_src.view(self.heads, self.out_channels))
        self.att_dst.copy_(conv.att_dst.view(self.heads, self.out_channels))
        if self.bias is not None:
            self.bias.copy_(conv.bias)
        return self

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, heads={self.heads}, concat={self.concat}, "
                f"dropout={self.dropout}")


def paper_settings(name: str) -> dict[str, Any]:
    """GAT's transductive hyper-parameters (Velickovic et al., 2018, section 3.3) for "Cora", "CiteSeer", "PubMed":
    model keyword arguments (``hidden``, ``heads``, ``out_heads``, ``dropout``) and ``lr``, ``weight_decay``."""
    base = dict(hidden=8, heads=8, out_heads=1, dropout=0.6, lr=5e-3, weight_decay=5e-4)
    if name == "PubMed":
        return {**base, "out_heads": 8, "lr": 0.01, "weight_decay": 1e-3}
    if name not in ("Cora", "CiteSeer"):
        raise ValueError(f"paper_settings: unknown dataset {name!r}; expected 'Cora', 'CiteSeer' or 'PubMed'")
    return base


class GAT(nn.Module):
    """The paper's two-layer GAT: dropout, ``heads`` x ``hidden`` concatenated heads, ELU, dropout, then
    ``out_heads`` averaged heads giving the class logits. ``attention`` goes to both layers."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 8, heads: int = 8, out_heads: int = 1,
                 dropout: float = 0.6, *, attention: Attention | None = None) -> None:
        super().__init__()
        self.dropout = dropout
        self.conv1 = GATLayer(in_channels, hidden, heads, concat=True, dropout=dropout, attention=attention)
        self.conv2 = GATLayer(hidden * heads, num_classes, out_heads, concat=False, dropout=dropout,
                              attention=attention)

    def input_dropout(self, x: Tensor) -> Tensor:
        """Dropout on the input features (a subclass may drop differently, e.g. only a sparse matrix's entries)."""
        return F.dropout(x, self.dropout, self.training)

    def forward(self, x: Tensor, edge_index: Tensor, return_attention: bool = False) -> Any:
        x = self.input_dropout(x)
        x, first = self.conv1(x, edge_index, return_attention=True)
        x = F.dropout(F.elu(x), self.dropout, self.training)
        x, second = self.conv2(x, edge_index, return_attention=True)
        return (x, [first, second]) if return_attention else x
