"""Self-checks of Hour 11 (DCGAN and conditional GANs): the projection discriminator and spherical interpolation.

- Exercise 11.1 ``projection_logits(h, y, embed, linear)``: cases with repeated and missing classes, a batch of
  one, one feature, one class, N = F = C (where broadcasting bugs hide) and float64; gradients to h, the
  embedding and the linear layer; properties: each logit depends on its own sample, and each term on its own
  (zero embedding -> linear(h), zero linear -> <embed(y), h>). The conditional discriminator the hour trains is
  built from the function this check returns.
- Exercise 11.2 ``slerp(z0, z1, t)``: cases with t a float or one fraction per row, t = 0 and t = 1, plain
  vectors, unit vectors, identical, parallel and nearly parallel vectors (the 0 / 0 of sin(w) = 0), a batch of
  one and float64; properties: the endpoints, unit norms along the arc between unit vectors, equal angles for
  evenly spaced t. The hour interpolates its trained generator's latents with the slerp this check returns.
"""

from amla.checks.dcgan.projection import check_projection_logits
from amla.checks.dcgan.slerp import check_slerp

__all__ = ["check_projection_logits", "check_slerp"]
