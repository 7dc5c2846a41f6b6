"""The four Planetoid models Hour 14 compares: the course's GCN and GAT, and the same two built from PyG's layers.

All four use the papers' transductive settings (Kipf & Welling 2017, Velickovic et al. 2018) and the same
**feature dropout**: Cora's bag-of-words rows are 98.7 % zeros, and dropping a zero changes nothing, so
``feature_dropout`` drops only the stored entries of a sparse (CSR) feature matrix, as the GCN paper's own code
does (``sparse_dropout``). That is the same distribution as ``F.dropout`` on the dense matrix, at 1/75 of the
random numbers; dense inputs get plain ``F.dropout``. ``sparse_features(data)`` stores ``data.x`` as CSR (every
layer's ``nn.Linear`` multiplies a CSR matrix directly).

- ``CourseGCN``: dropout, Hour 13's ``GCNLayer`` (16 hidden), ReLU, dropout, ``GCNLayer``; lr 0.01, weight decay
  5e-4 (``GCN_SETTINGS``);
- ``CourseGAT``: ``amla.graphs.gat.GAT`` with the sparse feature dropout (8 heads x 8, ELU, dropout 0.6);
- ``PygGCN``/``PygGAT``: the same architectures on ``torch_geometric.nn.GCNConv``/``GATConv``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.graphs.gat import GAT, Attention, paper_settings
from amla.graphs.message_passing import GCNLayer

__all__ = ["CourseGAT", "CourseGCN", "GCN_SETTINGS", "PygGAT", "PygGCN", "feature_dropout", "sparse_features"]

GCN_SETTINGS = dict(hidden=16, dropout=0.5, lr=0.01, weight_decay=5e-4)
"""Kipf & Welling (2017), section 5.2: 16 hidden units, dropout 0.5, Adam with lr 0.01, weight decay 5e-4."""


def feature_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout`` for a dense ``x``; for a sparse CSR ``x``, dropout on its stored entries only."""
    if x.layout == torch.sparse_csr:
        if not training or p == 0.0:
            return x
        values = F.dropout(x.values(), p, True)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape, check_invariants=False)
    return F.dropout(x, p, training)


def sparse_features(data: Any) -> Any:
    """A shallow copy of ``data`` whose ``x`` is a sparse CSR tensor (same values)."""
    out = data.clone()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the two operations used here are not
        warnings.simplefilter("ignore", UserWarning)
        out.x = data.x.to_sparse_csr()
    return out


class CourseGCN(nn.Module):
    """Two of Hour 13's ``GCNLayer`` s with the paper's dropout and ReLU; ``gcn_layer`` kwargs go to both layers
    (e.g. the ``propagate`` and ``gcn_norm`` the notebook's checks returned)."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 16, dropout: float = 0.5,
                 **gcn_layer: Any) -> None:
        super().__init__()
        self.dropout = dropout
        self.conv1 = GCNLayer(in_channels, hidden, cached=True, **gcn_layer)
        self.conv2 = GCNLayer(hidden, num_classes, cached=True, **gcn_layer)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = feature_dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


class CourseGAT(GAT):
    """``amla.graphs.gat.GAT`` whose input dropout is ``feature_dropout`` (sparse-aware); same parameters."""

    def input_dropout(self, x: Tensor) -> Tensor:
        return feature_dropout(x, self.dropout, self.training)

    @classmethod
    def for_dataset(cls, name: str, in_channels: int, num_classes: int, *,
                    attention: Attention | None = None) -> "CourseGAT":
        s = paper_settings(name)
        return cls(in_channels, num_classes, s["hidden"], s["heads"], s["out_heads"], s["dropout"],
                   attention=attention)


class PygGCN(nn.Module):
    """``CourseGCN`` built from ``torch_geometric.nn.GCNConv``."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 16, dropout: float = 0.5) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.dropout = dropout
        self.conv1 = GCNConv(in_channels, hidden, cached=True)
        self.conv2 = GCNConv(hidden, num_classes, cached=True)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = feature_dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


class PygGAT(nn.Module):
    """``CourseGAT`` built from ``torch_geometric.nn.GATConv``."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 8, heads: int = 8, out_heads: int = 1,
                 dropout: float = 0.6) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        self.dropout = dropout
        self.conv1 = GATConv(in_channels, hidden, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden * heads, num_classes, heads=out_heads, concat=False, dropout=dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = feature_dropout(x, self.dropout, self.training)
        x = F.dropout(F.elu(self.conv1(x, edge_index)), self.dropout, self.training)
        return self.conv2(x, edge_index)
