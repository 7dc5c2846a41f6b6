"""Self-checks of Hour 04 (multi-head attention and the Transformer block).

Splitting heads, the multi-head attention forward pass, the sinusoidal table and the residual block with
pre-norm and post-norm. Each check compares the student's function with the reference in ``amla.transformers.nn`` on
random inputs chosen so that the typical mistakes give different answers (``T != H != d_head``,
``d_model != d_head``, cross-attention with ``Tq != Tk``, asymmetric padding), and names the mistake whose
buggy variant reproduces the student's result.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from amla.transformers.attention import padding_mask
from amla.checks.core import Mistake, compare, fail
from amla.transformers.nn import MultiHeadAttention, TransformerBlock, merge_heads, sinusoidal_table, split_heads

__all__ = ["check_mha_forward", "check_sinusoidal", "check_split_heads", "check_transformer_block"]


def _seed_from(g: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=g))


# --- Exercise 4.1: splitting the heads -------------------------------------------------------------


def _split_variant(kind: str = "right") -> Callable[[Tensor, int], Tensor]:
    def split(x: Tensor, n_heads: int) -> Tensor:
        b, t, d = x.shape
        dh = d // n_heads
        if kind == "view_bhtd":  # reshape straight to [B, H, T, d_head]
            return x.reshape(b, n_heads, t, dh)
        if kind == "no_transpose":
            return x.reshape(b, t, n_heads, dh)
        if kind == "interleaved":  # head h gets features h, h + H, h + 2H, ...
            return x.reshape(b, t, dh, n_heads).permute(0, 3, 1, 2)
        if kind == "heads_is_dhead":  # n_heads used as the size of a head
            return x.reshape(b, t, d // n_heads, n_heads).transpose(1, 2)
        return x.reshape(b, t, n_heads, dh).transpose(1, 2)

    return split


def _split_inputs(g: torch.Generator) -> tuple[Any, ...]:
    return torch.randn(2, 5, 12, generator=g), 3  # T = 5, H = 3, d_head = 4: every mistake changes the result


def check_split_heads(split_heads_fn: Callable[[Tensor, int], Tensor]) -> None:
    """Exercise 4.1: ``split_heads(x [B, T, H*d_head], n_heads) -> [B, H, T, d_head]``."""
    mistakes = [
        Mistake("x was reshaped straight to [B, H, T, d_head]: the shape is right but each 'head' now holds a block "
                "of whole positions. View the last axis as (H, d_head) first, x.view(B, T, H, d_head), then swap T "
                "and H with .transpose(1, 2).", _split_variant("view_bhtd")),
        Mistake("the head axis was not moved in front of the positions: x.view(B, T, H, d_head) is [B, T, H, d_head]; "
                "add .transpose(1, 2) to get [B, H, T, d_head].", _split_variant("no_transpose")),
        Mistake("the features were split as (d_head, H) instead of (H, d_head), so head h gets the strided features "
                "h, h + H, h + 2H, ...; each head must own a contiguous block of d_head features: "
                "x.view(B, T, H, d_head).", _split_variant("interleaved")),
    ]
    name = "Exercise 4.1 (split heads)"

    def shape_first(x: Tensor, n_heads: int) -> Tensor:  # compare() names mistakes by value; this one is a shape
        out = split_heads_fn(x, n_heads)
        if isinstance(out, Tensor) and out.shape == (x.shape[0], x.shape[1], n_heads, x.shape[2] // n_heads):
            fail(name, f"the result has shape {tuple(out.shape)} = [B, T, H, d_head]; it looks like "
                       f"{mistakes[1].description}")
        return out

    with torch.random.fork_rng(devices=[]):  # a check must not move the notebook's random state
        compare(name, shape_first, split_heads, _split_inputs, mistakes, what="result [B, H, T, d_head]")


# --- Exercise 4.2: multi-head attention --------------------------------------------------------------


def _mha_variant(*, split: str = "right", merge: str = "right", scale: str = "d_head", out_proj: bool = True,
                 keys_from: str = "kv", v_proj: str = "v", mask: str = "scores") -> Callable[..., tuple[Tensor, Tensor]]:
    """The multi-head attention forward pass with one typical bug switched on (the defaults are correct)."""

    def forward(mha: MultiHeadAttention, x: Tensor, kv: Tensor | None = None,
                mask_: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kv = x if kv is None else kv
        h, d = mha.n_heads, mha.d_model
        src = x if keys_from == "x" else kv
        q = _split_variant(split)(mha.q_proj(x), h)
        k = _split_variant(split)(mha.k_proj(src), h)
        v = _split_variant(split)((mha.k_proj if v_proj == "k" else mha.v_proj)(src), h)
        factor = {"d_head": 1 / math.sqrt(d // h), "d_model": 1 / math.sqrt(d), "none": 1.0,
                  "d_head_no_sqrt": 1 / (d // h)}[scale]
        scores = q @ k.transpose(-2, -1) * factor
        if mask_ is not None and mask == "scores":
            scores = scores.masked_fill(~mask_, -math.inf)
        weights = scores.softmax(dim=-1)
        heads = weights @ v
        b, _, t, _ = heads.shape
        merged = heads.reshape(b, t, d) if merge == "no_transpose" else merge_heads(heads)
        return (mha.out_proj(merged) if out_proj else merged), weights

    return forward


def _mha_inputs(g: torch.Generator, case: list[int]) -> tuple[Any, ...]:
    """Trial 0: self-attention with padding; 1: cross-attention Tq = Tk; 2: cross-attention Tq != Tk."""
    trial = case[0]
    case[0] += 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_from(g))
        mha = MultiHeadAttention(12, 3).eval()  # d_model = 12, d_head = 4
    b, tq = 2, 5
    tk = {0: 5, 1: 5, 2: 7}[trial % 3]
    x = torch.randn(b, tq, 12, generator=g)
    kv = None if trial % 3 == 0 else torch.randn(b, tk, 12, generator=g)
    mask = padding_mask([tk, tk - 2], tk)[:, None]  # [B, 1, 1, Tk]: the second sequence has 2 padded keys
    return mha, x, kv, mask


def _mha_reference(mha: MultiHeadAttention, x: Tensor, kv: Tensor | None = None,
                   mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    out, weights = mha(x, kv, mask, need_weights=True)
    assert weights is not None
    return out, weights


def check_mha_forward(mha_forward_fn: Callable[..., tuple[Tensor, Tensor]]) -> None:
    """Exercise 4.2: ``mha_forward(mha, x, kv, mask) -> (out [B, Tq, d_model], weights [B, H, Tq, Tk])``."""
    mistakes = [
        Mistake("the heads are split by reshaping straight to [B, H, T, d_head] (wrong reshape/transpose order): "
                "view as [B, T, H, d_head], then .transpose(1, 2).", _mha_variant(split="view_bhtd")),
        Mistake("the heads are split as (d_head, H) instead of (H, d_head): each head must own a contiguous block "
                "of d_head features.", _mha_variant(split="interleaved")),
        Mistake("the heads are merged by reshaping [B, H, T, d_head] straight to [B, T, d_model]: move the head "
                "axis back first, heads.transpose(1, 2).reshape(B, T, d_model) (merge_heads).",
                _mha_variant(merge="no_transpose")),
        Mistake("the output projection is missing: the merged heads must go through mha.out_proj, which mixes "
                "what the heads found.", _mha_variant(out_proj=False)),
        Mistake("the scores are scaled by 1/sqrt(d_model) instead of 1/sqrt(d_head): each head's dot products "
                "run over d_head = d_model / H features.", _mha_variant(scale="d_model")),
        Mistake("the scores are divided by d_head instead of sqrt(d_head).", _mha_variant(scale="d_head_no_sqrt")),
        Mistake("the scores are not scaled: multiply q k^T by 1/sqrt(d_head).", _mha_variant(scale="none")),
        Mistake("the keys and values are computed from x instead of kv: in cross-attention the queries come from "
                "x and the keys and values from kv (kv = x only when kv is None).", _mha_variant(keys_from="x")),
        Mistake("the values are computed with k_proj: use mha.v_proj for the values.", _mha_variant(v_proj="k")),
        Mistake("the mask is ignored: fill the scores with -inf where the mask is False, before the softmax.",
                _mha_variant(mask="ignored")),
    ]
    case = [0]
    with torch.random.fork_rng(devices=[]):  # a check must not move the notebook's random state
        compare("Exercise 4.2 (multi-head attention)", mha_forward_fn, _mha_reference,
                lambda g: _mha_inputs(g, case), mistakes, what="result (out, weights)")


# --- Exercise 4.3: the sinusoidal table --------------------------------------------------------------


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


def check_sinusoidal(sinusoidal_fn: Callable[[int, int], Tensor]) -> None:
    """Exercise 4.3: ``sinusoidal_encoding(max_len, d_model) -> [max_len, d_model]``."""
    mistakes = [
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
    sizes = iter([(20, 8), (7, 12), (50, 16), (20, 8)])

    def inputs(g: torch.Generator) -> tuple[int, int]:
        return next(sizes)

    with torch.random.fork_rng(devices=[]):
        compare("Exercise 4.3 (sinusoidal encoding)", sinusoidal_fn, sinusoidal_table, inputs, mistakes,
                what="table [max_len, d_model]", atol=1e-5)


# --- Exercise 4.4: the residual block, pre-norm and post-norm -----------------------------------------


def _block_variant(kind: str = "right") -> Callable[..., Tensor]:
    def forward(block: TransformerBlock, x: Tensor, mask: Tensor | None = None) -> Tensor:
        def attn(h: Tensor) -> Tensor:
            return block.self_attn(h, None, mask)[0]

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


def _block_inputs(g: torch.Generator, case: list[int]) -> tuple[Any, ...]:
    """Even trials: a pre-norm block; odd trials: a post-norm block. LayerNorm weights are randomised."""
    trial = case[0]
    case[0] += 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_from(g))
        block = TransformerBlock(8, 2, 16, norm_first=trial % 2 == 0).eval()
        with torch.no_grad():
            for norm in (block.norm1, block.norm2):  # so that using the wrong LayerNorm shows
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0.0, 0.3)
    x = torch.randn(2, 5, 8, generator=g) * 2 + 1
    return block, x, padding_mask([5, 3], 5)[:, None]


def _block_reference(block: TransformerBlock, x: Tensor, mask: Tensor | None = None) -> Tensor:
    return block(x, mask)[0]


def check_transformer_block(block_forward_fn: Callable[..., Tensor]) -> None:
    """Exercise 4.4: ``block_forward(block, x, mask) -> x`` for pre-norm and post-norm blocks."""
    mistakes = [
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
    ]
    case = [0]
    with torch.random.fork_rng(devices=[]):
        compare("Exercise 4.4 (Transformer block)", block_forward_fn, _block_reference,
                lambda g: _block_inputs(g, case), mistakes, trials=4, what="output")
