"""Mixtures of Gaussians in two dimensions, and how many of their modes a generator covers.

The two standard toy problems of the mode-collapse literature (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al.
2018), with PacGAN's settings as defaults:

- the **ring**: 8 Gaussians with means ``(cos(2 pi k / 8), sin(2 pi k / 8))``, standard deviation 0.01;
- the **grid**: 25 Gaussians with means ``(-4 + 2i, -4 + 2j)``, ``i, j = 0..4``, standard deviation 0.05.

The metric (the same papers): a sample is **high quality** when it lies within 3 standard deviations of its
nearest mode; a mode is **captured** when it is the nearest mode of at least one high-quality sample. Report both
on 2,500 samples, as a mean and standard error over 5 seeds (``mean_sem``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Mixture", "grid", "mean_sem", "mode_coverage", "ring"]


@dataclass(frozen=True)
class Mixture:
    """An equal-weight mixture of isotropic Gaussians in 2-D: ``modes [K, 2]`` (float32), one ``std`` for all."""

    modes: Tensor
    std: float
    name: str = "mixture"

    def __post_init__(self) -> None:
        if not isinstance(self.modes, Tensor) or self.modes.dim() != 2 or self.modes.shape[1] != 2:
            got = tuple(self.modes.shape) if isinstance(self.modes, Tensor) else type(self.modes).__name__
            raise ValueError(f"Mixture: modes must be a tensor [K, 2], got {got}")
        if not (isinstance(self.std, (int, float)) and self.std > 0):
            raise ValueError(f"Mixture: std must be a positive number, got {self.std!r}")

    @property
    def n_modes(self) -> int:
        return self.modes.shape[0]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points [n, 2] (float32): a mode chosen uniformly, plus Gaussian noise of ``std``."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"Mixture.sample: n must be a positive int, got {n!r}")
        which = torch.randint(self.n_modes, (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator)
        return self.modes[which] + self.std * noise

    def log_density(self, x: Tensor) -> Tensor:
        """log p(x) [N] of points ``x [N, 2]`` under the mixture (in the dtype of ``x``)."""
        if x.dim() != 2 or x.shape[1] != 2:
            raise ValueError(f"Mixture.log_density: x must be [N, 2], got {tuple(x.shape)}")
        modes = self.modes.to(dtype=x.dtype, device=x.device)
        sq = torch.cdist(x, modes).square()  # [N, K]
        log_normal = -sq / (2 * self.std**2) - math.log(2 * math.pi * self.std**2)
        return torch.logsumexp(log_normal, dim=1) - math.log(self.n_modes)

    def coverage(self, samples: Tensor) -> tuple[int, float]:
        """``mode_coverage(samples, self.modes, self.std)``."""
        return mode_coverage(samples, self.modes, self.std)


def ring(n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Mixture:
    """``n_modes`` Gaussians evenly spaced on a circle of ``radius`` (angles ``2 pi k / n``, k = 0..n-1).

    Evenly spaced means *without* the end point: ``linspace(0, 2 pi, 8)`` would put the last mode on the first
    (7 distinct modes)."""
    if not isinstance(n_modes, int) or n_modes < 1:
        raise ValueError(f"ring: n_modes must be a positive int, got {n_modes!r}")
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    modes = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return Mixture(modes.float(), float(std), name=f"ring of {n_modes}")


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    """``side x side`` Gaussians on a square grid centred on 0, ``spacing`` apart (5x5: means -4, -2, 0, 2, 4)."""
    if not isinstance(side, int) or side < 1:
        raise ValueError(f"grid: side must be a positive int, got {side!r}")
    axis = spacing * (torch.arange(side, dtype=torch.float64) - (side - 1) / 2)
    xs, ys = torch.meshgrid(axis, axis, indexing="ij")
    modes = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return Mixture(modes.float(), float(std), name=f"{side}x{side} grid")


def mode_coverage(samples: Tensor, modes: Tensor, std: float) -> tuple[int, float]:
    """How well ``samples [N, 2]`` cover the mixture with ``modes [K, 2]`` and ``std``.

    Returns ``(modes captured, fraction of high-quality samples)`` as ``(int, float)``: a sample is high quality
    when its distance to the nearest mode is at most ``3 * std``; a mode is captured when it is the nearest mode of
    at least one high-quality sample. ``std`` is a number (int, float, numpy scalar or 0-d tensor). The inputs are
    not changed.
    """
    if not isinstance(samples, Tensor) or samples.dim() != 2 or samples.shape[1] != 2 or samples.shape[0] == 0:
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        raise ValueError(f"mode_coverage: samples must be a non-empty tensor [N, 2], got {got}")
    if not isinstance(modes, Tensor) or modes.dim() != 2 or modes.shape[1] != 2 or modes.shape[0] == 0:
        got = tuple(modes.shape) if isinstance(modes, Tensor) else type(modes).__name__
        raise ValueError(f"mode_coverage: modes must be a non-empty tensor [K, 2], got {got}")
    if isinstance(std, Tensor) and std.numel() == 1:
        std = float(std)
    if not (isinstance(std, numbers.Real) and not isinstance(std, bool) and std > 0):
        raise ValueError(f"mode_coverage: std must be a positive number, got {std!r}")
    std = float(std)
    x = samples.detach()
    dist = torch.cdist(x, modes.detach().to(dtype=x.dtype, device=x.device))  # [N, K]
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= 3 * std
    captured = torch.unique(nearest[good]).numel()
    return int(captured), float(good.double().mean())


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n); 0.0 for one value)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_sem: expected at least one value, got none")
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return mean, 0.0
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var / n)
