"""Self-checks of Hour 10 (GANs from scratch): the two losses of the game and the mode-coverage metric.

Each check runs on the engine (``amla.checks.engine``): ordinary inputs on which every known mistake gives a
different answer, then the edge inputs of the exercise.

- 10.1 ``d_loss(real_logits, fake_logits) -> 0-d tensor``: real and fake batches of different sizes, ``(N, 1)``
  logits, a batch of one, logits of 1e4 (confidently right and confidently wrong: a two-step log(sigmoid) gives
  inf there), a discriminator that is sure and right, float64 logits (the loss stays float64); gradients.
- 10.2 ``g_loss(fake_logits) -> 0-d tensor`` (non-saturating): ``(N, 1)`` logits, a batch of one, a discriminator
  that rejects every fake (where the saturating loss has no gradient), logits of 1e4, float64; gradients.
- 10.3 ``mode_coverage(samples, modes, std) -> (int, float)`` (the reference is ``amla.gan.toy.mode_coverage``):
  the ring with points in the gaps and points just inside and just outside 3 std (and one inside the 3-std
  square but outside the disc), the 5x5 grid with uniform noise, two modes closer than 6 std (a sample within
  3 std of both belongs to the nearer), one sample and one mode, no high-quality sample, float64 samples with
  float32 modes, an int std.
"""

from amla.checks.gan.d_loss import check_d_loss
from amla.checks.gan.g_loss import check_g_loss
from amla.checks.gan.mode_coverage import check_mode_coverage

__all__ = ["check_d_loss", "check_g_loss", "check_mode_coverage"]
