"""Self-checks of Hour 14 (GAT, GraphSAGE and graph-level tasks).

Each check runs on the engine (``amla.checks.engine``): ordinary inputs on which every known mistake gives a
different answer, then the edge inputs of the exercise.

- 14.1 ``gat_attention(alpha_src [N, H], alpha_dst [N, H], edge_index [2, E], negative_slope=0.2) -> [E + N, H]``
  (the reference is ``amla.graphs.gat.gat_attention``): a directed graph whose in- and out-degrees differ (one
  node without incoming edges), a random graph of 120 edges in random order, a chain (a node with only its
  self-loop, nodes with one neighbour), a last node without any edge (the node count comes from ``alpha_src``),
  one head, scores of 1e4 (a softmax without the maximum subtracted gives NaN), float64, ``negative_slope=0.1``;
  gradients. Mistakes named: softmax over outgoing edges, source and target swapped in the score, softmax over
  all edges or over the heads, no maximum subtracted, LeakyReLU slope 0.01, ReLU, no LeakyReLU, a hard-coded
  slope, self-loops missing or first, the node count from ``edge_index.max() + 1``. Properties: each node's
  incoming weights sum to 1, weights in [0, 1], permuting the edges permutes the weights.
- 14.2 ``gin_aggregate(x [N, F], edge_index [2, E], eps) -> [N, F]``, ``(1 + eps) x_i + sum_{j -> i} x_j`` (the
  reference is ``amla.graphs.pooling.gin_aggregate``; cases, mistakes and properties: the module docstring of
  ``amla.checks.gnn.gin_aggregate``).
"""

from amla.checks.gnn.gat import check_gat_attention
from amla.checks.gnn.gin_aggregate import check_gin_aggregate

__all__ = ["check_gat_attention", "check_gin_aggregate"]
