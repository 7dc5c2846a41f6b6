"""The sample gallery (Hours 11-12): a fixed grid of latent vectors drawn at every saved epoch.

``SampleGallery(snapshots, labels=None, classes=None, interpolation=None)`` is a ``View``: an epoch IntSlider
linked to a Play button, a class Dropdown when the grid has labels (a conditional generator), and the
picture: the grid of samples of the chosen epoch (all classes, one row per class, or the chosen class only)
and, below it, a latent-interpolation strip of the same epoch. Displayed, it is the live widget plus the
current PNG (the static fallback of ``amla.views.base.View``).

``snapshot(generator, z, y=None)`` draws a generator's samples on fixed latents (eval mode, no gradient, on the
CPU; the generator's mode is restored), which is what a training loop stores at every saved epoch::

    z, y = class_latents(8, 10, z_dim)            # the fixed grid: 8 latents per class
    snaps = {}
    for epoch in ...:
        ...                                       # train
        snaps[epoch] = snapshot(G, z, y)
    SampleGallery(snaps, labels=y, classes=[str(c) for c in range(10)])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from amla.toolkit.train import eval_batches
from amla.views.base import View, play_button

__all__ = ["SampleGallery", "image_grid", "snapshot"]

ALL = "all classes"


@torch.no_grad()
def snapshot(generator: nn.Module, z: Tensor, y: Tensor | None = None, batch_size: int = 500) -> Tensor:
    """The generator's images [N, 1, H, W] (float32, CPU, detached) on the fixed latents ``z [N, D]`` (and labels
    ``y [N]`` for a conditional generator), drawn in eval mode; the generator's train/eval mode is restored."""
    if not isinstance(generator, nn.Module):
        raise TypeError(f"snapshot: generator must be an nn.Module, got {type(generator).__name__}")
    if not isinstance(z, Tensor) or z.dim() != 2:
        raise ValueError(f"snapshot: z must be a tensor [N, z_dim], got {getattr(z, 'shape', type(z).__name__)}")
    tensors = [z] if y is None else [z, y]
    return torch.cat([generator(*batch).float().cpu() for batch in eval_batches(generator, tensors, batch_size)])


def image_grid(images: Tensor | np.ndarray, ncols: int, pad: int = 1, value: float = 0.2) -> np.ndarray:
    """Images [N, 1, H, W] (or [N, H, W]) in [-1, 1] as one [rows*(H+pad)-pad, ncols*(W+pad)-pad] array in [0, 1]
    (white = ink: digits are drawn dark on light with ``cmap='gray_r'``), gaps filled with ``value``."""
    x = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if x.ndim == 4:
        x = x[:, 0]
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"image_grid: expected images [N, 1, H, W] or [N, H, W] with N >= 1, got shape {x.shape}")
    n, h, w = x.shape
    ncols = max(1, min(ncols, n))
    rows = math.ceil(n / ncols)
    out = np.full((rows * (h + pad) - pad, ncols * (w + pad) - pad), value, dtype=np.float32)
    scaled = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = scaled[i]
    return out


def _images(value: Any, what: str) -> Tensor:
    if not isinstance(value, (Tensor, np.ndarray)):
        raise TypeError(f"SampleGallery: {what} must be a tensor of images [N, 1, H, W], got {type(value).__name__}")
    x = torch.as_tensor(value).detach().float().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1 or len(x) == 0:
        raise ValueError(f"SampleGallery: {what} must be images [N, 1, H, W] (N >= 1), got shape {tuple(x.shape)}")
    return x


def _strip(value: Any, what: str) -> Tensor:
    """An interpolation strip: [T, 1, H, W] (one row) or [R, T, 1, H, W] (R rows, e.g. one per class)."""
    x = torch.as_tensor(value).detach().float().cpu() if isinstance(value, (Tensor, np.ndarray)) else None
    if x is None:
        raise TypeError(f"SampleGallery: {what} must be a tensor [T, 1, H, W] or [R, T, 1, H, W], got "
                        f"{type(value).__name__}")
    if x.dim() == 4:
        x = x.unsqueeze(0)
    if x.dim() != 5 or x.shape[2] != 1 or x.shape[1] < 2:
        raise ValueError(f"SampleGallery: {what} must be [T, 1, H, W] or [R, T, 1, H, W] with T >= 2 steps, got "
                         f"shape {tuple(x.shape)}")
    return x


