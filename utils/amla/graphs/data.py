"""The graphs of Hours 13-14: Zachary's karate club and Planetoid's citation graphs, and a baseline.

- ``karate()``: PyG's ``KarateClub`` (34 members, 78 friendships stored as 156 directed edges, 4 communities
  from modularity-based clustering, one labelled member per community) with a ``test_mask`` of the other 30;
- ``karate_weighted()``: the same graph from networkx, whose edges carry weights since networkx 2.7 (the number
  of contexts in which two members met, 1-7): a weighted adjacency is a different matrix from the plain one;
- ``planetoid(name)``: Cora or CiteSeer with the public split of Yang et al. (2016) (20 labelled nodes per class,
  500 for validation, 1,000 for test), read by PyG's own ``read_planetoid_data`` from the raw files in the course
  data directory (``AMLA_DATA``), each sha256-verified, downloaded there when absent and online. Nothing is
  written beside them, so the data directory may be read-only;
- ``label_propagation_accuracy(data)``: PyG's ``LabelPropagation`` from the labelled nodes, scored on the test
  mask: the baseline a GNN has to beat on the karate club.
"""

from __future__ import annotations

import torch
from torch import Tensor

from amla.toolkit.data import PLANETOID_PARTS, fetch

__all__ = ["PLANETOID", "karate", "karate_weighted", "label_propagation_accuracy", "planetoid"]

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer"}
"""The Planetoid graphs the course knows (lower-case key -> PyG's name, also the folder under ``planetoid/``)."""


def karate():
    """PyG's karate club with ``test_mask``: every member but the four labelled ones (nodes 0, 4, 8, 24)."""
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    data.test_mask = ~data.train_mask
    return data


def karate_weighted() -> tuple[Tensor, Tensor]:
    """networkx's karate club as ``(edge_index [2, 156], edge_weight [156])``, both directions of every edge,
    in PyG's order (sorted by source, then target), so it lines up with ``karate().edge_index``."""
    import networkx as nx

    graph = nx.karate_club_graph()
    pairs = sorted({(u, v) for a, b in graph.edges for u, v in ((a, b), (b, a))})
    edge_index = torch.tensor(pairs, dtype=torch.long).T.contiguous()
    weight = torch.tensor([float(graph.edges[u, v].get("weight", 1.0)) for u, v in pairs])
    return edge_index, weight


def planetoid(name: str, *, normalize: bool = True, download: bool = True):
    """Cora or CiteSeer (PyG ``Data`` with ``train_mask``/``val_mask``/``test_mask`` of the public split).

    ``normalize`` divides each node's bag-of-words features by their sum (PyG's ``NormalizeFeatures``, as in the
    GCN and GAT papers). Raises ``DataMissing`` naming the file and where to put it when offline and absent."""
    key = str(name).lower()
    if key not in PLANETOID:
        raise ValueError(f"planetoid: unknown graph {name!r}; expected one of {', '.join(PLANETOID.values())}")
    from torch_geometric.io import read_planetoid_data

    paths = [fetch(f"planetoid-{key}-{part}", download=download) for part in PLANETOID_PARTS]
    data = read_planetoid_data(str(paths[0].parent), key)
    if normalize:
        total = data.x.sum(dim=1, keepdim=True).clamp(min=1.0)
        data.x = data.x / total
    data.name = PLANETOID[key]
    return data


def label_propagation_accuracy(data, *, num_layers: int = 10, alpha: float = 0.9) -> float:
    """Accuracy on ``data.test_mask`` of PyG's ``LabelPropagation`` started from the nodes of ``train_mask``
    (Zhou et al. 2004; ``num_layers`` propagation steps, ``alpha`` the weight of the propagated labels).

    The default, 10 steps with alpha 0.9 (close to propagation run to convergence), classifies 23 of the karate
    club's 30 unlabelled members (76.7 %). The baseline is sensitive to both settings there: 3 steps give 86.7 %
    (alpha 0.9) and 90.0 % (alpha 0.99), 10 steps with alpha 0.99 only 36.7 %: an hour that compares with it
    should print a sweep, not one number."""
    from torch_geometric.nn import LabelPropagation

    model = LabelPropagation(num_layers=num_layers, alpha=alpha)
    with torch.no_grad():
        out = model(data.y, data.edge_index, mask=data.train_mask)
    pred = out.argmax(dim=-1)
    return float((pred[data.test_mask] == data.y[data.test_mask]).float().mean())
