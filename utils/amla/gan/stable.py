"""Stabilising GAN training (Hour 12): the WGAN critic loss, the gradient penalty, the hinge loss, spectral
normalisation by power iteration, and two time-scale learning rates.

Shapes: ``scores`` are the critic's outputs, ``[B]`` or ``[B, 1]``; ``real`` and ``fake`` are batches of the
same shape ``[B, ...]`` (2-D points ``[B, 2]`` or images ``[B, C, H, W]``).

- ``wgan_critic_loss(real_scores, fake_scores)`` = mean D(fake) - mean D(real) (the critic minimises it);
  ``wgan_generator_loss(fake_scores)`` = -mean D(fake)
- ``gradient_penalty(critic, real, fake, t=None)``: WGAN-GP's penalty (the reference of Exercise 12.1)
- ``hinge_d_loss`` / ``hinge_g_loss``: the hinge loss of SAGAN/BigGAN
- ``spectral_norm_estimate(weight, u, n_iters)``: sigma_max by power iteration (the reference of Exercise 12.2),
  ``SpectralNorm`` (a parametrization dividing a weight by it) and ``spectral_norm(module, ...)`` which registers
  it, like ``torch.nn.utils.parametrizations.spectral_norm``
- ``ttur(generator_params, critic_params, ...)``: two Adam optimisers with two time-scale learning rates
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["SpectralNorm", "apply_spectral_norm", "gradient_penalty", "hinge_d_loss", "hinge_g_loss", "spectral_norm",
           "spectral_norm_estimate", "ttur", "wgan_critic_loss", "wgan_generator_loss"]

EstimateFn = Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor]]


def _scores(scores: Tensor, name: str) -> Tensor:
    if not isinstance(scores, Tensor) or not scores.is_floating_point():
        raise TypeError(f"{name} should be a float tensor of critic scores [B] or [B, 1], got {type(scores).__name__}")
    if scores.dim() == 2 and scores.shape[1] == 1:
        return scores[:, 0]
    if scores.dim() != 1:
        raise ValueError(f"{name} should have shape [B] or [B, 1], got {tuple(scores.shape)}")
    return scores


def wgan_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The critic's WGAN loss, mean D(fake) - mean D(real) (0-d): minimising it widens the gap, the
    estimate of the Wasserstein-1 distance (given a 1-Lipschitz critic)."""
    return _scores(fake_scores, "fake_scores").mean() - _scores(real_scores, "real_scores").mean()


def wgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """The generator's WGAN loss, -mean D(fake) (0-d)."""
    return -_scores(fake_scores, "fake_scores").mean()


def hinge_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The discriminator's hinge loss, mean relu(1 - D(real)) + mean relu(1 + D(fake)) (0-d)."""
    return F.relu(1 - _scores(real_scores, "real_scores")).mean() + F.relu(1 + _scores(fake_scores, "fake_scores")).mean()


def hinge_g_loss(fake_scores: Tensor) -> Tensor:
    """The generator's hinge loss, -mean D(fake) (the same as WGAN's; 0-d)."""
    return -_scores(fake_scores, "fake_scores").mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, t: Tensor | None = None) -> Tensor:
    """WGAN-GP's penalty (Gulrajani et al., 2017), a 0-d tensor:

        mean_i (||grad_x D(x_hat_i)||_2 - 1)^2,   x_hat_i = t_i * real_i + (1 - t_i) * fake_i,

    one t_i per sample (``t`` of shape [B], drawn uniformly in [0, 1) when None), the norm over all the
    dimensions of a sample. ``create_graph=True`` keeps the penalty differentiable with respect to the critic's
    parameters, so that adding ``lambda * penalty`` to the critic's loss trains it.
    """
    if not isinstance(real, Tensor) or not isinstance(fake, Tensor) or real.shape != fake.shape:
        raise ValueError(f"real and fake should be tensors of the same shape [B, ...], got "
                         f"{getattr(real, 'shape', type(real).__name__)} and {getattr(fake, 'shape', type(fake).__name__)}")
    b = real.shape[0]
    if t is None:
        t = torch.rand(b, dtype=real.dtype, device=real.device)
    if t.shape != (b,):
        raise ValueError(f"t should have shape [B] = ({b},) (one mixing weight per sample), got {tuple(t.shape)}")
    t = t.to(real.dtype).view(b, *([1] * (real.dim() - 1)))
    x_hat = (t * real.detach() + (1 - t) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.reshape(b, -1).norm(dim=1) - 1) ** 2).mean()


