"""The self-check of Exercise 4.2: the sinusoidal table (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.positions import sinusoidal_table

SINUSOIDAL = exercise(4, "4.2", "The sinusoidal table", "sinusoidal_encoding")


def _sinusoidal_variant(kind: str = "right") -> Callable[[int, int], Tensor]:
    def table(max_len: int, d_model: int) -> Tensor:
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]
        i = torch.arange(0, d_model, 2, dtype=torch.float64)  # 2i
        if kind == "i_not_2i":
            i = i / 2
        base = 1000.0 if kind == "base_1000" else 10000.0
        angle = pos / base ** (i / d_model) if kind != "no_d" else pos / base ** i
        if kind == "times":
            angle = pos * base ** (i / d_model)
        out = torch.zeros(max_len, d_model, dtype=torch.float64)
        first, second = (torch.cos, torch.sin) if kind == "swapped" else (torch.sin, torch.cos)
        if kind == "halves":
            out[:, : d_model // 2], out[:, d_model // 2 :] = torch.sin(angle), torch.cos(angle)
        else:
            out[:, 0::2], out[:, 1::2] = first(angle), second(angle)
        return out.float()

    return table


_SINUSOIDAL_MISTAKES = [
    Mistake("sin and cos are swapped: even features (0, 2, 4, ...) hold the sines, odd features the cosines.",
            _sinusoidal_variant("swapped")),
    Mistake("the sines fill the first half of the features and the cosines the second half; they alternate: "
            "PE[:, 0::2] = sin, PE[:, 1::2] = cos.", _sinusoidal_variant("halves")),
    Mistake("the exponent uses the pair index i instead of 2i: the frequency of pair i is 10000^(-2i/d_model) "
            "(torch.arange(0, d_model, 2) gives the 2i directly).", _sinusoidal_variant("i_not_2i")),
    Mistake("the exponent is not divided by d_model: 10000^(-2i) is 0 for all but the first pairs.",
            _sinusoidal_variant("no_d")),
    Mistake("the position is multiplied by 10000^(2i/d) instead of divided by it: the frequencies must "
            "decrease along the features.", _sinusoidal_variant("times")),
    Mistake("the base is 1000 instead of 10000.", _sinusoidal_variant("base_1000")),
]


def _sinusoidal_cases() -> list[Case]:
    return [
        Case("max_len=20, d_model=8", (20, 8)),
        Case("max_len=7, d_model=12", (7, 12)),
        Case("max_len=50, d_model=16", (50, 16)),
        Case("a single position: max_len=1, d_model=8", (1, 8)),
        Case("a single pair of features: max_len=10, d_model=2", (10, 2)),
        # float32 angles up to 511 carry rounding errors of a few 1e-5 into sin and cos
        Case("a long table: max_len=512, d_model=64", (512, 64), atol=5e-4),
    ]


def _sinusoidal_bounded(case: Case, out: Tensor, rerun: Any) -> str | None:
    if bool((out.abs() > 1 + 1e-6).any()):
        return f"a value is {out.abs().max().item():.4g} in absolute value; sines and cosines lie in [-1, 1]"
    return None


def _sinusoidal_first_row(case: Case, out: Tensor, rerun: Any) -> str | None:
    expected = torch.tensor([0.0, 1.0]).repeat(case.args[1] // 2)
    if not torch.allclose(out[0].double(), expected.double(), atol=1e-6):
        return f"PE[0] starts {[round(v, 3) for v in out[0, :6].tolist()]}: at position 0, sin(0) = 0 and cos(0) = 1"
    return None


def _sinusoidal_pairs(case: Case, out: Tensor, rerun: Any) -> str | None:
    norms = out[:, 0::2].double() ** 2 + out[:, 1::2].double() ** 2
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        return ("PE[p, 2i]^2 + PE[p, 2i + 1]^2 ranges from "
                f"{norms.min().item():.4g} to {norms.max().item():.4g}: feature 2i must be the sine and 2i + 1 the "
                "cosine of the same angle")
    return None


def _sinusoidal_prefix(case: Case, out: Tensor, rerun: Any) -> str | None:
    max_len, d_model = case.args
    longer = rerun(max_len + 7, d_model)
    if not torch.allclose(longer[:max_len].double(), out.double(), atol=1e-4):
        return (f"the first {max_len} rows of sinusoidal_encoding({max_len + 7}, {d_model}) differ from "
                f"sinusoidal_encoding({max_len}, {d_model}): a position's code must not depend on max_len")
    return None


_SINUSOIDAL_PROPERTIES = [
    Property("'every value lies in [-1, 1]'", _sinusoidal_bounded),
    Property("'PE[0] = (0, 1, 0, 1, ...)'", _sinusoidal_first_row),
    Property("'sin^2 + cos^2 = 1 for each pair of features (2i, 2i + 1)'", _sinusoidal_pairs),
    Property("'the rows of a shorter table are the first rows of a longer one'", _sinusoidal_prefix),
]


# No tensor goes in (two ints): an input changed in place and a wrong gradient cannot occur.
_SINUSOIDAL_SPEC = Spec(reference=sinusoidal_table, cases=_sinusoidal_cases, mistakes=_SINUSOIDAL_MISTAKES,
                        properties=_SINUSOIDAL_PROPERTIES, part="table", arg_names=("max_len", "d_model"))


def check_sinusoidal(sinusoidal_fn: Callable[[int, int], Tensor]) -> Callable[[int, int], Tensor]:
    """Exercise 4.2: ``sinusoidal_encoding(max_len, d_model) -> [max_len, d_model]`` (float32); returns the function
    the rest of the hour uses (yours once it passes)."""
    return check(SINUSOIDAL, _SINUSOIDAL_SPEC, (sinusoidal_fn,), (sinusoidal_table,),
                 "float32 tables match on {cases} cases (one position, one pair of features, "
                 "512 positions)")
