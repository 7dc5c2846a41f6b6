"""Graph neural networks, Hours 13-14: message passing from scratch, GCN, GAT, GraphSAGE and graph-level tasks.

Built on PyTorch Geometric for data and reference layers (the ``graphs`` extra; pure-Python PyG, no compiled
extensions). Each hour writes from scratch what it teaches and compares it with PyG's layer in a test.

- ``data``: Zachary's karate club (PyG's and networkx's weighted one), Planetoid's Cora and CiteSeer (the public
  split, sha256-verified raw files), the label-propagation baseline (Hours 13-14)
- ``train``: the readable full-batch node-classification loop both hours train with (Hours 13-14)
- ``message_passing``: scatter-add message passing, the GCN normalisation, the course GCN layer and its
  ``MessagePassing`` twin, the ``GCN`` model (with an optional 2-D embedding) and ``SGC`` (Hour 13)
- ``gat``: the graph attention layer written from scratch, with its attention weights (Hour 14)
- ``planetoid_models``: the course's and PyG's GCN and GAT with the papers' settings, side by side, on sparse
  bag-of-words features (Hour 14)
- ``sampling``: neighbour sampling for mini-batch GraphSAGE (Hour 14)
- ``smoothing``: over-smoothing measured (Dirichlet energy against depth) and a remedy (Hour 14)
- ``pooling``: readouts, GIN, and a graph-classification data set made in code (Hour 14)
"""

from amla._lazy import lazy_submodules

__getattr__ = lazy_submodules(
    __name__, ("data", "gat", "message_passing", "planetoid_models", "pooling", "sampling", "smoothing", "train")
)
