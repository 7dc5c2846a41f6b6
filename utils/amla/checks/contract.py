"""The exercise contract: a check returns the implementation the rest of the hour uses.

    softmax = amla.checks.attention.check_softmax(softmax)

- The student's function passes: it is returned, and every later cell runs on it
  ("✓ Exercise 2.1 (stable softmax) passed ... The rest of this hour uses your softmax.").
- It still raises ``NotImplementedError`` (the exercise is not done): one line says so, and the course's
  reference is returned, without raising, so Run All goes on.
- It is wrong: ``CheckFailed`` is raised (a notebook shows its message without a traceback), and the
  student stops where the bug is.

Each check records its outcome; ``summary()`` at the end of an hour prints one line per exercise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amla.checks.engine import CheckFailed, Spec, evaluate

__all__ = ["Exercise", "exercise", "exercises", "start_hour", "status", "summary", "yours"]


@dataclass(frozen=True)
class Exercise:
    """Exercise ``id`` ("2.1") of ``hour``; ``names`` are the functions the student writes for it."""

    hour: int
    id: str
    title: str
    names: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"Exercise {self.id} ({self.title})"

    @property
    def what(self) -> str:
        return " and ".join(f"`{n}`" for n in self.names)


EXPECT_ENV = "AMLA_EXPECT_EXERCISES"
"""Set by the test suite: "passed" (solution notebooks) or "open" (student notebooks with nothing filled in);
``summary()`` then raises when an exercise is in any other state, so a test sees it."""

_REGISTRY: dict[str, Exercise] = {}
_STATUS: dict[str, tuple[str, str]] = {}  # id -> ("passed" | "open" | "failed", message)
_HOUR: list[int | None] = [None]


def exercise(hour: int, id: str, title: str, *names: str) -> Exercise:
    """Declare an exercise (once, where its check is defined)."""
    ex = Exercise(hour, id, title, names)
    if _REGISTRY.get(id, ex) != ex:
        raise ValueError(f"exercise {id} is declared twice: {_REGISTRY[id]} and {ex}")
    _REGISTRY[id] = ex
    return ex


def _key(ex: Exercise) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in ex.id.split("."))


def exercises(hour: int) -> list[Exercise]:
    """The declared exercises of ``hour``, in order (importing that hour's package of checks first).

    Only that package: another hour's checks may need an extra this session has not installed (the RL checks
    import gymnasium, which a Colab session of Hour 02 never installs)."""
    import importlib

    from amla.checks import _TOPICS

    if isinstance(hour, int) and 1 <= hour <= len(_TOPICS):  # else only what was declared by hand (the tests' 99)
        importlib.import_module(f"amla.checks.{_TOPICS[hour - 1]}")
    return sorted((ex for ex in _REGISTRY.values() if ex.hour == hour), key=_key)


def start_hour(hour: int | None) -> None:
    """Called by ``amla.setup``: a fresh hour, no exercise checked yet."""
    _HOUR[0] = hour
    _STATUS.clear()


def status(ex: Exercise) -> tuple[str, str]:
    """("passed" | "open" | "failed" | "unchecked", message) of the last run of this exercise's check."""
    return _STATUS.get(ex.id, ("unchecked", ""))


def yours(id: str) -> bool:
    """Whether the rest of the hour runs on the student's own code for exercise ``id`` (its check passed)."""
    return _STATUS.get(id, ("unchecked", ""))[0] == "passed"


def _callable_or_fail(ex: Exercise, name: str, fn: Any) -> None:
    if not callable(fn):
        raise CheckFailed(f"{ex.label}: pass your function `{name}` to the check, got {type(fn).__name__} "
                          f"({fn!r:.60}); did a later cell overwrite the name?")


def check(ex: Exercise, spec: Spec, students: tuple[Callable[..., Any], ...],
          references: tuple[Callable[..., Any], ...], detail: str = "") -> Any:
    """Run ``spec`` on the student's function(s); return what the rest of the hour uses (see the module doc).

    ``detail`` is said when the answer passes; ``{cases}`` in it becomes the number of cases the check ran."""
    for name, fn in zip(ex.names, students):
        _callable_or_fail(ex, name, fn)
    verdict = evaluate(spec, students[0] if len(students) == 1 else students)
    chosen = students
    if verdict.status == "not_done":
        _STATUS[ex.id] = ("open", "")
        print(f"{ex.label} is not done yet: the cells below use the course's reference {ex.what}.")
        chosen = references
    elif verdict.status == "failed":
        _STATUS[ex.id] = ("failed", verdict.message)
        raise CheckFailed(f"{ex.label}: {verdict.message}")
    else:
        detail = detail.replace("{cases}", str(verdict.cases))
        _STATUS[ex.id] = ("passed", detail)
        said = f": {detail}" if detail else ""
        print(f"\u2713 {ex.label} passed{said}. The rest of this hour uses your {ex.what}.")
    return chosen[0] if len(chosen) == 1 else chosen


def summary(hour: int | None = None) -> dict[str, str]:
    """Print one line per exercise of ``hour`` (default: the hour ``amla.setup`` started); return id -> status."""
    hour = _HOUR[0] if hour is None else hour
    if hour is None:
        raise ValueError("summary() needs the hour: call amla.setup(hour=N) first, or pass hour=N")
    found = exercises(hour)
    marks = {"passed": "\u2713", "failed": "\u2717", "open": "\u25cb", "unchecked": "?"}
    lines, result = [], {}
    for ex in found:
        state, message = status(ex)
        result[ex.id] = state
        text = {
            "passed": f"passed; the hour ran on your {ex.what}",
            "failed": f"failed, fix it and run its check again: {message.splitlines()[0] if message else ''}",
            "open": f"not done yet; the hour ran on the course's reference {ex.what}",
            "unchecked": "not checked: its check cell has not run",
        }[state]
        lines.append(f"{marks[state]} {ex.label}: {text}")
    done = sum(s == "passed" for s in result.values())
    print(f"Hour {hour:02d} exercises: {done} of {len(found)} passed.")
    print("\n".join(lines))
    expect = os.environ.get(EXPECT_ENV, "")
    if expect in ("passed", "open") and any(s != expect for s in result.values()):
        others = ", ".join(f"{i} {s}" for i, s in result.items() if s != expect)
        raise RuntimeError(f"{EXPECT_ENV}={expect}: every exercise of hour {hour} should be {expect}, but {others}")
    if not found:
        raise RuntimeError(f"hour {hour} declares no exercises in amla.checks")
    return result
