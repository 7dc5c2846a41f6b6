"""The self-check of Exercise 9.1: the bytes of the attention score matrices (what it checks: the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec

SCORE_BYTES = exercise(9, "9.1", "The memory of the attention scores", "score_bytes")

ScoreFn = Callable[[int, int, int, torch.dtype], int]


def reference_score_bytes(batch: int, heads: int, seq_len: int, dtype: torch.dtype) -> int:
    """Scores and probabilities, each ``[batch, heads, T, T]`` of ``dtype``: ``2 B H T^2 * itemsize`` bytes."""
    return 2 * batch * heads * seq_len * seq_len * torch.empty((), dtype=dtype).element_size()


def _variant(kind: str) -> ScoreFn:
    def fn(batch: int, heads: int, seq_len: int, dtype: torch.dtype) -> int:
        size = 4 if kind == "always4" else torch.empty((), dtype=dtype).element_size()
        matrices = 1 if kind == "one" else 2
        tt = seq_len if kind == "linear" else seq_len * seq_len
        h = 1 if kind == "no_heads" else heads
        bits = 8 if kind == "bits" else 1
        return matrices * batch * h * tt * size * bits
    return fn


_MISTAKES = [
    Mistake("only one T x T matrix is counted: the math path holds the scores Q K^T / sqrt(d) and the softmax "
            "probabilities (kept for the backward), two matrices of B H T^2 elements.", _variant("one")),
    Mistake("every element is counted as 4 bytes: use the dtype's size (bfloat16 and float16 take 2, float64 8), "
            "e.g. torch.empty((), dtype=dtype).element_size().", _variant("always4")),
    Mistake("the score matrix has T x T entries per head, not T: count seq_len * seq_len.", _variant("linear")),
    Mistake("the heads are left out: every head has its own T x T scores.", _variant("no_heads")),
    Mistake("the result is in bits: return bytes (element_size() is already in bytes).", _variant("bits")),
]


def _cases() -> list[Case]:
    return [
        Case("batch 4, 8 heads, T = 256, float32", (4, 8, 256, torch.float32)),
        Case("batch 2, 12 heads, T = 1024, bfloat16 (2 bytes)", (2, 12, 1024, torch.bfloat16)),
        Case("batch 3, 4 heads, T = 64, float16", (3, 4, 64, torch.float16)),
        Case("batch 2, 3 heads, T = 5, float64", (2, 3, 5, torch.float64)),
        Case("T = 1 (one token: a 1 x 1 score per head)", (5, 7, 1, torch.float32)),
        Case("one head and a batch of one", (1, 1, 33, torch.float32)),
        Case("T = 131072 (a long context: the ints are large)", (1, 32, 131072, torch.bfloat16)),
    ]


def _is_int(case: Case, out: Any, rerun: Any) -> str | None:
    if not isinstance(out, int) or isinstance(out, bool):
        return f"the result must be a Python int (a number of bytes), got {type(out).__name__}"
    return None


def _quadratic(case: Case, out: Any, rerun: Any) -> str | None:
    b, h, t, dtype = case.args
    doubled = rerun(b, h, 2 * t, dtype)
    if doubled != 4 * out:
        return f"twice the sequence length should need 4 times the memory: got {out} for T = {t}, {doubled} for {2 * t}"
    return None


_SPEC = Spec(reference=reference_score_bytes, cases=_cases, mistakes=_MISTAKES,
             properties=[Property("'the result is an int'", _is_int), Property("'2T needs 4 times the bytes'",
                                                                               _quadratic)],
             part="number of bytes", arg_names=("batch", "heads", "seq_len", "dtype"))


def check_score_bytes(score_bytes: ScoreFn) -> ScoreFn:
    """Exercise 9.1: ``score_bytes(batch, heads, seq_len, dtype) -> int``; returns the function the hour's memory
    table compares with (yours once it passes)."""
    return check(SCORE_BYTES, _SPEC, (score_bytes,), (reference_score_bytes,),
                 "the bytes match on {cases} shapes (float32, bfloat16, float16, float64, T = 1, one head, T = 131072)")
