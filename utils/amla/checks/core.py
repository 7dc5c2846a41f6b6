"""Self-check machinery: run a student's function against the reference and explain a failure.

A check runs both on the same random inputs. When the outputs differ, it also runs the *known
mistakes* of that exercise (small buggy variants of the reference, each with a plain-language
description) and, when the student's output matches one of them, names that mistake. Success prints
one line; failure raises ``CheckFailed`` whose message is one or two plain sentences (in a notebook
``amla.setup`` shows it without a traceback).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Sequence

import torch

from amla.checks.engine import CheckFailed


@dataclass(frozen=True)
class Mistake:
    """A typical wrong solution: ``fn`` behaves like the buggy code, ``description`` names the bug."""

    description: str
    fn: Callable[..., Any]


def passed(name: str, detail: str = "") -> None:
    print(f"\u2713 {name} passed" + (f": {detail}" if detail else "."))


def fail(name: str, message: str) -> NoReturn:
    raise CheckFailed(f"{name}: {message}")


def _tensors(value: Any) -> list[torch.Tensor]:
    """Flatten a result (tensor, number, tuple/list/dict of them) into a list of float tensors."""
    if isinstance(value, torch.Tensor):
        return [value.detach().float().cpu()]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [torch.tensor(float(value))]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _tensors(value[k])]
    raise TypeError(f"cannot compare a result of type {type(value).__name__}")


def _same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float, rtol: float) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.allclose(x, y, atol=atol, rtol=rtol, equal_nan=True) for x, y in zip(a, b)
    )


def _call(fn: Callable[..., Any], inputs: tuple[Any, ...], observe: Callable[..., Any] | None) -> Any:
    args = copy.deepcopy(inputs)  # a function that mutates its inputs must not affect the other runs
    result = fn(*args)
    return observe(result, *args) if observe is not None else result


def compare(
    name: str,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    make_inputs: Callable[[torch.Generator], tuple[Any, ...]],
    mistakes: Sequence[Mistake] = (),
    *,
    trials: int = 3,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    observe: Callable[..., Any] | None = None,
    what: str = "output",
    seed: int = 0,
) -> None:
    """Check ``student`` against ``reference`` on ``trials`` random inputs, naming a known mistake if it matches.

    ``make_inputs(generator)`` returns the positional arguments. ``observe(result, *args)``, if given,
    turns a call into the value to compare (e.g. the parameters of a model after a training step).
    """
    for trial in range(trials):
        g = torch.Generator().manual_seed(seed + trial)
        inputs = make_inputs(g)
        expected = _tensors(_call(reference, inputs, observe))
        try:
            got_raw = _call(student, inputs, observe)
        except NotImplementedError:
            fail(name, "not implemented yet: replace the `raise NotImplementedError` line with your code.")
        except CheckFailed:
            raise
        except Exception as err:  # the student's code crashed: say where, in one line
            fail(name, f"your code raised {type(err).__name__}: {err}")
        try:
            got = _tensors(got_raw)
        except TypeError as err:
            fail(name, f"the {what} should be a tensor or number, {err}")
        if len(got) != len(expected):
            fail(name, f"expected {len(expected)} value(s) in the {what}, got {len(got)}.")
        for i, (x, y) in enumerate(zip(got, expected)):
            if x.shape != y.shape:
                part = f"{what}" if len(got) == 1 else f"{what} #{i}"
                fail(name, f"the {part} has shape {tuple(x.shape)}, expected {tuple(y.shape)}.")
        if _same(got, expected, atol, rtol):
            continue
        for mistake in mistakes:
            try:
                buggy = _tensors(_call(mistake.fn, inputs, observe))
            except Exception:  # a mistake variant that cannot run on these inputs just does not match
                continue
            if _same(got, buggy, atol, rtol) and not _same(buggy, expected, atol, rtol):
                fail(name, f"the {what} is wrong; it looks like {mistake.description}")
        worst = max(range(len(got)), key=lambda i: (got[i] - expected[i]).abs().max().item())
        diff = (got[worst] - expected[worst]).abs()
        idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape)) if diff.dim() else ()
        fail(
            name,
            f"the {what} differs from the reference by up to {diff.max().item():.3g} "
            f"(at index {idx}: got {got[worst][idx].item():.5g}, expected {expected[worst][idx].item():.5g}).",
        )
    passed(name, f"matches the reference on {trials} random inputs")
