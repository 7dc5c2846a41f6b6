"""The self-check of Exercise 8.2: attention rollout (what it checks: the package doc)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.vit import attention_rollout

ROLLOUT = exercise(8, "8.2", "Attention rollout", "attention_rollout")

RolloutFn = Callable[[Sequence[Tensor]], Tensor]


def reference_rollout(attentions: Sequence[Tensor]) -> Tensor:
    """Heads averaged, ``A + I`` with its rows re-normalised, layers multiplied last on the left."""
    return attention_rollout(attentions, residual=0.5)


def _variant(kind: str) -> RolloutFn:
    def fn(attentions: Sequence[Tensor]) -> Tensor:
        layers = attentions[-1:] if kind == "last_only" else attentions
        out = None
        for a in layers:
            a = a.amax(1) if kind == "max_heads" else a.mean(1)
            eye = torch.eye(a.shape[-1], dtype=a.dtype)
            if kind != "no_identity":
                a = a + eye
            if kind == "no_keepdim":
                a = a / a.sum(-1)
            elif kind != "no_renorm":
                a = a / a.sum(-1, keepdim=True)
            out = a if out is None else (out @ a if kind == "wrong_order" else a @ out)
        return out
    return fn


_MISTAKES = [
    Mistake("the rows were divided by a.sum(-1) without keepdim: the sums have shape [B, T] and broadcast along "
            "the last axis, so entry (i, j) is divided by row j's sum instead of row i's. Use "
            "a / a.sum(-1, keepdim=True).", _variant("no_keepdim")),
    Mistake("the identity is not added: the residual connection carries each token's own value past every "
            "attention layer, which rollout models as A + I (then re-normalised).", _variant("no_identity")),
    Mistake("the identity is added but the rows are not re-normalised: each row of A + I sums to 2 (more with "
            "several layers), so divide every row by its sum (keepdim=True) before multiplying.",
            _variant("no_renorm")),
    Mistake("the layers are multiplied in the wrong order: the first layer acts first, so the rollout is "
            "R = Â_L ... Â_2 Â_1 (each new layer on the left: out = a @ out).", _variant("wrong_order")),
    Mistake("the heads are fused with the maximum: this exercise averages them, a.mean(1).", _variant("max_heads")),
    Mistake("only the last layer is used: rollout multiplies the (re-normalised) attention of every layer.",
            _variant("last_only")),
]


def _softmax(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.softmax(2.0 * torch.randn(*shape, generator=g, dtype=dtype), -1)


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(82)
    layers = [_softmax(g, 2, 4, 5, 5) for _ in range(3)]
    # dropout p = 0.3 as nn.Dropout applies it in training mode: entries zeroed, the rest scaled by 1 / 0.7
    dropped = [_softmax(g, 2, 2, 5, 5) * (torch.rand(2, 2, 5, 5, generator=g) > 0.3) / 0.7 for _ in range(2)]
    padded = []
    for _ in range(2):  # the last two tokens are padding: their query rows are zero (nothing was attended)
        a = _softmax(g, 2, 2, 6, 6)
        a[:, :, :, 4:] = 0.0
        a = a / a.sum(-1, keepdim=True)
        a[:, :, 4:, :] = 0.0
        padded.append(a)
    return [
        Case("3 layers of softmax attention, each [2, 4, 5, 5] (batch 2, 4 heads, 5 tokens)", (layers,)),
        Case("one layer [2, 4, 5, 5]", ([layers[0].clone()],)),
        Case("4 layers of [1, 3, 7, 7] (a batch of one)", ([_softmax(g, 1, 3, 7, 7) for _ in range(4)],)),
        Case("2 layers with one head, [3, 1, 4, 4]", ([_softmax(g, 3, 1, 4, 4) for _ in range(2)],)),
        Case("one token (T = 1, the class token alone): 2 layers of [2, 2, 1, 1]",
             ([torch.ones(2, 2, 1, 1) for _ in range(2)],)),
        Case("float64 attention: 2 layers of [2, 2, 5, 5]",
             ([_softmax(g, 2, 2, 5, 5, dtype=torch.float64) for _ in range(2)],)),
        Case("attention after dropout in training mode (rows no longer sum to 1): 2 layers of [2, 2, 5, 5]",
             (dropped,)),
        Case("padded queries whose rows are all zero (the last 2 of 6 tokens): 2 layers of [2, 2, 6, 6]", (padded,)),
    ]


def _rows_sum_to_one(case: Case, out: Tensor, rerun: Any) -> str | None:
    sums = out.detach().sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
        worst = (sums - 1).abs().argmax().item()
        return f"every row of the rollout should sum to 1, but one sums to {sums.flatten()[worst].item():.4g}"
    return None


def _identity(case: Case, out: Tensor, rerun: Any) -> str | None:
    attentions = case.args[0]
    b, h, t, _ = attentions[0].shape
    eye = torch.eye(t, dtype=attentions[0].dtype).expand(b, h, t, t).clone()
    got = rerun([eye.clone() for _ in attentions])
    if not isinstance(got, Tensor) or not torch.allclose(got.detach(), eye[:, 0], atol=1e-6):
        return "attention where every token attends only to itself (identity matrices) should give the identity"
    return None


def _non_negative(case: Case, out: Tensor, rerun: Any) -> str | None:
    if (out.detach() < -1e-7).any():
        return "the rollout has negative entries; products of non-negative matrices are non-negative"
    return None


_SPEC = Spec(reference=reference_rollout, cases=_cases, mistakes=_MISTAKES,
             properties=[Property("'every row sums to 1'", _rows_sum_to_one),
                         Property("'identity attention gives the identity'", _identity),
                         Property("'no negative entries'", _non_negative)],
             arg_names=("attentions",))


def check_attention_rollout(attention_rollout_fn: RolloutFn) -> RolloutFn:
    """Exercise 8.2: ``attention_rollout(attentions: list of [B, H, T, T]) -> [B, T, T]``; returns the function
    the hour draws the rollout maps with (yours once it passes)."""
    return check(ROLLOUT, _SPEC, (attention_rollout_fn,), (reference_rollout,),
                 "values and shapes match on {cases} cases (1-4 layers, one head, one token, a batch of one, "
                 "float64, rows that do not sum to 1 after dropout or padding)")
