"""The embedding explorer: 2-D points over training, coloured by label, with a graph's edges as light lines.

``EmbeddingExplorer`` is a ``View``: an epoch slider (an ``IntSlider`` over the saved epochs when they are evenly
spaced, else a ``SelectionSlider``) and a ``Play`` button linked to it in the browser (``jslink``), above the
picture of the selected epoch. Every frame is drawn on the same axis range (the box around all frames), so the
motion of the points from epoch to epoch is visible. Where no widget frontend runs, the picture of the selected
epoch stays in the output (static fallback).

Made for node embeddings (Hours 13-14: ``frames[epoch] = hidden [N, 2]``, ``labels`` = communities,
``edge_index`` = the graph, ``highlight`` = the labelled nodes), it shows any labelled 2-D point sets over training
(e.g. GAN samples: no edges, labels "real" / "generated").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from amla.views.base import View, fig_to_png, play_button

__all__ = ["EmbeddingExplorer"]

EDGE_COLOR = "#868e96"
HIGHLIGHT_COLOR = "#1b1b1b"
POINT_COLOR = "#1c7ed6"  # points without labels


def _array(x: Any, name: str, dtype: type = float) -> np.ndarray:
    try:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"EmbeddingExplorer: {name} must be a tensor or array, got {type(x).__name__}") from None


def _shape(x: Any) -> str:
    shape = getattr(x, "shape", None)
    return str(tuple(shape)) if shape is not None else type(x).__name__


def _integers(x: Any, name: str, expected: str) -> np.ndarray:
    """``x`` as an int64 array; floats are accepted only when they hold whole numbers."""
    arr = _array(x, name)
    if arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ValueError(f"EmbeddingExplorer: {name} must hold integers ({expected}), got non-integer values")
    return arr.astype(np.int64)


def _frames(frames: Any) -> dict[int, np.ndarray]:
    """The frames as ``{epoch: float array [N, 2]}`` sorted by epoch, every frame of the same N."""
    if not isinstance(frames, Mapping) or not frames:
        raise ValueError("EmbeddingExplorer: frames must be a non-empty dict {epoch: points [N, 2]}, got "
                         f"{type(frames).__name__}" + (" (empty)" if isinstance(frames, Mapping) else ""))
    out: dict[int, np.ndarray] = {}
    for epoch, points in frames.items():
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)):
            raise ValueError(f"EmbeddingExplorer: frames' keys must be int epochs, got {epoch!r} "
                             f"({type(epoch).__name__})")
        arr = _array(points, f"frames[{epoch}]")
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
            raise ValueError(f"EmbeddingExplorer: frames[{epoch}] must be points [N, 2], got shape "
                             f"{tuple(arr.shape)} (project bigger embeddings to 2-D first, e.g. with PCA)")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"EmbeddingExplorer: frames[{epoch}] has NaN or inf values (did training diverge?)")
        out[int(epoch)] = arr
    sizes = {epoch: arr.shape[0] for epoch, arr in out.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"EmbeddingExplorer: every frame must have the same N points, got N by epoch {sizes}")
    return dict(sorted(out.items()))


class EmbeddingExplorer(View):
    """2-D points at every saved epoch, coloured by label, with graph edges, an epoch slider and a play button.

    ``frames``: ``{epoch: points [N, 2]}`` (tensors or arrays; the same N nodes in every frame); ``labels``: int
    ``[N]`` (community / class of each point; ``None``: one colour); ``edge_index``: ``[2, E]`` node ids (PyG's
    layout; each undirected edge is drawn once); ``label_names``: a name per label id (legend); ``highlight``:
    a bool mask ``[N]`` or node ids to draw larger with a dark outline (e.g. ``data.train_mask``, the labelled
    nodes); ``highlight_name`` names them in the legend. Controls: ``controls["epoch"]`` (the slider) and
    ``play`` (linked to it in the browser). ``show(epoch)`` / ``select(epoch)`` move to a saved epoch;
    ``points`` is the frame shown; ``png_for(epoch)`` the picture of any saved epoch.
    """

    def __init__(self, frames: Mapping[int, Any], labels: Any = None, edge_index: Any = None, *, title: str = "",
                 label_names: Sequence[str] | None = None, highlight: Any = None,
                 highlight_name: str = "labelled", axis_labels: tuple[str, str] | None = ("dim 1", "dim 2"),
                 epoch_name: str = "epoch", start: int = -1, interval_ms: int = 500, point_size: float | None = None,
                 figsize: tuple[float, float] = (6.4, 5.0), dpi: int = 90) -> None:
        self.frames = _frames(frames)
        self.epochs = list(self.frames)
        n = next(iter(self.frames.values())).shape[0]
        self.n = n
        self.labels = self._labels(labels, n)
        self.label_names = self._label_names(label_names)
        self.edges = self._edges(edge_index, n)
        self.highlight = self._highlight(highlight, n)
        self.title, self.highlight_name, self.epoch_name = str(title), str(highlight_name), str(epoch_name)
        if axis_labels is not None and (len(axis_labels) != 2 or not all(isinstance(a, str) for a in axis_labels)):
            raise ValueError(f"EmbeddingExplorer: axis_labels must be two strings or None, got {axis_labels!r}")
        self.axis_labels = axis_labels
        self.figsize = (float(figsize[0]), float(figsize[1]))
        self.point_size = float(point_size) if point_size is not None else float(np.clip(2400 / n, 6, 60))
        self.lims = self._limits()
        if not isinstance(start, int) or not -len(self.epochs) <= start < len(self.epochs):
            raise ValueError(f"EmbeddingExplorer: start must index the {len(self.epochs)} saved epochs, got {start!r}")
        first = start % len(self.epochs)
        steps = np.diff(self.epochs)
        self.evenly_spaced = len(self.epochs) == 1 or bool(np.all(steps == steps[0]))
        layout = widgets.Layout(width="380px")
        if self.evenly_spaced:  # an IntSlider whose values are the epochs themselves
            step = int(steps[0]) if len(steps) else 1
            lo, hi = self.epochs[0], self.epochs[-1]
            slider: widgets.Widget = widgets.IntSlider(value=self.epochs[first], min=lo, max=hi, step=step,
                                                       description=self.epoch_name, continuous_update=False,
                                                       layout=layout)
        else:  # uneven epochs: a SelectionSlider over them, the play button drives its index
            slider = widgets.SelectionSlider(options=[(str(e), e) for e in self.epochs], value=self.epochs[first],
                                             description=self.epoch_name, continuous_update=False, layout=layout)
        self.play, self.link = play_button(slider, interval_ms=int(interval_ms))
        self.slider = slider
        super().__init__({"epoch": slider}, dpi=dpi)
        self.prepend(self.play)

    # --- input --------------------------------------------------------------------------------------------------

    @staticmethod
    def _labels(labels: Any, n: int) -> np.ndarray | None:
        if labels is None:
            return None
        arr = _integers(labels, "labels", f"a label id per point, [{n}]")
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(f"EmbeddingExplorer: labels must be [N] = [{n}] (one per point of a frame), got shape "
                             f"{tuple(arr.shape)}")
        if arr.size and arr.min() < 0:
            raise ValueError(f"EmbeddingExplorer: labels must be ids >= 0, got {int(arr.min())}")
        return arr

    def _label_names(self, names: Sequence[str] | None) -> list[str] | None:
        if names is None:
            return None
        if isinstance(names, str) or not all(isinstance(name, str) for name in names):
            raise ValueError(f"EmbeddingExplorer: label_names must be a list of str, got {names!r}")
        names = list(names)
        if self.labels is None:
            raise ValueError("EmbeddingExplorer: label_names were given without labels")
        needed = int(self.labels.max()) + 1
        if len(names) < needed:
            raise ValueError(f"EmbeddingExplorer: label_names has {len(names)} names but labels go up to "
                             f"{needed - 1}; expected at least {needed} names")
        return names

    @staticmethod
    def _edges(edge_index: Any, n: int) -> np.ndarray | None:
        """``[E', 2]`` node pairs, each undirected edge once (self-loops dropped: they draw nothing)."""
        if edge_index is None:
            return None
        arr = _integers(edge_index, "edge_index", "node ids")
        if arr.ndim != 2 or arr.shape[0] != 2:
            raise ValueError(f"EmbeddingExplorer: edge_index must be [2, E] (sources; targets), got shape "
                             f"{_shape(edge_index)}")
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
            raise ValueError(f"EmbeddingExplorer: edge_index has node id {bad}, out of range for the N = {n} "
                             f"points of a frame; expected ids in 0..{n - 1}")
        pairs = np.sort(arr.T, axis=1)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)

    @staticmethod
    def _highlight(highlight: Any, n: int) -> np.ndarray | None:
        if highlight is None:
            return None
        raw = highlight.detach().cpu().numpy() if hasattr(highlight, "detach") else np.asarray(highlight)
        if raw.dtype == bool:
            if raw.shape != (n,):
                raise ValueError(f"EmbeddingExplorer: a highlight mask must be [N] = [{n}], got shape {raw.shape}")
            return np.flatnonzero(raw)
        ids = _integers(highlight, "highlight", "node ids or a bool mask [N]").reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"EmbeddingExplorer: highlight has node id {int(ids.max() if ids.max() >= n else ids.min())}"
                             f", out of range; expected ids in 0..{n - 1}")
        return np.unique(ids)

    def _limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """One box around the points of every frame, 5 % margin (a flat dimension gets a unit range)."""
        every = np.concatenate(list(self.frames.values()))
        lims = []
        for lo, hi in zip(every.min(axis=0), every.max(axis=0)):
            pad = 0.05 * (hi - lo) if hi > lo else 0.5
            lims.append((float(lo - pad), float(hi + pad)))
        return lims[0], lims[1]

    # --- state --------------------------------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """The saved epoch shown now."""
        return int(self.slider.value)

    @property
    def points(self) -> np.ndarray:
        """The points ``[N, 2]`` of the epoch shown now."""
        return self.frames[self.epoch]

    def select(self, epoch: int) -> EmbeddingExplorer:
        """Show saved epoch ``epoch`` (an epoch number; negative: counted from the end of the saved ones)."""
        if epoch not in self.frames:
            if isinstance(epoch, int) and -len(self.epochs) <= epoch < 0:
                epoch = self.epochs[epoch]
            else:
                raise ValueError(f"EmbeddingExplorer.select: no frame of {self.epoch_name} {epoch!r}; saved: "
                                 f"{_short_list(self.epochs)}")
        self.slider.value = epoch
        return self

    def show(self, epoch: int | None = None) -> EmbeddingExplorer:
        """Move to saved ``epoch`` (default: stay) and return the view, to display as a cell's last line
        (live widget where a frontend runs, the PNG of this epoch elsewhere; ``.widget`` is the ipywidget)."""
        if epoch is not None:
            self.select(epoch)
        return self

    def png_for(self, epoch: int) -> bytes:
        """The PNG the view shows at saved ``epoch``, drawn without moving the view (one render)."""
        if epoch not in self.frames:
            self.select(epoch)  # the error message
        if epoch == self.epoch:
            return self.png
        before = self.epoch
        self.slider.unobserve(self._on_change, names="value")
        try:
            self.slider.value = epoch
            return fig_to_png(self.figure(), dpi=self.dpi)
        finally:
            self.slider.value = before
            self.slider.observe(self._on_change, names="value")

    # --- picture ------------------------------------------------------------------------------------------------

    def _colors(self) -> tuple[list[Any], list[tuple[int, Any]]]:
        """The colour of each point and the (label, colour) pairs for the legend."""
        if self.labels is None:
            return [POINT_COLOR] * self.n, []
        present = sorted(int(c) for c in np.unique(self.labels))
        count = max(present) + 1
        cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
        palette = {c: cmap(c % cmap.N) for c in present}
        return [palette[int(c)] for c in self.labels], list(palette.items())

    def _name(self, label: int) -> str:
        return self.label_names[label] if self.label_names is not None else f"class {label}"

    def draw(self) -> Figure:
        points = self.points
        fig = Figure(figsize=self.figsize)  # a fixed layout (no layout engine: a redraw is one render)
        ax = fig.subplots()
        if self.edges is not None and len(self.edges):
            alpha = float(np.clip(60 / np.sqrt(len(self.edges)), 0.12, 0.45))
            segments = points[self.edges]  # [E', 2 ends, 2 coordinates]
            ax.add_collection(LineCollection(segments, colors=EDGE_COLOR, linewidths=0.7, alpha=alpha, zorder=1))
        colors, legend = self._colors()
        ax.scatter(points[:, 0], points[:, 1], s=self.point_size, c=colors, linewidths=0.3, edgecolors="white",
                   zorder=2)
        handles = [Line2D([], [], ls="", marker="o", markersize=7, markerfacecolor=color, markeredgecolor="white",
                          label=self._name(label)) for label, color in legend]
        if self.highlight is not None and len(self.highlight):
            h = self.highlight
            ax.scatter(points[h, 0], points[h, 1], s=self.point_size * 3.5,
                       c=[colors[i] for i in h], linewidths=1.6, edgecolors=HIGHLIGHT_COLOR, zorder=3)
            handles.append(Line2D([], [], ls="", marker="o", markersize=9, markerfacecolor="white",
                                  markeredgecolor=HIGHLIGHT_COLOR, markeredgewidth=1.6,
                                  label=f"{self.highlight_name} ({len(h)})"))
        if self.edges is not None and len(self.edges):
            handles.append(Line2D([], [], color=EDGE_COLOR, lw=1.2, label=f"edges ({len(self.edges)})"))
        ax.set_xlim(*self.lims[0])
        ax.set_ylim(*self.lims[1])
        if self.axis_labels is None:
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.set_xlabel(self.axis_labels[0], fontsize=9)
            ax.set_ylabel(self.axis_labels[1], fontsize=9)
            ax.tick_params(labelsize=8)
        index = self.epochs.index(self.epoch)
        head = f"{self.title}: " if self.title else ""
        ax.set_title(f"{head}{self.epoch_name} {self.epoch}  (frame {index + 1}/{len(self.epochs)})", fontsize=10)
        width, height = self.figsize
        labelled = self.axis_labels is not None
        legend_w = (0.55 + max(len(h.get_label()) for h in handles) * 8 * 0.6 / 72) if handles else 0.0
        fig.subplots_adjust(left=(0.75 if labelled else 0.2) / width, bottom=(0.55 if labelled else 0.2) / height,
                            right=1 - (legend_w + 0.2) / width, top=1 - 0.35 / height)
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9,
                      borderaxespad=0.0)
        return fig

    def close(self) -> None:
        self.link.close()
        self.play.close()
        super().close()


def _short_list(values: list[int], keep: int = 8) -> str:
    if len(values) <= keep:
        return str(values)
    return f"[{', '.join(map(str, values[:keep // 2]))}, ..., {', '.join(map(str, values[-keep // 2:]))}]"
