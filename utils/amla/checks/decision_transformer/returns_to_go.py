"""The self-check of Exercise 18.1: returns-to-go (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.rl.trajectories import returns_to_go

RETURNS_TO_GO = exercise(18, "18.1", "Returns-to-go", "returns_to_go")

ReturnsFn = Callable[..., Tensor]


def reference_returns_to_go(rewards: Tensor, gamma: float = 1.0) -> Tensor:
    """The course's ``returns_to_go`` with the exercise's signature."""
    return returns_to_go(rewards, gamma)


def _discounts(T: int, dtype: torch.dtype, gamma: float, shift: int = 0) -> Tensor:
    """``D[t, k] = gamma^(k - t + shift)`` for ``k >= t``, else 0."""
    t = torch.arange(T, dtype=torch.float64)
    power = (t[None, :] - t[:, None] + shift).clamp(min=0)
    return (torch.tensor(gamma, dtype=torch.float64) ** power * (t[None, :] >= t[:, None])).to(dtype)


def _returns_variant(kind: str) -> ReturnsFn:
    """``returns_to_go`` with one typical bug switched on (kind)."""

    def fn(rewards: Tensor, gamma: float = 1.0) -> Tensor:
        T, r = len(rewards), rewards
        g = 1.0 if kind == "no_gamma" else gamma
        if kind == "forward":  # the return so far: sum over k <= t of gamma^(t - k) r_k
            return _discounts(T, r.dtype, g).T @ r
        if kind == "flip_not_back":  # the backwards sum, left in reversed order
            return (_discounts(T, r.dtype, g) @ r).flip(0)
        if kind == "exclusive":  # R_t without r_t: sum over k > t
            return _discounts(T, r.dtype, g, shift=-1).triu(1) @ r
        if kind == "total":  # the whole episode's return at every step
            return (_discounts(T, r.dtype, g)[0] @ r).expand(T).clone()
        if kind == "from_start":  # gamma^k instead of gamma^(k - t)
            k = torch.arange(T, dtype=torch.float64)
            weights = (torch.tensor(g, dtype=torch.float64) ** k).to(r.dtype)
            return (weights * r).flip(0).cumsum(0).flip(0)
        if kind == "one_more":  # gamma^(k - t + 1): r_t discounted too
            return _discounts(T, r.dtype, g, shift=1) @ r
        return _discounts(T, r.dtype, g) @ r

    return fn


_MISTAKES = [
    Mistake("it sums the rewards *so far* (a forward cumsum): the return-to-go at t is what is still to come, "
            "r_t + gamma r_(t+1) + ..., so sum from the end backwards (R_t = r_t + gamma R_(t+1)).",
            _returns_variant("forward")),
    Mistake("the returns-to-go come out in reversed order: after a flip and a cumsum, flip back (entry 0 is the "
            "return of the whole episode).", _returns_variant("flip_not_back")),
    Mistake("R_t leaves out r_t (it starts at r_(t+1)): the return-to-go includes the reward of step t itself, and "
            "the last entry is the last reward.", _returns_variant("exclusive")),
    Mistake("every step gets the return of the whole episode: R_t only sums the rewards from step t on.",
            _returns_variant("total")),
    Mistake("the discount counts from the start of the episode (gamma^k r_k): from step t the reward k steps later "
            "is discounted by gamma^(k - t), so r_t itself gets weight 1.", _returns_variant("from_start")),
    Mistake("r_t itself is discounted (gamma^(k - t + 1)): R_t = r_t + gamma R_(t+1), weight 1 on r_t.",
            _returns_variant("one_more")),
    Mistake("gamma is ignored: R_t = r_t + gamma R_(t+1).", _returns_variant("no_gamma")),
]


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(181)
    return [
        Case("CartPole's rewards, ten 1s, gamma left out (1.0)", (torch.ones(10),)),
        Case("random rewards of 7 steps and gamma=0.9", (torch.rand(7, generator=g) * 2, 0.9)),
        Case("negative and positive rewards [-1, 2, -3, 0.5, 4] and gamma=0.5",
             (torch.tensor([-1.0, 2.0, -3.0, 0.5, 4.0]), 0.5)),
        Case("a single step (rewards of length 1) and gamma=0.9", (torch.tensor([3.0]), 0.9)),
        Case("one reward at the last step only and gamma=0.8", (torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0]), 0.8)),
        Case("one reward at the first step only and gamma=0.8", (torch.tensor([2.0, 0.0, 0.0, 0.0]), 0.8)),
        Case("gamma=0 (each R_t is r_t)", (torch.tensor([1.0, -2.0, 3.0]), 0.0)),
        Case("float64 rewards and gamma=0.99 (the result stays float64)",
             (torch.randn(6, generator=g, dtype=torch.float64), 0.99)),
        Case("a 500-step episode of 1s and gamma=1.0 (R_0 = 500)", (torch.ones(500), 1.0)),
    ]


def _last(case: Case, out: Tensor, rerun: Any) -> str | None:
    r = case.args[0]
    if abs(float(out[-1]) - float(r[-1])) > 1e-5 * max(1.0, abs(float(r[-1]))):
        return f"the last return-to-go is {float(out[-1]):.6g} but the last reward is {float(r[-1]):.6g}"
    return None


def _recursion(case: Case, out: Tensor, rerun: Any) -> str | None:
    r = case.args[0].double()
    gamma = case.args[1] if len(case.args) > 1 else 1.0
    o = out.detach().double()
    for t in range(len(r) - 1):
        want = float(r[t] + gamma * o[t + 1])
        if abs(float(o[t]) - want) > 1e-4 * max(1.0, abs(want)):
            return (f"R_{t} = {float(o[t]):.6g}, but r_{t} + gamma R_{t + 1} = {float(r[t]):.6g} + {gamma} * "
                    f"{float(o[t + 1]):.6g} = {want:.6g}")
    return None


_PROPERTIES = [
    Property("'the last return-to-go is the last reward'", _last),
    Property("'R_t = r_t + gamma R_(t+1)'", _recursion),
]

_SPEC = Spec(reference=reference_returns_to_go, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             part="returns-to-go", arg_names=("rewards", "gamma"))


def check_returns_to_go(returns_to_go_fn: ReturnsFn) -> ReturnsFn:
    """Exercise 18.1: ``returns_to_go(rewards [T], gamma=1.0) -> [T]``; returns the function the rest of the hour
    uses to build its training windows (yours once it passes)."""
    return check(RETURNS_TO_GO, _SPEC, (returns_to_go_fn,), (reference_returns_to_go,),
                 "the returns-to-go match on {cases} trajectories (gamma left out, gamma < 1 and 0, negative "
                 "rewards, length 1, a reward at the first or last step only, float64, 500 steps)")
