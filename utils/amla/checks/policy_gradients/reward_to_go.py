"""The self-check of Exercise 17.1: the REINFORCE reward-to-go (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.rl.policy_gradient import reward_to_go

REWARD_TO_GO = exercise(17, "17.1", "The reward-to-go", "reward_to_go")

RtgFn = Callable[..., Tensor]


def reference_reward_to_go(rewards: Tensor, gamma: float = 0.99) -> Tensor:
    """The course's ``reward_to_go`` with the exercise's signature."""
    return reward_to_go(rewards, gamma)


def _rtg_variant(kind: str) -> RtgFn:
    """``reward_to_go`` with one typical bug switched on (kind)."""

    def fn(rewards: Tensor, gamma: float = 0.99) -> Tensor:
        T = rewards.shape[0]
        k = torch.arange(T, dtype=rewards.dtype)
        if kind == "no_discount":
            gamma = 1.0
        out = torch.zeros_like(rewards)
        for t in range(T):
            if kind == "forward":  # sum of the rewards up to t, discounted back from t
                out[t] = (rewards[: t + 1] * gamma ** (t - k[: t + 1])).sum()
            elif kind == "total":  # the whole episode's discounted return at every step
                out[t] = (rewards * gamma ** k).sum()
            elif kind == "from_start":  # gamma^k instead of gamma^(k - t)
                out[t] = (rewards[t:] * gamma ** k[t:]).sum()
            elif kind == "exclusive":  # the rewards after t only
                out[t] = (rewards[t + 1:] * gamma ** (k[t + 1:] - t)).sum()
            elif kind == "discount_first":  # G_t = gamma (r_t + G_{t+1})
                out[t] = (rewards[t:] * gamma ** (k[t:] - t + 1)).sum()
            else:
                out[t] = (rewards[t:] * gamma ** (k[t:] - t)).sum()
        return out

    return fn


_RTG_MISTAKES = [
    Mistake("the sum runs over the rewards *before* t: the reward-to-go G_t sums the rewards from t to the end, so "
            "loop backwards, G_t = r_t + gamma G_{t+1}.", _rtg_variant("forward")),
    Mistake("every step gets the whole episode's return: REINFORCE's reward-to-go G_t counts only the rewards from "
            "t on (an action cannot change the rewards before it).", _rtg_variant("total")),
    Mistake("the discount is counted from the start of the episode (gamma^k r_k): G_t discounts from t, "
            "sum_k gamma^(k - t) r_k, so r_t itself has weight 1.", _rtg_variant("from_start")),
    Mistake("r_t itself is left out (G_t sums the rewards after t): G_t = r_t + gamma G_{t+1}.",
            _rtg_variant("exclusive")),
    Mistake("r_t is discounted too (G_t = gamma (r_t + G_{t+1})): only the future is discounted, "
            "G_t = r_t + gamma G_{t+1}.", _rtg_variant("discount_first")),
    Mistake("gamma is ignored (the rewards are summed undiscounted).", _rtg_variant("no_discount")),
]


def _rtg_cases() -> list[Case]:
    g = torch.Generator().manual_seed(171)
    rewards = torch.randn(7, generator=g)
    return [
        Case("7 rewards of both signs and gamma = 0.9", (rewards, 0.9)),
        Case("5 rewards of 1 (CartPole) and gamma = 0.5", (torch.ones(5), 0.5)),
        Case("an episode of one step", (torch.tensor([2.5]), 0.9)),
        Case("gamma = 0 (G_t = r_t)", (rewards, 0.0)),
        Case("gamma = 1 (sums of the remaining rewards)", (rewards, 1.0)),
        Case("gamma left out (its default 0.99)", (torch.tensor([1.0, 0.0, -1.0, 2.0]),)),
        Case("a CartPole episode of 500 steps and gamma = 0.99", (torch.ones(500), 0.99), rtol=1e-4, atol=1e-3),
        Case("float64 rewards (the result stays float64)", (torch.randn(6, generator=g, dtype=torch.float64), 0.8)),
    ]


def _recursion(case: Case, out: Tensor, rerun: Any) -> str | None:
    rewards = case.args[0]
    gamma = case.args[1] if len(case.args) > 1 else 0.99
    want = rewards[:-1] + gamma * out[1:]
    if not torch.allclose(out[:-1], want.to(out.dtype), atol=1e-3, rtol=1e-4):
        return "G_t should equal r_t + gamma G_{t+1} at every step but the last"
    return None


def _last(case: Case, out: Tensor, rerun: Any) -> str | None:
    if not torch.allclose(out[-1], case.args[0][-1].to(out.dtype), atol=1e-5):
        return (f"the last step's G should be its own reward {case.args[0][-1].item():.4g}, got "
                f"{out[-1].item():.4g}")
    return None


_RTG_PROPERTIES = [
    Property("'the last step's reward-to-go is its reward'", _last),
    Property("'G_t = r_t + gamma G_{t+1}'", _recursion),
]

_RTG_SPEC = Spec(reference=reference_reward_to_go, cases=_rtg_cases, mistakes=_RTG_MISTAKES,
                 properties=_RTG_PROPERTIES, part="reward-to-go", arg_names=("rewards", "gamma"))


def check_reward_to_go(reward_to_go_fn: RtgFn) -> RtgFn:
    """Exercise 17.1: ``reward_to_go(rewards [T], gamma=0.99) -> [T]``; returns the function the rest of the hour
    uses (yours once it passes)."""
    return check(REWARD_TO_GO, _RTG_SPEC, (reward_to_go_fn,), (reference_reward_to_go,),
                 "it matches on {cases} episodes (both signs, one step, gamma 0 and 1, gamma left out, 500 steps, "
                 "float64)")