class SampleGallery(View):
    """Generated samples per saved epoch (see the module doc).

    snapshots: ``{epoch: images [N, 1, H, W]}`` or a list of ``(epoch, images)``, the same N latents every time;
    labels: ``[N]`` the class of each latent (conditional generators), with ``classes`` their names (default
    "0", "1", ...); interpolation: the strip, ``{epoch: [T, 1, H, W] or [C, T, 1, H, W]}`` (one row per class when
    labels are given: the chosen class's row is shown), or one tensor for every epoch; ``ncols`` images per row
    (default: the latents per class, else about sqrt(N)); ``title``; ``epoch_name`` ("epoch" or "step").
    Controls: ``epoch`` (IntSlider over the saved epochs), ``play`` (a Play button linked to it), ``klass``
    (Dropdown, only with labels). ``select(epoch=..., klass=...)`` sets them with one redraw; ``png_for(epoch,
    klass)`` is the picture the view would show there.
    """

    def __init__(self, snapshots: Mapping[int, Any] | Sequence[tuple[int, Any]], labels: Tensor | None = None,
                 classes: Sequence[str] | None = None, interpolation: Mapping[int, Any] | Any | None = None, *,
                 ncols: int | None = None, title: str | None = None, epoch_name: str = "epoch",
                 interval_ms: int = 600, dpi: int = 100) -> None:
        items = list(snapshots.items()) if isinstance(snapshots, Mapping) else list(snapshots)
        if not items:
            raise ValueError("SampleGallery: snapshots is empty; pass {epoch: images [N, 1, H, W]} for at least one "
                             "epoch")
        try:
            pairs = sorted((int(e), _images(x, f"snapshots[{e}]")) for e, x in items)
        except (TypeError, ValueError) as err:
            if isinstance(err, TypeError) and "SampleGallery" not in str(err):
                raise TypeError("SampleGallery: snapshots must map an int epoch to images, or be a list of "
                                "(epoch, images) pairs") from None
            raise
        self.epochs = [e for e, _ in pairs]
        if len(set(self.epochs)) != len(self.epochs):
            raise ValueError(f"SampleGallery: an epoch appears twice in snapshots: {self.epochs}")
        self.snapshots = dict(pairs)
        shapes = {tuple(x.shape) for x in self.snapshots.values()}
        if len(shapes) != 1:
            raise ValueError(f"SampleGallery: every snapshot must draw the same latents (one shape), got {sorted(shapes)}")
        n = pairs[0][1].shape[0]
        self.labels = None
        if labels is not None:
            self.labels = torch.as_tensor(labels).long().cpu()
            if self.labels.shape != (n,):
                raise ValueError(f"SampleGallery: labels must be [N] = [{n}] (one per image), got "
                                 f"{tuple(self.labels.shape)}")
            n_classes = int(self.labels.max()) + 1
            classes = list(classes) if classes is not None else [str(c) for c in range(n_classes)]
            if len(classes) < n_classes:
                raise ValueError(f"SampleGallery: labels go up to {n_classes - 1} but only {len(classes)} class names "
                                 "were given")
        elif classes is not None:
            raise ValueError("SampleGallery: classes names need labels (the class of each image)")
        self.classes = list(classes) if classes is not None else None
        self.interpolation = self._interpolation(interpolation)
        if ncols is None:
            if self.labels is not None:
                ncols = max(int((self.labels == c).sum()) for c in self.labels.unique())
            else:
                ncols = math.ceil(math.sqrt(n))
        self.ncols, self.title, self.epoch_name = int(ncols), title, epoch_name
        self.contiguous = self.epochs == list(range(self.epochs[0], self.epochs[-1] + 1))
        lo, hi = (self.epochs[0], self.epochs[-1]) if self.contiguous else (0, len(self.epochs) - 1)
        self.epoch = widgets.IntSlider(value=hi, min=lo, max=max(hi, lo), step=1, description=epoch_name,
                                       continuous_update=False, readout=True,
                                       layout=widgets.Layout(width="360px"))
        self.play, self._link = play_button(self.epoch, interval_ms=int(interval_ms))
        controls: dict[str, widgets.Widget] = {"epoch": self.epoch}
        self.klass: widgets.Dropdown | None = None
        if self.classes is not None:
            present = sorted(int(c) for c in self.labels.unique())
            self.klass = widgets.Dropdown(options=[(ALL, -1)] + [(f"class {self.classes[c]}", c) for c in present],
                                          value=-1, description="class", layout=widgets.Layout(width="200px"))
            controls["klass"] = self.klass
        super().__init__(controls, dpi=dpi)
        self.prepend(self.play)

    # --- state ------------------------------------------------------------------------------------------

    def _interpolation(self, value: Any) -> dict[int, Tensor] | Tensor | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            strips = {int(e): _strip(x, f"interpolation[{e}]") for e, x in value.items()}
            missing = [e for e in self.epochs if e not in strips]
            if missing:
                raise ValueError(f"SampleGallery: interpolation has no strip for the epochs {missing}; give one per "
                                 "saved epoch, or one tensor for all")
            return strips
        return _strip(value, "interpolation")

    @property
    def current_epoch(self) -> int:
        """The saved epoch the slider points at."""
        return self.epoch.value if self.contiguous else self.epochs[self.epoch.value]

    @property
    def current_class(self) -> int | None:
        """The chosen class (None: all classes, or an unconditional gallery)."""
        if self.klass is None or self.klass.value == -1:
            return None
        return int(self.klass.value)

    def select(self, epoch: int | None = None, klass: int | None = None) -> SampleGallery:
        """Show saved ``epoch`` (an epoch number, not an index) and class ``klass`` (-1 or None: all); one redraw."""
        wanted: list[tuple[widgets.Widget, Any]] = []
        if epoch is not None:
            if epoch not in self.snapshots:
                raise ValueError(f"SampleGallery.select: no snapshot of {self.epoch_name} {epoch}; saved: {self.epochs}")
            wanted.append((self.epoch, epoch if self.contiguous else self.epochs.index(epoch)))
        if klass is not None:
            if self.klass is None:
                raise ValueError("SampleGallery.select: this gallery has no classes (it was made without labels)")
            options = [v for _, v in self.klass.options]
            if klass not in options:
                raise ValueError(f"SampleGallery.select: class {klass} is not among {options}")
            wanted.append((self.klass, klass))
        self.set_controls(wanted)  # quietly, then one redraw for all of them
        return self

    def png_for(self, epoch: int, klass: int | None = None) -> bytes:
        """The PNG the view shows at ``epoch`` and ``klass`` (it moves the controls there and back)."""
        before = (self.epoch.value, None if self.klass is None else self.klass.value)
        self.select(epoch=epoch, klass=-1 if klass is None and self.klass is not None else klass)
        png = self.png
        self.select(epoch=before[0] if self.contiguous else self.epochs[before[0]], klass=before[1])
        return png

    # --- picture ----------------------------------------------------------------------------------------

    def _shown(self) -> tuple[Tensor, int, str]:
        images = self.snapshots[self.current_epoch]
        klass = self.current_class
        if klass is None:
            return images, self.ncols, ALL if self.labels is not None else f"{len(images)} fixed latents"
        assert self.labels is not None and self.classes is not None
        chosen = images[self.labels == klass]
        return chosen, min(self.ncols, len(chosen)), f"class {self.classes[klass]}"

    def _strip_rows(self) -> Tensor | None:
        if self.interpolation is None:
            return None
        strip = self.interpolation[self.current_epoch] if isinstance(self.interpolation, dict) else self.interpolation
        klass = self.current_class
        if klass is not None and strip.shape[0] > klass and self.labels is not None:
            return strip[klass:klass + 1]
        return strip

    def draw(self) -> Figure:
        images, ncols, which = self._shown()
        grid = image_grid(images, ncols)
        strip = self._strip_rows()
        cell = 0.42 if images.shape[-1] >= 16 else 0.32
        grid_w, grid_h = grid.shape[1] / (images.shape[-1] + 1) * cell, grid.shape[0] / (images.shape[-2] + 1) * cell
        strip_img = None
        strip_h = 0.0
        if strip is not None:
            strip_img = image_grid(strip.reshape(-1, *strip.shape[2:]), strip.shape[1])
            strip_w = strip.shape[1] * cell
            strip_h = strip.shape[0] * cell + 0.45
            grid_w = max(grid_w, strip_w)
        width, top = max(grid_w + 0.4, 3.2), 0.5
        height = top + grid_h + 0.15 + strip_h
        fig = Figure(figsize=(width, height))
        heading = " · ".join(p for p in (self.title, f"{self.epoch_name} {self.current_epoch}", which) if p)
        fig.suptitle(heading, y=1 - 0.1 / height, va="top", fontsize=10)
        gw = grid.shape[1] / (images.shape[-1] + 1) * cell
        ax = fig.add_axes(((width - gw) / 2 / width, 1 - (top + grid_h) / height, gw / width, grid_h / height))
        ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
        if strip_img is not None and strip is not None:
            sw, sh = strip.shape[1] * cell, strip.shape[0] * cell
            ax2 = fig.add_axes(((width - sw) / 2 / width, 0.05 / height, sw / width, sh / height))
            ax2.imshow(strip_img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
            ax2.axis("off")
            ax2.set_title("latent interpolation (first to last)", fontsize=8, pad=3)
        return fig

    def __repr__(self) -> str:
        klass = "" if self.klass is None else f", class={self.current_class if self.current_class is not None else 'all'}"
        return f"<SampleGallery {self.epoch_name}={self.current_epoch} of {self.epochs}{klass}>"
