"""What the self-check engine knows about values: describe them, compare their types and their numbers,
and notice when a function changed its arguments in place.

Every function here works on the *structure* a function returned: a tensor, a Python number, ``None``, or a
tuple, list, dict or dataclass of those. Tensors compare by dtype, device, shape and value (floating point
within a tolerance, integers and booleans exactly); Python numbers by type and value.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

_LOSS_HINT = ("a Python float (loss.item()): a tensor that still holds its graph keeps every activation of the "
              "step alive")


def describe(value: Any) -> str:
    """A few words for a value: ``a tensor of shape (2, 3) and dtype torch.float64``, ``None``, ``a list of 3
    items``."""
    if value is None:
        return "None"
    if isinstance(value, Tensor):
        shape = "a 0-d tensor" if value.dim() == 0 else f"a tensor of shape {tuple(value.shape)}"
        return f"{shape} and dtype {value.dtype}"
    if isinstance(value, bool):
        return f"the bool {value}"
    if isinstance(value, numbers.Integral):
        return f"the int {value}"
    if isinstance(value, numbers.Real):
        return f"the float {float(value):.6g}" if type(value) is float else f"a {type(value).__name__} ({value})"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} item{'s' * (len(value) != 1)}"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__} of {len(value)} entr{'ies' if len(value) != 1 else 'y'}"
    return f"a {type(value).__name__}"


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and not isinstance(v, Tensor)


def _is_float(v: Any) -> bool:  # a Python float or int; numpy's float64 subclasses float and counts too
    return isinstance(v, (float, int)) and not isinstance(v, bool)


def _item(part: str, items: tuple[str, ...], i: int) -> str:
    """The name of item ``i`` of a tuple result: its own name when the check gives one."""
    if i < len(items):
        return items[i]
    return f"{part} #{i + 1}" if part != "result" else f"item #{i + 1} of the result"


def type_problem(got: Any, expected: Any, part: str, items: tuple[str, ...] = ()) -> str | None:
    """Why ``got`` cannot stand where the reference returned ``expected`` (types, dtype, device, shape), or None."""
    if isinstance(expected, Tensor):
        if not isinstance(got, Tensor):
            return f"the {part} should be a tensor like {describe(expected)[2:]}, got {describe(got)}"
        if got.dtype != expected.dtype:
            hint = ""
            if got.dtype == torch.float64 and expected.dtype == torch.float32:
                hint = (" (torch.tensor of Python floats, numpy arrays and dtype=torch.float64 make float64; keep the "
                        "input's dtype, or call .float())")
            elif expected.dtype == torch.bool:
                hint = " (a mask is bool: comparisons and & give bool tensors; .int() or .float() do not)"
            elif not expected.is_floating_point():
                hint = " (indices must be integer tensors, e.g. from // or argmax, not from /)"
            return f"the {part} has dtype {got.dtype}, expected {expected.dtype}{hint}"
        if got.device != expected.device:
            return f"the {part} is on {got.device}, expected {expected.device}: create new tensors with device=x.device"
        if got.shape != expected.shape:
            return f"the {part} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        return None
    if isinstance(expected, bool):
        return None if isinstance(got, bool) else f"the {part} should be a bool, got {describe(got)}"
    if _is_int(expected):
        if _is_int(got):
            return None
        if isinstance(got, Tensor):
            return f"the {part} should be a Python int (use int(t) or t.item()), got {describe(got)}"
        return f"the {part} should be an int (an index or a count), got {describe(got)}"
    if isinstance(expected, float):
        if _is_float(got):
            return None
        if isinstance(got, Tensor):
            hint = _LOSS_HINT if got.requires_grad else "a Python float (t.item(), or math.cos instead of torch.cos)"
            return f"the {part} should be {hint}, got {describe(got)}"
        return f"the {part} should be a Python float, got {describe(got)}"
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"the {part} should be a dict, got {describe(got)}"
        return None  # entries are compared by value (missing and extra keys are named there)
    if isinstance(expected, (list, tuple)):
        if isinstance(expected, list) and not isinstance(got, list):
            return f"the {part} should be a list, got {describe(got)}"
        if not isinstance(got, (list, tuple)):
            want = f"a tuple of {len(expected)}" if isinstance(expected, tuple) else "a list"
            return f"the {part} should be {want}, got {describe(got)}"
        if isinstance(expected, tuple) and len(got) != len(expected):
            return f"the {part} should have {len(expected)} items, got {len(got)}"
        if isinstance(expected, tuple):
            for i, (g, e) in enumerate(zip(got, expected)):
                problem = type_problem(g, e, _item(part, items, i))
                if problem:
                    return problem
        return None
    if expected is None:
        return None if got is None else f"the {part} should be None, got {describe(got)}"
    return None


def difference(got: Any, expected: Any, part: str, atol: float, rtol: float, items: tuple[str, ...] = ()) -> str | None:
    """None when ``got`` equals ``expected`` (floats within atol + rtol * |expected|), else where and how they differ.

    Assumes ``type_problem`` found nothing. NaN equals NaN, +inf equals +inf.
    """
    if isinstance(expected, Tensor):
        g, e = got.detach().cpu(), expected.detach().cpu()
        if not e.is_floating_point() and not e.is_complex():
            wrong = g != e
            if not bool(wrong.any()):
                return None
            idx = tuple(int(i) for i in wrong.nonzero()[0])
            return (f"the {part} differs from the reference in {int(wrong.sum())} of {e.numel()} entries (first at "
                    f"index {idx}: got {g[idx].item()}, expected {e[idx].item()})")
        g, e = g.double(), e.double()
        same = torch.isclose(g, e, atol=atol, rtol=rtol, equal_nan=True)
        if bool(same.all()):
            return None
        err = torch.where(same, torch.zeros_like(g), (g - e).abs().nan_to_num(nan=math.inf))
        idx = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape)) if err.dim() else ()
        at = f" at index {idx}" if idx else ""
        return (f"the {part} differs from the reference by up to {err.max().item():.3g}{at} "
                f"(got {g[idx].item():.6g}, expected {e[idx].item():.6g})")
    if isinstance(expected, bool) or _is_int(expected):
        return None if got == expected else f"the {part} is {got!r}, expected {expected!r}"
    if isinstance(expected, float):
        if math.isclose(float(got), expected, rel_tol=rtol, abs_tol=atol) or (math.isnan(got) and math.isnan(expected)):
            return None
        return f"the {part} is {float(got):.6g}, expected {expected:.6g}"
    if isinstance(expected, Mapping):
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            parts = ([f"missing {_few(missing)}"] if missing else []) + ([f"unexpected {_few(extra)}"] if extra else [])
            return f"the {part} has the wrong keys: {', '.join(parts)}"
        for key in expected:
            problem = type_problem(got[key], expected[key], f"{part}[{key!r}]") or difference(
                got[key], expected[key], f"{part}[{key!r}]", atol, rtol)
            if problem:
                return problem
        return None
    if isinstance(expected, (list, tuple)):
        if isinstance(expected, list) and all(_is_int(v) for v in expected):  # a list of ids: show both
            if list(got) == expected:
                return None
            return f"the {part} is {_short(list(got))}, expected {_short(expected)}"
        if len(got) != len(expected):
            return f"the {part} has {len(got)} items, expected {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            name = _item(part, items, i)
            problem = type_problem(g, e, name) or difference(g, e, name, atol, rtol)
            if problem:
                return problem
        return None
    return None if got == expected else f"the {part} is {got!r}, expected {expected!r}"


def _few(keys: list[Any], limit: int = 4) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _short(ids: list[Any], limit: int = 16) -> str:
    return repr(ids) if len(ids) <= limit else repr(ids[:limit])[:-1] + ", ...]"


def same(got: Any, expected: Any, atol: float, rtol: float) -> bool:
    """``got`` could stand for ``expected`` and equals it (see ``type_problem`` and ``difference``)."""
    return type_problem(got, expected, "result") is None and difference(got, expected, "result", atol, rtol) is None


# --- arguments changed in place ---------------------------------------------------------------------------


def snapshot(value: Any) -> Any:
    """A frozen copy of what a function may change in place: tensors, lists, dicts, dataclasses, module states."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, nn.Module):
        return {"training": value.training, **{k: v.detach().clone() for k, v in value.state_dict().items()}}
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value) if isinstance(value, list) else tuple(snapshot(v) for v in value)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: snapshot(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value if isinstance(value, (numbers.Number, str, bytes, type(None))) else _Opaque()


class _Opaque:
    """Something the check does not inspect (an optimizer, a generator): never reported as changed."""


def unchanged(before: Any, after: Any) -> bool:
    """Whether ``after`` still equals its ``snapshot`` ``before`` (tensors bit for bit, NaN equal to NaN)."""
    if isinstance(before, _Opaque):
        return True
    if isinstance(before, Tensor):
        if not isinstance(after, Tensor) or after.dtype != before.dtype or after.shape != before.shape:
            return False
        a = after.detach()
        return bool(((a == before) | (a.isnan() & before.isnan()) if a.is_floating_point() else a == before).all())
    if isinstance(after, nn.Module):
        return unchanged(before, snapshot(after))
    if dataclasses.is_dataclass(after) and not isinstance(after, type):
        return unchanged(before, {f.name: getattr(after, f.name) for f in dataclasses.fields(after)})
    if isinstance(before, dict):
        return isinstance(after, dict) and before.keys() == after.keys() and all(
            unchanged(before[k], after[k]) for k in before)
    if isinstance(before, (list, tuple)):
        return isinstance(after, (list, tuple)) and len(before) == len(after) and all(
            unchanged(b, a) for b, a in zip(before, after))
    return before == after


# --- tensors inside a structure ----------------------------------------------------------------------------


def tensors_in(value: Any) -> Iterator[Tensor]:
    """Every tensor in a structure, in a fixed order (modules give their parameters)."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, nn.Module):
        yield from value.parameters()
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from tensors_in(v)
    elif isinstance(value, Mapping):
        for k in sorted(value, key=repr):
            yield from tensors_in(value[k])
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from tensors_in(getattr(value, f.name))
