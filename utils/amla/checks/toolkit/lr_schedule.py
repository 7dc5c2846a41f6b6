"""The self-check of Exercise 1.2: warmup + cosine learning-rate schedule
(what it checks: the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.toolkit.train import warmup_cosine

SCHEDULE = exercise(1, "1.2", "Warmup-cosine schedule", "lr_at")


def reference_lr_at(step: int, max_lr: float, warmup: int, total: int, min_lr: float) -> float:
    """``amla.toolkit.train.warmup_cosine`` with the exercise's signature (always a Python float)."""
    return float(warmup_cosine(step, max_lr, warmup, total, min_lr))


def _schedule_variant(kind: str) -> Callable[..., float]:
    def lr(step: int, max_lr: float, warmup: int, total: int, min_lr: float) -> float:
        if kind == "no_warmup":
            return warmup_cosine(step, max_lr, 0, total, min_lr)
        if step < warmup:
            return max_lr * (step if kind == "warmup_from_zero" else step + 1) / warmup
        if step >= total and kind != "no_clamp":
            return min_lr if kind != "to_zero" else 0.0
        span = total if kind == "cosine_from_zero" else max(1, total - warmup - (kind == "early_end"))
        progress = (step if kind == "cosine_from_zero" else step - warmup) / span
        turns = 2.0 if kind == "full_period" else 1.0
        floor = 0.0 if kind == "to_zero" else min_lr
        return floor + 0.5 * (max_lr - floor) * (1.0 + math.cos(turns * math.pi * progress))

    return lr


_SCHEDULE_MISTAKES = [
    Mistake("warmup starts from 0 (step / warmup): step 0 would not train at all; use (step + 1) / warmup.",
            _schedule_variant("warmup_from_zero")),
    Mistake("there is no warmup: the schedule starts at max_lr.", _schedule_variant("no_warmup")),
    Mistake("the cosine makes a full period (cos(2*pi*progress)) and climbs back up; it should fall only "
            "half a period, from max_lr to min_lr.", _schedule_variant("full_period")),
    Mistake("the schedule decays to 0 instead of min_lr.", _schedule_variant("to_zero")),
    Mistake("the cosine progress is measured from step 0 instead of from the end of warmup: "
            "progress = (step - warmup) / (total - warmup).", _schedule_variant("cosine_from_zero")),
    Mistake("the cosine reaches min_lr one step early: progress = (step - warmup) / (total - warmup), without "
            "a - 1.", _schedule_variant("early_end")),
    Mistake("past `total` the cosine goes on and climbs back up: return min_lr for step >= total.",
            _schedule_variant("no_clamp")),
]


def _schedule_cases() -> list[Case]:
    settings = [  # (max_lr, warmup, total, min_lr, what is special)
        (3e-3, 10, 100, 3e-4, ""),
        (0.5, 20, 60, 0.1, ""),
        (1.0, 5, 40, 0.0, "min_lr = 0"),
        (1e-3, 0, 50, 1e-4, "no warm-up"),
        (2e-3, 8, 8, 2e-4, "warm-up as long as the run (no cosine part)"),
        (1e-3, 4, 20, 1e-3, "min_lr = max_lr"),
    ]
    cases = []
    for max_lr, warmup, total, min_lr, special in settings:
        steps = sorted({0, 1, warmup // 2, warmup - 1, warmup, warmup + 1, (warmup + total) // 2,
                        (warmup + 3 * total) // 4, total - 1, total, total + 1, 10 * total} - {-1})
        for step in steps:
            what = f"step {step} of max_lr={max_lr:g}, warmup={warmup}, total={total}, min_lr={min_lr:g}"
            cases.append(Case(what + (f" ({special})" if special else ""), (step, max_lr, warmup, total, min_lr)))
    return cases


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-12)


def _above_floor(case: Case, result: Any, rerun: Any) -> str | None:
    step, max_lr, warmup, total, min_lr = case.args
    if step >= warmup and float(result) < min_lr - 1e-12:
        return f"at step {step} it is {float(result):.6g}, below min_lr = {min_lr:g}"
    return None


def _linear_warmup(case: Case, result: Any, rerun: Any) -> str | None:
    step, max_lr, warmup, total, min_lr = case.args
    if warmup == 0:
        return None
    rates = [float(rerun(s, max_lr, warmup, total, min_lr)) for s in range(warmup)]
    if not _close(rates[-1], max_lr):
        return f"at step warmup - 1 = {warmup - 1} it is {rates[-1]:.6g}, not max_lr = {max_lr:g}"
    rises = [b - a for a, b in zip(rates, rates[1:])]
    if any(not _close(r, max_lr / warmup) for r in rises) or not _close(rates[0], max_lr / warmup):
        return f"the first warm-up rates are {', '.join(f'{r:.4g}' for r in rates[:4])}: not steps of max_lr / warmup"
    return None


def _non_increasing(case: Case, result: Any, rerun: Any) -> str | None:
    step, max_lr, warmup, total, min_lr = case.args
    if step < warmup:
        return None
    after = float(rerun(step + 1, max_lr, warmup, total, min_lr))
    if after > float(result) + 1e-12:
        return f"it rises from {float(result):.6g} at step {step} to {after:.6g} at step {step + 1}"
    return None


def _min_at_total(case: Case, result: Any, rerun: Any) -> str | None:
    step, max_lr, warmup, total, min_lr = case.args
    end = float(rerun(total, max_lr, warmup, total, min_lr))
    return None if _close(end, min_lr) else f"at step total = {total} it is {end:.6g}, not min_lr = {min_lr:g}"


_SCHEDULE_PROPERTIES = [
    Property("'the warm-up rises linearly, in steps of max_lr / warmup, to max_lr at step warmup - 1'", _linear_warmup),
    Property("'after the warm-up the learning rate never increases'", _non_increasing),
    Property("'at step total the learning rate is min_lr'", _min_at_total),
    Property("'after the warm-up the learning rate never falls below min_lr'", _above_floor),
]

_SCHEDULE_SPEC = Spec(reference=reference_lr_at, cases=_schedule_cases, mistakes=_SCHEDULE_MISTAKES,
                      properties=_SCHEDULE_PROPERTIES, part="learning rate", atol=1e-12, rtol=1e-7)


def check_lr_schedule(lr_at: Callable[[int, float, int, int, float], float]) -> Callable[..., float]:
    """Exercise 1.2: ``lr_at(step, max_lr, warmup, total, min_lr) -> float``; returns the schedule the rest of the hour
    uses (yours once it passes)."""
    return check(SCHEDULE, _SCHEDULE_SPEC, (lr_at,), (reference_lr_at,),
                 "{cases} steps of 6 schedules (no warm-up, no cosine part, min_lr = max_lr, "
                 "min_lr = 0, far past the end)")
