"""Hour 11: the DCGAN generator and discriminator for digit images, optionally class-conditional.

Sizes: ``image_size`` 28 (MNIST) or 8 (scikit-learn's digits); any multiple of 4 from 8 on works. Both networks
have two stride-2 stages, so the generator starts from a ``[2*width, image_size/4, image_size/4]`` map:

- ``Generator(z_dim, image_size, width, n_classes, label_dim)``: ``forward(z [N, z_dim], y [N] long or None) ->
  [N, 1, H, W]`` in [-1, 1] (tanh). Linear -> BN -> ReLU -> ConvT(4, 2, 1) -> BN -> ReLU -> ConvT(4, 2, 1) -> tanh.
  A class-conditional generator (``n_classes > 0``) concatenates a label embedding ``embed(y) [N, label_dim]``
  to ``z`` (``label_dim`` defaults to ``z_dim``).
- ``Discriminator(image_size, width, n_classes, norm, projection)``: ``forward(x [N, 1, H, W], y=None) -> logits
  [N]``. Conv(4, 2, 1) -> LeakyReLU(0.2) -> Conv(4, 2, 1) -> [BN] -> LeakyReLU(0.2) -> flatten = ``features(x)``
  ``h [N, F]``, then ``linear(h)``; a conditional one adds the projection term ``<embed(y), h>`` (Miyato and
  Koyama, 2018) through ``projection(h, y, embed, linear)`` (the reference is ``projection_logits``; Hour 11
  passes the function its Exercise 11.1 check returned). ``minibatch_std=True`` appends one feature, the batch's
  spread measured before BatchNorm (ProGAN's remedy for collapse; off by default: it did not help here). ``norm="none"`` gives a critic without BatchNorm (a
  WGAN-GP critic must not use it: the penalty is per sample); the layers are plain attributes (``conv1``,
  ``conv2``, ``linear``, ``embed``), so Hour 12 can wrap them in spectral norm itself.
- ``dcgan_init_(module)``: DCGAN's initialisation, in place: conv and linear weights N(0, 0.02), BatchNorm
  weights N(1, 0.02), biases 0 (embeddings are left alone). Both constructors apply it.
- latents: ``lerp`` / ``slerp`` (interpolation), ``interpolation_path(z0, z1, steps, kind)``,
  ``truncated_normal(n, z_dim, threshold)`` (the truncation trick: resample coordinates beyond the threshold),
  ``class_latents(n_per_class, n_classes, z_dim)`` (a fixed grid of latents, class by class).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "Discriminator",
    "Generator",
    "ProjectionFn",
    "class_latents",
    "count_parameters",
    "dcgan_init_",
    "interpolation_path",
    "lerp",
    "projection_logits",
    "slerp",
    "truncated_normal",
]

ProjectionFn = Callable[[Tensor, Tensor, nn.Embedding, nn.Linear], Tensor]


def _check_size(image_size: int, who: str) -> int:
    if not isinstance(image_size, int) or image_size < 8 or image_size % 4:
        raise ValueError(f"{who}: image_size must be a multiple of 4 from 8 on (28 for MNIST, 8 for the 8x8 "
                         f"digits), got {image_size!r}")
    return image_size // 4


def _check_labels(y: Tensor | None, n: int, n_classes: int, who: str) -> Tensor | None:
    if n_classes == 0:
        if y is not None:
            raise ValueError(f"{who} is unconditional (n_classes=0) but got labels y; pass y=None, or build it "
                             "with n_classes=10")
        return None
    if y is None:
        raise ValueError(f"{who} is class-conditional (n_classes={n_classes}): pass the labels y [N] (long)")
    if not isinstance(y, Tensor) or y.dtype not in (torch.int64, torch.int32) or y.shape != (n,):
        what = f"{y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"{who}: y must be a long tensor of shape [{n}] (one class per sample), got {what}")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{who}: labels must lie in 0..{n_classes - 1}, got {int(y.min())}..{int(y.max())}")
    return y.long()


def dcgan_init_(module: nn.Module) -> nn.Module:
    """DCGAN's initialisation (Radford et al., 2016), in place, on every submodule: Conv/ConvTranspose/Linear
    weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), their biases 0. Embeddings are left alone. Returns
    ``module``. (A layer wrapped in spectral norm keeps its parametrization: its original weight is set.)"""
    if not isinstance(module, nn.Module):
        raise TypeError(f"dcgan_init_ expects an nn.Module, got {type(module).__name__}")
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
                nn.init.normal_(weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                if m.weight is not None:
                    nn.init.normal_(m.weight, 1.0, 0.02)
                    nn.init.zeros_(m.bias)
    return module


def projection_logits(h: Tensor, y: Tensor, embed: nn.Embedding, linear: nn.Linear) -> Tensor:
    """The projection discriminator's output: ``linear(h) + <embed(y), h>`` per sample.

    h: features [N, F]; y: classes [N] (long); embed: ``nn.Embedding(C, F)``; linear: ``nn.Linear(F, 1)``.
    Returns logits [N] (the unconditional score plus how well the features match the class's embedding)."""
    return linear(h).squeeze(-1) + (embed(y) * h).sum(dim=-1)


class Generator(nn.Module):
    """z [N, z_dim] (and y [N] when conditional) -> images [N, 1, H, W] in [-1, 1]. See the module doc."""

    def __init__(self, z_dim: int = 64, image_size: int = 28, width: int = 32, n_classes: int = 0,
                 label_dim: int | None = None) -> None:
        super().__init__()
        self.base = _check_size(image_size, "Generator")
        label_dim = z_dim if label_dim is None else label_dim
        if z_dim < 1 or width < 1 or n_classes < 0 or label_dim < 1:
            raise ValueError(f"Generator: z_dim, width and label_dim must be >= 1 and n_classes >= 0, got "
                             f"z_dim={z_dim}, width={width}, n_classes={n_classes}, label_dim={label_dim}")
        self.z_dim, self.image_size, self.width, self.n_classes = z_dim, image_size, width, n_classes
        self.label_dim = label_dim if n_classes else 0
        self.embed = nn.Embedding(n_classes, label_dim) if n_classes else None
        self.fc = nn.Linear(z_dim + self.label_dim, 2 * width * self.base ** 2, bias=False)
        self.bn0 = nn.BatchNorm2d(2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.up2 = nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1)
        dcgan_init_(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.z_dim:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"Generator: z must be [N, {self.z_dim}], got {shape}")
        y = _check_labels(y, z.shape[0], self.n_classes, "Generator")
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        h = self.fc(z).view(-1, 2 * self.width, self.base, self.base)
        h = torch.relu(self.bn0(h))
        h = torch.relu(self.bn1(self.up1(h)))
        return torch.tanh(self.up2(h))


class Discriminator(nn.Module):
    """images [N, 1, H, W] (and y [N] when conditional) -> logits [N]. See the module doc."""

    def __init__(self, image_size: int = 28, width: int = 32, n_classes: int = 0, norm: str = "batch",
                 projection: ProjectionFn | None = None, minibatch_std: bool = False) -> None:
        super().__init__()
        base = _check_size(image_size, "Discriminator")
        if norm not in ("batch", "none"):
            raise ValueError(f"Discriminator: norm must be 'batch' (DCGAN) or 'none' (a WGAN-GP critic), got {norm!r}")
        if width < 1 or n_classes < 0:
            raise ValueError(f"Discriminator: width must be >= 1 and n_classes >= 0, got {width}, {n_classes}")
        if projection is not None and not callable(projection):
            raise TypeError(f"Discriminator: projection must be a function (h, y, embed, linear) -> logits [N], "
                            f"got {type(projection).__name__}")
        self.image_size, self.width, self.n_classes, self.norm = image_size, width, n_classes, norm
        self.minibatch_std = bool(minibatch_std)
        self.n_features = 2 * width * base ** 2 + int(self.minibatch_std)
        self.conv1 = nn.Conv2d(1, width, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=norm == "none")
        self.bn2 = nn.BatchNorm2d(2 * width) if norm == "batch" else nn.Identity()
        self.linear = nn.Linear(self.n_features, 1)
        self.embed = nn.Embedding(n_classes, self.n_features) if n_classes else None
        self.projection = projection or projection_logits
        dcgan_init_(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def features(self, x: Tensor) -> Tensor:
        """h [N, F] (F = ``n_features``): the flattened features the output layer reads."""
        want = (1, self.image_size, self.image_size)
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != want:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"Discriminator: x must be [N, 1, {self.image_size}, {self.image_size}], got {shape}")
        h = nn.functional.leaky_relu(self.conv1(x), 0.2)
        pre = self.conv2(h)
        h = nn.functional.leaky_relu(self.bn2(pre), 0.2).flatten(1)
        if self.minibatch_std:
            # one more feature: how much the batch varies, measured BEFORE BatchNorm (which would rescale every
            # feature of a batch to unit variance and so hide a collapsed generator's lack of variety)
            spread = pre.std(dim=0, unbiased=False).mean() if len(pre) > 1 else pre.new_zeros(())
            h = torch.cat([h, spread.expand(len(h), 1)], dim=1)
        return h

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.features(x)
        y = _check_labels(y, x.shape[0], self.n_classes, "Discriminator")
        if self.embed is None:
            return self.linear(h).squeeze(-1)
        return self.projection(h, y, self.embed, self.linear)


def count_parameters(module: nn.Module) -> int:
    """How many trainable numbers ``module`` has."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --- latents ----------------------------------------------------------------------------------------------


def lerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """(1 - t) z0 + t z1. z0, z1 [..., D]; t a float or a tensor of shape [...] (one fraction per row)."""
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).unsqueeze(-1)
    return (1 - t) * z0 + t * z1


def slerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """Spherical interpolation: along the great circle from z0's direction to z1's, the norms blended.

    slerp = sin((1 - t) w) / sin(w) z0 + sin(t w) / sin(w) z1, w the angle between z0 and z1. z0, z1 [..., D];
    t a float or a tensor of shape [...]. (Nearly) parallel vectors fall back to ``lerp`` (the limit w -> 0)."""
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).unsqueeze(-1)
    cos = (nn.functional.normalize(z0, dim=-1) * nn.functional.normalize(z1, dim=-1)).sum(-1, keepdim=True)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    small = sin < 1e-6
    safe = torch.where(small, torch.ones_like(sin), sin)
    spherical = torch.sin((1 - t) * omega) / safe * z0 + torch.sin(t * omega) / safe * z1
    return torch.where(small, (1 - t) * z0 + t * z1, spherical)


def interpolation_path(z0: Tensor, z1: Tensor, steps: int = 9, kind: str = "slerp",
                       interpolate: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """``steps`` latents from z0 to z1 (both [D]), endpoints included: [steps, D]. ``kind`` "slerp" or "lerp";
    ``interpolate(z0 [T, D], z1 [T, D], t [T])`` replaces the built-in one (e.g. your own slerp)."""
    if z0.dim() != 1 or z0.shape != z1.shape:
        raise ValueError(f"interpolation_path: z0 and z1 must be vectors of one size [D], got {tuple(z0.shape)} "
                         f"and {tuple(z1.shape)}")
    if steps < 2:
        raise ValueError(f"interpolation_path: steps must be >= 2 (both endpoints), got {steps}")
    if interpolate is None:
        if kind not in ("slerp", "lerp"):
            raise ValueError(f"interpolation_path: kind must be 'slerp' or 'lerp', got {kind!r}")
        interpolate = slerp if kind == "slerp" else lerp
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)
    return interpolate(z0.expand(steps, -1), z1.expand(steps, -1), t)


def truncated_normal(n: int, z_dim: int, threshold: float = math.inf,
                     generator: torch.Generator | None = None) -> Tensor:
    """[n, z_dim] standard normal latents whose coordinates beyond +-threshold are redrawn until they fall
    inside (the truncation trick of BigGAN). ``threshold=inf`` is plain N(0, I)."""
    if not threshold > 0:
        raise ValueError(f"truncated_normal: threshold must be > 0 (inf for no truncation), got {threshold}")
    z = torch.randn(n, z_dim, generator=generator)
    for _ in range(1000):
        outside = z.abs() > threshold
        if not bool(outside.any()):
            return z
        z = torch.where(outside, torch.randn(n, z_dim, generator=generator), z)
    raise RuntimeError(f"truncated_normal: threshold {threshold} is too small to sample in 1000 redraws")


def class_latents(n_per_class: int, n_classes: int, z_dim: int, seed: int = 0,
                  shared: bool = True) -> tuple[Tensor, Tensor]:
    """A fixed grid of latents, class by class: z [n_classes * n_per_class, z_dim] and y (0, 0, ..., 1, 1, ...).
    ``shared``: every class gets the same ``n_per_class`` latents (column j is one z across the classes, so
    the grid shows style (columns) against class (rows))."""
    g = torch.Generator().manual_seed(seed)
    if shared:
        z = torch.randn(n_per_class, z_dim, generator=g).repeat(n_classes, 1)
    else:
        z = torch.randn(n_classes * n_per_class, z_dim, generator=g)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    return z, y
