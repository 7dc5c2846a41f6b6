"""Self-checks of Hour 13 (graphs and message passing): message passing with scatter-add and the GCN normalisation.

Each check runs on the engine (``amla.checks.engine``): ordinary graphs on which every known mistake gives a
different answer, then the edge inputs of the exercise.

- 13.1 ``propagate(x, edge_index, edge_weight=None) -> [N, F]`` (``out[i] = sum over edges j -> i of w_ji x[j]``):
  a directed graph with edge_weight left out, an undirected graph, repeated edges and a self-loop, edge weights,
  an isolated node at the end (ids in edge_index stop before N), a single node without edges (``[2, 0]``), a
  single node with a weighted self-loop, one feature per node, float64 features and weights; gradients with
  respect to x and the weights. Mistakes: summing at the source, the target's features as the message,
  ``out[target] += messages`` (repeated indices lost), mean or max instead of sum, an added self-loop, the
  weights ignored, N taken from edge_index. Properties: a node without incoming edges gets 0; the output sums to
  the messages sent; renumbering the nodes renumbers the output.
- 13.2 ``gcn_norm(edge_index, num_nodes, edge_weight=None, add_self_loops=True) -> (edge_index, edge_weight)``
  (``D^-1/2 (A + I) D^-1/2`` as GCNConv computes it), compared as the dense matrix the returned edges make (any
  edge order passes): an undirected graph with the defaults, a directed graph (in- and out-degrees differ),
  ``add_self_loops=False`` with a zero in-degree, edge weights with and without self-loops, an existing weighted
  self-loop, isolated nodes, a single node with and without self-loops, float64 weights; gradients with respect
  to the weights. Mistakes: no self-loops, self-loops despite ``add_self_loops=False``, a second self-loop on a
  looped node, the degree of A instead of A + I, D^-1 (random walk), D^-1 on both sides, one side only, the
  degree at the source, unweighted degrees, the weights ignored, inf for a zero degree. Properties: every weight
  finite; a symmetric result on an undirected graph; ``A_hat sqrt(d) = sqrt(d)`` there.
"""

from amla.checks.graphs.gcn_norm import check_gcn_norm
from amla.checks.graphs.propagate import check_propagate

__all__ = ["check_gcn_norm", "check_propagate"]
