"""Self-checks of Hour 02 (attention): the stable softmax and scaled dot-product attention with masks.

Each check runs the student's function on a few fixed cases, chosen so that the typical mistakes give
different answers (Tq != Tk, masks that are not symmetric, d_k != dv, values around 1000). When the
result is wrong, the known mistakes are run on the same case; the one that reproduces the student's
result (its values, its shape, or the very error it raised) is named.
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from amla.attention import causal_mask, padding_mask, scaled_dot_product_attention, softmax, to_additive
from amla.checks.core import CheckFailed, Mistake, fail, passed

__all__ = ["check_attention", "check_softmax"]

_NEG_INF = -math.inf


@dataclass(frozen=True)
class _Case:
    label: str  # completes "With <label>: ...", e.g. "a causal mask (bool, shape (3, 5))"
    args: tuple[Any, ...]


def _clone(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.clone() if isinstance(a, Tensor) else a for a in args)


def _as_tensors(value: Any, count: int) -> list[Tensor] | None:
    """``value`` as a list of ``count`` float tensors, or None if it is not shaped like that."""
    items = [value] if count == 1 else value
    if count > 1 and not (isinstance(value, (tuple, list)) and len(value) == count):
        return None
    if not all(isinstance(t, Tensor) for t in items):
        return None
    return [t.detach().float().cpu() for t in items]


def _same(a: Sequence[Tensor], b: Sequence[Tensor], atol: float, rtol: float) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.allclose(x, y, atol=atol, rtol=rtol, equal_nan=True) for x, y in zip(a, b)
    )


def _shapes(ts: Sequence[Tensor]) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in ts]


def _outcome(fn: Callable[..., Any], args: tuple[Any, ...], count: int) -> tuple[str, Any]:
    """("ok", tensors) | ("error", "Type: message") | ("bad", None) for one call of ``fn``."""
    try:
        result = fn(*_clone(args))
    except Exception as err:  # noqa: BLE001 - a variant's error is compared with the student's
        return "error", f"{type(err).__name__}: {err}"
    tensors = _as_tensors(result, count)
    return ("ok", tensors) if tensors is not None else ("bad", None)


def _run(
    name: str,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    cases: Sequence[_Case],
    mistakes: Sequence[Mistake],
    *,
    parts: Sequence[str],
    atol: float = 1e-5,
    rtol: float = 1e-4,
    diagnose: Callable[[_Case, list[Tensor], list[Tensor]], str | None] | None = None,
) -> None:
    """Run every case; on the first wrong result name the mistake that reproduces it, or describe the difference.

    ``parts`` names the returned values (``("output", "weights")`` for a function returning two tensors).
    ``diagnose(case, got, expected)`` may explain a wrong result no listed mistake reproduces.
    """
    count = len(parts)
    for case in cases:
        status, expected = _outcome(reference, case.args, count)
        if status != "ok":  # pragma: no cover - the reference always works on the check's cases
            raise RuntimeError(f"{name}: the reference failed on {case.label}: {expected}")
        try:
            raw = student(*_clone(case.args))
        except NotImplementedError:
            fail(name, "not implemented yet: replace the `raise NotImplementedError` line with your code.")
        except CheckFailed:
            raise
        except Exception as err:  # the student's code crashed: a mistake may crash the same way
            message = f"{type(err).__name__}: {err}"
            for mistake in mistakes:
                if _outcome(mistake.fn, case.args, count) == ("error", message):
                    fail(name, f"with {case.label}, your code raised {message.splitlines()[0]}; "
                               f"it looks like {mistake.description}")
            fail(name, f"with {case.label}, your code raised {message.splitlines()[0]}")
        got = _as_tensors(raw, count)
        if got is None:
            want = "a tensor" if count == 1 else f"a tuple ({', '.join(parts)}) of {count} tensors"
            fail(name, f"your function should return {want}, got {type(raw).__name__}.")
        if _shapes(got) != _shapes(expected):
            for mistake in mistakes:
                status, buggy = _outcome(mistake.fn, case.args, count)
                if status == "ok" and _shapes(buggy) == _shapes(got):
                    fail(name, f"with {case.label}, the shapes are wrong; it looks like {mistake.description}")
            i = next(i for i in range(count) if got[i].shape != expected[i].shape)
            fail(name, f"with {case.label}, the {parts[i]} has shape {tuple(got[i].shape)}, "
                       f"expected {tuple(expected[i].shape)}.")
        if _same(got, expected, atol, rtol):
            continue
        for mistake in mistakes:
            status, buggy = _outcome(mistake.fn, case.args, count)
            if status == "ok" and _same(got, buggy, atol, rtol) and not _same(buggy, expected, atol, rtol):
                fail(name, f"with {case.label}, the result is wrong; it looks like {mistake.description}")
        hint = diagnose(case, got, expected) if diagnose is not None else None
        if hint:
            fail(name, f"with {case.label}, {hint}")
        worst = max(range(count), key=lambda i: float(torch.nan_to_num((got[i] - expected[i]).abs(), nan=math.inf).max()))
        diff = torch.nan_to_num((got[worst] - expected[worst]).abs(), nan=math.inf)
        idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        fail(name, f"with {case.label}, the {parts[worst]} differs from the reference by up to {diff.max().item():.3g} "
                   f"(at index {idx}: got {got[worst][idx].item():.5g}, expected {expected[worst][idx].item():.5g}).")


# --- Exercise 2.1: a numerically stable softmax ------------------------------------------------------


def _softmax_cases() -> list[_Case]:
    g = torch.Generator().manual_seed(2)
    big = torch.randn(4, 7, generator=g) * 3
    big[0] += 1000.0  # exp(1000) overflows float32
    big[1] -= 1000.0  # far below the tensor's maximum: needs the *row* maximum
    big[2, [1, 4]] = _NEG_INF  # masked entries must get weight exactly 0
    return [
        _Case("x of shape (4, 7) holding values near +1000 and near -1000 and two -inf, dim=-1", (big, -1)),
        _Case("x of shape (3, 5, 6), dim=-1", (torch.randn(3, 5, 6, generator=g) * 4, -1)),
        _Case("x of shape (3, 5, 6), dim=1", (torch.randn(3, 5, 6, generator=g) * 4, 1)),
    ]


def _softmax_variant(kind: str) -> Callable[[Tensor, int], Tensor]:
    """A softmax with one typical bug (kind) switched on."""

    def fn(x: Tensor, dim: int = -1) -> Tensor:
        if kind == "ignores_dim":
            dim = -1
        elif kind == "wrong_axis":
            dim = (dim - 1) if dim != 0 else 1
        if kind == "naive":
            shifted = x
        elif kind == "global_max":
            shifted = x - x.max()
        elif kind == "min":
            shifted = x - x.amin(dim=dim, keepdim=True)
        elif kind == "no_keepdim":
            shifted = x - x.max(dim=dim).values
        else:
            shifted = x - x.amax(dim=dim, keepdim=True)
        e = torch.exp(shifted)
        if kind == "no_normalise":
            return e
        if kind == "global_sum":
            return e / e.sum()
        return e / e.sum(dim=dim, keepdim=True)

    return fn


_SOFTMAX_MISTAKES = [
    Mistake("the exponentials overflow: exp(1000) is inf in float32, and inf / inf is nan. Subtract the maximum "
            "of each row first, x - x.amax(dim, keepdim=True); it cancels in the ratio.", _softmax_variant("naive")),
    Mistake("the maximum of the whole tensor is subtracted instead of each row's: a row far below it (here around "
            "-1000) underflows to exp(...) = 0 everywhere, and 0 / 0 is nan. Use x.amax(dim, keepdim=True).",
            _softmax_variant("global_max")),
    Mistake("the minimum is subtracted instead of the maximum, so the largest exponentials still overflow.",
            _softmax_variant("min")),
    Mistake("the maximum is taken without keepdim=True, so it cannot broadcast back against x "
            "(x.amax(dim, keepdim=True) keeps the reduced axis with size 1).", _softmax_variant("no_keepdim")),
    Mistake("the softmax is taken over the wrong axis: normalise along `dim`.", _softmax_variant("wrong_axis")),
    Mistake("the `dim` argument is ignored: the softmax is always taken over the last axis.",
            _softmax_variant("ignores_dim")),
    Mistake("the exponentials are not divided by their sum along `dim`, so they do not sum to 1.",
            _softmax_variant("no_normalise")),
    Mistake("the exponentials are divided by the sum over the whole tensor instead of along `dim` "
            "(use .sum(dim, keepdim=True)).", _softmax_variant("global_sum")),
]

def _uses_library_softmax(fn: Callable[..., Any]) -> bool:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):  # no source (a builtin, a lambda typed in a REPL): nothing to say
        return False
    body = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("def ", "#")))
    return bool(re.search(r"\.softmax\s*\(|\bSoftmax\s*\(", body))


def check_softmax(softmax_fn: Callable[..., Tensor]) -> None:
    """Exercise 2.1: ``softmax(x, dim)`` on ordinary inputs, huge values (+-1000), -inf entries and dim != -1."""
    name = "Exercise 2.1 (stable softmax)"
    if _uses_library_softmax(softmax_fn):
        fail(name, "write it with torch.exp, amax and sum: calling a library softmax skips the point of the exercise.")

    def diagnose(case: _Case, got: list[Tensor], expected: list[Tensor]) -> str | None:
        if not torch.isfinite(got[0]).all():
            return "your result holds nan or inf: an exponential overflowed (or 0 / 0); subtract the row maximum first."
        return None

    with torch.random.fork_rng(devices=[]):  # a check must not move the notebook's random state
        _run(name, softmax_fn, softmax, _softmax_cases(), _SOFTMAX_MISTAKES, parts=("result",), diagnose=diagnose)
    passed(name, "stable on values near +-1000, exact zeros for -inf, any dim")


# --- Exercise 2.2: scaled dot-product attention with masks -------------------------------------------


def _attention_variant(
    *,
    scale: str = "sqrt_d",
    axis: int = -1,
    mask_at: str = "scores",
    fill: float = _NEG_INF,
    inverted: bool = False,
    float_mask: str = "add",
    transpose_mask: bool = False,
    normalise: bool = True,
    keys_first: bool = False,
    plain_T: bool = False,
) -> Callable[..., tuple[Tensor, Tensor]]:
    """Scaled dot-product attention with one typical bug switched on (the defaults are correct).

    ``mask_at``: "scores" (right), "after" (zero the weights after the softmax), "after_fill" (fill the weights
    with ``fill``), "ignored". ``float_mask``: "add" (right), "as_bool" (``masked_fill(mask == 0, -inf)``),
    "bool_only" (``~mask``, which fails on a float mask).
    """

    def fn(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        d = q.shape[-1]
        factor = {"sqrt_d": 1 / math.sqrt(d), "none": 1.0, "d": 1 / d, "mul": math.sqrt(d),
                  "dv": 1 / math.sqrt(v.shape[-1]), "tk": 1 / math.sqrt(k.shape[-2])}[scale]
        with warnings.catch_warnings():  # torch warns that x.T on a batched tensor is deprecated
            warnings.simplefilter("ignore", UserWarning)
            kt = k.T if plain_T else k.transpose(-2, -1)
        scores = (k @ q.transpose(-2, -1) if keys_first else q @ kt) * factor
        if mask is not None and transpose_mask:
            mask = mask.transpose(-2, -1)
        allowed = None
        if mask is not None:
            if mask.dtype == torch.bool:
                allowed = mask if not inverted else ~mask
            elif float_mask == "as_bool":
                allowed = ~(mask == 0)
            elif float_mask == "bool_only":
                allowed = ~mask  # TypeError on a float tensor, the error the student sees
            else:
                allowed = None
        if mask is not None and mask_at == "scores":
            scores = scores + mask if allowed is None else scores.masked_fill(~allowed, fill)
        e = torch.exp(scores - scores.amax(dim=axis, keepdim=True))
        weights = e / e.sum(dim=axis, keepdim=True) if normalise else e
        if mask is not None and mask_at in ("after", "after_fill"):
            if allowed is None:
                weights = weights + mask if mask_at == "after_fill" else weights * (mask == 0)
            else:
                weights = weights.masked_fill(~allowed, 0.0 if mask_at == "after" else fill)
        return weights @ v, weights

    return fn


_MASK_AFTER = ("the mask is applied after the softmax, so the weights of the keys left over no longer sum to 1. "
               "Mask the scores first (fill them with -inf, or add the additive mask), then take the softmax.")
_TRANSPOSED = ("the mask is applied along the wrong dimension (transposed): a padding mask [B, 1, Tk] hides the padded "
               "keys from every query; turned into [B, Tk, 1] it hides queries instead. Use the mask as given, it "
               "already broadcasts to [..., Tq, Tk].")

_ATTENTION_MISTAKES = [
    Mistake("`k.T` was used on a batched tensor: it reverses all the dimensions. Swap only the last two: "
            "k.transpose(-2, -1) (or k.mT).", _attention_variant(plain_T=True)),
    Mistake("the scores are k q^T instead of q k^T: rows must be queries and columns keys, [..., Tq, Tk].",
            _attention_variant(keys_first=True)),
    Mistake("the scores are not scaled: multiply q k^T by 1/sqrt(d_k) (here d_k = q.shape[-1] = 4), otherwise their "
            "variance grows with d_k and the softmax saturates.", _attention_variant(scale="none")),
    Mistake("the scores are divided by d_k instead of sqrt(d_k).", _attention_variant(scale="d")),
    Mistake("the scores are multiplied by sqrt(d_k) instead of divided by it.", _attention_variant(scale="mul")),
    Mistake("the scale uses the size of the values, v.shape[-1], instead of d_k = q.shape[-1].",
            _attention_variant(scale="dv")),
    Mistake("the scale uses the number of keys Tk instead of the key dimension d_k = q.shape[-1].",
            _attention_variant(scale="tk")),
    Mistake("the softmax is taken over the queries (dim=-2) instead of over the keys (dim=-1): each query's "
            "weights must sum to 1 over the keys.", _attention_variant(axis=-2)),
    Mistake("the weights are not normalised: after exp, divide by the sum over the keys so that each query's "
            "weights sum to 1.", _attention_variant(normalise=False)),
    Mistake("the mask is ignored. Note that masked_fill returns a new tensor: write scores = scores.masked_fill(...).",
            _attention_variant(mask_at="ignored")),
    Mistake(_MASK_AFTER, _attention_variant(mask_at="after")),
    Mistake(_MASK_AFTER, _attention_variant(mask_at="after_fill")),
    Mistake("the masked scores are set to 0 instead of -inf: exp(0) is not 0, so masked keys still get weight. "
            "Use scores.masked_fill(~mask, float('-inf')).", _attention_variant(fill=0.0)),
    Mistake("the boolean mask is used the wrong way round: in torch's convention True means 'may attend', so fill "
            "the scores where the mask is False: scores.masked_fill(~mask, float('-inf')).",
            _attention_variant(inverted=True)),
    Mistake("the additive (float) mask was used like a boolean one: in a float mask 0 means 'may attend' and -inf "
            "'blocked' (other values are a bias); add it to the scores: scores + mask.",
            _attention_variant(float_mask="as_bool")),
    Mistake("only boolean masks are handled: a float mask is additive, add it to the scores (scores + mask); "
            "use masked_fill(~mask, -inf) only when mask.dtype == torch.bool.",
            _attention_variant(float_mask="bool_only")),
    Mistake(_TRANSPOSED, _attention_variant(transpose_mask=True)),
    Mistake(_TRANSPOSED, _attention_variant(transpose_mask=True, fill=-1e9)),
]


def _shape_text(t: Tensor | None) -> str:
    return "None" if t is None else str(tuple(t.shape))


def _attention_cases() -> list[_Case]:
    """Cases where every listed mistake gives a different answer: d_k = 4 != dv = 6, Tq != Tk, asymmetric masks."""
    g = torch.Generator().manual_seed(20)

    def qkv(*lead: int, tq: int, tk: int, d: int = 4, dv: int = 6) -> tuple[Tensor, Tensor, Tensor]:
        return (torch.randn(*lead, tq, d, generator=g), torch.randn(*lead, tk, d, generator=g),
                torch.randn(*lead, tk, dv, generator=g))

    cases: list[tuple[str, tuple[Tensor, Tensor, Tensor], Tensor | None]] = []
    cases.append(("no mask", qkv(2, tq=3, tk=5), None))
    cases.append(("a padding mask (bool, lengths 4 and 2) in self-attention", qkv(2, tq=5, tk=5),
                  padding_mask([4, 2], 5)))
    cases.append(("a causal mask (bool)", qkv(2, tq=3, tk=5), causal_mask(3, 5)))
    pattern = causal_mask(3, 5, align="bottom_right") & padding_mask([5, 4], 5)  # [2, 3, 5], no empty row
    cases.append(("an additive mask (float, 0 where allowed and -inf where blocked)", qkv(2, tq=3, tk=5),
                  to_additive(pattern)))
    cases.append(("multi-head inputs (2 sequences, 3 heads) and a padding mask (bool)", qkv(2, 3, tq=4, tk=6),
                  padding_mask([6, 3], 6)[:, None]))
    distance = (torch.arange(5)[None, :] - torch.arange(3)[:, None]).abs().float()
    cases.append(("an additive bias (float, finite values: -0.7 * |i - j|)", qkv(2, tq=3, tk=5), -0.7 * distance))
    return [
        _Case(f"{label} (q {_shape_text(q)}, k {_shape_text(k)}, v {_shape_text(v)}"
              + (f", mask {_shape_text(mask)})" if mask is not None else ")"), (q, k, v, mask))
        for label, (q, k, v), mask in cases
    ]


def _reference_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    return scaled_dot_product_attention(q, k, v, mask)


def _diagnose_attention(case: _Case, got: list[Tensor], expected: list[Tensor]) -> str | None:
    out, weights = got
    q, k, v, mask = case.args
    if _same([weights], [expected[1]], 1e-5, 1e-4):
        return "the weights are right but the output is not: it should be weights @ v."
    if _same([out], [expected[0]], 1e-5, 1e-4):
        return "the output is right but the returned weights are not: return the softmax weights you multiplied v by."
    sums = weights.sum(dim=-1)
    if torch.isfinite(sums).all() and not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return (f"the weights do not sum to 1 over the keys (row sums from {sums.min().item():.4g} to "
                f"{sums.max().item():.4g}): normalise the softmax over the last axis.")
    if not torch.isfinite(out).all():
        return "the output holds nan or inf: check the softmax (subtract the row maximum) and how the mask is applied."
    return None


def check_attention(attention_fn: Callable[..., tuple[Tensor, Tensor]]) -> None:
    """Exercise 2.2: ``scaled_dot_product_attention(q, k, v, mask) -> (output, weights)`` on six cases.

    No mask; a padding mask in self-attention; a causal mask with Tq != Tk; an additive 0 / -inf mask;
    multi-head inputs; a finite additive bias.
    """
    name = "Exercise 2.2 (scaled dot-product attention)"
    with torch.random.fork_rng(devices=[]):  # a check must not move the notebook's random state
        cases = _attention_cases()
        _run(name, attention_fn, _reference_attention, cases, _ATTENTION_MISTAKES,
             parts=("output", "weights"), diagnose=_diagnose_attention)
    passed(name, f"output and weights match the reference on {len(cases)} cases (no mask, padding, causal, "
                 "additive 0/-inf, multi-head, additive bias)")
