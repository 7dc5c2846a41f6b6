"""Self-checks of Hour 12 (stabilizing and evaluating GANs).

- ``penalty`` (12.1, ``check_gradient_penalty``): WGAN-GP's gradient penalty. Cases: an MLP critic on points, a
  conv critic on images (the norm over C, H, W), t = 0 and 1, a batch of one, float64, and critics linear in x
  with t left out (the penalty is (||w|| - 1)^2 in closed form, whatever t; a recording critic shows whether
  the interpolates lie on the segments, one t per sample). What is compared: the penalty, its gradient with
  respect to the critic's weights (zero without ``create_graph=True``), and the samples off their segment.
- ``spectral`` (12.2, ``check_spectral_norm``): sigma_max by power iteration, against the reference and
  ``torch.linalg.matrix_norm(W, 2)``: one and many iterations, rank 1, 1xN and Nx1, float64, n_iters left out;
  u must stay a unit vector, sigma's gradient must be u v^T (the iteration runs without gradient).
- ``frechet`` (12.3, ``check_frechet_distance``): the Frechet distance between two Gaussians, a Python float:
  equal Gaussians, non-commuting and near-singular covariances, the 1-D closed form, float32 inputs, a
  cancellation that needs float64; symmetric, 0 for equal Gaussians, finite.
"""

from amla.checks.gan_stability.frechet import check_frechet_distance
from amla.checks.gan_stability.penalty import check_gradient_penalty
from amla.checks.gan_stability.spectral import check_spectral_norm

__all__ = ["check_frechet_distance", "check_gradient_penalty", "check_spectral_norm"]
