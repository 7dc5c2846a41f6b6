"""The self-check of Exercise 10.2: the non-saturating generator loss (what it checks: the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.gan.losses import g_loss_nonsaturating

G_LOSS = exercise(10, "10.2", "The non-saturating generator loss", "g_loss")


def reference_g_loss(fake_logits: Tensor) -> Tensor:
    """The course's non-saturating generator loss with the exercise's signature."""
    return g_loss_nonsaturating(fake_logits)


def _g_loss_variant(kind: str) -> Callable[[Tensor], Tensor]:
    """A generator loss with one typical bug switched on (kind)."""

    def fn(fake_logits: Tensor) -> Tensor:
        fake = fake_logits
        if kind == "saturating":
            return -F.softplus(fake).mean()
        if kind == "fake_label":  # the discriminator's target for fakes (0) used by the generator
            return F.softplus(fake).mean()
        if kind == "sign":
            return -F.softplus(-fake).mean()
        if kind == "sum":
            return F.softplus(-fake).sum()
        if kind == "naive":
            return -torch.log(torch.sigmoid(fake)).mean()
        if kind == "eps":
            return -torch.log(torch.sigmoid(fake) + 1e-8).mean()
        if kind == "probabilities":
            return F.binary_cross_entropy(fake, torch.ones_like(fake))
        if kind == "raw":  # the logits themselves, as a Wasserstein critic's generator loss
            return -fake.mean()
        return F.softplus(-fake).mean()

    return fn


_G_LOSS_MISTAKES = [
    Mistake("this is the saturating (minimax) loss mean(log(1 - D(G(z)))) = -mean(softplus(fake_logits)): its "
            "gradient vanishes when D rejects the fakes. The non-saturating loss is -mean(log D(G(z))) = "
            "mean(softplus(-fake_logits)).", _g_loss_variant("saturating")),
    Mistake("the fakes are given target 0, as in the discriminator's loss: the generator wants D to call its points "
            "real, target 1, so its loss is mean(softplus(-fake_logits)).", _g_loss_variant("fake_label")),
    Mistake("the sign is flipped: the generator minimises -log D(G(z)), a positive number that falls as D is "
            "fooled; mean(log D(G(z))) would push D(G(z)) towards 0.", _g_loss_variant("sign")),
    Mistake("the loss is summed over the batch instead of averaged: use .mean().", _g_loss_variant("sum")),
    Mistake("log(sigmoid(.)) is computed in two steps: for a logit of -1e4 the sigmoid is exactly 0 and -log(0) = "
            "inf. Write -log sigmoid(l) as softplus(-l) (or -F.logsigmoid(l), or "
            "F.binary_cross_entropy_with_logits with target 1).", _g_loss_variant("naive")),
    Mistake("a small epsilon inside the log, -log(sigmoid(l) + 1e-8), caps the loss near 18.4 and gives no "
            "gradient where D is most confident: use softplus(-l) or -F.logsigmoid(l) on the logits.",
            _g_loss_variant("eps")),
    Mistake("F.binary_cross_entropy expects probabilities in [0, 1], but D gives logits: use "
            "F.binary_cross_entropy_with_logits (or softplus).", _g_loss_variant("probabilities")),
    Mistake("the raw logits are averaged (-mean(fake_logits)), as in a Wasserstein GAN: here the loss is "
            "-log sigmoid of the logits, mean(softplus(-fake_logits)).", _g_loss_variant("raw")),
]


def _g_loss_cases() -> list[Case]:
    g = torch.Generator().manual_seed(102)
    return [
        Case("fake logits of shape (64,)", (torch.randn(64, generator=g) * 2,)),
        Case("fake logits of shape (32, 1), as nn.Linear(..., 1) gives them", (torch.randn(32, 1, generator=g) + 1,)),
        Case("a batch of one (shape (1,))", (torch.randn(1, generator=g),)),
        Case("a confident discriminator that rejects every fake (logits about -8, shape (16,))",
             (torch.randn(16, generator=g) * 0.5 - 8,)),
        Case("logits as large as 1e4 in both directions (shape (4,))", (torch.tensor([-1e4, 1e4, -3.0, 2.0]),)),
        Case("float64 logits (shape (20,))", (torch.randn(20, generator=g, dtype=torch.float64),)),
    ]


def _non_negative(case: Case, out: Tensor, rerun: Any) -> str | None:
    if float(out) < -1e-6:
        return f"the loss is {float(out):.4g}; -log D(G(z)) is never negative"
    return None


def _at_zero(case: Case, out: Tensor, rerun: Any) -> str | None:
    (fake,) = case.args
    again = float(rerun(torch.zeros_like(fake)))
    if not math.isclose(again, math.log(2), rel_tol=1e-4):
        return f"with every logit 0 (D says 1/2) your loss is {again:.5g}, expected -log(1/2) = log 2 = 0.69315"
    return None


def _falls_when_fooled(case: Case, out: Tensor, rerun: Any) -> str | None:
    (fake,) = case.args
    if fake.abs().max() > 100:
        return None
    again = float(rerun(fake + 1.0))
    if not again < float(out):
        return (f"raising every fake logit by 1 (D more fooled) moved the loss from {float(out):.5g} to {again:.5g}; "
                "the generator's loss must go down when D believes its points more")
    return None


def _strong_when_rejected(case: Case, out: Tensor, rerun: Any) -> str | None:
    (fake,) = case.args
    if fake.abs().max() > 100 or float(fake.max()) > -4:
        return None
    slope = (float(out) - float(rerun(fake + 0.01))) / 0.01  # minus the derivative along "every logit up"
    if slope < 0.5:
        return (f"where D rejects every fake (logits about -8), raising them all by 0.01 lowers the loss by "
                f"{slope * 0.01:.3g}, a slope of {slope:.3g}; the non-saturating loss keeps a slope of almost 1 there "
                "(that is its point)")
    return None


def _means(case: Case, out: Tensor, rerun: Any) -> str | None:
    (fake,) = case.args
    again = float(rerun(torch.cat([fake, fake])))
    if not math.isclose(again, float(out), rel_tol=1e-4, abs_tol=1e-5):
        return f"the same logits twice over changed the loss from {float(out):.5g} to {again:.5g}: it is a mean"
    return None


_G_LOSS_PROPERTIES = [
    Property("'the loss is >= 0'", _non_negative),
    Property("'with all logits 0 the loss is log 2'", _at_zero),
    Property("'higher fake logits give a lower loss'", _falls_when_fooled),
    Property("'the gradient stays strong where D rejects the fakes'", _strong_when_rejected),
    Property("'repeating the batch changes nothing'", _means),
]

_G_LOSS_SPEC = Spec(reference=reference_g_loss, cases=_g_loss_cases, mistakes=_G_LOSS_MISTAKES,
                    properties=_G_LOSS_PROPERTIES, differentiable=True, part="loss")


def check_g_loss(g_loss_fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Exercise 10.2: ``g_loss(fake_logits) -> 0-d tensor`` (non-saturating); returns the generator loss the rest of
    the hour trains with (yours once it passes)."""
    return check(G_LOSS, _G_LOSS_SPEC, (g_loss_fn,), (reference_g_loss,),
                 "loss and gradients match on {cases} cases ((N, 1) logits, a batch of one, a discriminator that "
                 "rejects every fake, logits of 1e4, float64)")
