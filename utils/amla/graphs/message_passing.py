"""Hour 13: message passing from scratch, the GCN normalisation, and a GCN layer equal to PyG's ``GCNConv``.

A graph is an edge list ``edge_index`` of shape ``[2, E]``: column ``e`` is the edge ``edge_index[0, e] ->
edge_index[1, e]`` (source -> target, PyG's ``flow="source_to_target"``). An undirected graph stores both
directions. Messages flow from the source to the target, and each target sums what it receives:

    out[i] = sum over edges (j -> i) of weight(j -> i) * x[j]

- ``propagate(x, edge_index, edge_weight=None)``: that sum, with one scatter-add (Exercise 13.1);
- ``gcn_norm(edge_index, num_nodes, edge_weight=None, add_self_loops=True)``: the weights of
  D^-1/2 (A + I) D^-1/2 on an edge list (Exercise 13.2), as ``torch_geometric.nn.conv.gcn_conv.gcn_norm`` computes
  them: self-loops are added only where a node has none (``add_remaining_self_loops``), the degree is counted at
  the target, and a zero degree gives weight 0 (not inf);
- ``GCNLayer(in_channels, out_channels, *, propagate=..., gcn_norm=...)``: ``A_hat (X W) + b``, built on the two
  functions it is given (a notebook passes the ones its checks returned), equal to ``GCNConv`` (same parameter
  names: ``layer.load_state_dict(conv.state_dict())`` copies a ``GCNConv``'s weights);
- ``GCNConvMP``: the same layer as a ``torch_geometric.nn.MessagePassing`` subclass (what the library does for
  you: the gather of ``x_j``, the scatter-add, the bookkeeping of sizes);
- ``SGC``: the GCN without its nonlinearities (Wu et al., 2019): ``A_hat^K X`` computed once with the given
  ``propagate``/``gcn_norm``, then one linear layer; convex in its weights, so every seed reaches the same model;
- ``GCN``: a stack of ``GCNLayer`` with an optional 2-D embedding layer and APPNP-style extra propagation, which
  returns its hidden embedding on request (for the embedding explorer).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

# GCNConvMP is made on first use (module __getattr__), so that importing this module (as every hour's
# checks summary does) does not import torch_geometric
__all__ = ["GCN", "GCNConvMP", "GCNLayer", "SGC", "PropagateFn", "NormFn", "dense_adjacency",  # noqa: F822
           "degrees", "gcn_norm", "propagate"]

PropagateFn = Callable[..., Tensor]
NormFn = Callable[..., tuple[Tensor, Tensor]]


def _check_edges(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> None:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise ValueError(f"edge_index must be a [2, E] tensor of node ids, got {shape}")
    if edge_index.dtype != torch.long:
        raise ValueError(f"edge_index must hold int64 node ids (torch.long), got {edge_index.dtype}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index holds node ids in [{int(edge_index.min())}, {int(edge_index.max())}], expected "
                         f"ids in [0, {num_nodes - 1}] for {num_nodes} nodes")
    if edge_weight is not None and tuple(edge_weight.shape) != (edge_index.size(1),):
        raise ValueError(f"edge_weight must have shape ({edge_index.size(1)},), one weight per edge, got "
                         f"{tuple(edge_weight.shape)}")


def propagate(x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
    """``out[i] = sum_{(j -> i)} w_ji x[j]`` for ``x [N, F]``: gather at the source, scatter-add at the target."""
    if x.dim() != 2:
        raise ValueError(f"x must be [N, F] (one row of features per node), got shape {tuple(x.shape)}")
    _check_edges(edge_index, x.size(0), edge_weight)
    source, target = edge_index[0], edge_index[1]
    messages = x[source]  # [E, F]: what each edge carries
    if edge_weight is not None:
        messages = messages * edge_weight.to(x.dtype).unsqueeze(-1)
    return torch.zeros_like(x).index_add(0, target, messages)  # [N, F]: each target sums its messages


def _weights_like(x: Tensor, edge_index: Tensor, edge_weight: Tensor | None) -> Tensor | None:
    """Ones in x's dtype where no weights are given and x is not float32 (as GCNConv passes ``dtype=x.dtype``)."""
    if edge_weight is None and x.dtype != torch.float32:
        return torch.ones(edge_index.size(1), dtype=x.dtype, device=x.device)
    return edge_weight


def degrees(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None, *, at: str = "target") -> Tensor:
    """In-degree (``at="target"``) or out-degree (``at="source"``) of every node; weighted when weights are given."""
    idx = edge_index[1] if at == "target" else edge_index[0]
    w = edge_weight if edge_weight is not None else torch.ones(idx.numel(), device=idx.device)
    return torch.zeros(num_nodes, dtype=w.dtype, device=w.device).index_add(0, idx, w)


