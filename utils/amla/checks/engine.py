"""The one engine behind every self-check: run a student's function on cases, compare it with the reference,
and explain a failure in one or two plain sentences.

A check is a ``Spec``: the reference, the ``Case``\\ s (ordinary inputs and edge inputs, each with a label that
completes "with ..."), the known ``Mistake``\\ s (small buggy variants, each with a plain description), and the
``Property``\\ s that localise a bug no known mistake explains (rows sum to 1, causality, ...). ``evaluate`` runs
the student's function on every case and looks, in this order, for

1. an exception (named with the line of the student's code that raised it), or a call that never returns;
2. a result of the wrong kind: ``None``, a tensor where a float is asked for, a float64 tensor for float32 inputs,
   the wrong shape;
3. arguments changed in place (``x += ...``, ``ids.pop()``);
4. wrong values: a known mistake is named only when it reproduces the student's outcome on *every* case;
   otherwise the first property that fails is named, with its case; otherwise where the values differ;
5. wrong gradients (for differentiable exercises): correct values whose gradient is not the reference's.

Every case runs on a fresh deep copy of its inputs, under ``torch.random.fork_rng``, so a check never moves the
notebook's random state and one call cannot affect the next.
"""

from __future__ import annotations

import copy
import inspect
import os
import random
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from amla.checks.values import describe, difference, same, snapshot, tensors_in, type_problem, unchanged

__all__ = ["Case", "CheckFailed", "Mistake", "Property", "Spec", "Verdict", "evaluate"]


class CheckFailed(AssertionError):
    """A self-check found a wrong answer; the message names the case and the likely mistake."""


@dataclass(frozen=True)
class Case:
    """One input of a check. ``label`` completes "with ...": ``"a causal mask (bool, shape (3, 5))"``."""

    label: str
    args: tuple[Any, ...]
    grad: bool = True  # also compare gradients here (when the spec is differentiable)
    atol: float | None = None
    rtol: float | None = None
    view: Callable[[Any], Any] | None = None  # the part of a result compared here (e.g. rows that are not fully masked)

    def seen(self, value: Any) -> Any:
        return self.view(value) if self.view is not None else value


@dataclass(frozen=True)
class Mistake:
    """A typical wrong solution: ``fn`` behaves like the buggy code, ``description`` names the bug."""

    description: str
    fn: Any


@dataclass(frozen=True)
class Property:
    """What every correct answer satisfies. ``test(case, result, rerun)`` returns None when it holds, else the
    detail of what is wrong; ``rerun(*args)`` calls the student's function again (e.g. with a future token changed)."""

    description: str
    test: Callable[[Case, Any, Callable[..., Any]], str | None]


@dataclass
class Spec:
    """Everything one check needs. ``invoke(fn, *args)`` turns a call into what is compared (default
    ``fn(*args)``; e.g. two training steps in a row and the parameters after them). ``mutable``: positions of
    arguments the function is meant to change (a model it trains). ``source_rules``: functions of the student's
    source returning a message when it breaks a rule of the exercise."""

    reference: Any
    cases: Callable[[], list[Case]]
    mistakes: Sequence[Mistake] = ()
    properties: Sequence[Property] = ()
    invoke: Callable[..., Any] | None = None
    part: str = "result"
    items: tuple[str, ...] = ()  # names of the items of a tuple result, e.g. ("output", "weights")
    mutable: frozenset[int] = frozenset()
    differentiable: bool = False
    atol: float = 1e-5
    rtol: float = 1e-4
    grad_atol: float = 1e-4
    grad_rtol: float = 1e-3
    arg_names: tuple[str, ...] | None = None
    source_rules: Sequence[Callable[[str], str | None]] = ()
    time_limit: float = 60.0


@dataclass
class Verdict:
    status: str  # "passed", "not_done" or "failed"
    message: str = ""
    cases: int = 0  # how many cases were run


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    text: str = ""  # "ValueError: ..." (first line)
    where: str = ""  # " (line 3 of your code: `x = ...`)"
    changed: list[str] = field(default_factory=list)

    def same_as(self, other: "_Outcome", case: Case, atol: float, rtol: float) -> bool:
        if (self.error is None) != (other.error is None):
            return False
        if self.error is not None:
            return self.text == other.text
        if type_problem(self.value, other.value, "result") is not None:
            return False
        try:
            return same(case.seen(self.value), case.seen(other.value), atol, rtol)
        except Exception:  # noqa: BLE001 - a value the case's view cannot read is not the same
            return False


