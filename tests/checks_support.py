"""Helpers for the tests of the self-checks: every exercise is tested on the same classes of answers.

- ``passes(check, *fns)``: the check accepts the answer and returns it (the exercise contract);
- ``fails(check, *fns, match=...)``: the check raises ``CheckFailed`` with a message matching ``match``;
- ``not_done(check, *fns)``: an unfinished answer gets the reference back, one printed line, no exception.

Each check-test module covers, for every exercise: correct answers written differently (they must pass), the
known mistakes (named), an answer that changes its inputs in place, one of the wrong type or dtype, one that is
wrong only on an edge input, one whose values are right but whose gradient is not (differentiable exercises),
and one that only a property catches (no known mistake matches it).
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable

import numpy as np
import pytest
import torch

from amla.checks import CheckFailed


def _rng() -> tuple[Any, ...]:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()


def passes(check: Callable[..., Any], *fns: Callable[..., Any]) -> Any:
    """Run ``check`` on a correct answer: it must not raise, must return the answer itself, and must leave the
    global random state alone."""
    before = _rng()
    returned = check(*fns)
    after = _rng()
    assert torch.equal(before[0], after[0]) and before[1] == after[1] and (before[2] == after[2]).all(), \
        "a check moved the global random state"
    expected = fns[0] if len(fns) == 1 else fns
    if len(fns) == 1:
        assert returned is expected, f"the check should return the student's function, got {returned!r}"
    else:
        assert tuple(returned) == tuple(expected), f"the check should return the student's functions, got {returned!r}"
    return returned


def fails(check: Callable[..., Any], *fns: Callable[..., Any], match: str) -> str:
    """Run ``check`` on a wrong answer: ``CheckFailed`` whose message matches ``match`` (a regex); returns it."""
    with pytest.raises(CheckFailed) as info:
        check(*fns)
    message = str(info.value)
    assert re.search(match, message), f"message does not match {match!r}:\n{message}"
    assert "\n" not in message, f"a check's message should be one paragraph:\n{message}"
    return message


def not_done(check: Callable[..., Any], *fns: Callable[..., Any], capsys: Any) -> Any:
    """An unfinished answer: one line saying so, the reference returned, nothing raised."""
    returned = check(*fns)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "is not done yet" in out[0] and "reference" in out[0], out
    if len(fns) == 1:
        assert returned is not fns[0] and callable(returned)
    else:
        assert all(r is not f and callable(r) for r, f in zip(returned, fns))
    return returned


def raise_not_done(*args: Any, **kwargs: Any) -> Any:
    """What a student's function does before it is written (the line ``amla build`` puts in hours/)."""
    raise NotImplementedError("Exercise N.M (Title): replace this line with your code")
