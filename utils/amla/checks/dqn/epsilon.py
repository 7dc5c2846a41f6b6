"""The self-check of Exercise 16.2: the linear epsilon schedule (what it checks: the package docstring).

A case is a list of steps; what is compared is the list of the student's epsilons at those steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.rl.dqn import linear_epsilon

LINEAR_EPSILON = exercise(16, "16.2", "The linear epsilon schedule", "linear_epsilon")

EpsilonFn = Callable[..., float]


def reference_linear_epsilon(step: int, decay_steps: int, start: float = 1.0, end: float = 0.05) -> float:
    """The course's ``linear_epsilon`` with the exercise's signature."""
    return linear_epsilon(step, decay_steps, start, end)


def _schedule(fn: EpsilonFn, steps: Sequence[int], decay_steps: int, *rest: float) -> list[Any]:
    """The student's epsilon at each of ``steps`` (``rest``: start and end, or nothing for the defaults)."""
    return [fn(step, decay_steps, *rest) for step in steps]


def _variant(kind: str) -> EpsilonFn:
    """``linear_epsilon`` with one typical bug switched on (kind)."""

    def fn(step: int, decay_steps: int, start: float = 1.0, end: float = 0.05) -> float:
        if decay_steps <= 0 and kind != "zero_division":
            return float(end)
        t = step / decay_steps
        if kind == "integer":
            t = float(step // decay_steps)
        if kind == "off_by_one":
            t = (step + 1) / decay_steps
        if kind != "no_clamp":
            t = min(t, 1.0)
        if kind == "to_zero":
            return float(start * (1 - t))
        if kind == "reversed":
            return float(end + t * (start - end))
        if kind == "exponential":
            return float(start * (end / start) ** t) if start > 0 and end > 0 else float(start + t * (end - start))
        return float(start + t * (end - start))

    return fn


_MISTAKES = [
    Mistake("epsilon keeps falling after decay_steps (below `end`, even negative): clamp the fraction, "
            "min(step / decay_steps, 1).", _variant("no_clamp")),
    Mistake("epsilon decays to 0 instead of to `end`: interpolate, start + fraction * (end - start).",
            _variant("to_zero")),
    Mistake("the schedule runs backwards, from `end` up to `start`: epsilon starts high (explore) and falls.",
            _variant("reversed")),
    Mistake("step // decay_steps is an integer division (0 until decay_steps, then 1): use step / decay_steps.",
            _variant("integer")),
    Mistake("the schedule is one step ahead ((step + 1) / decay_steps): at step 0 epsilon is exactly `start`.",
            _variant("off_by_one")),
    Mistake("the decay is exponential (start * (end / start) ** fraction): the exercise asks for a straight line "
            "from start to end.", _variant("exponential")),
    Mistake("decay_steps = 0 divides by zero: with no decay at all, epsilon is `end` from the first step.",
            _variant("zero_division")),
]


def _cases() -> list[Case]:
    return [
        Case("decay_steps=100 and start, end left out (the defaults 1.0 and 0.05)",
             ([0, 1, 10, 25, 50, 99, 100, 101, 250, 10_000], 100)),
        Case("start=0.5, end=0.1, decay_steps=1000", ([0, 250, 500, 999, 1000, 5000], 1000, 0.5, 0.1)),
        Case("decay_steps=1", ([0, 1, 2, 7], 1, 1.0, 0.02)),
        Case("decay_steps=0 (no decay: epsilon is `end` from the first step)", ([0, 1, 5], 0, 1.0, 0.05)),
        Case("end=0 (purely greedy at the end)", ([0, 3, 5, 10, 20], 10, 1.0, 0.0)),
        Case("start equal to end (a constant schedule)", ([0, 7, 50], 20, 0.1, 0.1)),
        Case("a long run (decay_steps=8000, steps up to 50,000)", ([0, 1000, 4000, 7999, 8000, 50_000], 8000, 1.0,
                                                                   0.04)),
    ]


def _params(case: Case) -> tuple[int, float, float]:
    decay = case.args[1]
    start, end = (case.args[2], case.args[3]) if len(case.args) > 2 else (1.0, 0.05)
    return decay, start, end


def _monotone(case: Case, out: list[Any], rerun: Any) -> str | None:
    steps = case.args[0]
    for (s0, e0), (s1, e1) in zip(zip(steps, out), zip(steps[1:], out[1:])):
        if e1 > e0 + 1e-9:
            return f"epsilon rose from {e0:.4g} at step {s0} to {e1:.4g} at step {s1}"
    return None


def _endpoints(case: Case, out: list[Any], rerun: Any) -> str | None:
    decay, start, end = _params(case)
    if decay <= 0:
        return None
    first, at_end = rerun([0, decay], *case.args[1:])
    if abs(first - start) > 1e-6 or abs(at_end - end) > 1e-6:
        return f"got {first:.4g} at step 0 and {at_end:.4g} at decay_steps={decay}, expected {start} and {end}"
    return None


def _linear(case: Case, out: list[Any], rerun: Any) -> str | None:
    decay, start, end = _params(case)
    if decay < 2 or decay % 2:
        return None
    (half,) = rerun([decay // 2], *case.args[1:])
    if abs(half - (start + end) / 2) > 1e-6:
        mid = (start + end) / 2
        return f"halfway (step {decay // 2}) epsilon is {half:.4g}, the midpoint of {start} and {end} is {mid:.4g}"
    return None


_PROPERTIES = [
    Property("'epsilon never rises'", _monotone),
    Property("'epsilon is `start` at step 0 and `end` at decay_steps'", _endpoints),
    Property("'halfway through the decay epsilon is halfway between start and end'", _linear),
]

_SPEC = Spec(reference=reference_linear_epsilon, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             invoke=_schedule, part="list of epsilons (one per step of the case)",
             arg_names=("steps", "decay_steps", "start", "end"))


def check_linear_epsilon(linear_epsilon_fn: EpsilonFn) -> EpsilonFn:
    """Exercise 16.2: ``linear_epsilon(step, decay_steps, start=1.0, end=0.05) -> float``; returns the schedule the
    rest of the hour explores with (yours once it passes)."""
    return check(LINEAR_EPSILON, _SPEC, (linear_epsilon_fn,), (reference_linear_epsilon,),
                 "epsilon matches at every step of {cases} schedules (the defaults, decay_steps 1 and 0, end 0, a "
                 "constant schedule, past decay_steps)")