class _TimeUp(BaseException):  # a BaseException, so that a student's `except Exception` cannot swallow it
    pass


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ``_TimeUp`` after ``seconds`` (Unix main thread only; elsewhere no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_LIBRARY_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch,)) + (
    os.path.dirname(os.path.dirname(__file__)) + os.sep,)


def _student_frame(err: BaseException) -> traceback.FrameSummary | None:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(_LIBRARY_DIRS)]
    return frames[-1] if frames else None


def _not_done(err: BaseException | None) -> bool:
    """A NotImplementedError raised by the student's own code (the exercise template), not by a library."""
    if not isinstance(err, NotImplementedError):
        return False
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and not frames[-1].filename.startswith(_LIBRARY_DIRS)


def _run(spec: Spec, fn: Any, args: tuple[Any, ...], names: Sequence[str], check_args: bool) -> _Outcome:
    work = copy.deepcopy(args)
    invoke = spec.invoke or (lambda f, *a: f(*a))
    out = _Outcome()
    try:
        with _time_limit(spec.time_limit):
            out.value = invoke(fn, *work)
    except CheckFailed:
        raise
    except _TimeUp:
        out.error = TimeoutError()
        out.text = (f"did not return within {spec.time_limit:.0f} s (an endless loop, e.g. a `while` whose index "
                    "never moves?)")
    except Exception as err:  # noqa: BLE001 - the student's code crashed: reported, never raised
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        out.error, out.text = err, f"{type(err).__name__}: {first}"
        frame = _student_frame(err)
        if frame is not None and frame.line:
            out.where = f" (line {frame.lineno} of your code: `{frame.line.strip()}`)"
    if check_args:
        out.changed = [names[i] if i < len(names) else f"argument {i + 1}" for i, (a, w) in enumerate(zip(args, work))
                       if i not in spec.mutable and not unchanged(snapshot(a), w)]
    return out


def _grads(spec: Spec, fn: Any, args: tuple[Any, ...], seed: int) -> tuple[list[torch.Tensor | None], list[bool]]:
    """Gradients of a fixed random projection of the float outputs w.r.t. every float leaf of the inputs (module
    parameters included), and for each float output whether it is attached to the graph."""
    work = copy.deepcopy(args)
    leaves = [t for t in tensors_in(work) if t.is_floating_point() and t.is_leaf]
    for t in leaves:
        t.grad = None
        t.requires_grad_(True)
    invoke = spec.invoke or (lambda f, *a: f(*a))
    with torch.enable_grad(), _time_limit(spec.time_limit):
        out = invoke(fn, *work)
    g = torch.Generator().manual_seed(seed)
    total, attached = None, []
    for t in tensors_in(out):
        if not t.is_floating_point():
            continue
        w = torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
        attached.append(t.requires_grad)
        if t.requires_grad:
            term = (torch.where(t.isfinite(), t, torch.zeros_like(t)) * w).sum()
            total = term if total is None else total + term
    if total is not None:
        total.backward()
    return [t.grad.detach().clone() if t.grad is not None else None for t in leaves], attached


def _leaf_names(args: tuple[Any, ...], names: Sequence[str]) -> list[str]:
    found = []
    for i, a in enumerate(args):
        name = names[i] if i < len(names) else f"argument {i + 1}"
        if isinstance(a, torch.nn.Module):
            found += [f"{name}.{n}" for n, p in a.named_parameters() if p.is_floating_point()]
        else:
            found += [name if isinstance(a, torch.Tensor) else f"{name} (tensor {k + 1})"
                      for k, t in enumerate(tensors_in(a)) if t.is_floating_point() and t.is_leaf]
    return found


def _arg_names(spec: Spec, fn: Any) -> tuple[str, ...]:
    if spec.arg_names is not None:
        return spec.arg_names
    for target in (fn, spec.reference):  # the student's own names, unless they are *args
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):
            continue
        if params and all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            return tuple(p.name for p in params)
    return ()


