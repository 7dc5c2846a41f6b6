"""The Vision Transformer (Hour 08): patches, the class token, learned positions, attention rollout, a CNN baseline.

- ``patchify(images, patch) -> [B, N, C*p*p]``: non-overlapping patches by reshaping, row-major over the grid,
  each patch flattened as (channel, row, column), the order ``Conv2d(kernel=stride=p)`` weights use.
- ``PatchEmbedding``: a linear map of the patches (equal to the strided convolution with the same weights).
- ``ViT``: class token + learned positions + ``amla.transformers.nn.TransformerBlock`` stack + head.
- ``attention_rollout(attentions)``: Abnar & Zuidema (2020): per layer ``0.5 A + 0.5 I``, rows re-normalised,
  multiplied through the layers.
- ``SmallCNN``: the baseline of similar size; ``position_similarity``: the cosine map of the learned positions.
- ``image_split(source)``: the hour's data, ``ImageSplit`` of ``[N, 1, H, W]`` images in [-1, 1]: scikit-learn's
  8x8 digits, or MNIST (its 60,000 training images when present, else 8,000 of its test images for training and
  the other 2,000 for testing, as ``note`` says); ``random_shift``: the augmentation; ``accuracy``: on a test set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.toolkit.train import eval_batches
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
        a = (1 - residual) * a + residual * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    return out


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks (``width``, 2x, 4x channels; 2x2 max-pool after the first two), global average
    pooling and a linear head: the baseline beside the ViT (width 32: about 93k parameters)."""

    def __init__(self, n_classes: int, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4 * w, n_classes))

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


def position_similarity(model: ViT) -> Tensor:
    """Cosine similarity ``[N, N]`` of the learned patch positions (class token left out)."""
    p = F.normalize(model.pos[0, 1:].detach(), dim=-1)
    return p @ p.T


@dataclass(frozen=True)
class ImageSplit:
    """Images ``float32 [N, 1, H, W]`` in [-1, 1] (background -1) and labels ``int64 [N]``; ``note`` says what the
    split is."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    note: str

    def describe(self) -> str:
        side = self.x_train.shape[-1]
        return (f"{self.name}: {side}x{side} images, {len(self.x_train):,} to train on and {len(self.x_test):,} "
                f"to test on ({self.note})")


def image_split(source: str, *, test_fraction: float = 0.2, seed: int = 0, download_train: bool = False,
                download: bool = True) -> ImageSplit:
    """``source``: ``"digits8x8"`` (scikit-learn's 1,797 digits, a stratified split) or ``"mnist"``: MNIST's
    training and test sets when the training set is in the data directory (or ``download_train`` fetches it),
    else its test set split into train and test (stratified, ``test_fraction``)."""
    from amla.toolkit.data import DataMissing, digits8x8, mnist

    if source not in ("digits8x8", "mnist"):
        raise ValueError(f"image_split: source must be 'digits8x8' or 'mnist', got {source!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"image_split: test_fraction must be between 0 and 1, got {test_fraction}")

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(x * 2.0 - 1.0).unsqueeze(1).contiguous(), torch.from_numpy(y)

    if source == "mnist":
        x_test, y_test = mnist("test", download=download)
        try:
            x_train, y_train = mnist("train", download=download_train)
            return ImageSplit("mnist", *tensors(x_train, y_train), *tensors(x_test, y_test),
                              "MNIST's training set and its test set")
        except DataMissing:
            x, y, name = x_test, y_test, "mnist"
            note = (f"MNIST's training set is not here: {1 - test_fraction:.0%} of its 10,000 test images train, "
                    f"the other {test_fraction:.0%} test")
    else:
        x, y = digits8x8()
        name, note = "digits8x8", f"scikit-learn's digits, {1 - test_fraction:.0%} / {test_fraction:.0%} stratified"
    train, test = stratified_split(y, test_fraction, seed)
    return ImageSplit(name, *tensors(x[train], y[train]), *tensors(x[test], y[test]), note)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test indices with each class split ``1 - test_fraction`` / ``test_fraction`` (rounded)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def random_shift(images: Tensor, max_shift: int, fill: float = -1.0, generator: torch.Generator | None = None
                 ) -> Tensor:
    """Each image moved by its own random whole-pixel offset in ``[-max_shift, max_shift]`` along both axes, the
    uncovered border filled with ``fill`` (the background): the hour's data augmentation."""
    if max_shift == 0:
        return images
    if max_shift < 0:
        raise ValueError(f"random_shift: max_shift must be >= 0, got {max_shift}")
    b, c, h, w = images.shape
    s, dev = max_shift, images.device
    padded = F.pad(images, (s, s, s, s), value=fill)  # [B, C, H + 2s, W + 2s]
    dy, dx = (torch.randint(0, 2 * s + 1, (b, 1, 1, 1), generator=generator).to(dev) for _ in range(2))
    rows = (dy + torch.arange(h, device=dev).view(1, 1, h, 1)).expand(b, c, h, w + 2 * s)
    cols = (dx + torch.arange(w, device=dev).view(1, 1, 1, w)).expand(b, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """The fraction of ``images`` whose arg-max class is the label (eval mode meanwhile, no gradient)."""
    right = sum(int((model(x).argmax(-1) == y).sum()) for x, y in eval_batches(model, [images, labels], batch_size))
    return right / len(images)
