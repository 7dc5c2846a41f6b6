"""Attention weights: ``AttentionViewer`` (a View: layer / head / query controls, an all-heads grid,
the selected query's row as shaded key tokens) and ``plot_attention`` (one map, a plain Figure).

Layouts are computed in inches from token counts and label lengths (no layout engine: a redraw is one
render); for long sequences cells and fonts shrink (5 pt at least), then tick labels are thinned.
Token texts are never parsed as math.
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
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from amla.views.base import View

__all__ = ["AttentionViewer", "plot_attention"]

CMAP = "Blues"  # darker = more attention, in the heatmaps and in the token strip alike
ACCENT = "#e8590c"  # the selected query row and the selected head
_CHAR = 0.6 / 72  # inches per character per point of font size (exact for DejaVu Sans Mono)
Box = tuple[int, int, int]  # a token box of the strip: x, line, width (in characters)


def plot_attention(
    weights_2d: Any, queries: Sequence[Any] | None, keys: Sequence[Any] | None = None, *,
    ax: Axes | None = None, title: str | None = None,
) -> Figure:
    """One ``[queries, keys]`` attention map: queries on rows, keys on columns, a colorbar from 0.

    ``keys`` defaults to ``queries`` (self-attention); ``None`` tokens are shown as positions.
    With ``ax`` the map is drawn into it (and a colorbar beside it), and ``ax.figure`` is returned.
    """
    w = _weights(weights_2d, "plot_attention: weights_2d", 2, 2,
                 "must be [queries, keys], got shape {}; pick one map first, e.g. weights[layer, head]")
    qs, ks = _match_tokens(w.shape, queries, keys)
    if ax is None:
        return _map_figure(w, qs, ks, title)
    fig = ax.figure
    box = ax.get_position()
    cell = min(box.width * fig.get_figwidth() / w.shape[1], box.height * fig.get_figheight() / w.shape[0])
    image = _heatmap(ax, w, qs, ks, _norm(w), *_ticks(cell, 9.0))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig  # type: ignore[return-value]


class AttentionViewer(View):
    """Attention weights with layer / head / query controls and an all-heads grid.

    ``weights``: tensor or array ``[layers, heads, queries, keys]`` (fewer leading dims accepted);
    ``queries`` / ``keys``: token strings (``keys`` defaults to ``queries``: self-attention).
    One head: its heatmap with the selected query row outlined, and below it that row's weights as
    shaded key tokens. ``all heads``: every head of the layer on one colour scale. Controls with a
    single choice are hidden. ``select(...)`` sets several controls with one redraw.
    """

    def __init__(
        self, weights: Any, queries: Sequence[Any], keys: Sequence[Any] | None = None, *,
        title: str | None = None, layer_names: Sequence[str] | None = None, dpi: int = 100,
    ) -> None:
        w = _weights(weights, "weights", 2, 4, "must be [layers, heads, queries, keys] or fewer leading "
                     "dims, got shape {}")
        self.queries, self.keys = _match_tokens(w.shape, queries, keys)
        self.weights = w.reshape((1,) * (4 - w.ndim) + w.shape)
        n_layers, n_heads, n_queries, _ = self.weights.shape
        names = _texts(layer_names, "layer_names") if layer_names is not None else [
            f"layer {i}" for i in range(n_layers)]
        if len(names) != n_layers:
            raise ValueError(f"layer_names has {len(names)} names but weights have {n_layers} layers "
                             f"(shape {w.shape})")
        self.layer_names, self.title = names, title
        self.layer = _dropdown("layer", names, 0, "190px")
        self.head = _dropdown("head", [f"head {h}" for h in range(n_heads)], 0, "150px")
        self.all_heads = widgets.Checkbox(value=False, description="all heads", indent=False,
                                          layout=widgets.Layout(width="100px"))
        self.query = _dropdown("query", [f"{i}: {_short(t, 20)}" for i, t in enumerate(self.queries)],
                               n_queries - 1, "230px")
        for control, choices in [(self.layer, n_layers), (self.head, n_heads), (self.all_heads, n_heads),
                                 (self.query, n_queries)]:
            if choices == 1:  # nothing to pick: keep the view uncluttered
                control.layout.display = "none"
        super().__init__({"layer": self.layer, "head": self.head, "all_heads": self.all_heads,
                          "query": self.query}, dpi=dpi)

    def draw(self) -> Figure:
        layer, head, query = self.layer.value, self.head.value, self.query.value
        parts = [self.title] if self.title else []
        parts += [self.layer_names[layer]] if len(self.weights) > 1 else []
        if self.all_heads.value:
            parts += ["all heads", f"outlined: query {query} {_short(self.queries[query])!r}"]
            return _grid_figure(self.weights[layer], self.queries, self.keys, " · ".join(parts), query, head)
        parts += [f"head {head}"] if self.weights.shape[1] > 1 else []
        heading = " · ".join(parts) or "attention weights"
        return _map_figure(self.weights[layer, head], self.queries, self.keys, heading, query=query)

    def select(
        self, layer: int | str | None = None, head: int | None = None, query: int | None = None,
        all_heads: bool | None = None,
    ) -> AttentionViewer:
        """Set controls (a layer by index or name; negative indices count from the end); redraws once."""
        asked = [(self.layer, layer, "layer", self.layer_names), (self.head, head, "head", None),
                 (self.query, query, "query", None)]
        wanted: list[tuple[widgets.Widget, Any]] = [
            (control, _index(value, len(control.options), name, names))
            for control, value, name, names in asked if value is not None]
        if all_heads is not None:
            wanted.append((self.all_heads, bool(all_heads)))
        self.set_controls(wanted)  # quietly, then one redraw for all of them
        return self


# --- figures --------------------------------------------------------------------------------------


def _map_figure(w: np.ndarray, qs: list[str], ks: list[str], heading: str | None, query: int | None = None
                ) -> Figure:
    """One heatmap with its colorbar; with ``query``, that row outlined and shown as a token strip."""
    n_q, n_k = w.shape
    n = max(n_q, n_k)
    cell = min(0.42, max(4.0 / n, min(0.16, 7.5 / n)))  # 4 in wide at least, 7.5 in from 47 tokens on
    font, stride = _ticks(cell, 10.0)
    heat_w, heat_h, right, top = n_k * cell, n_q * cell, 0.95, (0.5 if heading else 0.15)
    left, bottom = 0.45 + _label_width(qs, font, stride), 0.45 + _label_width(ks, font, stride)
    width = max(left + heat_w + right, 3.0 if query is None else 4.8, len(heading or "") * 11 * _CHAR + 0.4)
    height = top + heat_h + bottom
    if query is not None:
        strip_font = 9.0 if n_k <= 16 else 8.0 if n_k <= 32 else 7.0
        boxes, lines = _flow(ks, int((width - 0.4) / (strip_font * _CHAR)))
        strip_h = lines * strip_font * 2.6 / 72
        height += 0.3 + strip_h + 0.1
    fig = Figure(figsize=(width, height))
    x0 = left + (width - left - heat_w - right) / 2
    image = _heatmap(_place(fig, x0, top, heat_w, heat_h), w, qs, ks, _norm(w), font, stride, query=query)
    fig.colorbar(image, cax=_place(fig, x0 + heat_w + 0.15, top, 0.14, heat_h)).ax.tick_params(labelsize=8)
    if heading:
        fig.suptitle(heading, y=1 - 0.12 / height, va="top", fontsize=11)
    if query is not None:
        strip = _place(fig, 0.2, top + heat_h + bottom + 0.3, width - 0.4, strip_h)
        _strip(strip, ks, w[query], boxes, lines, strip_font)
        strip.set_title(f"query {query} {_short(qs[query])!r}: its weights over the keys (darkest = "
                        f"{w[query].max():.2f})", loc="left", fontsize=9, pad=4, parse_math=False)
    return fig


def _grid_figure(w: np.ndarray, qs: list[str], ks: list[str], heading: str, query: int, head: int) -> Figure:
    """Every head of one layer as a small heatmap on one colour scale, the query row outlined in each."""
    n_heads, n_q, n_k = w.shape
    root = math.ceil(math.sqrt(n_heads))  # of root or root + 1 columns, the one leaving fewer holes
    cols = min((root, root + 1), key=lambda c: (math.ceil(n_heads / c) * c - n_heads, c))
    rows = math.ceil(n_heads / cols)
    cell = max(0.02, min(0.3, min(3.0, max(1.5, 8.0 / cols)) / max(n_q, n_k)))
    font, stride = _ticks(cell, 8.0)
    panel_w, panel_h, gap_w, gap_h, top = n_k * cell, n_q * cell, 0.15, 0.3, 0.6
    left, bottom = 0.4 + _label_width(qs, font, stride), 0.4 + _label_width(ks, font, stride)
    width = max(left + cols * (panel_w + gap_w) + 0.8, len(heading) * 11 * _CHAR + 0.4)
    height = top + rows * (panel_h + gap_h) - gap_h + bottom
    fig = Figure(figsize=(width, height))
    norm = _norm(w)
    for h in range(n_heads):
        row, col = divmod(h, cols)
        ax = _place(fig, left + col * (panel_w + gap_w), top + row * (panel_h + gap_h), panel_w, panel_h)
        image = _heatmap(ax, w[h], qs, ks, norm, font, stride, query=query,
                         labels=(col == 0, row == rows - 1), axis_font=8)
        ax.set_title(f"head {h}", fontsize=8, pad=2, color=ACCENT if h == head else "black",
                     fontweight="bold" if h == head else "normal")
    cax = _place(fig, left + cols * (panel_w + gap_w) + 0.05, top, 0.12, rows * (panel_h + gap_h) - gap_h)
    fig.colorbar(image, cax=cax).ax.tick_params(labelsize=7)
    fig.suptitle(heading, y=1 - 0.12 / height, va="top", fontsize=11)
    return fig


def _heatmap(
    ax: Axes, w: np.ndarray, qs: list[str], ks: list[str], norm: Normalize, font: float, stride: int, *,
    query: int | None = None, labels: tuple[bool, bool] = (True, True), axis_font: float = 9,
) -> AxesImage:
    """``w`` on ``ax``, every ``stride``-th token as a tick label (shown on the sides in ``labels``)."""
    image = ax.imshow(w, cmap=CMAP, norm=norm, aspect="auto", interpolation="nearest")
    rows, cols = list(range(0, len(qs), stride)), list(range(0, len(ks), stride))
    ax.set_yticks(rows, [_short(qs[i]) for i in rows], fontsize=font, parse_math=False)
    ax.set_xticks(cols, [_short(ks[i]) for i in cols], fontsize=font, rotation=90, parse_math=False)
    ax.tick_params(length=2, pad=1.5, labelleft=labels[0], labelbottom=labels[1])
    if labels[0]:
        ax.set_ylabel("queries", fontsize=axis_font)
    if labels[1]:
        ax.set_xlabel("keys", fontsize=axis_font)
    if query is not None:
        ax.add_patch(Rectangle((-0.5, query - 0.5), len(ks), 1, fill=False, edgecolor=ACCENT, linewidth=2,
                               clip_on=False))
        if query in rows and labels[0]:
            ax.get_yticklabels()[rows.index(query)].set(color=ACCENT, fontweight="bold")
    return image


def _flow(tokens: list[str], line_chars: int) -> tuple[list[Box], int]:
    """A box per token, laid out like running text in lines of ``line_chars``; and the line count."""
    boxes, x, line = [], 0, 0
    for token in tokens:
        width = min(max(len(_short(token, 16)), 3), line_chars - 1) + 1
        if x and x + width > line_chars:
            x, line = 0, line + 1
        boxes.append((x, line, width))
        x += width
    return boxes, line + 1


def _strip(ax: Axes, tokens: list[str], row: np.ndarray, boxes: list[Box], lines: int, font: float) -> None:
    """Key tokens as boxes shaded by one query's weights (0 .. the row's max), each weight printed small."""
    ax.set_xlim(0, ax.get_position().width * ax.figure.get_figwidth() / (font * _CHAR))
    ax.set_ylim(lines, 0)
    ax.axis("off")
    shade = Normalize(min(0.0, float(row.min())), max(float(row.max()), 1e-12), clip=True)
    cmap = matplotlib.colormaps[CMAP]
    for (x, line, width), token, value in zip(boxes, tokens, row.tolist()):
        level = float(shade(value))
        ax.add_patch(Rectangle((x + 0.15, line + 0.06), width - 0.3, 0.88, facecolor=cmap(level),
                               edgecolor="0.75", linewidth=0.5))
        style = dict(ha="center", va="center", family="monospace", color="white" if level > 0.6 else "black")
        ax.text(x + width / 2, line + 0.36, _short(token, 16), fontsize=font, parse_math=False, **style)
        ax.text(x + width / 2, line + 0.74, f"{value:.2f}", fontsize=font * 0.72, **style)


# --- helpers --------------------------------------------------------------------------------------


def _dropdown(name: str, labels: list[str], value: int, width: str) -> widgets.Dropdown:
    """A Dropdown of ``labels`` whose value is the index (labels may repeat)."""
    return widgets.Dropdown(options=[(label, i) for i, label in enumerate(labels)], value=value,
                            description=name, style={"description_width": "initial"},
                            layout=widgets.Layout(width=width))


def _place(fig: Figure, x: float, y: float, w: float, h: float) -> Axes:
    """New axes at ``x, y`` inches from the top-left corner, ``w`` by ``h`` inches."""
    fig_w, fig_h = fig.get_size_inches()
    return fig.add_axes((x / fig_w, 1 - (y + h) / fig_h, w / fig_w, h / fig_h))


def _ticks(cell: float, max_font: float) -> tuple[float, int]:
    """Tick font (pt) for cells of ``cell`` inches, and the label stride that keeps labels apart."""
    points = cell * 72
    font = min(max_font, max(5.0, 0.72 * points))
    return font, max(1, math.ceil(1.15 * font / points))


def _label_width(labels: list[str], font: float, stride: int) -> float:
    return max(len(_short(label)) for label in labels[::stride]) * font * _CHAR + 0.05


def _norm(w: np.ndarray) -> Normalize:
    low = min(0.0, float(w.min()))
    return Normalize(low, max(float(w.max()), low + 1e-12))


def _short(token: str, limit: int = 14) -> str:
    return token if len(token) <= limit else token[: limit - 1] + "…"


def _weights(weights: Any, what: str, low: int, high: int, wrong_dims: str) -> np.ndarray:
    """``weights`` as a float64 array with ``low`` to ``high`` dims, none empty, all finite."""
    if hasattr(weights, "detach"):  # a torch tensor: requires_grad, CUDA and bfloat16 all work
        weights = weights.detach().float().cpu().numpy()
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a tensor or array of numbers, got {type(weights).__name__}"
                        ) from None
    if not low <= w.ndim <= high:
        raise ValueError(f"{what} {wrong_dims.format(w.shape)}")
    if 0 in w.shape:
        raise ValueError(f"{what} has an empty dimension: shape {w.shape}")
    bad = ~np.isfinite(w)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what} must be finite, but {int(bad.sum())} of {w.size} values are nan or inf "
                         f"(the first at index {first}, shape {w.shape}); mask scores before the softmax")
    return w


def _texts(tokens: Any, what: str) -> list[str]:
    """Tokens (strings, numbers, a tensor of ids) as display texts; whitespace and control chars quoted."""
    if isinstance(tokens, str):
        raise TypeError(f"{what} must be a sequence of tokens, got the string {_short(tokens, 30)!r}; "
                        "split it first, e.g. text.split()")
    try:
        items = list(tokens.tolist() if hasattr(tokens, "tolist") else tokens)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of tokens, got {type(tokens).__name__}") from None
    texts = [f"{t:.3g}" if isinstance(t, float) else str(t) for t in items]
    return [t if t.strip() and t.isprintable() else repr(t) for t in texts]


def _match_tokens(shape: tuple[int, ...], queries: Any, keys: Any) -> tuple[list[str], list[str]]:
    """Query and key texts, checked against the last two dims of ``shape`` (``None``: positions)."""
    n_q, n_k = shape[-2:]
    where = f"weights have {n_q} queries x {n_k} keys (shape {shape})"
    qs = [str(i) for i in range(n_q)] if queries is None else _texts(queries, "queries")
    if len(qs) != n_q:
        raise ValueError(f"{where} but {len(qs)} query tokens were given")
    if keys is None and (queries is None or n_k != n_q):
        if queries is None:
            return qs, [str(i) for i in range(n_k)]
        raise ValueError(f"{where} but no keys were given, so the {n_q} query tokens were used as keys "
                         f"(self-attention); pass keys= with {n_k} tokens")
    ks = qs if keys is None else _texts(keys, "keys")
    if len(ks) != n_k:
        raise ValueError(f"{where} but {len(ks)} key tokens were given")
    return qs, ks


def _index(value: Any, n: int, what: str, names: list[str] | None = None) -> int:
    """``value`` as an index into ``n`` choices (or ``names``), for ``select``."""
    if names and isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not -n <= value < n:
        named = f" or one of {names}" if names else ""
        raise ValueError(f"select: {what} must be an int in 0..{n - 1} (negative counts from the end)"
                         f"{named}, got {value!r}")
    return int(value) % n