def _source(fn: Any) -> str:
    try:
        lines = inspect.getsource(fn).splitlines()
    except (OSError, TypeError):
        return ""
    return "\n".join(line.split("#")[0] for line in lines if not line.lstrip().startswith(("def ", "#", "@")))


def evaluate(spec: Spec, student: Any) -> Verdict:
    """Run ``student`` through ``spec``; a Verdict, never an exception for a wrong answer.

    The notebook's random state (torch, numpy, python) is restored afterwards, and the check runs on one thread:
    its tensors are tiny, and one thread is faster than several, much faster on a busy machine.
    """
    state, threads = (random.getstate(), np.random.get_state()), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return _evaluate(spec, student)
    finally:
        torch.set_num_threads(threads)
        random.setstate(state[0])
        np.random.set_state(state[1])


def _evaluate(spec: Spec, student: Any) -> Verdict:
    cases = spec.cases()
    names = _arg_names(spec, student)
    expected = [_run(spec, spec.reference, c.args, names, False) for c in cases]
    for c, e in zip(cases, expected):
        if e.error is not None:  # a course bug, not the student's
            raise RuntimeError(f"the reference failed on the case {c.label!r}: {e.text}") from e.error
    got = [_run(spec, student, c.args, names, True) for c in cases]
    if any(_not_done(o.error) for o in got):
        return Verdict("not_done")
    for fn in (student if isinstance(student, tuple) else (student,)):
        for rule in spec.source_rules:
            message = rule(_source(fn))
            if message:
                return Verdict("failed", message)

    cache: dict[int, list[_Outcome]] = {}

    def mistake_outcomes(k: int) -> list[_Outcome]:
        if k not in cache:
            cache[k] = [_run(spec, spec.mistakes[k].fn, c.args, names, False) for c in cases]
        return cache[k]

    def tol(c: Case) -> tuple[float, float]:
        return (spec.atol if c.atol is None else c.atol), (spec.rtol if c.rtol is None else c.rtol)

    def named_mistake() -> str | None:
        """The first mistake that reproduces the student's outcome on every case and differs from the reference."""
        for k, mistake in enumerate(spec.mistakes):
            buggy = mistake_outcomes(k)
            if all(g.same_as(b, c, *tol(c)) for g, b, c in zip(got, buggy, cases)) and not all(
                    b.same_as(e, c, *tol(c)) for b, e, c in zip(buggy, expected, cases)):
                return mistake.description
        return None

    def rerun(*args: Any) -> Any:
        outcome = _run(spec, student, args, names, False)
        if outcome.error is not None:
            raise outcome.error
        return outcome.value

    for i, (c, g, e) in enumerate(zip(cases, got, expected)):
        known = None
        if g.error is not None:
            known = named_mistake()
            if isinstance(g.error, TimeoutError) and not g.where:
                return Verdict("failed", f"with {c.label}, your function {g.text}")
            suffix = f"; it looks like {known}" if known else ""
            return Verdict("failed", f"with {c.label}, your code raised {g.text}{g.where}{suffix}")
        if g.value is None and e.value is not None:
            return Verdict("failed", f"your function returned None (with {c.label}): did you forget the `return`?")
        try:
            problem = type_problem(g.value, e.value, spec.part, spec.items)
            if problem is None and g.changed:
                which = ", ".join(f"`{n}`" for n in g.changed)
                plural = "s" * (len(g.changed) > 1)
                return Verdict("failed", f"with {c.label}, your function changed its argument{plural} {which} in "
                                         "place (e.g. `x += ...`, `x /= ...`, `x[...] = ...`, `.pop()`, `.sort()`): the "
                                         "caller still needs them; work on a new tensor or list.")
            if problem is None:
                problem = difference(c.seen(g.value), c.seen(e.value), spec.part, *tol(c), spec.items)
        except Exception as err:  # noqa: BLE001 - the check could not read the student's result
            return Verdict("failed", f"with {c.label}, the check could not read what your function returned "
                                     f"({describe(g.value)}): {type(err).__name__}: {err}")
        if problem is None:
            continue
        known = named_mistake()
        if known:
            return Verdict("failed", f"with {c.label}, {problem}; it looks like {known}")
        for prop in spec.properties:
            for j in [i] + [j for j in range(len(cases)) if j != i]:
                if got[j].error is not None or type_problem(got[j].value, expected[j].value, spec.part, spec.items):
                    continue
                try:
                    detail = prop.test(cases[j], got[j].value, rerun)
                except Exception:  # noqa: BLE001 - a property that cannot be decided here says nothing
                    detail = None
                if detail:
                    return Verdict("failed", f"with {cases[j].label}, {prop.description} does not hold: {detail}")
        return Verdict("failed", f"with {c.label}, {problem}.")

    if spec.differentiable:
        return _compare_gradients(spec, student, cases, names) or Verdict("passed", cases=len(cases))
    return Verdict("passed", cases=len(cases))


