"""The Vision Transformer (Hour 08): patches, the class token, learned positions, attention rollout, a CNN baseline.

- ``patchify(images, patch) -> [B, N, C*p*p]``: non-overlapping patches by reshaping, row-major over the grid,
  each patch flattened as (channel, row, column), the order ``Conv2d(kernel=stride=p)`` weights use.
- ``PatchEmbedding``: a linear map of the patches (equal to the strided convolution with the same weights).
- ``ViT``: class token + learned positions + ``amla.transformers.nn.TransformerBlock`` stack + head.
- ``attention_rollout(attentions)``: Abnar & Zuidema (2020): per layer ``0.5 A + 0.5 I``, rows re-normalised,
  multiplied through the layers.
- ``SmallCNN``: the baseline of similar size; ``position_similarity``: the cosine map of the learned positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.transformers.nn import TransformerBlock

Patchify = Callable[[Tensor, int], Tensor]


def patchify(images: Tensor, patch: int) -> Tensor:
    """``images [B, C, H, W]`` -> ``[B, (H/p)(W/p), C p p]`` (row-major grid; each patch as channel, row, column)."""
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"patchify: images must be a [B, C, H, W] tensor, got {getattr(images, 'shape', type(images))}")
    b, c, h, w = images.shape
    if patch < 1 or h % patch or w % patch:
        raise ValueError(f"patchify: patch must divide H={h} and W={w}, got {patch}")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


class PatchEmbedding(nn.Module):
    """Patches (by ``patchify_fn``, the student's once it passes) then a linear map to ``d_model``."""

    def __init__(self, in_channels: int, patch: int, d_model: int, patchify_fn: Patchify = patchify) -> None:
        super().__init__()
        self.patch, self.patchify_fn = patch, patchify_fn
        self.proj = nn.Linear(in_channels * patch * patch, d_model)

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(self.patchify_fn(images, self.patch))

    def as_conv(self) -> nn.Conv2d:
        """The equal ``Conv2d(kernel=stride=patch)`` with this layer's weights."""
        d, k = self.proj.weight.shape
        c = k // (self.patch * self.patch)
        conv = nn.Conv2d(c, d, self.patch, stride=self.patch)
        with torch.no_grad():
            conv.weight.copy_(self.proj.weight.reshape(d, c, self.patch, self.patch))
            conv.bias.copy_(self.proj.bias)
        return conv


class ViT(nn.Module):
    """``images [B, C, H, W]`` -> logits ``[B, n_classes]``; ``forward(x, need_weights=True)`` also returns the
    per-layer attention ``[B, H, T, T]`` (T = 1 + patches, token 0 the class token)."""

    def __init__(self, image_size: int, patch: int, n_classes: int, *, in_channels: int = 1, d_model: int = 64,
                 n_layers: int = 4, n_heads: int = 4, d_ff: int = 128, dropout: float = 0.0,
                 patchify_fn: Patchify = patchify) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"ViT: patch must divide image_size={image_size}, got {patch}")
        self.n_patches = (image_size // patch) ** 2
        self.embed = PatchEmbedding(in_channels, patch, d_model, patchify_fn)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.pos = nn.Parameter(torch.randn(1, 1 + self.n_patches, d_model) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, images: Tensor, need_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        x = self.embed(images)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        weights = []
        for block in self.blocks:
            x, w, _ = block(x, need_weights=need_weights)
            if need_weights:
                weights.append(w)
        logits = self.head(self.norm(x[:, 0]))
        return (logits, weights) if need_weights else logits


def attention_rollout(attentions: Sequence[Tensor], residual: float = 0.5) -> Tensor:
    """Per-layer ``[B, H, T, T]`` (or ``[B, T, T]``) -> ``[B, T, T]``: heads averaged, ``residual I`` added, rows
    re-normalised (``keepdim``), layers multiplied first to last (``R = A_L ... A_1``)."""
    if len(attentions) == 0:
        raise ValueError("attention_rollout: give at least one layer of attention weights")
    out = None
    for a in attentions:
        a = a.mean(1) if a.dim() == 4 else a
        a = (1 - residual) * a + residual * torch.eye(a.shape[-1], dtype=a.dtype)
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    return out


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head: the baseline beside the ViT."""

    def __init__(self, n_classes: int, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2 * width, n_classes))

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


def position_similarity(model: ViT) -> Tensor:
    """Cosine similarity ``[N, N]`` of the learned patch positions (class token left out)."""
    p = F.normalize(model.pos[0, 1:].detach(), dim=-1)
    return p @ p.T
