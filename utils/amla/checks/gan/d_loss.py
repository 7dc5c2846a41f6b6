"""The self-check of Exercise 10.1: the discriminator loss (what it checks: the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.gan.losses import d_loss

D_LOSS = exercise(10, "10.1", "The discriminator loss", "d_loss")


def reference_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The course's ``d_loss`` with the exercise's signature."""
    return d_loss(real_logits, fake_logits)


def _d_loss_variant(kind: str) -> Callable[[Tensor, Tensor], Tensor]:
    """A discriminator loss with one typical bug switched on (kind)."""

    def fn(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real, fake = real_logits, fake_logits
        if kind == "swapped":
            return F.softplus(real).mean() + F.softplus(-fake).mean()
        if kind == "real_only":
            return F.softplus(-real).mean()
        if kind == "fake_only":
            return F.softplus(fake).mean()
        if kind == "half":
            return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())
        if kind == "concat":
            return torch.cat([F.softplus(-real).flatten(), F.softplus(fake).flatten()]).mean()
        if kind == "sum":
            return F.softplus(-real).sum() + F.softplus(fake).sum()
        if kind == "naive":
            return -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
        if kind == "eps":
            return (-torch.log(torch.sigmoid(real) + 1e-8).mean()
                    - torch.log(1 - torch.sigmoid(fake) + 1e-8).mean())
        if kind == "probabilities":
            return (F.binary_cross_entropy(real, torch.ones_like(real))
                    + F.binary_cross_entropy(fake, torch.zeros_like(fake)))
        if kind == "value":  # the minimax value V(D, G), which D maximises: its sign is the loss's opposite
            return F.logsigmoid(real).mean() + F.logsigmoid(-fake).mean()
        if kind == "generator_labels":  # fakes labelled real, as in the generator's loss
            return F.softplus(-real).mean() + F.softplus(-fake).mean()
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    return fn


_D_LOSS_MISTAKES = [
    Mistake("the labels are swapped: real logits must be pushed up (target 1: softplus(-real) = -log D(x)) and "
            "fake logits down (target 0: softplus(fake) = -log(1 - D(G(z)))).", _d_loss_variant("swapped")),
    Mistake("the fake points are labelled real (target 1) too, as in the generator's loss; for the discriminator "
            "the fakes have target 0: softplus(fake_logits).", _d_loss_variant("generator_labels")),
    Mistake("only the real half of the loss is there: add the fake half, mean(softplus(fake_logits)).",
            _d_loss_variant("real_only")),
    Mistake("only the fake half of the loss is there: add the real half, mean(softplus(-real_logits)).",
            _d_loss_variant("fake_only")),
    Mistake("the two halves are averaged (a factor 1/2): this exercise adds them, BCE(real, 1) + BCE(fake, 0), "
            "as the minimax value and the DCGAN code do.", _d_loss_variant("half")),
    Mistake("the real and fake terms are concatenated and averaged together: when the batches differ in size each "
            "half must be its own mean, then add the two.", _d_loss_variant("concat")),
    Mistake("the terms are summed over the batch instead of averaged: use .mean() on each half.",
            _d_loss_variant("sum")),
    Mistake("log(sigmoid(.)) is computed in two steps: for a logit of -1e4 the sigmoid is exactly 0 and log(0) = "
            "-inf. Write -log sigmoid(l) as softplus(-l) and -log(1 - sigmoid(l)) as softplus(l) (or use "
            "F.logsigmoid / F.binary_cross_entropy_with_logits), which stay finite.", _d_loss_variant("naive")),
    Mistake("a small epsilon inside the log, log(sigmoid(l) + 1e-8), caps the loss near 18.4 and kills its "
            "gradient for confident mistakes: use softplus or F.logsigmoid on the logits instead.",
            _d_loss_variant("eps")),
    Mistake("F.binary_cross_entropy expects probabilities in [0, 1], but D gives logits: use "
            "F.binary_cross_entropy_with_logits (or softplus).", _d_loss_variant("probabilities")),
    Mistake("the sign is flipped: this is the value V(D, G) = E log D(x) + E log(1 - D(G(z))) that D maximises; "
            "the loss D minimises is -V, which is never negative.", _d_loss_variant("value")),
]


