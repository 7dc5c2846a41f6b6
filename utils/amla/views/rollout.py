"""``RolloutViewer``: where a ViT's class token looks, image by image and layer by layer (Hour 08).

Controls (ipywidgets core only): the image (IntSlider), how many layers the map goes through (IntSlider), and
what is drawn (Dropdown): the attention *rollout* through layers 1..k, or the *raw* attention of the class token
in layer k (mean over heads). Three panels: the image, the map laid over it (patches upsampled to pixels), and
the model's class probabilities with the true class marked. Everything is computed when the viewer is made, so
moving a control never runs the model. ``png_for(image, layers, mode)`` is the picture the view shows there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from amla.views.base import View

__all__ = ["RolloutViewer"]

MODES = ("rollout", "raw attention")


class RolloutViewer(View):
    """``images [N, C, H, W]`` (or ``[N, H, W]``), ``attentions``: one ``[N, heads, T, T]`` per layer (token 0 the
    class token, then the patches row by row), ``probs [N, classes]``, ``labels [N]``; ``rollout_fn`` maps a list
    of layers to ``[N, T, T]`` (Exercise 8.2's ``attention_rollout``)."""

    def __init__(self, images: Any, attentions: Sequence[Tensor], probs: Any, labels: Any,
                 rollout_fn: Callable[[list[Tensor]], Tensor], *, title: str | None = None, dpi: int = 100) -> None:
        x = torch.as_tensor(images).detach().float().cpu()
        if x.dim() == 4:
            x = x[:, 0]
        if x.dim() != 3:
            raise ValueError(f"RolloutViewer: images must be [N, C, H, W] or [N, H, W], got shape {tuple(x.shape)}")
        layers = [torch.as_tensor(a).detach().float().cpu() for a in attentions]
        if not layers or any(a.dim() != 4 or a.shape[0] != len(x) for a in layers):
            raise ValueError(f"RolloutViewer: attentions must be a non-empty list of [N={len(x)}, heads, T, T], got "
                             f"{[tuple(a.shape) for a in layers]}")
        n_patches = layers[0].shape[-1] - 1
        side = int(round(n_patches ** 0.5))
        if side * side != n_patches:
            raise ValueError(f"RolloutViewer: {n_patches} patch tokens do not form a square grid")
        self.images, self.grid = x, side
        self.probs = torch.as_tensor(probs).detach().float().cpu()
        self.labels = torch.as_tensor(labels).cpu()
        if self.probs.shape[0] != len(x) or self.labels.shape[0] != len(x):
            raise ValueError(f"RolloutViewer: probs and labels must have {len(x)} rows, got "
                             f"{tuple(self.probs.shape)} and {tuple(self.labels.shape)}")
        # maps[mode][k][i]: the class token's row over the patches, [grid, grid], after layer k + 1
        roll = [rollout_fn(layers[:k + 1])[:, 0, 1:] for k in range(len(layers))]
        raw = [a.mean(1)[:, 0, 1:] for a in layers]
        self.maps = {m: [r.reshape(len(x), side, side).numpy() for r in rows] for m, rows in zip(MODES, (roll, raw))}
        self.title = title
        self.index = widgets.IntSlider(value=0, min=0, max=len(x) - 1, description="image", continuous_update=False)
        self.layers = widgets.IntSlider(value=len(layers), min=1, max=len(layers), description="layers",
                                        continuous_update=False)
        self.mode = widgets.Dropdown(options=[(m, m) for m in MODES], value=MODES[0], description="show",
                                     layout=widgets.Layout(width="230px"))
        if len(layers) == 1:
            self.layers.layout.display = "none"
        super().__init__({"image": self.index, "layers": self.layers, "mode": self.mode}, dpi=dpi)

    def draw(self) -> Figure:
        i, k, mode = self.index.value, self.layers.value, self.mode.value
        img = self.images[i].numpy()
        heat = self.maps[mode][k - 1][i]
        scale = img.shape[0] // self.grid
        up = np.kron(heat, np.ones((scale, scale)))
        fig = Figure(figsize=(9, 3.1))
        axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.3]})
        axes[0].imshow(img, cmap="gray_r")
        axes[0].set_title(f"image {i} (true class {int(self.labels[i])})", fontsize=9)
        axes[1].imshow(img, cmap="gray_r")
        axes[1].imshow(up, cmap="inferno", alpha=0.6, extent=(-0.5, up.shape[1] - 0.5, up.shape[0] - 0.5, -0.5))
        what = f"rollout through layers 1-{k}" if mode == "rollout" else f"raw class-token attention, layer {k}"
        axes[1].set_title(what, fontsize=9)
        for ax in axes[:2]:
            ax.set_xticks([]), ax.set_yticks([])
        p = self.probs[i].numpy()
        colors = ["C2" if c == int(self.labels[i]) else "C0" for c in range(len(p))]
        axes[2].bar(range(len(p)), p, color=colors)
        axes[2].set_ylim(0, 1), axes[2].set_xticks(range(len(p)))
        axes[2].set_title(f"predicted {int(p.argmax())} (green: the true class)", fontsize=9)
        if self.title:
            fig.suptitle(self.title, fontsize=10)
        fig.tight_layout()
        return fig

    def select(self, image: int | None = None, layers: int | None = None, mode: str | None = None) -> RolloutViewer:
        """Set controls with one redraw (``image`` and ``layers`` as ints, ``mode`` one of ``MODES``)."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"RolloutViewer.select: mode must be one of {MODES}, got {mode!r}")
        for name, value, control in (("image", image, self.index), ("layers", layers, self.layers)):
            if value is not None and not control.min <= value <= control.max:
                raise ValueError(f"RolloutViewer.select: {name} must be in [{control.min}, {control.max}], "
                                 f"got {value}")
        wanted = [(c, v) for c, v in ((self.index, image), (self.layers, layers), (self.mode, mode)) if v is not None]
        self.set_controls(wanted)
        return self

    def png_for(self, image: int, layers: int, mode: str = MODES[0]) -> bytes:
        """The PNG the view shows at these controls (it moves them there and back)."""
        before = (self.index.value, self.layers.value, self.mode.value)
        self.select(image, layers, mode)
        png = self.png
        self.select(*before)
        return png