def _compare_gradients(spec: Spec, student: Any, cases: list[Case], names: Sequence[str]) -> Verdict | None:
    for n, c in enumerate(cases):
        if not c.grad:
            continue
        want, want_attached = _grads(spec, spec.reference, c.args, seed=n)
        try:
            have, attached = _grads(spec, student, c.args, seed=n)
        except _TimeUp:
            return Verdict("failed", f"with {c.label}, your function did not return within {spec.time_limit:.0f} s")
        except Exception as err:  # noqa: BLE001 - backward through the student's code failed
            frame = _student_frame(err)
            where = f" (line {frame.lineno} of your code: `{frame.line.strip()}`)" if frame and frame.line else ""
            return Verdict("failed", f"with {c.label}, the values are right but computing the gradient through your "
                                     f"code failed: {type(err).__name__}: {str(err).splitlines()[0]}{where}. An "
                                     "in-place operation (x += ..., x[...] = ...) on a tensor that autograd needs is the "
                                     "usual cause.")
        detached = [k for k, (a, w) in enumerate(zip(attached, want_attached)) if w and not a]
        if detached:
            return Verdict("failed", f"with {c.label}, the values are right but the {spec.part} is detached from the "
                                     "inputs, so no gradient flows back through it: .detach(), .item(), .numpy(), "
                                     "torch.tensor(...) or .data break the graph; keep computing with tensor "
                                     "operations.")
        leaf_names = _leaf_names(c.args, names)
        for k, (h, w) in enumerate(zip(have, want)):
            what = f"`{leaf_names[k]}`" if k < len(leaf_names) else "an input"
            if w is None or bool((w == 0).all()):  # rounding may leave a correct answer a gradient of ~1e-9
                if h is not None and float(h.double().abs().nan_to_num(nan=1.0).max()) > spec.grad_atol:
                    return Verdict("failed", f"with {c.label}, the values are right, but a gradient reaches {what}, "
                                             "which should not influence the result.")
                continue
            if h is None:
                return Verdict("failed", f"with {c.label}, the values are right but no gradient reaches {what}: "
                                         "somewhere it is detached (.detach(), .item(), .data, torch.tensor(...), a "
                                         "value recomputed from scratch) or replaced by a constant.")
            scale = max(1.0, float(w.double().abs().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).max()))
            atol = spec.grad_atol * scale  # gradients of large inputs are large: the tolerance follows their size
            if not torch.allclose(h.double(), w.double(), atol=atol, rtol=spec.grad_rtol, equal_nan=True):
                for mistake in spec.mistakes:
                    try:
                        buggy, _ = _grads(spec, mistake.fn, c.args, seed=n)
                    except Exception:  # noqa: BLE001 - a variant that cannot run here does not match
                        continue
                    if buggy[k] is not None and torch.allclose(h.double(), buggy[k].double(), atol=atol,
                                                               rtol=spec.grad_rtol, equal_nan=True):
                        return Verdict("failed", f"with {c.label}, the values are right but the gradient with respect "
                                                 f"to {what} is not; it looks like {mistake.description}")
                err = (h.double() - w.double()).abs().nan_to_num(nan=float("inf")).max().item()
                return Verdict("failed", f"with {c.label}, the values are right but the gradient with respect to "
                                         f"{what} differs from the reference by up to {err:.3g}: part of the "
                                         "computation is detached, or a non-differentiable shortcut (argmax, round, "
                                         "a comparison, an in-place overwrite) sits where the gradient must flow.")
    return None
