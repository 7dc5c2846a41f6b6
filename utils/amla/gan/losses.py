"""The losses of the original GAN game (Hour 10), written on logits; Hours 11-12 train with them too.

The discriminator outputs a **logit** ``l`` (any real number); its probability that the input is real is
``D = sigmoid(l)``. Written with ``softplus(t) = log(1 + e^t)``, which is finite for logits as large as 1e4:

- ``-log D = -log sigmoid(l) = softplus(-l)`` and ``-log(1 - D) = -log sigmoid(-l) = softplus(l)``.

The discriminator minimises the binary cross-entropy of "real = 1, fake = 0" (``d_loss``), which is the
negative of the minimax value ``E log D(x) + E log(1 - D(G(z)))``. The generator minimises either

- ``g_loss_saturating``: ``E log(1 - D(G(z))) = -E softplus(l_fake)``, the minimax game as written (its gradient
  vanishes when D confidently rejects the fakes, exactly when G needs it most), or
- ``g_loss_nonsaturating``: ``-E log D(G(z)) = E softplus(-l_fake)`` (Goodfellow et al., 2014, section 3), the
  same fixed points and a strong gradient where the first one has none.

Every loss takes logits of any shape (``[N]`` or ``[N, 1]``) and returns a 0-d tensor of their dtype: the mean
over the batch.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["d_loss", "g_loss_nonsaturating", "g_loss_saturating"]


def _logits(x: object, name: str, fn: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a tensor of logits, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{fn}: {name} must be a float tensor of logits (the discriminator's raw output, before "
                        f"any sigmoid), got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{fn}: {name} is empty (shape {tuple(x.shape)}); expected at least one logit")
    return x


def d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's loss: BCE of real logits against 1 plus BCE of fake logits against 0.

    ``mean(softplus(-real_logits)) + mean(softplus(fake_logits))``, each mean over its own batch (the two batches
    may differ in size). At the start, when D says 1/2 to everything, it is ``2 log 2 = 1.386``."""
    real = _logits(real_logits, "real_logits", "d_loss")
    fake = _logits(fake_logits, "fake_logits", "d_loss")
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_loss_nonsaturating(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss ``-mean(log D(G(z))) = mean(softplus(-fake_logits))``."""
    return F.softplus(-_logits(fake_logits, "fake_logits", "g_loss_nonsaturating")).mean()


def g_loss_saturating(fake_logits: Tensor) -> Tensor:
    """The minimax (saturating) generator loss ``mean(log(1 - D(G(z)))) = -mean(softplus(fake_logits))``."""
    return -F.softplus(_logits(fake_logits, "fake_logits", "g_loss_saturating")).mean()
