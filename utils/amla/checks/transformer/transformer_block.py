"""The self-check of Exercise 4.3: the residual block, pre-norm and post-norm
(what it checks: the package docstring)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.transformer._common import _seeded
from amla.toolkit.errors import shape_text
from amla.transformers.attention import causal_mask, padding_mask
from amla.transformers.nn import TransformerBlock, block_forward

BLOCK = exercise(4, "4.3", "The residual block, pre-norm and post-norm", "block_forward")


def _block_variant(kind: str = "right") -> Callable[..., Tensor]:
    def forward(block: TransformerBlock, x: Tensor, mask: Tensor | None = None) -> Tensor:
        def attn(h: Tensor) -> Tensor:
            return block.self_attn(h, None, None if kind == "no_mask" else mask)[0]

        pre = block.norm_first != (kind == "swapped")
        norm2 = block.norm1 if kind == "same_norm" else block.norm2
        if pre:
            h = block.norm1(x)
            base = h if kind == "residual_normed" else x
            x = attn(h) if kind == "no_attn_residual" else base + attn(h)
            h = norm2(x)
            base = h if kind == "residual_normed" else x
            return block.ff(h) if kind == "no_ff_residual" else base + block.ff(h)
        if kind == "norm_branch":
            x = x + block.norm1(attn(x))
            return x + norm2(block.ff(x))
        x = block.norm1(x + attn(x)) if kind != "no_attn_residual" else block.norm1(attn(x))
        return norm2(x + block.ff(x)) if kind != "no_ff_residual" else norm2(block.ff(x))

    return forward


_BLOCK_MISTAKES = [
    Mistake("pre-norm and post-norm are swapped: with block.norm_first (pre-norm) normalise the input of each "
            "branch, x + f(norm(x)); otherwise (post-norm) normalise the sum, norm(x + f(x)).",
            _block_variant("swapped")),
    Mistake("in pre-norm the residual adds the normalised input: it must add the branch to the un-normalised "
            "x, x = x + attn(norm1(x)), so the residual path stays an identity.", _block_variant("residual_normed")),
    Mistake("the residual connection around the attention is missing: x = x + attention(...).",
            _block_variant("no_attn_residual")),
    Mistake("the residual connection around the feed-forward net is missing: x = x + ff(...).",
            _block_variant("no_ff_residual")),
    Mistake("the same LayerNorm (norm1) is used for both branches: the feed-forward branch has its own, norm2.",
            _block_variant("same_norm")),
    Mistake("in post-norm the LayerNorm is applied to the branch output before the residual sum, x + norm(f(x)); "
            "post-norm normalises the sum, norm(x + f(x)).", _block_variant("norm_branch")),
    Mistake("the mask is not passed on to the attention: block.self_attn(h, mask=mask), so that no position "
            "attends to padding.", _block_variant("no_mask")),
]


def _block(norm_first: bool, seed: int, dtype: torch.dtype = torch.float32) -> TransformerBlock:
    """A block in eval mode whose LayerNorms have random weights, so that using the wrong one shows."""

    def make() -> TransformerBlock:
        block = TransformerBlock(8, 2, 16, norm_first=norm_first).eval()
        with torch.no_grad():
            for norm in (block.norm1, block.norm2):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0.0, 0.3)
        return block.to(dtype)

    return _seeded(seed, make)


def _block_cases() -> list[Case]:
    g = torch.Generator().manual_seed(44)

    def x(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype) * 2 + 1

    rows: list[tuple[str, tuple[Any, ...]]] = [
        ("a pre-norm block and a padding mask (lengths 5 and 3)", (_block(True, 1), x(2, 5, 8),
                                                                   padding_mask([5, 3], 5))),
        ("a post-norm block and a padding mask (lengths 5 and 3)", (_block(False, 2), x(2, 5, 8),
                                                                    padding_mask([5, 3], 5))),
        ("a pre-norm block and mask=None", (_block(True, 3), x(2, 5, 8), None)),
        ("a post-norm block and a causal mask", (_block(False, 4), x(2, 5, 8), causal_mask(5))),
        ("a batch of one, a pre-norm block and a padding mask (length 4 of 6)",
         (_block(True, 5), x(1, 6, 8), padding_mask([4], 6))),
        ("a single position (T = 1) and a post-norm block", (_block(False, 6), x(2, 1, 8), None)),
        ("a float64 pre-norm block and a padding mask (lengths 5 and 2)",
         (_block(True, 7, torch.float64), x(2, 5, 8, dtype=torch.float64), padding_mask([5, 2], 5))),
        ("a float64 post-norm block", (_block(False, 8, torch.float64), x(2, 4, 8, dtype=torch.float64), None)),
    ]
    cases = [Case(f"{label} (x {shape_text(args[1])}" + (f", mask {shape_text(args[2])})" if args[2] is not None else ")"),
                  args) for label, args in rows]
    args = (_block(False, 9), x(2, 5, 8))
    cases.append(Case(f"no mask argument at all: block_forward(block, x) (post-norm, x {shape_text(args[1])})", args))
    return cases


def _block_identity(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x = case.args[:2]
    if not block.norm_first:
        return None
    silent = copy.deepcopy(block)
    with torch.no_grad():
        for linear in (silent.self_attn.out_proj, silent.ff.net[-1]):
            linear.weight.zero_()
            linear.bias.zero_()
    again = rerun(silent, x, *case.args[2:])
    if not torch.allclose(again.detach().double(), x.double(), atol=1e-5):
        return ("with the last layers of the attention and the feed-forward net set to zero (both branches output "
                "0) the block did not return x: the residual path of a pre-norm block is x + branch")
    return None


def _block_padding(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x = case.args[:2]
    mask = case.args[2] if len(case.args) > 2 else None
    if mask is None or mask.dim() != 3 or mask.shape[1] != 1:
        return None  # a padding mask [B, 1, T] only
    padded = ~mask[:, 0]  # [B, T]
    if not bool(padded.any()):
        return None
    changed = x.clone()
    changed[padded] += torch.linspace(-5.0, 5.0, x.size(-1), dtype=x.dtype)  # not a constant: LayerNorm removes one
    again = rerun(block, changed, mask)
    if not torch.allclose(again.detach()[~padded], out.detach()[~padded], atol=1e-4):
        return "changing x at the padded positions changed the outputs of the real positions"
    return None


_BLOCK_PROPERTIES = [
    Property("'a pre-norm block whose attention and feed-forward net output 0 is the identity'", _block_identity),
    Property("'padded positions do not change the outputs of the other positions'", _block_padding),
]


def _block_own_code(source: str) -> str | None:
    if re.search(r"\bblock\s*\(|\bblock\.forward\s*\(|TransformerEncoderLayer", source):
        return ("write the block from block.norm1, block.self_attn, block.norm2 and block.ff: calling the block "
                "itself (block(...)) or a library layer runs the course's code, not yours.")
    return None


# `mutable` stays empty: the block's parameters and its train/eval flag must come back unchanged.
_BLOCK_SPEC = Spec(reference=block_forward, cases=_block_cases, mistakes=_BLOCK_MISTAKES,
                   properties=_BLOCK_PROPERTIES, differentiable=True, part="output",
                   arg_names=("block", "x", "mask"), source_rules=[_block_own_code])


def check_transformer_block(block_forward_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 4.3: ``block_forward(block, x, mask=None) -> x`` for pre-norm and post-norm blocks; returns the
    function the rest of the hour uses (yours once it passes)."""
    return check(BLOCK, _BLOCK_SPEC, (block_forward_fn,), (block_forward,),
                 "outputs and gradients (x and every parameter of the block) match on 9 cases (pre-norm and "
                 "post-norm, padding and causal masks, a batch of one, one position, float64, no mask argument)")
