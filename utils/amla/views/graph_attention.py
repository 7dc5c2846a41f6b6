"""Attention on a graph's edges, one node at a time: ``NeighbourhoodAttention``.

A graph attention layer (GAT) gives every edge ``j -> i`` a weight ``alpha_ij`` per head, a softmax over the
incoming edges of ``i`` (its self-loop included when the layer adds one): the weights of one node's incoming
edges sum to 1. The view picks one target node (a ``Dropdown`` of node ids for small graphs, a
``BoundedIntText`` for big ones; default: the node with the most incoming edges), draws it in the middle and its
incoming neighbours on a circle around it, each spoke's width and colour = the edge's weight, the weight printed
on it; one small panel per head in a grid (``all heads``) or one head. The picture warns when the weights shown do
not sum to 1. Where no widget frontend runs, the PNG stays (static fallback).

``weights`` and ``edge_index`` are what PyG's ``GATConv(..., return_attention_weights=True)`` returns:
``(edge_index [2, E], alpha [E, H])``, sources in row 0, targets in row 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from amla.views.base import View

__all__ = ["NeighbourhoodAttention"]

CMAP = "viridis_r"  # dark = more attention (yellow-ish light = little)
TARGET_COLOR = "#e8590c"
WARN_COLOR = "#c92a2a"
NODE_COLOR = "#dee2e6"
ALL = -1  # the head selector's value for "all heads"
DROPDOWN_MAX = 300  # more nodes than this: a BoundedIntText instead of a Dropdown
SUM_TOL = 1e-3


def _numpy(x: Any, name: str) -> np.ndarray:
    try:
        return x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"NeighbourhoodAttention: {name} must be a tensor or array, got {type(x).__name__}") from None


class NeighbourhoodAttention(View):
    """The attention weights of one target node's incoming edges ``j -> i``, drawn around it, per head.

    ``edge_index``: ``[2, E]`` (row 0 sources ``j``, row 1 targets ``i``); ``weights``: ``[E, H]`` or ``[E]`` (one
    head), ``weights[e, h]`` the weight of edge ``e`` in head ``h``; ``node_names``: a name per node (else its
    id); ``labels``: a class id per node (colours the neighbours); ``max_neighbours``: the most spokes drawn (the
    heaviest ones of the selected head, or of the mean over heads; the rest are summed in a note). Controls:
    ``controls["node"]`` (the target) and ``controls["head"]`` (``-1`` = all heads; hidden for one head).
    ``select(node=..., head=...)`` sets both with one redraw; ``incoming(node)`` gives the edge ids into a node.
    """

    def __init__(self, edge_index: Any, weights: Any, *, node_names: Sequence[str] | None = None,
                 labels: Any = None, title: str = "", node: int | None = None, head: int = ALL,
                 max_neighbours: int = 16, num_nodes: int | None = None, dpi: int = 90) -> None:
        ei = _numpy(edge_index, "edge_index")
        if ei.ndim != 2 or ei.shape[0] != 2:
            raise ValueError(f"NeighbourhoodAttention: edge_index must be [2, E] (sources; targets), got shape "
                             f"{tuple(ei.shape)}")
        if ei.size and not np.all(ei == np.round(ei)):
            raise ValueError("NeighbourhoodAttention: edge_index must hold integer node ids, got non-integers")
        self.edge_index = ei.astype(np.int64)
        n_edges = self.edge_index.shape[1]
        if n_edges == 0:
            raise ValueError("NeighbourhoodAttention: edge_index has no edges; expected [2, E] with E >= 1")
        w = _numpy(weights, "weights")
        if w.ndim == 1:
            w = w[:, None]
        if w.ndim != 2 or w.shape[0] != n_edges or w.shape[1] == 0:
            raise ValueError(f"NeighbourhoodAttention: weights must be [E, H] or [E] with E = {n_edges} (one row per "
                             f"edge of edge_index), got shape {tuple(_numpy(weights, 'weights').shape)}")
        if not np.all(np.isfinite(w)):
            raise ValueError("NeighbourhoodAttention: weights have NaN or inf values")
        self.weights = w
        if self.edge_index.min() < 0:
            raise ValueError(f"NeighbourhoodAttention: edge_index has node id {int(self.edge_index.min())}; "
                             "expected ids >= 0")
        needed = int(self.edge_index.max()) + 1
        sizes = {"num_nodes": num_nodes, "node_names": None if node_names is None else len(node_names),
                 "labels": None}
        self.labels = None
        if labels is not None:
            lab = _numpy(labels, "labels")
            if lab.ndim != 1 or not np.all(lab == np.round(lab)) or (lab.size and lab.min() < 0):
                raise ValueError(f"NeighbourhoodAttention: labels must be class ids >= 0, [N], got shape "
                                 f"{tuple(lab.shape)}")
            self.labels = lab.astype(np.int64)
            sizes["labels"] = len(lab)
        given = {k: v for k, v in sizes.items() if v is not None}
        if len(set(given.values())) > 1:
            raise ValueError(f"NeighbourhoodAttention: the number of nodes disagrees: {given}")
        self.num_nodes = next(iter(given.values())) if given else needed
        if self.num_nodes < needed:
            what = ", ".join(f"{k} = {v}" for k, v in given.items())
            raise ValueError(f"NeighbourhoodAttention: edge_index has node id {needed - 1}, out of range for "
                             f"{what}; expected ids in 0..{self.num_nodes - 1}")
        if node_names is not None:
            if isinstance(node_names, str) or not all(isinstance(s, str) for s in node_names):
                raise ValueError(f"NeighbourhoodAttention: node_names must be a list of str, got {node_names!r}")
        self.node_names = list(node_names) if node_names is not None else None
        self.title = str(title)
        if not isinstance(max_neighbours, int) or max_neighbours < 1:
            raise ValueError(f"NeighbourhoodAttention: max_neighbours must be an int >= 1, got {max_neighbours!r}")
        self.max_neighbours = max_neighbours
        self.in_degree = np.bincount(self.edge_index[1], minlength=self.num_nodes)
        first = int(np.argmax(self.in_degree)) if node is None else self._node(node)
        n_heads = self.weights.shape[1]
        if self.num_nodes <= DROPDOWN_MAX:
            options = [(f"{i}: {self._name(i)} ({self.in_degree[i]} in)" if self.node_names else
                        f"{i} ({self.in_degree[i]} in)", i) for i in range(self.num_nodes)]
            self.node = widgets.Dropdown(options=options, value=first, description="node",
                                         layout=widgets.Layout(width="260px"))
        else:
            self.node = widgets.BoundedIntText(value=first, min=0, max=self.num_nodes - 1, description="node",
                                               layout=widgets.Layout(width="200px"))
        self.head = widgets.Dropdown(options=[("all heads", ALL)] + [(f"head {h}", h) for h in range(n_heads)],
                                     value=self._head(head), description="head", layout=widgets.Layout(width="200px"))
        if n_heads == 1:
            self.head.value = 0
            self.head.layout.display = "none"
        super().__init__({"node": self.node, "head": self.head}, dpi=dpi)

    # --- state --------------------------------------------------------------------------------------------------

    def _node(self, node: Any) -> int:
        if isinstance(node, bool) or not isinstance(node, (int, np.integer)) or not 0 <= node < self.num_nodes:
            raise ValueError(f"NeighbourhoodAttention: node must be a node id in 0..{self.num_nodes - 1}, got {node!r}")
        return int(node)

    def _head(self, head: Any) -> int:
        n_heads = self.weights.shape[1]
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not -1 <= head < n_heads:
            raise ValueError(f"NeighbourhoodAttention: head must be -1 (all heads) or 0..{n_heads - 1}, got {head!r}")
        return int(head)

    def _name(self, i: int) -> str:
        return self.node_names[i] if self.node_names is not None else str(i)

    def incoming(self, node: int) -> np.ndarray:
        """The ids of the edges ``j -> node`` (into ``node``), in edge_index order."""
        return np.flatnonzero(self.edge_index[1] == self._node(node))

    def select(self, node: int | None = None, head: int | None = None) -> NeighbourhoodAttention:
        """Set the target node and / or the head (-1: all heads) with one redraw."""
        wanted = []
        if node is not None:
            wanted.append((self.node, self._node(node)))
        if head is not None:
            wanted.append((self.head, self._head(head)))
        self.set_controls(wanted)  # quietly, then one redraw for all of them
        return self

    def show(self, node: int | None = None) -> NeighbourhoodAttention:
        """Move to ``node`` (default: stay) and return the view, to display as a cell's last line."""
        return self.select(node=node)

    # --- picture ------------------------------------------------------------------------------------------------

    def draw(self) -> Figure:
        target, head = int(self.node.value), int(self.head.value)
        edges = self.incoming(target)
        heads = list(range(self.weights.shape[1])) if head == ALL else [head]
        w = self.weights[edges][:, heads]  # [in-degree, shown heads]
        order = np.argsort(-(w.mean(axis=1)), kind="stable")
        shown = order[: self.max_neighbours]
        cols = min(len(heads), 3 if len(heads) in (5, 6, 9) else 4)
        rows = math.ceil(len(heads) / cols)
        side = 2.9 if len(heads) > 1 else 4.2  # inches per panel (a square)
        gap, head_h, bar_w = 0.15, 0.25, 0.95
        sums = w.sum(axis=0) if len(edges) else np.zeros(len(heads))
        off = [(h, s) for h, s in zip(heads, sums) if abs(s - 1.0) > SUM_TOL]
        header, footer = 0.72, (0.45 if off else 0.1)
        width = max(cols * side + (cols - 1) * gap + 0.2 + bar_w, 6.0)
        height = header + rows * (side + head_h) + (rows - 1) * gap + footer
        fig = Figure(figsize=(width, height))
        x0 = (width - bar_w - (cols * side + (cols - 1) * gap)) / 2
        vmax = float(max(w.max(initial=0.0), 1e-12))
        norm = Normalize(0.0, vmax)
        cmap = matplotlib.colormaps[CMAP]
        for k, h in enumerate(heads):
            row, col = divmod(k, cols)
            left, top = x0 + col * (side + gap), header + row * (side + head_h + gap) + head_h
            ax = fig.add_axes((left / width, 1 - (top + side) / height, side / width, side / height))
            self._panel(ax, target, edges[shown], w[shown, k], norm, cmap, sums[k], self.weights.shape[1] > 1, h)
        present = [] if self.labels is None or not len(shown) else sorted(
            {int(self.labels[j]) for j in self.edge_index[0, edges[shown]]})
        legend_h = 0.3 + 0.17 * len(present) if present else 0.0
        column = rows * (side + head_h) + (rows - 1) * gap - head_h  # the height beside the panels
        bar_h = max(min(column - legend_h - 0.15, 3.2), 1.0)
        cax = fig.add_axes(((width - bar_w + 0.1) / width, 1 - (header + head_h + bar_h) / height, 0.15 / width,
                            bar_h / height))
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax)
        bar.set_label("attention weight", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        if present:  # the neighbours' colours: their classes
            palette = matplotlib.colormaps["tab10"]
            handles = [Circle((0, 0), 1, facecolor=_lighter(palette(c % 10)), edgecolor="0.35", label=f"class {c}")
                       for c in present]
            fig.legend(handles=handles, loc="upper left", fontsize=7, title="neighbours", title_fontsize=7,
                       bbox_to_anchor=((width - bar_w - 0.05) / width, 1 - (header + head_h + bar_h + 0.15) / height),
                       framealpha=0.9, handlelength=1.0, borderaxespad=0.0)
        name = f"node {target}" + (f" ({self.node_names[target]})" if self.node_names else "")
        has_self = bool(np.any(self.edge_index[0, edges] == target))
        drawn = f"; the heaviest {len(shown)} drawn" if len(shown) < len(edges) else ""
        lines = [f"{self.title + ': ' if self.title else ''}attention into {name}",
                 f"{len(edges)} incoming edges j -> i" + (", self-loop included" if has_self else "") + drawn,
                 "their weights sum to 1 (softmax per head); width and colour = weight"]
        fig.text(0.5, 1 - 0.08 / height, "\n".join(lines), fontsize=9, ha="center", va="top", linespacing=1.3)
        if off:
            bad = ", ".join(f"head {h}: {s:.3f}" for h, s in off)
            fig.text(0.5, 0.06 / height, f"WARNING: these weights do not sum to 1 ({bad});\nare they a softmax "
                     "over each node's incoming edges?", color=WARN_COLOR, fontsize=8.5, ha="center", va="bottom",
                     fontweight="bold")
        return fig

    def _panel(self, ax: Axes, target: int, edges: np.ndarray, w: np.ndarray, norm: Normalize, cmap: Any,
               total: float, titled: bool, head: int) -> None:
        """Target in the middle, the sources of ``edges`` on a circle, spokes by weight ``w``."""
        ax.set_xlim(-1.22, 1.22)
        ax.set_ylim(-1.22, 1.22)
        ax.set_aspect("equal")
        ax.axis("off")
        n = len(edges)
        font = 8 if n <= 10 else 7 if n <= 16 else 6
        radius = 0.17 if n <= 8 else 0.13 if n <= 16 else 0.1
        label_palette = matplotlib.colormaps["tab10"]
        for k, (e, weight) in enumerate(zip(edges, w)):
            angle = math.pi / 2 - 2 * math.pi * k / max(n, 1)
            x, y = math.cos(angle), math.sin(angle)
            source = int(self.edge_index[0, e])
            color = cmap(norm(weight))
            ax.plot([0, x], [0, y], color=color, lw=0.8 + 7.0 * weight / max(norm.vmax, 1e-12),
                    solid_capstyle="round", zorder=1)
            is_self = source == target
            face = NODE_COLOR if self.labels is None else _lighter(label_palette(self.labels[source] % 10))
            ax.add_patch(Circle((x, y), radius, facecolor="white" if is_self else face, zorder=3,
                                edgecolor=TARGET_COLOR if is_self else "0.35", lw=1.4 if is_self else 0.8,
                                ls="--" if is_self else "-"))
            ax.text(x, y, "self" if is_self else _short(self._name(source)), ha="center", va="center",
                    fontsize=font, zorder=4)
            ax.text(0.58 * x, 0.58 * y, f"{weight:.2f}", ha="center", va="center", fontsize=font, zorder=2,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
        ax.add_patch(Circle((0, 0), 0.2, facecolor=TARGET_COLOR, edgecolor="black", lw=1.0, zorder=5))
        ax.text(0, 0, _short(self._name(target)), ha="center", va="center", fontsize=9, color="white",
                fontweight="bold", zorder=6)
        if n == 0:
            ax.text(0, -0.5, "no incoming edges", ha="center", fontsize=9, color=WARN_COLOR)
        head_name = f"head {head}: " if titled else ""
        ok = abs(total - 1.0) <= SUM_TOL
        ax.set_title(f"{head_name}sum = {total:.3f}", fontsize=9, color="black" if ok else WARN_COLOR, pad=2)


def _lighter(color: Any, keep: float = 0.55) -> tuple[float, float, float]:
    """``color`` mixed with white (opaque, so the spokes end under the node)."""
    return tuple(keep * c + (1 - keep) for c in color[:3])  # type: ignore[return-value]


def _short(text: str, size: int = 6) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
