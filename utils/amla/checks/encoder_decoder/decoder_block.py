"""The self-check of Exercise 5.1: the decoder block, its mask included (what it checks: the package docstring)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.toolkit.errors import shape_text
from amla.transformers.encoder_decoder import decoder_block
from amla.transformers.nn import TransformerBlock
from amla.transformers.tasks import BOS_ID, EOS_ID, PAD_ID

BLOCK = exercise(5, "5.1", "The decoder block", "decoder_block")

Args = tuple[TransformerBlock, Tensor, Tensor, Tensor, Tensor]


def _block_variant(kind: str) -> Callable[..., Tensor]:
    """decoder_block with one typical bug switched on (kind)."""

    def forward(block: TransformerBlock, x: Tensor, memory: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        t = tgt_in.shape[1]
        ones = torch.ones(t, t, dtype=torch.bool)
        causal = {"not_causal": ones, "triu": ones.triu()}.get(kind, ones.tril())
        real = tgt_in > EOS_ID if kind == "special_as_padding" else tgt_in != PAD_ID
        if kind == "no_tgt_padding":
            mask = causal.expand(tgt_in.shape[0], 1, t, t)
        elif kind == "padding_on_queries":
            mask = causal & real[:, None, :, None]
        else:
            mask = causal & real[:, None, None, :]
        src = None if kind == "no_src_mask" else src_mask
        drop = (lambda y: y) if kind == "no_dropout" else block.drop

        def self_branch(x: Tensor) -> Tensor:
            return x + drop(block.self_attn(block.norm1(x), None, mask)[0])

        def cross_branch(x: Tensor) -> Tensor:
            h = block.norm1(x) if kind == "same_norm" else block.norm_cross(x)
            kv = None if kind == "cross_on_x" else (block.norm_cross(memory) if kind == "memory_normed" else memory)
            y = block.cross_attn(h, kv, None if kv is None else src)[0]
            return (h if kind == "residual_normed" else x) + drop(y)

        if kind == "post_norm":
            x = block.norm1(x + drop(block.self_attn(x, None, mask)[0]))
            x = block.norm_cross(x + drop(block.cross_attn(x, memory, src_mask)[0]))
            return block.norm2(x + drop(block.ff(x)))
        if kind == "cross_first":
            x = self_branch(cross_branch(x))
        elif kind == "no_cross":
            x = self_branch(x)
        else:
            x = cross_branch(self_branch(x))
        return x + drop(block.ff(block.norm2(x)))

    return forward


_MISTAKES = [
    Mistake("the self-attention is not causal: position i also sees the target tokens after it, which it must "
            "predict. The mask allows key j only where j <= i (a lower triangle, torch.ones(T, T).tril()).",
            _block_variant("not_causal")),
    Mistake("the causal mask is the upper triangle: key j must satisfy j <= i, which is .tril(), not .triu().",
            _block_variant("triu")),
    Mistake("the target's padding is not masked: the self-attention mask is causal only, so a padded row attends "
            "to padded keys. And it with (tgt_in != PAD_ID) over the keys, shaped [B, 1, 1, T].",
            _block_variant("no_tgt_padding")),
    Mistake("the padding mask hides padded queries (rows) instead of padded keys (columns): shape it [B, 1, 1, T], "
            "so that it broadcasts over the query positions.", _block_variant("padding_on_queries")),
    Mistake("<bos> and <eos> are treated as padding; only PAD_ID is padding (test tgt_in != PAD_ID).",
            _block_variant("special_as_padding")),
    Mistake("the cross-attention ignores the source mask: pass src_mask, so that no query attends a padded source "
            "token.", _block_variant("no_src_mask")),
    Mistake("the cross-attention attends to x, not to the encoder's memory: the queries come from the decoder, the "
            "keys and values from memory: block.cross_attn(block.norm_cross(x), memory, src_mask).",
            _block_variant("cross_on_x")),
    Mistake("the memory is normalised again with block.norm_cross: only the decoder's x goes through the norm; "
            "the encoder already normalised its output.", _block_variant("memory_normed")),
    Mistake("the cross-attention branch is missing: a decoder block has three branches, self-attention, "
            "cross-attention on the memory, feed-forward.", _block_variant("no_cross")),
    Mistake("the cross-attention comes before the self-attention: the order is masked self-attention, then "
            "cross-attention, then the feed-forward net.", _block_variant("cross_first")),
    Mistake("the cross-attention branch normalises with block.norm1: it has its own LayerNorm, block.norm_cross.",
            _block_variant("same_norm")),
    Mistake("the residual adds the normalised input: add each branch to the un-normalised x, "
            "x = x + drop(f(norm(x))).", _block_variant("residual_normed")),
    Mistake("the block is post-norm, norm(x + f(x)); the course's blocks are pre-norm: x = x + drop(f(norm(x))).",
            _block_variant("post_norm")),
    Mistake("the dropout on the branches is missing: each branch's output goes through block.drop before it is "
            "added to x.", _block_variant("no_dropout")),
]


def _block(seed: int, d: int = 8, heads: int = 2, *, dropout: float = 0.0, dtype: torch.dtype = torch.float32,
           train: bool = False) -> TransformerBlock:
    """A decoder block with random LayerNorm weights (so that using the wrong one shows)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = TransformerBlock(d, heads, 2 * d, dropout, cross_attention=True)
        with torch.no_grad():
            for p in block.parameters():
                p.normal_(0.0, 0.5)
            for norm in (block.norm1, block.norm_cross, block.norm2):
                norm.weight.uniform_(0.5, 1.5)
    return block.to(dtype).train(train)


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(51)

    def x(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype) * 2 + 0.5

    def ids(rows: list[list[int]]) -> Tensor:
        return torch.tensor(rows)

    def src_mask(rows: list[list[int]]) -> Tensor:
        return torch.tensor(rows, dtype=torch.bool).unsqueeze(1)

    pad, bos, eos = PAD_ID, BOS_ID, EOS_ID
    rows = [
        ("targets and sources padded on the right", _block(1), x(2, 5, 8), x(2, 4, 8),
         src_mask([[1, 1, 1, 0], [1, 1, 1, 1]]), ids([[bos, 5, 6, eos, pad], [bos, 7, 8, 9, 10]])),
        ("4 heads, longer sources than targets", _block(2, 12, 4), x(2, 3, 12), x(2, 6, 12),
         src_mask([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]), ids([[bos, 4, eos], [bos, 3, pad]])),
        ("a batch of one, no padding", _block(3), x(1, 4, 8), x(1, 3, 8), src_mask([[1, 1, 1]]),
         ids([[bos, 3, 4, 5]])),
        ("a single target position (T = 1)", _block(4), x(2, 1, 8), x(2, 3, 8), src_mask([[1, 1, 0], [1, 1, 1]]),
         ids([[bos], [bos]])),
        ("a row that is <bos> and padding only, and <eos> in the middle of a row", _block(5), x(2, 5, 8),
         x(2, 3, 8), src_mask([[1, 1, 1], [1, 0, 0]]), ids([[bos, pad, pad, pad, pad], [bos, eos, 4, eos, pad]])),
        ("one head", _block(6, 8, 1), x(2, 4, 8), x(2, 5, 8), src_mask([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]),
         ids([[bos, 3, 3, eos], [bos, 9, pad, pad]])),
        ("a float64 block", _block(7, dtype=torch.float64), x(2, 4, 8, dtype=torch.float64),
         x(2, 3, 8, dtype=torch.float64), src_mask([[1, 1, 0], [1, 1, 1]]), ids([[bos, 5, eos, pad], [bos, 6, 7, 8]])),
        ("a block in training mode with dropout 0.3 (the same random masks as the reference, drawn in the same "
         "order: self-attention, cross-attention, feed-forward)", _block(8, dropout=0.3, train=True), x(2, 4, 8),
         x(2, 3, 8), src_mask([[1, 1, 1], [1, 1, 0]]), ids([[bos, 5, 6, eos], [bos, 7, eos, pad]])),
    ]
    return [Case(f"{label} (x {shape_text(xs)}, memory {shape_text(mem)}, tgt_in {shape_text(tgt)})",
                 (block, xs, mem, sm, tgt)) for label, block, xs, mem, sm, tgt in rows]


