"""Over-smoothing measured (Hour 14): node features against depth, and a remedy measured the same way.

Each GCN layer replaces a node's features by a weighted mean over its neighbourhood, ``X <- relu(Â X W)`` with
``Â = D~^-1/2 (A + I) D~^-1/2``. Repeating it pulls the features toward the top eigenvector of ``Â``
(``x_i`` proportional to ``sqrt(1 + deg_i)`` on each connected component), so deep stacks lose what tells nodes
apart. The measure is the **Dirichlet energy** (Cai and Wang, 2020; Rusch, Bronstein and Mishra, 2023)

    E(X) = 1/2 * sum over edges (j -> i) of ||x_i - x_j||^2 = trace(X^T L X),   L = D - A,

0 exactly when the signal is constant on every component, and its normalised form ``trace(X^T (I - Â) X)``
(rows divided by ``sqrt(1 + deg)`` first), 0 exactly at the GCN's own limit. Both also shrink when the
features merely get smaller, so ``rayleigh_quotient`` divides the normalised energy by ``||X||_F^2``: a number in
``[0, 2)``, blind to scale, 0 when the features are fully smoothed.

- ``dirichlet_energy(x, edge_index, normalized=False)``, ``rayleigh_quotient(x, edge_index)``: the measures;
- ``gcn_matrix(edge_index, n)``: ``Â`` as a sparse matrix (tested equal to PyG's ``GCNConv``);
- ``DeepGCN(..., depth, remedy=None | "residual" | "initial" | "pairnorm")``: ``depth`` GCN layers and a
  linear classifier. The remedies: a residual connection ``h + relu(conv(h))``; an
  *initial* residual connection ``(1 - alpha) relu(conv(h)) + alpha h_0`` (every layer keeps a share of the
  first layer's features, as in APPNP and GCNII); PairNorm after each layer (Zhao and Akoglu, 2020);
- ``layer_energies(model, x, edge_index)``: the measure after every layer of one model;
- ``smoothing_sweep(data, depths, ...)``: test accuracy and the measures against depth, each depth trained with
  ``amla.graphs.train.train_nodes`` (one row per depth, means over seeds).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from amla.graphs.message_passing import gcn_norm

__all__ = ["DeepGCN", "SmoothingRow", "dirichlet_energy", "gcn_matrix", "layer_energies", "rayleigh_quotient",
           "smoothing_sweep"]

REMEDIES = (None, "residual", "initial", "pairnorm")


def _check(name: str, x: Tensor, edge_index: Tensor) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name}: x must have shape (N, F), got {tuple(x.shape)}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"{name}: edge_index must have shape (2, E), got {tuple(edge_index.shape)}")


def dirichlet_energy(x: Tensor, edge_index: Tensor, normalized: bool = False) -> Tensor:
    """``1/2 * sum_{(j -> i) in E} ||x_i - x_j||^2`` for node features ``x`` [N, F], which is ``trace(X^T L X)``
    (``L = D - A``) for an undirected graph: 0 for a constant signal. ``normalized``: each row first divided
    by ``sqrt(1 + deg)``, which is ``trace(X^T (I - Â) X)`` with the GCN's ``Â = D~^-1/2 (A + I) D~^-1/2``:
    0 for ``x_i`` proportional to ``sqrt(1 + deg_i)``, the signal a deep GCN converges to. A 0-d tensor."""
    _check("dirichlet_energy", x, edge_index)
    source, target = edge_index[:, edge_index[0] != edge_index[1]]  # a self-loop adds nothing
    if normalized:
        deg = torch.bincount(target, minlength=x.shape[0]).to(x.dtype) + 1
        x = x / deg.sqrt()[:, None]
    return 0.5 * (x[target] - x[source]).pow(2).sum()


def rayleigh_quotient(x: Tensor, edge_index: Tensor) -> Tensor:
    """``trace(X^T (I - Â) X) / trace(X^T X)``, the normalised energy per unit of squared feature norm: in
    ``[0, 2)``, unchanged when the features are rescaled, 0 when they are fully smoothed (0 for all-zero
    features too)."""
    scale = x.pow(2).sum()
    return dirichlet_energy(x, edge_index, normalized=True) / scale.clamp(min=torch.finfo(x.dtype).tiny)


def gcn_matrix(edge_index: Tensor, num_nodes: int) -> Tensor:
    """The GCN's propagation matrix ``Â = D~^-1/2 (A + I) D~^-1/2`` (``D~`` the in-degrees plus the self-loop)
    as a sparse CSR tensor, row ``i`` holding the in-edges of node ``i``: ``Â @ H`` is PyG's ``GCNConv``
    propagation."""
    (source, target), weight = gcn_norm(edge_index, num_nodes)  # Hour 13's normalisation, self-loops added
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        matrix = torch.sparse_coo_tensor(torch.stack([target, source]), weight, (num_nodes, num_nodes))
        return matrix.coalesce().to_sparse_csr()


class _Propagate(torch.autograd.Function):
    """``Â @ H`` whose backward uses a stored ``Â^T`` (PyTorch would rebuild the transposed CSR at every layer)."""

    @staticmethod
    def forward(ctx: Any, adj: Tensor, adj_t: Tensor, h: Tensor) -> Tensor:  # type: ignore[override]
        ctx.adj_t = adj_t
        return adj @ h

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor]:  # type: ignore[override]
        return None, None, ctx.adj_t @ grad


class DeepGCN(nn.Module):
    """``depth`` GCN layers ``relu(Â h W + b)`` (PyG's ``GCNConv`` with ``Â`` a sparse matrix, ``gcn_matrix``;
    the first ``in -> hidden``, the others ``hidden -> hidden``), then ``Linear(hidden, out)``; dropout after the
    first layer and before the output (dropout inside a 32-layer stack costs more than the layers on CPU). The
    remedy acts on layers 2..depth, with ``h_0`` the first layer's output. ``remedy``: ``"residual"``:
    ``h <- h + relu(conv(h))``; ``"initial"``: ``h <- (1 - alpha) relu(conv(h)) + alpha h_0``; ``"pairnorm"``:
    ``h <- PairNorm(relu(conv(h)))``. ``hidden_states`` returns the features after every layer."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, depth: int, remedy: str | None = None,
                 dropout: float = 0.5, alpha: float = 0.5):
        super().__init__()
        from torch_geometric.nn import PairNorm

        if remedy not in REMEDIES:
            raise ValueError(f"DeepGCN: remedy must be one of {REMEDIES}, got {remedy!r}")
        if depth < 1:
            raise ValueError(f"DeepGCN: depth must be at least 1, got {depth}")
        self.convs = nn.ModuleList(nn.Linear(in_channels if i == 0 else hidden, hidden) for i in range(depth))
        self.norm = PairNorm() if remedy == "pairnorm" else None
        self.out = nn.Linear(hidden, out_channels)
        self.remedy, self.dropout, self.alpha = remedy, dropout, alpha
        for conv in self.convs:  # initialised as PyG's GCNConv: Glorot weights, zero bias
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        self._cache: tuple[tuple[int, ...], Tensor, Tensor] | None = None

    def propagation(self, edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
        """``Â`` and ``Â^T`` for this graph, built once and cached."""
        key = (edge_index.data_ptr(), edge_index.shape[1], num_nodes, edge_index.device.index or 0)
        if self._cache is None or self._cache[0] != key:
            adj = gcn_matrix(edge_index, num_nodes)
            self._cache = (key, adj, gcn_matrix(edge_index.flip(0), num_nodes))
        return self._cache[1], self._cache[2]

    @staticmethod
    def _layer(adj: Tensor, adj_t: Tensor, h: Tensor, conv: nn.Linear) -> Tensor:
        return (_Propagate.apply(adj, adj_t, h @ conv.weight.t()) + conv.bias).relu()

    def hidden_states(self, x: Tensor, edge_index: Tensor) -> list[Tensor]:
        adj, adj_t = self.propagation(edge_index, x.shape[0])
        first, *rest = self.convs
        h0 = h = nn.functional.dropout(self._layer(adj, adj_t, x, first), self.dropout, self.training)
        states = [h]
        for conv in rest:
            z = self._layer(adj, adj_t, h, conv)
            if self.remedy == "residual":
                h = h + z
            elif self.remedy == "initial":
                h = (1 - self.alpha) * z + self.alpha * h0
            else:
                h = z
            if self.norm is not None:
                h = self.norm(h)
            states.append(h)
        return states

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = self.hidden_states(x, edge_index)[-1]
        return self.out(nn.functional.dropout(h, self.dropout, self.training))


@torch.no_grad()
def layer_energies(model: DeepGCN, x: Tensor, edge_index: Tensor, measure: str = "rayleigh") -> list[float]:
    """``measure`` ("rayleigh", "energy" or "normalized") of the features after every GCN layer, in eval mode."""
    fns = {"rayleigh": rayleigh_quotient, "energy": dirichlet_energy,
           "normalized": lambda h, e: dirichlet_energy(h, e, normalized=True)}
    if measure not in fns:
        raise ValueError(f"layer_energies: measure must be one of {sorted(fns)}, got {measure!r}")
    was = model.training
    model.eval()
    values = [float(fns[measure](h, edge_index)) for h in model.hidden_states(x, edge_index)]
    model.train(was)
    return values


@dataclass
class SmoothingRow:
    """One depth of a sweep, means over the seeds: the test accuracy, the Dirichlet energy (``E``, not
    normalised) and the Rayleigh quotient of the last hidden layer, at initialisation and after training; the
    training seconds (all seeds)."""

    depth: int
    remedy: str | None
    test_acc: float
    energy_init: float
    energy: float
    rayleigh_init: float
    rayleigh: float
    seconds: float


def smoothing_sweep(data: Any, depths: list[int], *, remedy: str | None = None, seeds: tuple[int, ...] = (0,),
                    epochs: int = 100, lr: float = 0.01, hidden: int = 64, dropout: float = 0.5,
                    alpha: float = 0.5, weight_decay: float = 5e-4,
                    device: torch.device | str | None = None) -> list[SmoothingRow]:
    """Train a ``DeepGCN`` of every depth (``train_nodes``: full-batch Adam, the best validation epoch selects
    the test accuracy) with each seed, and measure its last hidden layer before and after training."""
    from amla.graphs.train import train_nodes

    data = data.to(device) if device is not None else data
    rows = []
    for depth in depths:
        accs, init, after, energies_init, energies, seconds = [], [], [], [], [], 0.0
        for seed in seeds:
            torch.manual_seed(seed)
            model = DeepGCN(data.num_features, hidden, int(data.y.max()) + 1, depth, remedy, dropout, alpha)
            model.to(data.x.device)
            init.append(layer_energies(model, data.x, data.edge_index)[-1])
            energies_init.append(layer_energies(model, data.x, data.edge_index, "energy")[-1])
            run = train_nodes(model, data, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed)
            accs.append(run.test_acc)
            seconds += run.seconds
            after.append(layer_energies(model, data.x, data.edge_index)[-1])
            energies.append(layer_energies(model, data.x, data.edge_index, "energy")[-1])
        n = len(seeds)
        rows.append(SmoothingRow(depth, remedy, sum(accs) / n, sum(energies_init) / n, sum(energies) / n,
                                 sum(init) / n, sum(after) / n, seconds))
    return rows
