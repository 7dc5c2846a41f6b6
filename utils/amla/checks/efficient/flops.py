"""The self-check of Exercise 9.2: training FLOPs per token of a GPT (what it checks: the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.gpt import GPTConfig, flops_per_token

TRAIN_FLOPS = exercise(9, "9.2", "Training FLOPs per token", "train_flops_per_token")

FlopsFn = Callable[[int, int, int, int], float]


def reference_train_flops_per_token(n_params: int, n_layer: int, seq_len: int, n_embd: int) -> float:
    """``6 N + 12 L T C``: the course's ``amla.transformers.gpt.flops_per_token``."""
    config = GPTConfig(vocab_size=1, n_layer=n_layer, n_embd=n_embd, n_head=1, block_size=seq_len)
    return flops_per_token(config, n_params, seq_len)


def _variant(kind: str) -> FlopsFn:
    def fn(n_params: int, n_layer: int, seq_len: int, n_embd: int) -> float:
        weights = (2.0 if kind == "forward" else 6.0) * n_params
        t = seq_len * seq_len if kind == "t2" else seq_len
        attn = {"no_attn": 0.0, "six": 6.0}.get(kind, 12.0) * n_layer * t * n_embd
        return weights + attn
    return fn


_MISTAKES = [
    Mistake("only the forward pass is counted (2N): training adds the backward, about twice the forward, so 6N.",
            _variant("forward")),
    Mistake("the attention term is missing: add 12 L T C (scores Q K^T and the weighted sum of V, forward and "
            "backward), which the weights' 6N does not include.", _variant("no_attn")),
    Mistake("the attention term is 6 L T C: it is 12 L T C (2 matmuls of 2 T C FLOPs per token and layer, times 3 "
            "for forward and backward).", _variant("six")),
    Mistake("the attention term uses T^2: per token it is linear in T (each token attends to T others).",
            _variant("t2")),
]


def _cases() -> list[Case]:
    return [
        Case("GPT-2 small (124M parameters, 12 layers, T = 1024, C = 768)", (124_000_000, 12, 1024, 768)),
        Case("a tiny GPT (200k parameters, 4 layers, T = 64, C = 64)", (200_000, 4, 64, 64)),
        Case("T = 1", (10_000, 2, 1, 32)),
        Case("one layer", (50_000, 1, 128, 48)),
    ]


def _is_float(case: Case, out: Any, rerun: Any) -> str | None:
    if not isinstance(out, float):
        return f"the result must be a Python float, got {type(out).__name__}"
    return None


def _above_6n(case: Case, out: Any, rerun: Any) -> str | None:
    if not out > 6 * case.args[0]:
        return f"training costs more than 6N = {6 * case.args[0]:.4g} FLOPs per token, got {out:.4g}"
    return None


_SPEC = Spec(reference=reference_train_flops_per_token, cases=_cases, mistakes=_MISTAKES,
             properties=[Property("'the result is a float'", _is_float), Property("'more than 6N'", _above_6n)],
             part="FLOPs per token", arg_names=("n_params", "n_layer", "seq_len", "n_embd"))


def check_train_flops_per_token(train_flops_per_token: FlopsFn) -> FlopsFn:
    """Exercise 9.2: ``train_flops_per_token(n_params, n_layer, seq_len, n_embd) -> float``; returns the function
    the hour's MFU uses (yours once it passes)."""
    return check(TRAIN_FLOPS, _SPEC, (train_flops_per_token,), (reference_train_flops_per_token,),
                 "the FLOPs match on {cases} GPT shapes (GPT-2 small, a tiny GPT, T = 1, one layer)")