def spectral_norm_estimate(weight: Tensor, u: Tensor, n_iters: int = 1) -> tuple[Tensor, Tensor]:
    """The largest singular value of ``weight`` [out, in] by ``n_iters`` >= 1 steps of power iteration.

    Starting from the unit vector ``u`` [out]: v = normalise(W^T u), u = normalise(W v), repeated; then
    sigma = u^T W v. The iterations run without gradient (u and v are constants), so sigma's gradient with
    respect to W is u v^T, as in ``torch.nn.utils.parametrizations.spectral_norm``. Returns (sigma as a 0-d
    tensor of weight's dtype, the new u [out], detached), the u to start from next time.
    """
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise ValueError(f"weight should be a matrix [out, in], got {getattr(weight, 'shape', type(weight).__name__)}")
    if not isinstance(u, Tensor) or u.shape != weight.shape[:1]:
        raise ValueError(f"u should have shape [out] = ({weight.shape[0]},), got {getattr(u, 'shape', type(u).__name__)}")
    if int(n_iters) < 1:
        raise ValueError(f"n_iters should be at least 1, got {n_iters}")
    with torch.no_grad():
        u = u.to(weight.dtype)
        for _ in range(int(n_iters)):
            v = F.normalize(weight.T @ u, dim=0, eps=1e-12)
            u = F.normalize(weight @ v, dim=0, eps=1e-12)
    sigma = torch.dot(u, weight @ v)
    return sigma, u


class SpectralNorm(nn.Module):
    """A parametrization ``W -> W / sigma_max(W)``, sigma from ``estimate`` (e.g. the student's
    ``spectral_norm_estimate``), ``n_iters`` power-iteration steps per training forward.

    ``u`` [out] is a buffer carried from call to call (one cheap step per update suffices because W changes
    slowly); in eval mode u is not updated. Conv weights [out, in, kh, kw] are read as [out, in*kh*kw].
    """

    def __init__(self, weight: Tensor, estimate: EstimateFn = spectral_norm_estimate, n_iters: int = 1,
                 warmup_iters: int = 15) -> None:
        super().__init__()
        if weight.dim() < 2:
            raise ValueError(f"spectral norm needs a weight with at least 2 dimensions, got {tuple(weight.shape)}")
        self.estimate, self.n_iters = estimate, int(n_iters)
        matrix = weight.detach().reshape(weight.shape[0], -1)
        u = F.normalize(torch.randn(matrix.shape[0], dtype=matrix.dtype, device=matrix.device), dim=0, eps=1e-12)
        if warmup_iters > 0:
            _, u = estimate(matrix, u, warmup_iters)
        self.register_buffer("u", u.detach().clone())

    def forward(self, weight: Tensor) -> Tensor:
        matrix = weight.reshape(weight.shape[0], -1)
        sigma, u = self.estimate(matrix, self.u, self.n_iters if self.training else 1)
        if self.training:
            self.u = u.detach().clone()
        return weight / sigma


def spectral_norm(module: nn.Module, estimate: EstimateFn = spectral_norm_estimate, n_iters: int = 1,
                  name: str = "weight") -> nn.Module:
    """Register ``SpectralNorm`` on ``module.<name>`` (a ``Linear`` or ``Conv2d``); returns the module."""
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        raise ValueError("spectral_norm here reads weights as [out, ...]; a transposed convolution stores [in, out, ...]")
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"{type(module).__name__} has no tensor parameter {name!r} to normalise")
    parametrize.register_parametrization(module, name, SpectralNorm(weight, estimate, n_iters))
    return module


def apply_spectral_norm(model: nn.Module, estimate: EstimateFn = spectral_norm_estimate, n_iters: int = 1) -> nn.Module:
    """Spectral norm on every ``Linear`` and ``Conv2d`` of ``model`` (in place); returns the model."""
    for layer in list(model.modules()):
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            spectral_norm(layer, estimate, n_iters)
    return model


def ttur(generator_params: Iterable[nn.Parameter], critic_params: Iterable[nn.Parameter], g_lr: float = 1e-4,
         d_lr: float = 4e-4, betas: tuple[float, float] = (0.0, 0.9)) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Two time-scale update rule (Heusel et al., 2017): (generator's Adam, critic's Adam), the critic's rate
    larger (4e-4 vs 1e-4, beta1 = 0 as in SAGAN)."""
    if not (g_lr > 0 and d_lr > 0):
        raise ValueError(f"learning rates should be positive, got g_lr={g_lr}, d_lr={d_lr}")
    return (torch.optim.Adam(generator_params, lr=g_lr, betas=betas),
            torch.optim.Adam(critic_params, lr=d_lr, betas=betas))
