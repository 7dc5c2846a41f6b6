"""StyleGAN's ideas (Karras et al., 2019) in small, runnable form, for digit images (Hour 12).

- ``MappingNetwork(z_dim, w_dim, depth)``: z [N, z_dim] -> w [N, w_dim]: an MLP after normalising z (pixel norm),
  so that the latent the generator reads need not follow the data's entangled layout.
- ``AdaIN(channels, w_dim)``: adaptive instance normalisation. Each feature map of each image is normalised to
  mean 0 and variance 1, then scaled and shifted by a per-channel (scale, bias) computed from w: the *style*.
  ``adain(x, scale, bias)`` is the functional form.
- ``StyleGenerator(z_dim, w_dim, image_size, width)``: a learned constant ``[width, s, s]`` (s = image_size / 4),
  then 3 blocks (conv, AdaIN), each upsampling after the first; every block reads its own w, so
  ``forward(z)`` uses one w for all of them and ``synthesis(ws)`` takes ``n_styles`` of them. Per-pixel noise
  inputs are left out (they add stochastic detail, not needed to show style mixing).
- ``mix_styles(generator, z_a, z_b, crossover)``: style mixing: the blocks before ``crossover`` read w_a
  (coarse: layout, thickness), the ones from ``crossover`` on read w_b (finer detail).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AdaIN", "MappingNetwork", "StyleGenerator", "adain", "mix_styles"]


def _latent(z: object, dim: int, who: str, name: str = "z") -> Tensor:
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != dim:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"{who}: {name} must be [N, {dim}], got {shape}")
    return z


class MappingNetwork(nn.Module):
    """z [N, z_dim] -> w [N, w_dim]: pixel norm, then ``depth`` linear layers with LeakyReLU(0.2)."""

    def __init__(self, z_dim: int = 32, w_dim: int = 32, depth: int = 3) -> None:
        super().__init__()
        if min(z_dim, w_dim, depth) < 1:
            raise ValueError(f"MappingNetwork: z_dim, w_dim and depth must be >= 1, got {z_dim}, {w_dim}, {depth}")
        self.z_dim, self.w_dim = z_dim, w_dim
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(z_dim if i == 0 else w_dim, w_dim), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        z = _latent(z, self.z_dim, "MappingNetwork")
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)  # pixel norm: every z on one sphere
        return self.net(z)


def adain(x: Tensor, scale: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """AdaIN(x) = scale * (x - mean) / std + bias, mean and std per image and channel over H, W.

    x [N, C, H, W]; scale, bias [N, C]. Returns [N, C, H, W]."""
    if x.dim() != 4 or scale.shape != x.shape[:2] or bias.shape != x.shape[:2]:
        raise ValueError(f"adain: expected x [N, C, H, W] and scale, bias [N, C], got {tuple(x.shape)}, "
                         f"{tuple(scale.shape)}, {tuple(bias.shape)}")
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return scale[:, :, None, None] * (x - mean) / std + bias[:, :, None, None]


class AdaIN(nn.Module):
    """AdaIN whose style comes from w: (scale, bias) = (1 + A_s w, A_b w), A a learned affine map."""

    def __init__(self, channels: int, w_dim: int) -> None:
        super().__init__()
        self.channels, self.w_dim = channels, w_dim
        self.affine = nn.Linear(w_dim, 2 * channels)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        w = _latent(w, self.w_dim, "AdaIN", "w")
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[0] != w.shape[0]:
            raise ValueError(f"AdaIN: x must be [{w.shape[0]}, {self.channels}, H, W], got {tuple(x.shape)}")
        scale, bias = self.affine(w).chunk(2, dim=1)
        return adain(x, 1 + scale, bias)


class StyleGenerator(nn.Module):
    """A tiny style-based generator: mapping network + constant input + 3 (conv, AdaIN) blocks, tanh output.

    ``image_size`` a multiple of 4 (28 or 8). ``forward(z [N, z_dim]) -> [N, 1, H, W]`` in [-1, 1];
    ``mapping(z) -> w``; ``synthesis(ws)`` with ``ws`` [N, n_styles, w_dim] (one w per block)."""

    n_styles = 3

    def __init__(self, z_dim: int = 32, w_dim: int = 32, image_size: int = 28, width: int = 32,
                 mapping_depth: int = 3) -> None:
        super().__init__()
        if image_size < 8 or image_size % 4:
            raise ValueError(f"StyleGenerator: image_size must be a multiple of 4 from 8 on, got {image_size}")
        self.z_dim, self.w_dim, self.image_size = z_dim, w_dim, image_size
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_depth)
        s = image_size // 4
        self.const = nn.Parameter(torch.randn(1, width, s, s))
        self.convs = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1),
                                    nn.Conv2d(width, width // 2, 3, padding=1)])
        self.styles = nn.ModuleList([AdaIN(width, w_dim), AdaIN(width, w_dim), AdaIN(width // 2, w_dim)])
        self.to_image = nn.Conv2d(width // 2, 1, 1)

    def synthesis(self, ws: Tensor) -> Tensor:
        if not isinstance(ws, Tensor) or ws.dim() != 3 or ws.shape[1:] != (self.n_styles, self.w_dim):
            shape = tuple(ws.shape) if isinstance(ws, Tensor) else type(ws).__name__
            raise ValueError(f"StyleGenerator.synthesis: ws must be [N, {self.n_styles}, {self.w_dim}], got {shape}")
        h = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, (conv, style) in enumerate(zip(self.convs, self.styles)):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = style(F.leaky_relu(conv(h), 0.2), ws[:, i])
        return torch.tanh(self.to_image(h))

    def forward(self, z: Tensor) -> Tensor:
        w = self.mapping(_latent(z, self.z_dim, "StyleGenerator"))
        return self.synthesis(w[:, None].expand(-1, self.n_styles, -1))


def mix_styles(generator: StyleGenerator, z_a: Tensor, z_b: Tensor, crossover: int) -> Tensor:
    """Images whose blocks ``0 .. crossover-1`` read w(z_a) and blocks ``crossover ..`` read w(z_b).

    z_a, z_b [N, z_dim]; crossover in 0..n_styles (0: all from b, n_styles: all from a). [N, 1, H, W]."""
    if not 0 <= crossover <= generator.n_styles:
        raise ValueError(f"mix_styles: crossover must lie in 0..{generator.n_styles}, got {crossover}")
    w_a = generator.mapping(_latent(z_a, generator.z_dim, "mix_styles", "z_a"))
    w_b = generator.mapping(_latent(z_b, generator.z_dim, "mix_styles", "z_b"))
    if w_a.shape != w_b.shape:
        raise ValueError(f"mix_styles: z_a and z_b must have the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    take_a = (torch.arange(generator.n_styles, device=w_a.device) < crossover)[None, :, None]
    ws = torch.where(take_a, w_a[:, None], w_b[:, None])
    return generator.synthesis(ws)