def gcn_norm(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None,
             add_self_loops: bool = True) -> tuple[Tensor, Tensor]:
    """The edge list and weights of ``D^-1/2 (A + I) D^-1/2`` (``GCNConv``'s normalisation).

    Self-loops (weight 1) are added to the nodes that have none; an existing self-loop keeps its weight. The
    degree ``d_i`` is the (weighted) in-degree, counted at the target, self-loop included; the weight of the edge
    ``j -> i`` becomes ``w_ji / sqrt(d_j d_i)``, and 0 where a degree is 0."""
    _check_edges(edge_index, num_nodes, edge_weight)
    weight = (edge_weight if edge_weight is not None
              else torch.ones(edge_index.size(1), device=edge_index.device))
    if add_self_loops:
        is_loop = edge_index[0] == edge_index[1]
        loop_weight = torch.ones(num_nodes, dtype=weight.dtype, device=weight.device)
        loop_weight = loop_weight.index_put((edge_index[0][is_loop],), weight[is_loop])  # keep existing loops
        nodes = torch.arange(num_nodes, device=edge_index.device)
        edge_index = torch.cat([edge_index[:, ~is_loop], torch.stack([nodes, nodes])], dim=1)
        weight = torch.cat([weight[~is_loop], loop_weight])
    source, target = edge_index[0], edge_index[1]
    deg = torch.zeros(num_nodes, dtype=weight.dtype, device=weight.device).index_add(0, target, weight)
    deg_inv_sqrt = deg.pow(-0.5).masked_fill(deg == 0, 0.0)
    return edge_index, deg_inv_sqrt[source] * weight * deg_inv_sqrt[target]


