"""The self-check of Exercise 15.3: the Q-learning update, in place on the table (what it checks: the package
docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.rl._arrays import as_numpy, to_np
from amla.rl import tabular

Q_LEARNING = exercise(15, "15.3", "The Q-learning update", "q_learning_update")

QUpdateFn = Callable[..., Any]


def reference_q_learning_update(Q: np.ndarray, s: int, a: int, r: float, s_next: int, terminated: bool,
                                alpha: float, gamma: float) -> None:
    """The course's ``q_learning_update`` with the exercise's signature."""
    tabular.q_learning_update(Q, s, a, r, s_next, terminated, alpha, gamma)


def _variant(kind: str) -> QUpdateFn:
    """The update with one typical bug switched on (kind)."""

    def fn(Q: np.ndarray, s: int, a: int, r: float, s_next: int, terminated: bool, alpha: float,
           gamma: float) -> Any:
        row = Q[s] if kind == "current_row" else Q[s_next]
        best = row.mean() if kind == "mean" else row.min() if kind == "min" else row.max()
        g = 1.0 if kind == "no_gamma" else gamma
        if kind == "bootstrap_terminal":
            target = r + g * best
        elif kind == "reward_masked":
            target = (r + g * best) * (1 - bool(terminated))
        else:
            target = r + (0.0 if terminated else g * best)
        if kind == "no_alpha":
            Q[s, a] = target
        elif kind == "no_old":
            Q[s, a] += alpha * target
        elif kind == "assign":
            Q[s, a] = alpha * (target - Q[s, a])
        elif kind == "sign":
            Q[s, a] -= alpha * (target - Q[s, a])
        elif kind == "row":
            Q[s] += alpha * (target - Q[s])
        elif kind == "copy":
            Q = Q.copy()
            Q[s, a] += alpha * (target - Q[s, a])
            return Q
        else:
            Q[s, a] += alpha * (target - Q[s, a])
        return None

    return fn


_MISTAKES = [
    Mistake("the target bootstraps from a terminal next state: when terminated, there is no next value, the target "
            "is r alone (r + gamma max Q[s_next] (1 - terminated)).", _variant("bootstrap_terminal")),
    Mistake("the reward is masked too ((r + gamma max Q[s_next]) (1 - terminated)): only the next value is dropped at "
            "the end, the last reward still counts.", _variant("reward_masked")),
    Mistake("the max is taken over the current state's row Q[s]: the target looks ahead, max over a' of "
            "Q[s_next, a'].", _variant("current_row")),
    Mistake("the next row's mean is used (that is expected SARSA with a uniform policy): Q-learning takes its max.",
            _variant("mean")),
    Mistake("the next row's min is used: Q-learning takes its max.", _variant("min")),
    Mistake("gamma is missing from the target (r + max Q[s_next]).", _variant("no_gamma")),
    Mistake("the step size is missing (Q[s, a] = target): the update moves Q[s, a] by alpha times the TD error.",
            _variant("no_alpha")),
    Mistake("the old value is not subtracted (Q[s, a] += alpha * target): the TD error is target - Q[s, a].",
            _variant("no_old")),
    Mistake("`=` instead of `+=` (Q[s, a] = alpha * (target - Q[s, a])): the update adds alpha times the TD error "
            "to the old value.", _variant("assign")),
    Mistake("the sign is reversed: Q[s, a] moves away from the target; it is Q[s, a] += alpha * (target - Q[s, a]).",
            _variant("sign")),
    Mistake("the whole row Q[s] is updated: only the entry of the action taken, Q[s, a], changes.", _variant("row")),
    Mistake("the table the caller passed is not changed (a new table is made, e.g. Q = Q.copy(), and returned): the "
            "update works in place, Q[s, a] += ..., so that the training loop's table learns.", _variant("copy")),
]


def _cases() -> list[Case]:
    rng = np.random.default_rng(153)

    def table(n_s: int = 5, n_a: int = 3, dtype: Any = np.float64) -> Tensor:
        return torch.from_numpy(rng.normal(size=(n_s, n_a)).astype(dtype))

    negative = -np.abs(rng.normal(size=(4, 2))) - 1.0
    return [
        Case("an ordinary step (Q of shape (5, 3), s 1, a 2, r 0.5, s_next 3, alpha 0.1, gamma 0.9)",
             (table(), 1, 2, 0.5, 3, False, 0.1, 0.9)),
        Case("a terminal next state (terminated True, r 1.0, alpha 0.5, gamma 0.9)",
             (table(), 0, 1, 1.0, 4, True, 0.5, 0.9)),
        Case("alpha 1 (Q[s, a] becomes the target; r -1, gamma 0.95)", (table(), 2, 0, -1.0, 1, False, 1.0, 0.95)),
        Case("gamma 0 (the target is the reward)", (table(), 3, 1, 2.0, 0, False, 0.3, 0.0)),
        Case("s_next equal to s (a self-transition: s 2, a 2)", (table(), 2, 2, 0.25, 2, False, 0.5, 0.9)),
        Case("a next row whose values are all negative (its max is below 0)",
             (torch.from_numpy(negative), 0, 0, -1.0, 3, False, 0.5, 1.0)),
        Case("numpy ints for s, a and s_next and a numpy bool terminated (as gymnasium returns them)",
             (table(), np.int64(4), np.int64(0), -100.0, np.int64(1), np.bool_(True), 0.5, 1.0)),
        Case("numpy ints and numpy bool False (an ordinary step as gymnasium returns it)",
             (table(), np.int64(0), np.int64(2), np.float64(-1.0), np.int64(3), np.bool_(False), 0.5, 1.0)),
        Case("a float32 table (it keeps its dtype)", (table(dtype=np.float32), 1, 0, 0.5, 2, False, 0.5, 0.9)),
        Case("a table of one state and one action, the step terminal", (table(1, 1), 0, 0, 3.0, 0, True, 0.5, 0.9)),
    ]


def _invoke(fn: QUpdateFn, Q: Tensor, *rest: Any) -> Tensor:
    fn(as_numpy(Q), *rest)  # the numpy view shares Q's memory: what changes in place shows in Q
    return Q


def _only_entry(case: Case, out: Tensor, rerun: Any) -> str | None:
    before, s, a = to_np(case.args[0]), int(case.args[1]), int(case.args[2])
    after = out.numpy()
    moved = np.argwhere(after != before)
    others = [tuple(int(i) for i in m) for m in moved if tuple(m) != (s, a)]
    if others:
        return f"entries other than Q[{s}, {a}] changed, e.g. Q{list(others[0])}"
    return None


_PROPERTIES = [Property("'only the entry Q[s, a] changes'", _only_entry)]

_SPEC = Spec(reference=reference_q_learning_update, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             invoke=_invoke, part="table Q after the update", mutable=frozenset({0}), atol=1e-6, rtol=1e-6,
             time_limit=10.0, arg_names=("Q", "s", "a", "r", "s_next", "terminated", "alpha", "gamma"))


def check_q_learning_update(q_learning_update: QUpdateFn) -> QUpdateFn:
    """Exercise 15.3: ``q_learning_update(Q, s, a, r, s_next, terminated, alpha, gamma)`` changes ``Q[s, a]`` in
    place; returns the update the rest of the hour trains with (yours once it passes)."""
    return check(Q_LEARNING, _SPEC, (q_learning_update,), (reference_q_learning_update,),
                 "the table after one update matches on {cases} steps (terminal next states, alpha 1, gamma 0, a "
                 "self-transition, negative values, numpy ints and bools, float32, a 1x1 table)")
