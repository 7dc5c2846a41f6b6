"""The self-check of Exercise 6.2: causal self-attention and the GPT block (what it checks: the package docstring)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.toolkit.errors import shape_text
from amla.transformers.gpt import Block, GPTConfig, gpt_block

GPT_BLOCK = exercise(6, "6.2", "Causal self-attention and the GPT block", "gpt_block")


def _block_variant(kind: str) -> Callable[[Block, Tensor], Tensor]:
    """gpt_block with one typical bug switched on (kind)."""

    def forward(block: Block, x: Tensor) -> Tensor:
        B, T, C = x.shape
        attn, H = block.attn, block.attn.n_head
        hd = C // H
        h = block.ln1(x)
        q, k, v = attn.qkv(h).split(C, dim=2)
        if kind == "qkv_order":
            k, q = q, k

        def split(t: Tensor) -> Tensor:
            if kind == "split_no_transpose":
                return t.reshape(B, H, T, hd)
            return t.view(B, T, H, hd).transpose(1, 2)

        q, k, v = split(q), split(k), split(v)
        if kind == "explicit_no_scale":
            scores = q @ k.transpose(-2, -1)
            scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            y = scores.softmax(-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=kind != "not_causal")
        y = y.reshape(B, T, C) if kind == "merge_no_transpose" else y.transpose(1, 2).reshape(B, T, C)
        a = y if kind == "no_proj" else attn.proj(y)
        if kind != "no_resid_drop":
            a = attn.resid_drop(a)
        base = h if kind == "residual_normed" else x
        x = base + a
        norm2 = block.ln1 if kind == "same_norm" else block.ln2
        h2 = norm2(x)
        base = h2 if kind == "residual_normed" else x
        return base + block.mlp(h2)

    def post_norm(block: Block, x: Tensor) -> Tensor:  # norm(x + f(x)), each branch reading the raw x
        B, T, C = x.shape
        q, k, v = block.attn.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, block.attn.n_head, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = block.ln1(x + block.attn.resid_drop(block.attn.proj(y)))
        return block.ln2(x + block.mlp(x))

    return post_norm if kind == "post_norm" else forward


_BLOCK_MISTAKES = [
    Mistake("the attention is not causal: every position also sees the later ones. Pass is_causal=True to "
            "F.scaled_dot_product_attention (or mask the scores above the diagonal with -inf before the softmax).",
            _block_variant("not_causal")),
    Mistake("q and k are swapped: the fused projection's output splits, in this order, into q, k, v "
            "(block.attn.qkv(h).split(C, dim=2)).", _block_variant("qkv_order")),
    Mistake("the heads are made by viewing [B, T, C] straight as [B, H, T, hd], which mixes positions into the "
            "heads: view as [B, T, H, hd], then transpose(1, 2) (split_heads does this).",
            _block_variant("split_no_transpose")),
    Mistake("the heads are merged back without moving H behind T: [B, H, T, hd] -> transpose(1, 2) -> "
            "[B, T, H, hd] -> reshape to [B, T, C] (merge_heads does this).", _block_variant("merge_no_transpose")),
    Mistake("the scores are not divided by sqrt(head_dim) before the softmax (F.scaled_dot_product_attention "
            "does it for you).", _block_variant("explicit_no_scale")),
    Mistake("the attention's output projection block.attn.proj is missing: the merged heads go through it before "
            "they are added to x.", _block_variant("no_proj")),
    Mistake("the dropout after the attention is missing: add block.attn.resid_drop(block.attn.proj(...)) to x "
            "(block.mlp applies its own).", _block_variant("no_resid_drop")),
    Mistake("the block is post-norm, norm(x + f(x)); a GPT block is pre-norm: x = x + attn(ln1(x)), then "
            "x + mlp(ln2(x)).", _block_variant("post_norm")),
    Mistake("the residual adds the normalised input: add each branch to the un-normalised x, "
            "x = x + attn(ln1(x)), so the residual path stays an identity.", _block_variant("residual_normed")),
    Mistake("ln1 is used for both branches: the MLP branch has its own LayerNorm, block.ln2.",
            _block_variant("same_norm")),
]


def _block(seed: int, n_embd: int = 8, n_head: int = 2, *, bias: bool = False, dropout: float = 0.0,
           dtype: torch.dtype = torch.float32, train: bool = False) -> Block:
    """A GPT block whose LayerNorms have random weights (so that using the wrong one shows) and whose projections
    are not GPT-2's small ones (so that a missing part changes the output by more than the tolerance)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = Block(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=n_head, n_embd=n_embd, bias=bias,
                                dropout=dropout))
        with torch.no_grad():
            for p in block.parameters():
                p.normal_(0.0, 0.5)
            for norm in (block.ln1, block.ln2):
                norm.weight.uniform_(0.5, 1.5)
    return block.to(dtype).train(train)


