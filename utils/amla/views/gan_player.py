"""A GAN-Lab-style player of a 2-D GAN's training: ``record`` snapshots a step, ``GanPlayer`` plays them back.

Each saved step (a ``GanFrame``) holds what the picture needs, computed once during training: the generated points
of a fixed set of latent vectors, the discriminator's output ``D(x) = sigmoid(logit)`` on a grid (the heatmap
behind the points) and the generator's gradient on those points (``-d loss_G / d x`` per point: where each point
is being pushed). The player is a ``View``: an ``IntSlider`` over the saved steps and a ``Play`` button linked to it
in the browser (``jslink``), above the picture; where no widget frontend runs, the picture of the selected step
stays (static fallback).

With a packed discriminator (PacGAN, ``pack = m``) the heatmap shows D's output on ``m`` copies of the same point;
the arrows are the gradients of the real training loss (consecutive points packed together).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from amla.views.base import View, play_button

__all__ = ["GanFrame", "GanPlayer", "record"]

REAL_COLOR = "#1b1b1b"
FAKE_COLOR = "#e8590c"
ARROW_COLOR = "#2b8a3e"
CMAP = "RdBu"  # blue: D says "real", red: D says "fake", white: D cannot tell (1/2)


@dataclass(frozen=True)
class GanFrame:
    """One saved step: ``fake [n, 2]``, ``d_grid [g, g]`` (D's probability "real", rows = y from ``lim[0]``
    up), ``arrows [n, 2]`` (``-d loss_G / d x`` of each fake point, times n), ``lim`` (the square shown), ``note``
    (a line under the title, e.g. the modes captured)."""

    step: int
    fake: np.ndarray
    d_grid: np.ndarray
    arrows: np.ndarray
    lim: tuple[float, float]
    note: str = ""


def _points(x: Any, name: str) -> np.ndarray:
    arr = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be points [N, 2], got shape {tuple(arr.shape)}")
    return arr


def record(G: nn.Module, D: nn.Module, z: Tensor, g_loss: Callable[[Tensor], Tensor], step: int, *,
           lim: tuple[float, float] = (-1.6, 1.6), grid: int = 64, note: str = "") -> GanFrame:
    """Snapshot step ``step`` of a training run: ``G(z)`` for the fixed latent vectors ``z [n, z_dim]``, D's output
    on a ``grid x grid`` square ``lim x lim``, and the gradient ``-d g_loss(D(G(z))) / d G(z)`` on each point (scaled
    by n, so it does not shrink with the number of points). Neither model's parameters nor gradients change,
    and the random state does not move."""
    if not isinstance(z, Tensor) or z.dim() != 2:
        raise ValueError(f"record: z must be fixed latent vectors [n, z_dim], got "
                         f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}")
    if not (isinstance(lim, tuple) and len(lim) == 2 and lim[0] < lim[1]):
        raise ValueError(f"record: lim must be (low, high) with low < high, got {lim!r}")
    if not isinstance(grid, int) or grid < 2:
        raise ValueError(f"record: grid must be an int >= 2, got {grid!r}")
    pack = int(getattr(D, "pack", 1))
    device = next(D.parameters()).device
    with torch.no_grad():
        fake = G(z.to(device))
        axis = torch.linspace(lim[0], lim[1], grid, device=device)
        ys, xs = torch.meshgrid(axis, axis, indexing="ij")
        cells = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).to(fake.dtype)
        d_grid = torch.sigmoid(D(cells.repeat_interleave(pack, dim=0))).reshape(grid, grid)
    n = fake.shape[0] - fake.shape[0] % pack
    points = fake[:n].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = g_loss(D(points))
        (grad,) = torch.autograd.grad(loss, points)
    return GanFrame(step=int(step), fake=fake.detach().cpu().double().numpy(),
                    d_grid=d_grid.cpu().double().numpy(), arrows=(-grad * n).cpu().double().numpy(),
                    lim=(float(lim[0]), float(lim[1])), note=note)


class GanPlayer(View):
    """Play back the saved steps of a 2-D GAN: real points, generated points, D's output as a heatmap behind them,
    the generator's gradient as arrows on the generated points.

    ``frames``: the ``GanFrame``\\ s of ``record``, in training order; ``real``: real points ``[N, 2]`` (drawn in
    every frame); ``arrows``: how many points get an arrow (evenly spread over the fixed latent vectors). The arrows
    of all frames share one scale (the longest arrow of the run is ``arrow_length`` of the square's side), so
    their lengths compare across steps. Controls: ``controls["frame"]`` (an ``IntSlider`` over the frames) and
    ``play`` (a ``Play`` button linked to it in the browser). ``show(step)`` moves to the frame of a step.
    """

    def __init__(self, frames: Sequence[GanFrame], real: Any, *, title: str = "GAN training",
                 arrows: int = 64, arrow_length: float = 0.15, start: int = -1, interval_ms: int = 400,
                 dpi: int = 90) -> None:
        self.frames = list(frames)
        if not self.frames or not all(isinstance(f, GanFrame) for f in self.frames):
            raise ValueError("GanPlayer: frames must be a non-empty list of GanFrame (from amla.views.gan_player."
                             f"record), got {type(frames).__name__} of {len(self.frames)}")
        self.real = _points(real, "GanPlayer: real")
        self.title = str(title)
        n = self.frames[0].fake.shape[0]
        self.arrow_index = np.unique(np.linspace(0, n - 1, max(1, min(int(arrows), n))).round().astype(int))
        longest = max(float(np.linalg.norm(f.arrows[self.arrow_index[self.arrow_index < len(f.arrows)]], axis=1).max(
            initial=0.0)) for f in self.frames)
        side = self.frames[0].lim[1] - self.frames[0].lim[0]
        self.arrow_scale = arrow_length * side / longest if longest > 0 else 0.0
        last = len(self.frames) - 1
        first = start % len(self.frames)
        slider = widgets.IntSlider(value=first, min=0, max=last, step=1, description="frame",
                                   continuous_update=False)
        self.play, self.link = play_button(slider, interval_ms=int(interval_ms))
        super().__init__({"frame": slider}, dpi=dpi)
        self.prepend(self.play)

    @property
    def frame(self) -> GanFrame:
        """The frame shown now."""
        return self.frames[self.controls["frame"].value]

    def show(self, step: int) -> GanFrame:
        """Move to the saved frame of training step ``step`` (the nearest one saved); returns it."""
        index = int(np.argmin([abs(f.step - step) for f in self.frames]))
        self.controls["frame"].value = index
        return self.frames[index]

    def draw(self) -> Figure:
        f = self.frame
        fig = Figure(figsize=(5.4, 5.0), layout="constrained")
        ax = fig.subplots()
        lo, hi = f.lim
        image = ax.imshow(f.d_grid, origin="lower", extent=(lo, hi, lo, hi), cmap=CMAP, vmin=0.0, vmax=1.0,
                          interpolation="bilinear", alpha=0.85)
        ax.contour(np.linspace(lo, hi, f.d_grid.shape[1]), np.linspace(lo, hi, f.d_grid.shape[0]), f.d_grid,
                   levels=[0.5], colors="0.35", linewidths=0.7)
        ax.scatter(self.real[:, 0], self.real[:, 1], s=4, color=REAL_COLOR, alpha=0.6, label="real", linewidths=0)
        ax.scatter(f.fake[:, 0], f.fake[:, 1], s=6, color=FAKE_COLOR, alpha=0.8, label="generated", linewidths=0)
        idx = self.arrow_index[self.arrow_index < len(f.arrows)]
        if self.arrow_scale > 0 and len(idx):
            ax.quiver(f.fake[idx, 0], f.fake[idx, 1], f.arrows[idx, 0] * self.arrow_scale,
                      f.arrows[idx, 1] * self.arrow_scale, angles="xy", scale_units="xy", scale=1.0,
                      color=ARROW_COLOR, width=0.004, label="G's gradient")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=8)
        heading = f"{self.title}: step {f.step}  (frame {self.controls['frame'].value + 1}/{len(self.frames)})"
        ax.set_title(heading + (f"\n{f.note}" if f.note else ""), fontsize=9)
        ax.legend(loc="upper right", fontsize=7, markerscale=2, framealpha=0.8)
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        bar.set_label("D(x): probability 'real'", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        return fig

    def close(self) -> None:
        self.link.close()
        self.play.close()
        super().close()
