"""The gridworld viewer (Hour 15): state values as a heatmap and the greedy policy as arrows, per iteration.

``GridworldViewer(frames, shape)`` is a ``View``: an iteration slider and a ``Play`` button linked to it in the
browser (``jslink``), above the picture of the selected iteration of value iteration, policy iteration or any other
sequence of ``(V [S], policy [S])`` pairs. Every frame uses one colour scale (the range of all frames), so values
spreading out from the goal sweep after sweep are visible as colour. Where no widget frontend runs, the picture of
the last iteration stays in the output (static fallback).

``plot_grid_values(V, policy, shape)`` draws one such picture as a plain Figure, with an optional path of states
(e.g. the greedy path of CliffWalking). States are ``row * ncol + col``; ``action_deltas`` gives each action's
``(d_row, d_col)``: FrozenLake's and the course gridworld's order by default (left, down, right, up);
``amla.rl.gridworld.CLIFF_ACTION_DELTAS`` for CliffWalking (up, right, down, left).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from amla.views.base import View, fig_to_png, play_button

__all__ = ["GridworldViewer", "plot_grid_values"]

FROZENLAKE_DELTAS = ((0, -1), (1, 0), (0, 1), (-1, 0))


def _vector(x: Any, name: str, n: int | None, integer: bool = False) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"GridworldViewer: {name} must be an array of numbers, got {type(x).__name__}") from None
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise ValueError(f"GridworldViewer: {name} must be [S] = [{n}] (one entry per state), got shape {arr.shape}")
    if integer:
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"GridworldViewer: {name} must hold integer actions, got non-integer values")
        return arr.astype(np.int64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"GridworldViewer: {name} has NaN or inf values")
    return arr


def _mask(x: Any, name: str, n: int) -> np.ndarray:
    if x is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if arr.dtype == bool:
        if arr.size != n:
            raise ValueError(f"GridworldViewer: a {name} mask must have one entry per state ({n}), got {arr.size}")
        return arr.reshape(-1)
    mask = np.zeros(n, dtype=bool)
    ids = arr.astype(np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"GridworldViewer: {name} holds state ids outside 0..{n - 1}")
    mask[ids] = True
    return mask


def _shape(shape: Any) -> tuple[int, int]:
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(v, (int, np.integer)) and v > 0 for v in shape)):
        raise ValueError(f"GridworldViewer: shape must be (nrow, ncol) of positive ints, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _draw(ax: Axes, V: np.ndarray, policy: np.ndarray | None, shape: tuple[int, int], *, walls: np.ndarray,
          terminals: np.ndarray, deltas: Sequence[tuple[int, int]], vlim: tuple[float, float],
          path: Sequence[int] | None = None, cmap: str = "viridis", values: bool = True,
          labels: Mapping[int, str] | None = None, hazards: np.ndarray | None = None) -> Any:
    nrow, ncol = shape
    grid = np.ma.masked_array(V.reshape(nrow, ncol), mask=walls.reshape(nrow, ncol))
    colours = matplotlib.colormaps[cmap].with_extremes(bad="#444444")  # walls: dark grey
    image = ax.imshow(grid, cmap=colours, vmin=vlim[0], vmax=vlim[1], origin="upper")
    lo, hi = vlim
    small = nrow * ncol > 40
    for s in range(nrow * ncol):
        r, c = divmod(s, ncol)
        if hazards is not None and hazards[s]:
            ax.add_patch(_square(r, c, "#ff6b6b"))
        if walls[s]:
            continue
        shade = (V[s] - lo) / (hi - lo) if hi > lo else 0.5
        ink = "black" if shade > 0.55 else "white"
        if terminals[s]:
            ax.add_patch(_square(r, c))
            ax.text(c, r, (labels or {}).get(s, "end"), ha="center", va="center", fontsize=6 if small else 8,
                    color=ink, weight="bold")
            continue
        if policy is not None:
            dr, dc = deltas[int(policy[s])]
            ax.annotate("", xy=(c + 0.32 * dc, r + 0.32 * dr), xytext=(c - 0.12 * dc, r - 0.12 * dr),
                        arrowprops=dict(arrowstyle="-|>", color=ink, lw=1.2 if small else 1.6, mutation_scale=8 if
                                        small else 12))
        if values and not small:
            ax.text(c, r + 0.36, f"{V[s]:.2f}", ha="center", va="center", fontsize=7, color=ink)
    if path is not None and len(path) > 1:
        rows, cols = np.divmod(np.asarray(path, dtype=np.int64), ncol)
        ax.plot(cols, rows, color="#ff6b6b", lw=2.2, alpha=0.85, marker="o", markersize=3)
    ax.set_xticks(np.arange(ncol))
    ax.set_yticks(np.arange(nrow))
    ax.set_xticks(np.arange(-0.5, ncol), minor=True)
    ax.set_yticks(np.arange(-0.5, nrow), minor=True)
    ax.grid(which="minor", color="white", lw=0.8)
    ax.tick_params(which="both", length=0, labelsize=7)
    return image


def _square(r: int, c: int, colour: str = "white") -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="//", edgecolor=colour, lw=0)


def plot_grid_values(V: Any, policy: Any = None, shape: tuple[int, int] | None = None, *, walls: Any = None,
                     terminals: Any = None, action_deltas: Sequence[tuple[int, int]] = FROZENLAKE_DELTAS,
                     path: Sequence[int] | None = None, title: str = "", vlim: tuple[float, float] | None = None,
                     figsize: tuple[float, float] | None = None, labels: Mapping[int, str] | None = None,
                     hazards: Any = None, ax: Axes | None = None) -> Figure:
    """One gridworld picture: ``V [S]`` as a heatmap, ``policy [S]`` (actions) as arrows, ``path`` (states) as a
    line; ``walls`` / ``terminals`` / ``hazards`` (hatched red, e.g. the cliff): bool masks ``[S]`` or state ids;
    ``labels``: text of terminal states (default "end"); ``ax``: draw into these axes (of a bigger figure) instead of
    a new figure. Returns the figure."""
    if shape is None:
        raise ValueError("plot_grid_values: shape=(nrow, ncol) is required")
    shape = _shape(shape)
    n = shape[0] * shape[1]
    V = _vector(V, "V", n)
    pi = None if policy is None else _vector(policy, "policy", n, integer=True)
    if ax is None:
        fig = Figure(figsize=figsize or (1.0 * shape[1] + 1.6, 1.0 * shape[0] + 0.8), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    wall_mask = _mask(walls, "walls", n)
    shown = V[~wall_mask] if (~wall_mask).any() else V
    lim = vlim or (float(shown.min()), float(shown.max()))
    image = _draw(ax, V, pi, shape, walls=wall_mask, terminals=_mask(terminals, "terminals", n),
                  deltas=action_deltas, vlim=lim, path=path, labels=labels, hazards=_mask(hazards, "hazards", n))
    fig.colorbar(image, ax=ax, shrink=0.8, label="V(s)")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


class GridworldViewer(View):
    """Values and greedy policy per iteration (see the module docstring).

    ``frames``: a sequence of ``(V [S], policy [S])`` pairs (policy may be None); ``shape``: ``(nrow, ncol)``;
    ``walls`` / ``terminals`` / ``hazards``: bool masks or state ids; ``labels``: text of terminal states;
    ``names``: one caption per frame (default "iteration k").
    Controls: ``controls["iteration"]`` (an IntSlider over the frame indices) and ``play``. ``show(k)`` moves to
    frame k (negative: from the end), ``png_for(k)`` draws any frame without moving the view.
    """

    def __init__(self, frames: Sequence[tuple[Any, Any]], shape: tuple[int, int], *, walls: Any = None,
                 terminals: Any = None, action_deltas: Sequence[tuple[int, int]] = FROZENLAKE_DELTAS,
                 names: Sequence[str] | None = None, title: str = "", start: int = -1, interval_ms: int = 600,
                 figsize: tuple[float, float] | None = None, dpi: int = 90, labels: Mapping[int, str] | None = None,
                 hazards: Any = None) -> None:
        self.shape = _shape(shape)
        n = self.shape[0] * self.shape[1]
        if isinstance(frames, (str, bytes)) or not isinstance(frames, Sequence) or not frames:
            raise ValueError(f"GridworldViewer: frames must be a non-empty list of (V, policy) pairs, got "
                             f"{type(frames).__name__}")
        self.frames: list[tuple[np.ndarray, np.ndarray | None]] = []
        for k, frame in enumerate(frames):
            if not isinstance(frame, (tuple, list)) or len(frame) != 2:
                raise ValueError(f"GridworldViewer: frames[{k}] must be a (V, policy) pair, got {type(frame).__name__}")
            V, pi = frame
            self.frames.append((_vector(V, f"frames[{k}] V", n),
                                None if pi is None else _vector(pi, f"frames[{k}] policy", n, integer=True)))
        deltas = [tuple(d) for d in action_deltas]
        for _, pi in self.frames:
            if pi is not None and (pi.min() < 0 or pi.max() >= len(deltas)):
                raise ValueError(f"GridworldViewer: a policy holds actions outside 0..{len(deltas) - 1} "
                                 f"(action_deltas has {len(deltas)} directions)")
        self.deltas = deltas
        if names is not None and (len(names) != len(self.frames) or not all(isinstance(s, str) for s in names)):
            raise ValueError(f"GridworldViewer: names must be one str per frame ({len(self.frames)}), got {names!r}")
        self.names = list(names) if names is not None else [f"iteration {k}" for k in range(len(self.frames))]
        self.walls, self.terminals = _mask(walls, "walls", n), _mask(terminals, "terminals", n)
        self.hazards, self.labels = _mask(hazards, "hazards", n), dict(labels or {})
        every = np.concatenate([V[~self.walls] for V, _ in self.frames])
        self.vlim = (float(every.min()), float(every.max())) if every.size else (0.0, 1.0)
        self.title = str(title)
        self.figsize = figsize or (1.0 * self.shape[1] + 1.8, 1.0 * self.shape[0] + 0.9)
        if not isinstance(start, int) or not -len(self.frames) <= start < len(self.frames):
            raise ValueError(f"GridworldViewer: start must index the {len(self.frames)} frames, got {start!r}")
        last = len(self.frames) - 1
        self.slider = widgets.IntSlider(value=start % len(self.frames), min=0, max=last, step=1,
                                        description="iteration", continuous_update=False,
                                        layout=widgets.Layout(width="360px"))
        self.play, self.link = play_button(self.slider, interval_ms=int(interval_ms))
        super().__init__({"iteration": self.slider}, dpi=dpi)
        self.prepend(self.play)

    @property
    def index(self) -> int:
        """The frame shown now."""
        return int(self.slider.value)

    def show(self, k: int | None = None) -> GridworldViewer:
        """Move to frame ``k`` (negative: from the end) and return the view (display it as a cell's last line)."""
        if k is not None:
            if not isinstance(k, int) or not -len(self.frames) <= k < len(self.frames):
                raise ValueError(f"GridworldViewer.show: no frame {k!r}; there are {len(self.frames)}")
            self.slider.value = k % len(self.frames)
        return self

    def png_for(self, k: int) -> bytes:
        """The picture of frame ``k``, drawn without moving the view."""
        if not isinstance(k, int) or not -len(self.frames) <= k < len(self.frames):
            raise ValueError(f"GridworldViewer.png_for: no frame {k!r}; there are {len(self.frames)}")
        k %= len(self.frames)
        if k == self.index:
            return self.png
        before = self.index
        self.slider.unobserve(self._on_change, names="value")
        try:
            self.slider.value = k
            return fig_to_png(self.figure(), dpi=self.dpi)
        finally:
            self.slider.value = before
            self.slider.observe(self._on_change, names="value")

    def draw(self) -> Figure:
        V, pi = self.frames[self.index]
        fig = Figure(figsize=self.figsize, layout="constrained")
        ax = fig.subplots()
        image = _draw(ax, V, pi, self.shape, walls=self.walls, terminals=self.terminals, deltas=self.deltas,
                      vlim=self.vlim, labels=self.labels, hazards=self.hazards)
        fig.colorbar(image, ax=ax, shrink=0.8, label="V(s)")
        head = f"{self.title}: " if self.title else ""
        ax.set_title(f"{head}{self.names[self.index]} ({self.index + 1}/{len(self.frames)})", fontsize=10)
        return fig