def _block_cases() -> list[Case]:
    g = torch.Generator().manual_seed(62)

    def x(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype) * 2 + 0.5

    rows: list[tuple[str, Block, Tensor]] = [
        ("a block of 2 heads of size 4", _block(1), x(2, 5, 8)),
        ("a block of 4 heads of size 3, with biases", _block(2, 12, 4, bias=True), x(2, 6, 12)),
        ("a batch of one", _block(3), x(1, 7, 8)),
        ("a single position (T = 1)", _block(4), x(2, 1, 8)),
        ("one head of size 8", _block(5, 8, 1), x(2, 5, 8)),
        ("8 heads of size 1", _block(6, 8, 8), x(2, 4, 8)),
        ("a float64 block", _block(7, dtype=torch.float64), x(2, 5, 8, dtype=torch.float64)),
        ("a block in training mode with dropout 0.3 (the same random masks as the reference, drawn in the same "
         "order: resid_drop, then the MLP's)", _block(8, dropout=0.3, train=True), x(2, 5, 8)),
    ]
    return [Case(f"{label} (x {shape_text(inp)})", (block, inp)) for label, block, inp in rows]


def _seeded_call(fn: Callable[[Block, Tensor], Tensor], block: Block, x: Tensor) -> Tensor:
    """Every call starts from the same random state, so dropout draws the same masks for the same calls."""
    torch.manual_seed(606)
    return fn(block, x)


def _causal(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x = case.args
    T = x.size(1)
    if T < 2 or block.training:
        return None
    changed = x.clone()
    changed[:, -1] += torch.linspace(-3.0, 3.0, x.size(-1), dtype=x.dtype)  # not a constant: LayerNorm would remove it
    again = rerun(block, changed)
    if not torch.allclose(again[:, :-1].detach().double(), out[:, :-1].detach().double(), atol=1e-5):
        return "changing the last position of x changed the outputs of earlier positions"
    return None


def _identity(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x = case.args
    if block.training:
        return None
    silent = copy.deepcopy(block)
    with torch.no_grad():
        for linear in (silent.attn.proj, silent.mlp.proj):
            linear.weight.zero_()
            if linear.bias is not None:
                linear.bias.zero_()
    again = rerun(silent, x)
    if not torch.allclose(again.detach().double(), x.double(), atol=1e-5):
        return ("with the output projections of the attention and of the MLP set to zero (both branches output 0) "
                "the block did not return x: the residual path of a pre-norm block is x + branch")
    return None


def _first_position(case: Case, out: Tensor, rerun: Any) -> str | None:
    """Position 0 attends to itself only: its attention output is attn.proj of its own value vector."""
    block, x = case.args
    if block.training:
        return None
    B, T, C = x.shape
    with torch.no_grad():
        v = block.attn.qkv(block.ln1(x[:, :1])).split(C, dim=2)[2]
        mid = x[:, :1] + block.attn.proj(v)
        want = mid + block.mlp(block.ln2(mid))
    if not torch.allclose(out[:, :1].detach().double(), want.double(), atol=1e-4, rtol=1e-4):
        return ("the first position, which can attend only to itself, should get its own value vector from the "
                "attention (its weight is 1), but it does not")
    return None


_BLOCK_PROPERTIES = [
    Property("'the output at a position does not depend on later positions' (causality)", _causal),
    Property("'a block whose attention and MLP output 0 is the identity'", _identity),
    Property("'the first position attends to itself alone'", _first_position),
]


def _own_code(source: str) -> str | None:
    if re.search(r"\bblock\s*\(|\.forward\s*\(|\bblock\.attn\s*\(|MultiheadAttention|TransformerDecoderLayer|"
                 r"TransformerEncoderLayer|gpt_block\s*\(", source):
        return ("write the block from block.ln1, block.attn.qkv, block.attn.proj, block.attn.resid_drop, block.ln2 and "
                "block.mlp: calling the block or its attention module (block(...), block.attn(...)) or a library "
                "layer runs the course's code, not yours.")
    return None


# `mutable` stays empty: the block's parameters and its train/eval flag must come back unchanged.
_BLOCK_SPEC = Spec(reference=gpt_block, cases=_block_cases, mistakes=_BLOCK_MISTAKES, properties=_BLOCK_PROPERTIES,
                   invoke=_seeded_call, differentiable=True, part="output", arg_names=("block", "x"),
                   source_rules=[_own_code])


def check_gpt_block(gpt_block_fn: Callable[[Block, Tensor], Tensor]) -> Callable[[Block, Tensor], Tensor]:
    """Exercise 6.2: ``gpt_block(block, x) -> x``, the pre-norm block with causal self-attention; returns the function
    every block of the hour's GPT runs (yours once it passes)."""
    return check(GPT_BLOCK, _BLOCK_SPEC, (gpt_block_fn,), (gpt_block,),
                 "outputs and gradients (x and every parameter of the block) match on {cases} cases (1 to 8 heads, "
                 "biases, a batch of one, one position, float64, dropout in training mode), and the block is left "
                 "as it was")
