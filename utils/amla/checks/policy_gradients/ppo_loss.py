"""The self-check of Exercise 17.3: PPO's clipped objective (what it checks: the package docstring).

The old log-probabilities and the advantages come from the rollout and are constants of the update: the check
passes them detached, so only the gradient with respect to ``new_logp`` is compared (whether an answer detaches
them itself does not matter)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.rl.ppo import ppo_loss

PPO_LOSS = exercise(17, "17.3", "The clipped objective", "ppo_loss")

LossFn = Callable[..., Tensor]


def reference_ppo_loss(new_logp: Tensor, old_logp: Tensor, advantages: Tensor, clip: float = 0.2) -> Tensor:
    """The course's ``ppo_loss`` with the exercise's signature."""
    return ppo_loss(new_logp, old_logp, advantages, clip)


def _invoke(fn: LossFn, new_logp: Tensor, old_logp: Tensor, advantages: Tensor, *rest: Any) -> Tensor:
    return fn(new_logp, old_logp.detach(), advantages.detach(), *rest)


def _ppo_variant(kind: str) -> LossFn:
    """``ppo_loss`` with one typical bug switched on (kind)."""

    def fn(new_logp: Tensor, old_logp: Tensor, advantages: Tensor, clip: float = 0.2) -> Tensor:
        ratio = {"no_exp": lambda: new_logp - old_logp, "divide": lambda: new_logp / old_logp,
                 "inverted": lambda: torch.exp(old_logp - new_logp)}.get(kind, lambda: torch.exp(new_logp - old_logp))()
        a = advantages
        plain = ratio * a
        clipped = torch.clamp(ratio, 1 - clip, 1 + clip) * a
        if kind == "clip_product":
            clipped = torch.clamp(ratio * a, 1 - clip, 1 + clip)
        if kind == "clip_adv":
            clipped = ratio * torch.clamp(a, 1 - clip, 1 + clip)
        if kind == "no_min":
            surrogate = clipped
        elif kind == "no_clip":
            surrogate = plain
        elif kind == "max":
            surrogate = torch.max(plain, clipped)
        else:
            surrogate = torch.min(plain, clipped)
        if kind == "sum":
            return -surrogate.sum()
        if kind == "sign":
            return surrogate.mean()
        return -surrogate.mean()

    return fn


_PPO_MISTAKES = [
    Mistake("the min is missing (only the clipped term): PPO takes min(r A, clip(r) A), the pessimistic of the two, so "
            "a ratio that moved the wrong way is not clipped away.", _ppo_variant("no_min")),
    Mistake("the ratio is never clipped (the plain surrogate -mean(r A)): use torch.clamp(r, 1 - clip, 1 + clip) in "
            "the second term.", _ppo_variant("no_clip")),
    Mistake("max instead of min: the objective takes the smaller (pessimistic) of r A and clip(r) A.",
            _ppo_variant("max")),
    Mistake("the product r A is clipped to [1 - clip, 1 + clip]: clip the ratio r alone, then multiply by A.",
            _ppo_variant("clip_product")),
    Mistake("the advantages are clipped instead of the ratio: the clipped term is clip(r, 1 - clip, 1 + clip) * A.",
            _ppo_variant("clip_adv")),
    Mistake("the sign is wrong: the objective is maximised, so the loss to minimise is -mean(min(...)).",
            _ppo_variant("sign")),
    Mistake("the ratio is the difference of the log-probabilities: r = exp(new_logp - old_logp).",
            _ppo_variant("no_exp")),
    Mistake("the ratio divides the log-probabilities: r = pi_new / pi_old = exp(new_logp - old_logp).",
            _ppo_variant("divide")),
    Mistake("the ratio is upside down (pi_old / pi_new): r = exp(new_logp - old_logp).", _ppo_variant("inverted")),
    Mistake("a sum instead of a mean over the batch: the loss is -mean(min(...)), so its size does not grow with "
            "the batch.", _ppo_variant("sum")),
]


def _batch(n: int, seed: int, shift: float = 0.3, dtype: torch.dtype = torch.float32) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(n, generator=g, dtype=dtype) * 2 - 0.05  # log-probabilities < 0
    new = old + (torch.rand(n, generator=g, dtype=dtype) * 2 - 1) * shift
    adv = torch.randn(n, generator=g, dtype=dtype)
    return new, old, adv


def _ppo_cases() -> list[Case]:
    far_new = torch.tensor([-0.1, -0.1, -3.0, -3.0, -1.0, -1.0])
    far_old = torch.tensor([-3.0, -3.0, -0.1, -0.1, -1.05, -0.95])
    far_adv = torch.tensor([1.5, -1.5, 1.5, -1.5, 0.7, -0.7])
    return [
        Case("12 ratios inside and outside [0.8, 1.2], advantages of both signs, clip 0.2", (*_batch(12, 0), 0.2)),
        Case("ratios far outside the clip range (e^2.9 and e^-2.9) with both signs of A",
             (far_new, far_old, far_adv, 0.2)),
        Case("every ratio past the clip on the side its advantage favours (a flat loss: zero gradient)",
             (torch.tensor([-0.5, -2.0, -1.2, -0.3]), torch.tensor([-1.0, -1.5, -1.8, 0.0]).sub(0.05),
              torch.tensor([0.8, -1.2, 2.0, -0.4]), 0.2)),
        Case("clip = 0 (every ratio clipped to 1)", (*_batch(8, 1), 0.0)),
        Case("clip = 0.1 and larger steps", (*_batch(10, 2, shift=0.6), 0.1)),
        Case("new_logp equal to old_logp (ratio 1: the loss is -mean(A))", (_batch(6, 3)[1], *_batch(6, 3)[1:], 0.2)),
        Case("a batch of one", (*_batch(1, 4, shift=0.5), 0.2)),
        Case("clip left out (its default 0.2)", _batch(9, 5, shift=0.5)),
        Case("float64 log-probabilities and advantages (the loss stays float64)",
             (*_batch(7, 6, shift=0.5, dtype=torch.float64), 0.2)),
    ]


def _scales(case: Case, out: Tensor, rerun: Any) -> str | None:
    new, old, adv = case.args[:3]
    twice = rerun(new, old, 2 * adv, *case.args[3:])
    if not torch.allclose(twice, 2 * out, atol=1e-5, rtol=1e-4):
        return f"doubling every advantage should double the loss ({out.item():.4g} -> {twice.item():.4g})"
    return None


def _ratio_one(case: Case, out: Tensor, rerun: Any) -> str | None:
    _, old, adv = case.args[:3]
    at_one = rerun(old.clone(), old, adv, *case.args[3:])
    if not torch.allclose(at_one, -adv.mean().to(at_one.dtype), atol=1e-5, rtol=1e-4):
        return f"with new_logp = old_logp (ratio 1) the loss should be -mean(A) = {-adv.mean().item():.4g}, got " \
               f"{at_one.item():.4g}"
    return None


def _flat_outside(case: Case, out: Tensor, rerun: Any) -> str | None:
    new, old, adv = case.args[:3]
    clip = case.args[3] if len(case.args) > 3 else 0.2
    further = new + torch.where(adv > 0, 0.5, -0.5).to(new.dtype)  # pushes r further the way A favours
    ratio = torch.exp(new - old)
    beyond = torch.where(adv > 0, ratio > 1 + clip, ratio < 1 - clip)
    if not bool(beyond.all()):
        return None  # only decidable where every ratio is already past the clip on A's side
    again = rerun(further, old, adv, *case.args[3:])
    if not torch.allclose(again, out, atol=1e-5, rtol=1e-4):
        return "past the clip range (on the side the advantage favours) moving the ratio further must not change " \
               "the loss"
    return None


_PPO_PROPERTIES = [
    Property("'with ratio 1 the loss is -mean(A)'", _ratio_one),
    Property("'doubling the advantages doubles the loss'", _scales),
    Property("'the loss is flat past the clip range'", _flat_outside),
]

_PPO_SPEC = Spec(reference=reference_ppo_loss, cases=_ppo_cases, mistakes=_PPO_MISTAKES, properties=_PPO_PROPERTIES,
                 invoke=_invoke, differentiable=True, part="loss",
                 arg_names=("new_logp", "old_logp", "advantages", "clip"))


def check_ppo_loss(ppo_loss_fn: LossFn) -> LossFn:
    """Exercise 17.3: ``ppo_loss(new_logp, old_logp, advantages, clip=0.2) -> 0-d tensor``; returns the loss the rest
    of the hour uses (yours once it passes)."""
    return check(PPO_LOSS, _PPO_SPEC, (ppo_loss_fn,), (reference_ppo_loss,),
                 "the loss and its gradient match on {cases} batches (ratios far outside the clip with both signs "
                 "of A, clip 0, ratio 1, a batch of one, clip left out, float64)")
