"""The self-check of Exercise 16.1: the TD target, with termination and truncation (what it checks: the package
docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.rl.dqn import td_target

TD_TARGET = exercise(16, "16.1", "The TD target", "td_target")

TargetFn = Callable[..., Tensor]


def reference_td_target(reward: Tensor, next_q_target: Tensor, terminated: Tensor, truncated: Tensor, gamma: float,
                        *, next_q_online: Tensor | None = None) -> Tensor:
    """The course's ``td_target`` with the exercise's signature."""
    return td_target(reward, next_q_target, terminated, truncated, gamma, next_q_online=next_q_online)


def _call(fn: TargetFn, reward: Tensor, next_q_target: Tensor, terminated: Tensor, truncated: Tensor, gamma: float,
          *online: Tensor) -> Tensor:
    """Call with ``next_q_online`` as the keyword it is, or leave it out (the default) when the case has none."""
    if online:
        return fn(reward, next_q_target, terminated, truncated, gamma, next_q_online=online[0])
    return fn(reward, next_q_target, terminated, truncated, gamma)


def _variant(kind: str) -> TargetFn:
    """``td_target`` with one typical bug switched on (kind)."""

    def fn(reward: Tensor, next_q_target: Tensor, terminated: Tensor, truncated: Tensor, gamma: float, *,
           next_q_online: Tensor | None = None) -> Tensor:
        if next_q_online is None or kind == "double_ignored":
            value = next_q_target.mean(1) if kind == "mean" else next_q_target.max(1).values
        elif kind == "double_online_value":
            value = next_q_online.max(1).values
        elif kind == "double_swapped":
            value = next_q_online.gather(1, next_q_target.argmax(1, keepdim=True)).squeeze(1)
        else:
            value = next_q_target.gather(1, next_q_online.argmax(1, keepdim=True)).squeeze(1)
        value = value.to(reward.dtype)
        if kind == "done":
            keep = ~(terminated | truncated)
        elif kind == "always":
            keep = torch.ones_like(terminated)
        elif kind == "inverted":
            keep = terminated
        elif kind == "truncated_wins":
            keep = ~terminated | truncated
        else:
            keep = ~terminated
        if kind == "discounted_reward":
            return gamma * (reward + keep.to(reward.dtype) * value)
        return reward + gamma * keep.to(reward.dtype) * value

    return fn


_MISTAKES = [
    Mistake("truncation stops the bootstrap (done = terminated or truncated): a truncated episode was cut by the time "
            "limit, its last state s' still has a future, so its target is r + gamma max_a Q(s', a); only "
            "`terminated` removes the bootstrap.", _variant("done")),
    Mistake("the target bootstraps on every transition, also when `terminated`: after a terminal state there is no "
            "future, the target is just r (multiply the bootstrap by ~terminated).", _variant("always")),
    Mistake("the mask is inverted: the target bootstraps only where `terminated` is True; it must bootstrap where it "
            "is False (~terminated, or 1 - terminated.float()).", _variant("inverted")),
    Mistake("a transition that is both terminated and truncated (the time limit hit on the very step the pole fell) "
            "is bootstrapped: termination wins, its target is just r.", _variant("truncated_wins")),
    Mistake("with `next_q_online` given (Double DQN) the target still takes the max of the target network: choose the "
            "action with the online network, argmax_a next_q_online, and take that action's value from "
            "next_q_target.", _variant("double_ignored")),
    Mistake("Double DQN takes the value from the online network (max of next_q_online): the online network only "
            "chooses the action, its value comes from next_q_target (gather at the online argmax).",
            _variant("double_online_value")),
    Mistake("Double DQN's roles are swapped: the action is chosen by the target network and valued by the online "
            "one; it is the other way round (argmax of next_q_online, value from next_q_target).",
            _variant("double_swapped")),
    Mistake("the discount also multiplies the reward (gamma (r + Q)): the reward of this step is not discounted, the "
            "target is r + gamma max_a Q(s', a).", _variant("discounted_reward")),
    Mistake("the next state's value is the mean over the actions: Q-learning bootstraps from the best action, "
            "next_q_target.max(dim=1).values.", _variant("mean")),
]


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(161)

    def q(b: int, a: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return (torch.rand(b, a, generator=g, dtype=torch.float64) * 40 + 5).to(dtype)

    def flags(*bits: int) -> Tensor:
        return torch.tensor(bits, dtype=torch.bool)

    r6 = torch.tensor([1.0, 0.5, -1.0, 2.0, 1.0, 0.25])
    term6, trunc6 = flags(1, 0, 0, 1, 0, 0), flags(0, 1, 0, 1, 0, 1)  # index 3: both at once
    q6, online6 = q(6, 3), q(6, 3)
    online6[:, 0] += 100.0  # the online network prefers action 0, the target network does not (every row)
    q6[:, 0] -= 5.0
    r4, q4 = torch.tensor([1.0, -0.5, 1.0, 3.0]), q(4, 2)
    online1 = torch.tensor([[3.0, 1.0]])
    q1 = torch.tensor([[10.0, 20.0]])
    r64 = torch.tensor([1.0, 0.0, -2.0, 0.5], dtype=torch.float64)
    return [
        Case("a batch of 6 transitions and 3 actions (some terminated, some truncated, one both; next_q_online left "
             "out)", (r6, q6, term6, trunc6, 0.99)),
        Case("every transition terminated", (r4, q4, flags(1, 1, 1, 1), flags(0, 0, 0, 0), 0.9)),
        Case("every transition truncated (none terminated)", (r4, q4, flags(0, 0, 0, 0), flags(1, 1, 1, 1), 0.9)),
        Case("terminated and truncated both True on every transition", (r4, q4, flags(1, 1, 1, 1), flags(1, 1, 1, 1),
                                                                         0.9)),
        Case("gamma = 0", (r6, q6, term6, trunc6, 0.0)),
        Case("a batch of one truncated transition and 2 actions", (torch.tensor([1.0]), q1, flags(0), flags(1), 0.5)),
        Case("float64 rewards and Q-values (the target stays float64)",
             (r64, q(4, 2, torch.float64), flags(0, 1, 0, 1), flags(1, 0, 0, 1), 0.99)),
        Case("Double DQN (next_q_online given; the online argmax differs from the target's)",
             (r6, q6, term6, trunc6, 0.99, online6)),
        Case("Double DQN on a batch of one truncated transition", (torch.tensor([1.0]), q1, flags(0), flags(1), 0.5,
                                                                   online1)),
        Case("Double DQN with every transition terminated", (r4, q4, flags(1, 1, 1, 1), flags(0, 1, 0, 1), 0.9,
                                                             q(4, 2))),
    ]


def _terminal_is_reward(case: Case, out: Tensor, rerun: Any) -> str | None:
    reward, terminated = case.args[0], case.args[2]
    if not bool(terminated.any()):
        return None
    if not torch.allclose(out[terminated].double(), reward[terminated].double(), atol=1e-5):
        return (f"the targets of the terminated transitions are {[round(v, 4) for v in out[terminated].tolist()]}, "
                f"their rewards {[round(v, 4) for v in reward[terminated].tolist()]}")
    return None


def _ignores_truncated(case: Case, out: Tensor, rerun: Any) -> str | None:
    flipped = list(case.args)
    flipped[3] = ~case.args[3]
    again = rerun(*flipped)
    if not torch.allclose(again.double(), out.double(), atol=1e-5):
        return (f"flipping `truncated` changed the targets from {[round(v, 4) for v in out.tolist()]} to "
                f"{[round(v, 4) for v in again.tolist()]}")
    return None


def _linear_in_reward(case: Case, out: Tensor, rerun: Any) -> str | None:
    shifted = list(case.args)
    shifted[0] = case.args[0] + 1.0
    again = rerun(*shifted)
    if not torch.allclose(again.double(), out.double() + 1.0, atol=1e-4):
        return "adding 1 to every reward should add exactly 1 to every target"
    return None


_PROPERTIES = [
    Property("'a terminated transition's target is its reward'", _terminal_is_reward),
    Property("'the target does not depend on `truncated`'", _ignores_truncated),
    Property("'adding 1 to the rewards adds 1 to the targets'", _linear_in_reward),
]

_SPEC = Spec(reference=reference_td_target, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES, invoke=_call,
             part="TD target", arg_names=("reward", "next_q_target", "terminated", "truncated", "gamma",
                                          "next_q_online"))


def check_td_target(td_target_fn: TargetFn) -> TargetFn:
    """Exercise 16.1: ``td_target(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None) ->
    [B]``; returns the TD target the rest of the hour trains with (yours once it passes)."""
    return check(TD_TARGET, _SPEC, (td_target_fn,), (reference_td_target,),
                 "the targets match on {cases} batches (terminated, truncated, both at once, gamma 0, a batch of one, "
                 "float64, Double DQN)")