def _seeded_call(fn: Callable[..., Tensor], *args: Any) -> Tensor:
    """Every call starts from the same random state, so dropout draws the same masks for the same calls."""
    torch.manual_seed(505)
    return fn(*args)


def _causal(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x, memory, src_mask, tgt_in = case.args
    if x.size(1) < 2 or block.training:
        return None
    changed = x.clone()
    changed[:, -1] += torch.linspace(-3.0, 3.0, x.size(-1), dtype=x.dtype)  # not a constant: LayerNorm removes those
    again = rerun(block, changed, memory, src_mask, tgt_in)
    if not torch.allclose(again[:, :-1].detach().double(), out[:, :-1].detach().double(), atol=1e-5):
        return "changing the last target position of x changed the outputs of earlier positions"
    return None


def _source_padding(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x, memory, src_mask, tgt_in = case.args
    hidden = ~src_mask[:, 0]
    if block.training or not bool(hidden.any()):
        return None
    changed = memory.clone()
    changed[hidden] = changed[hidden] * -3.0 + 1.0
    again = rerun(block, x, changed, src_mask, tgt_in)
    if not torch.allclose(again.detach().double(), out.detach().double(), atol=1e-5):
        return "changing the memory at padded source positions (src_mask False) changed the output"
    return None


def _identity(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x, memory, src_mask, tgt_in = case.args
    if block.training:
        return None
    silent = copy.deepcopy(block)
    with torch.no_grad():
        for linear in (silent.self_attn.out_proj, silent.cross_attn.out_proj, silent.ff.net[-1]):
            linear.weight.zero_()
            if linear.bias is not None:
                linear.bias.zero_()
    again = rerun(silent, x, memory, src_mask, tgt_in)
    if not torch.allclose(again.detach().double(), x.double(), atol=1e-5):
        return ("with the output layers of both attentions and of the feed-forward net set to zero (every branch "
                "outputs 0) the block did not return x: the residual path of a pre-norm block is x + branch")
    return None


_PROPERTIES = [
    Property("'the output at a target position does not depend on later positions' (causality)", _causal),
    Property("'padded source positions do not matter'", _source_padding),
    Property("'a block whose branches output 0 is the identity'", _identity),
]


def _own_code(source: str) -> str | None:
    if re.search(r"\bblock\s*\(|\.forward\s*\(|TransformerDecoderLayer|decoder_block\s*\(|\bdecoder_mask\s*\(",
                 source):
        return ("write the block from block.norm1, block.self_attn, block.norm_cross, block.cross_attn, block.norm2, "
                "block.ff and block.drop, and build the mask yourself: calling the block (block(...)), the course's "
                "decoder_mask or a library layer runs the course's code, not yours.")
    return None


# `mutable` stays empty: the block's parameters and its train/eval flag must come back unchanged.
_SPEC = Spec(reference=decoder_block, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES, invoke=_seeded_call,
             differentiable=True, part="output", arg_names=("block", "x", "memory", "src_mask", "tgt_in"),
             source_rules=[_own_code])


def check_decoder_block(decoder_block_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 5.1: ``decoder_block(block, x, memory, src_mask, tgt_in) -> x``, the pre-norm decoder block with its
    causal and padding mask; returns the function every decoder block of the hour runs (yours once it passes)."""
    return check(BLOCK, _SPEC, (decoder_block_fn,), (decoder_block,),
                 "outputs and gradients (x, memory and every parameter of the block) match on {cases} cases (padding "
                 "on both sides, 1 to 4 heads, a batch of one, one position, a row of padding only, float64, dropout "
                 "in training mode), and the block is left as it was")