def _d_loss_cases() -> list[Case]:
    g = torch.Generator().manual_seed(101)

    def logits(*shape: int, scale: float = 2.0, dtype: torch.dtype = torch.float32, shift: float = 0.0) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype) * scale + shift

    huge_real = torch.tensor([1e4, -1e4, 3.0, 1e4])  # confident and right, confident and wrong
    huge_fake = torch.tensor([-1e4, 1e4, -2.0])
    return [
        Case("real logits of shape (64,) and fake logits of shape (48,) (batches of different sizes)",
             (logits(64), logits(48, shift=-0.5))),
        Case("real and fake logits of shape (32, 1), as nn.Linear(..., 1) gives them",
             (logits(32, 1), logits(32, 1, shift=1.0))),
        Case("a batch of one (shape (1,) each)", (logits(1), logits(1))),
        Case("logits as large as 1e4, confidently right and confidently wrong (real (4,), fake (3,))",
             (huge_real, huge_fake)),
        Case("a discriminator that is sure and right (real about +8, fake about -8, shape (16,) each)",
             (logits(16, scale=0.5, shift=8.0), logits(16, scale=0.5, shift=-8.0))),
        Case("float64 logits (real (20,), fake (12,))",
             (logits(20, dtype=torch.float64), logits(12, dtype=torch.float64, shift=0.3))),
    ]


def _non_negative(case: Case, out: Tensor, rerun: Any) -> str | None:
    if float(out) < -1e-6:
        return f"the loss is {float(out):.4g}; a binary cross-entropy is never negative"
    return None


def _at_zero(case: Case, out: Tensor, rerun: Any) -> str | None:
    real, fake = case.args
    again = float(rerun(torch.zeros_like(real), torch.zeros_like(fake)))
    if not math.isclose(again, 2 * math.log(2), rel_tol=1e-4):
        return (f"with every logit 0 (D says 1/2 to everything) your loss is {again:.5g}, expected "
                f"2 log 2 = {2 * math.log(2):.5g}: -log(1/2) for the real half plus -log(1/2) for the fake half")
    return None


def _real_up(case: Case, out: Tensor, rerun: Any) -> str | None:
    real, fake = case.args
    if real.abs().max() > 100:
        return None
    again = float(rerun(real + 1.0, fake))
    if not again < float(out):
        return (f"raising every real logit by 1 (D more sure the real points are real) moved the loss from "
                f"{float(out):.5g} to {again:.5g}; it must go down")
    return None


def _fake_up(case: Case, out: Tensor, rerun: Any) -> str | None:
    real, fake = case.args
    if fake.abs().max() > 100:
        return None
    again = float(rerun(real, fake + 1.0))
    if not again > float(out):
        return (f"raising every fake logit by 1 (D more fooled by the fakes) moved the loss from {float(out):.5g} to "
                f"{again:.5g}; it must go up")
    return None


def _means(case: Case, out: Tensor, rerun: Any) -> str | None:
    real, fake = case.args
    again = float(rerun(torch.cat([real, real]), fake))
    if not math.isclose(again, float(out), rel_tol=1e-4, abs_tol=1e-5):
        return (f"the same real logits twice over changed the loss from {float(out):.5g} to {again:.5g}: each half "
                "is a mean over its own batch")
    return None


_D_LOSS_PROPERTIES = [
    Property("'the loss is >= 0'", _non_negative),
    Property("'with all logits 0 the loss is 2 log 2'", _at_zero),
    Property("'higher real logits give a lower loss'", _real_up),
    Property("'higher fake logits give a higher loss'", _fake_up),
    Property("'repeating the real batch changes nothing'", _means),
]

_D_LOSS_SPEC = Spec(reference=reference_d_loss, cases=_d_loss_cases, mistakes=_D_LOSS_MISTAKES,
                    properties=_D_LOSS_PROPERTIES, differentiable=True, part="loss")


def check_d_loss(d_loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """Exercise 10.1: ``d_loss(real_logits, fake_logits) -> 0-d tensor``; returns the discriminator loss the rest
    of the hour trains with (yours once it passes)."""
    return check(D_LOSS, _D_LOSS_SPEC, (d_loss_fn,), (reference_d_loss,),
                 "loss and gradients match on {cases} cases (batches of different sizes, (N, 1) logits, a batch of "
                 "one, logits of 1e4, a confident discriminator, float64)")