def dense_adjacency(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> Tensor:
    """``A [N, N]`` with ``A[i, j]`` = the (summed) weight of the edges ``j -> i``, so that ``A @ x`` is
    ``propagate(x, edge_index, edge_weight)``."""
    w = edge_weight if edge_weight is not None else torch.ones(edge_index.size(1), device=edge_index.device)
    a = torch.zeros(num_nodes, num_nodes, dtype=w.dtype, device=w.device)
    return a.index_put((edge_index[1], edge_index[0]), w, accumulate=True)


class GCNLayer(nn.Module):
    """``out = A_hat (X W) + b`` with ``A_hat = D^-1/2 (A + I) D^-1/2``, built on ``propagate`` and ``gcn_norm``.

    The parameters have ``GCNConv``'s names (``lin.weight [out, in]``, ``bias [out]``), so
    ``layer.load_state_dict(conv.state_dict())`` gives the same layer. ``normalize=False`` propagates with the
    raw (or given) edge weights and no self-loops, as ``GCNConv(normalize=False)`` does."""

    def __init__(self, in_channels: int, out_channels: int, *, propagate: PropagateFn = propagate,
                 gcn_norm: NormFn = gcn_norm, add_self_loops: bool = True, normalize: bool = True,
                 bias: bool = True, cached: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.propagate_fn, self.gcn_norm_fn = propagate, gcn_norm
        self.add_self_loops, self.normalize, self.cached = add_self_loops and normalize, normalize, cached
        self._cache: tuple[Tensor, Tensor, Tensor | None] | None = None
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.xavier_uniform_(self.lin.weight)  # GCNConv's glorot initialisation

    def normalized(self, edge_index: Tensor, num_nodes: int,
                   edge_weight: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The edge list and weights the layer propagates with (cached when ``cached=True``)."""
        if not self.normalize:
            return edge_index, edge_weight
        if self.cached and self._cache is not None and self._cache[0] is edge_index:
            return self._cache[1], self._cache[2]
        ei, w = self.gcn_norm_fn(edge_index, num_nodes, edge_weight, self.add_self_loops)
        if self.cached:
            self._cache = (edge_index, ei, w)
        return ei, w

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"GCNLayer({self.in_channels}, {self.out_channels}) expects x of shape [N, "
                             f"{self.in_channels}], got {tuple(x.shape)}")
        ei, w = self.normalized(edge_index, x.size(0), _weights_like(x, edge_index, edge_weight))
        out = self.propagate_fn(self.lin(x), ei, w)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, normalize={self.normalize}"


def _gcn_conv_mp_class() -> type:
    from torch_geometric.nn import MessagePassing

    class GCNConvMP(MessagePassing):
        """The same layer as a PyG ``MessagePassing`` subclass: we write ``message`` (what one edge carries) and
        PyG gathers ``x_j = x[edge_index[0]]``, calls it, and scatter-adds the result at ``edge_index[1]``."""

        def __init__(self, in_channels: int, out_channels: int, *, gcn_norm: NormFn = gcn_norm,
                     add_self_loops: bool = True, bias: bool = True) -> None:
            super().__init__(aggr="add")  # sum the messages (flow="source_to_target" is the default)
            self.gcn_norm_fn, self.add_self_loops = gcn_norm, add_self_loops
            self.lin = nn.Linear(in_channels, out_channels, bias=False)
            self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
            nn.init.xavier_uniform_(self.lin.weight)

        def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
            w = _weights_like(x, edge_index, edge_weight)
            ei, w = self.gcn_norm_fn(edge_index, x.size(0), w, self.add_self_loops)
            out = self.propagate(ei, x=self.lin(x), edge_weight=w)  # calls message() and aggregates
            return out + self.bias if self.bias is not None else out

        def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:  # x_j: [E, F], the source of each edge
            return edge_weight.view(-1, 1) * x_j

    GCNConvMP.__qualname__ = "GCNConvMP"
    return GCNConvMP


def __getattr__(name: str) -> type:  # torch_geometric is imported only when GCNConvMP is asked for
    if name == "GCNConvMP":
        cls = _gcn_conv_mp_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class GCN(nn.Module):
    """A stack of ``GCNLayer`` s for node classification, on the ``propagate`` and ``gcn_norm`` it is given.

    ``num_layers`` GCN layers ``in -> hidden -> ... -> hidden`` and then ``out``; with ``embedding_dim`` the last GCN
    layer maps to ``embedding_dim`` (2 for a picture) and a linear classifier reads the logits from that
    embedding. ``cached=True`` normalises the graph once (one fixed graph, as in transductive node
    classification). ``hops > 0`` adds APPNP-style propagation after the last layer (Klicpera et al., 2019):
    ``h <- (1 - alpha) A_hat h + alpha h_0`` repeated ``hops`` times, which reaches further without more weights.
    ``forward(x, edge_index, edge_weight=None, return_embedding=False)`` returns the logits, or ``(logits,
    embedding)``."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2, *,
                 embedding_dim: int | None = None, hops: int = 0, alpha: float = 0.1, dropout: float = 0.0,
                 activation: Callable[[Tensor], Tensor] = torch.relu, propagate: PropagateFn = propagate,
                 gcn_norm: NormFn = gcn_norm, cached: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        last = embedding_dim if embedding_dim is not None else out_channels
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [last]
        self.layers = nn.ModuleList(GCNLayer(a, b, propagate=propagate, gcn_norm=gcn_norm, cached=cached)
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.classifier = nn.Linear(embedding_dim, out_channels) if embedding_dim is not None else None
        self.propagate_fn, self.gcn_norm_fn = propagate, gcn_norm
        self.hops, self.alpha, self.dropout, self.activation = hops, alpha, dropout, activation

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
                return_embedding: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = x
        for k, layer in enumerate(self.layers):
            h = nn.functional.dropout(h, self.dropout, self.training)
            h = layer(h, edge_index, edge_weight)
            if k < len(self.layers) - 1 or self.classifier is not None:
                h = self.activation(h)
        if self.hops:
            ei, w = self.gcn_norm_fn(edge_index, x.size(0), _weights_like(h, edge_index, edge_weight), True)
            h0 = h
            for _ in range(self.hops):
                h = (1 - self.alpha) * self.propagate_fn(h, ei, w) + self.alpha * h0
        if self.classifier is None:
            return (h, h) if return_embedding else h
        logits = self.classifier(h)
        return (logits, h) if return_embedding else logits


class SGC(nn.Module):
    """Simplified graph convolution (Wu et al., 2019): ``logits = A_hat^K X W + b``, a K-layer GCN without the
    nonlinearities between its layers, on the ``propagate`` and ``gcn_norm`` it is given.

    ``A_hat^K X`` has no parameters: it is computed once per graph and cached (``features``), so training is a
    logistic regression on the propagated features. ``hops`` (K) is the receptive field: node i sees the nodes
    within K edges. ``forward(..., return_embedding=True)`` also returns the propagated features."""

    def __init__(self, in_channels: int, out_channels: int, hops: int = 2, *, propagate: PropagateFn = propagate,
                 gcn_norm: NormFn = gcn_norm) -> None:
        super().__init__()
        if hops < 0:
            raise ValueError(f"hops must be >= 0, got {hops}")
        self.hops, self.propagate_fn, self.gcn_norm_fn = hops, propagate, gcn_norm
        self.lin = nn.Linear(in_channels, out_channels)
        self._cache: tuple[Tensor, Tensor, Tensor | None, Tensor] | None = None

    def features(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """``A_hat^K x`` (cached for the same ``x``, ``edge_index`` and ``edge_weight`` tensors)."""
        c = self._cache
        if c is not None and c[0] is x and c[1] is edge_index and c[2] is edge_weight:
            return c[3]
        ei, w = self.gcn_norm_fn(edge_index, x.size(0), _weights_like(x, edge_index, edge_weight), True)
        h = x
        with torch.no_grad():  # no parameters before the linear layer
            for _ in range(self.hops):
                h = self.propagate_fn(h, ei, w)
        self._cache = (x, edge_index, edge_weight, h)
        return h

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
                return_embedding: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.features(x, edge_index, edge_weight)
        logits = self.lin(h)
        return (logits, h) if return_embedding else logits
