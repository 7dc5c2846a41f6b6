"""Multi-head attention and the Transformer block (Hour 04): the building blocks Hours 05-09 import.

- ``split_heads`` / ``merge_heads``: ``[B, T, H*d_head] <-> [B, H, T, d_head]``.
- ``MultiHeadAttention``: separate q/k/v projections, ``H`` heads of scaled dot-product attention, an output
  projection. Self-attention when ``kv`` is None, cross-attention otherwise. ``need_weights=False`` runs
  ``torch.nn.functional.scaled_dot_product_attention`` (fast); ``need_weights=True`` runs
  ``amla.transformers.attention.scaled_dot_product_attention`` and returns the weights ``[B, H, Tq, Tk]``; same output.
- ``SinusoidalPositionalEncoding``, ``LearnedPositionalEncoding`` (added to ``x [B, T, d]``) and
  ``RotaryEmbedding`` (rotates q and k ``[B, H, T, d_head]``, so scores depend on relative positions).
- ``FeedForward`` (Linear, GELU, Linear), ``TransformerBlock`` (pre-norm or post-norm, optional
  cross-attention), ``TransformerEncoder`` (embedding, positions, ``n_layers`` blocks).
- ``mha_forward``, ``block_forward``: the reference forward passes of Exercises 4.2 and 4.4 (``sinusoidal_table``
  is that of 4.3). A student's versions plug in through explicit, optional parameters (default None: the
  package's own path): ``MultiHeadAttention(..., mha_forward=fn)``, ``TransformerBlock(..., block_forward=fn,
  mha_forward=fn)``, ``SinusoidalPositionalEncoding(..., sinusoidal_encoding=fn)``, and all three at once
  ``TransformerEncoder(..., functions=TransformerFunctions(mha_forward=..., block_forward=...,
  sinusoidal_encoding=...))``.

Masks follow ``amla.transformers.attention``: bool (True = may attend) or float (added to the scores), broadcastable to
``[B, H, Tq, Tk]``. A 3-D mask is read as ``[B, Tq or 1, Tk]`` and shared by all heads, so the output of
``amla.transformers.attention.padding_mask(lengths)`` (``[B, 1, T]``) can be passed as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.transformers.attention import causal_mask, scaled_dot_product_attention
from amla.toolkit.errors import check_int, shape_text

__all__ = [
    "FeedForward",
    "LearnedPositionalEncoding",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "TransformerBlock",
    "TransformerEncoder",
    "TransformerFunctions",
    "block_forward",
    "merge_heads",
    "mha_forward",
    "sinusoidal_table",
    "split_heads",
]

MhaForward = Callable[..., "tuple[Tensor, Tensor]"]  # (mha, x, kv=None, mask=None) -> (out, weights)
BlockForward = Callable[..., Tensor]  # (block, x, mask=None) -> x
SinusoidalEncoding = Callable[[int, int], Tensor]  # (max_len, d_model) -> [max_len, d_model]


@dataclass(frozen=True)
class TransformerFunctions:
    """The student's pieces of Hour 04 for ``TransformerEncoder(..., functions=...)``; None keeps the package's.

    ``mha_forward(mha, x, kv=None, mask=None) -> (out, weights)`` runs every attention layer,
    ``block_forward(block, x, mask=None) -> x`` every block, ``sinusoidal_encoding(max_len, d_model)`` makes the
    table of the sinusoidal positions.
    """

    mha_forward: MhaForward | None = None
    block_forward: BlockForward | None = None
    sinusoidal_encoding: SinusoidalEncoding | None = None


def _callable_or_none(owner: str, name: str, fn: object) -> None:
    if fn is not None and not callable(fn):
        raise TypeError(f"{owner}: {name} must be a function or None, got {type(fn).__name__}")


# --- heads -------------------------------------------------------------------------------------------


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """``[B, T, H*d_head] -> [B, H, T, d_head]``: view the last axis as ``(H, d_head)``, then move H forward.

    The order matters: ``x.view(B, T, H, d_head).transpose(1, 2)``. Viewing straight as ``[B, H, T, d_head]``
    would mix positions into the heads.
    """
    check_int("split_heads", "n_heads", n_heads)
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] % n_heads:
        raise ValueError(f"split_heads: x must be [B, T, D] with D divisible by n_heads={n_heads}, got {shape_text(x)}")
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``[B, H, T, d_head] -> [B, T, H*d_head]``, the inverse of ``split_heads``."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"merge_heads: x must be [B, H, T, d_head], got {shape_text(x)}")
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


# --- positions ---------------------------------------------------------------------------------------


def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    """``[max_len, d_model]``: ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``."""
    check_int("sinusoidal_table", "max_len", max_len)
    if check_int("sinusoidal_table", "d_model", d_model) % 2:
        raise ValueError(f"sinusoidal_table: d_model must be even, got {d_model}")
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table.float()


def _check_positions(owner: str, x: Tensor, d_model: int, max_len: int, offset: int) -> None:
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{owner}: x must be [B, T, {d_model}], got {shape_text(x)}")
    if offset < 0 or offset + x.shape[1] > max_len:
        raise ValueError(f"{owner}: positions {offset}..{offset + x.shape[1] - 1} exceed max_len={max_len}")


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table of "Attention is all you need" to ``x [B, T, d_model]``.

    ``sinusoidal_encoding(max_len, d_model)`` (e.g. the student's, Exercise 4.3) makes the table instead of
    ``sinusoidal_table``; it is called once, here.
    """

    pe: Tensor

    def __init__(self, d_model: int, max_len: int, *, sinusoidal_encoding: SinusoidalEncoding | None = None) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        _callable_or_none("SinusoidalPositionalEncoding", "sinusoidal_encoding", sinusoidal_encoding)
        if sinusoidal_encoding is None:
            table = sinusoidal_table(max_len, d_model)
        else:
            table = sinusoidal_encoding(max_len, d_model)
            if not isinstance(table, Tensor) or table.shape != (max_len, d_model) or not table.is_floating_point():
                raise ValueError(f"SinusoidalPositionalEncoding: sinusoidal_encoding({max_len}, {d_model}) must "
                                 f"return a float tensor [{max_len}, {d_model}], got {shape_text(table)}")
            table = table.detach().float()
        self.register_buffer("pe", table, persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        _check_positions("SinusoidalPositionalEncoding", x, self.d_model, self.max_len, offset)
        return x + self.pe[offset : offset + x.shape[1]].to(x.dtype)


class LearnedPositionalEncoding(nn.Module):
    """Adds a trained vector per position (``nn.Embedding(max_len, d_model)``, initialised N(0, init_std^2)).

    The default ``init_std=1.0`` matches ``nn.Embedding``'s token embeddings; with a much smaller one (GPT-2 uses
    0.02 for tokens *and* positions) the positions start drowned out by N(0, 1) token embeddings.
    """

    def __init__(self, d_model: int, max_len: int, init_std: float = 1.0) -> None:
        super().__init__()
        self.d_model = check_int("LearnedPositionalEncoding", "d_model", d_model)
        self.max_len = check_int("LearnedPositionalEncoding", "max_len", max_len)
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=init_std)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        _check_positions("LearnedPositionalEncoding", x, self.d_model, self.max_len, offset)
        return x + self.embedding.weight[offset : offset + x.shape[1]]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE): rotate pairs of q/k features by an angle proportional to the position.

    Feature ``i`` is paired with feature ``i + d_head/2`` (the "rotate-half" layout); the pair is rotated by
    ``p * base^(-2i/d_head)`` at position ``p``. Since rotations compose, ``rot(q, m) . rot(k, n)`` depends only
    on ``n - m``: attention sees relative positions. Nothing is learned and nothing is added to the values.
    """

    cos: Tensor
    sin: Tensor

    def __init__(self, d_head: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if check_int("RotaryEmbedding", "d_head", d_head) % 2:
            raise ValueError(f"RotaryEmbedding: d_head must be even, got {d_head}")
        self.d_head, self.max_len, self.base = d_head, check_int("RotaryEmbedding", "max_len", max_len), base
        freq = base ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)  # [d_head / 2]
        angle = torch.arange(max_len, dtype=torch.float64)[:, None] * freq  # [max_len, d_head / 2]
        self.register_buffer("cos", angle.cos().float(), persistent=False)
        self.register_buffer("sin", angle.sin().float(), persistent=False)

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate ``x [..., T, d_head]`` as if its positions were ``offset .. offset + T - 1``."""
        if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[-1] != self.d_head:
            raise ValueError(f"RotaryEmbedding: expected [..., T, {self.d_head}], got {shape_text(x)}")
        t = x.shape[-2]
        if offset < 0 or offset + t > self.max_len:
            raise ValueError(f"RotaryEmbedding: positions {offset}..{offset + t - 1} exceed max_len={self.max_len}")
        cos = self.cos[offset : offset + t].to(x.dtype)
        sin = self.sin[offset : offset + t].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)

    def apply(self, q, k=None, offset: int = 0):  # type: ignore[override]  # noqa: ANN001, ANN201
        """Rotate q and k ``[B, H, T, d_head]`` (positions start at ``offset``, e.g. with a key-value cache).

        Returns ``(q_rotated, k_rotated)``. Called with a single function (``model.apply(init_fn)``), it does
        what ``nn.Module.apply`` does, so initialising a model that holds a RotaryEmbedding still works.
        """
        if k is None and callable(q) and not isinstance(q, Tensor):
            return super().apply(q)
        if k is None:
            raise ValueError("RotaryEmbedding.apply: pass both q and k ([B, H, T, d_head])")
        return self.rotate(q, offset), self.rotate(k, offset)


# --- multi-head attention ----------------------------------------------------------------------------


def _head_mask(mask: Tensor, scores_shape: tuple[int, int, int, int]) -> Tensor:
    if not isinstance(mask, Tensor) or (mask.dtype != torch.bool and not mask.is_floating_point()):
        raise TypeError(f"mask must be a bool (True = may attend) or float (additive) tensor, got {shape_text(mask)}")
    if mask.dim() == 3:  # [B, Tq or 1, Tk]: one mask for all the heads
        mask = mask[:, None]
    try:
        ok = mask.dim() <= 4 and torch.broadcast_shapes(mask.shape, scores_shape) == torch.Size(scores_shape)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"mask of shape {shape_text(mask)} does not broadcast to the scores [B, H, Tq, Tk] = "
                         f"{scores_shape}")
    return mask


def mha_forward(mha: "MultiHeadAttention", x: Tensor, kv: Tensor | None = None,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The multi-head attention of Exercise 4.2, written out: ``(out [B, Tq, d], weights [B, H, Tq, Tk])``.

    Uses ``mha``'s four projections and ``n_heads``; ``kv`` None is self-attention; ``mask`` (bool, True = may
    attend, or additive float) broadcasts to ``[B, H, Tq, Tk]``. No dropout, no rope.
    """
    kv = x if kv is None else kv
    q = split_heads(mha.q_proj(x), mha.n_heads)
    k = split_heads(mha.k_proj(kv), mha.n_heads)
    v = split_heads(mha.v_proj(kv), mha.n_heads)
    heads, weights = scaled_dot_product_attention(q, k, v, mask)
    return mha.out_proj(merge_heads(heads)), weights


def _with_causal(mask: Tensor | None, tq: int, tk: int, device: torch.device) -> Tensor:
    """``mask`` and a bottom-right aligned causal mask, as one mask (bool if ``mask`` is bool or None)."""
    causal = causal_mask(tq, tk, device=device, align="bottom_right")
    if mask is None:
        return causal
    return mask & causal if mask.dtype == torch.bool else mask.masked_fill(~causal, -math.inf)


class MultiHeadAttention(nn.Module):
    """``H`` attention heads of size ``d_head = d_model / H`` in parallel, then an output projection.

    ``head_h = softmax(Q_h K_h^T / sqrt(d_head) + mask) V_h`` with ``Q = x W_q``, ``K = kv W_k``, ``V = kv W_v``
    split into heads; ``out = concat_h(head_h) W_o``.

    ``mha_forward(mha, x, kv=None, mask=None) -> (out, weights)`` (e.g. the student's, Exercise 4.2) replaces the
    package's path when given. It knows no dropout, rope or ``is_causal`` and only bool masks: the mask reaches it
    as a bool ``[B or 1, H or 1, Tq, Tk]`` (``is_causal`` already folded in); rope, a float mask, or attention
    dropout while training raise a ValueError.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, *,
                 mha_forward: MhaForward | None = None) -> None:
        super().__init__()
        _callable_or_none("MultiHeadAttention", "mha_forward", mha_forward)
        self.mha_forward = mha_forward
        check_int("MultiHeadAttention", "d_model", d_model)
        check_int("MultiHeadAttention", "n_heads", n_heads)
        if d_model % n_heads:
            raise ValueError(f"MultiHeadAttention: d_model={d_model} is not divisible by n_heads={n_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout!r}")
        self.d_model, self.n_heads, self.d_head, self.dropout = d_model, n_heads, d_model // n_heads, dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        kv: Tensor | None = None,
        mask: Tensor | None = None,
        *,
        need_weights: bool = False,
        rope: RotaryEmbedding | None = None,
        rope_offset: int = 0,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``x [B, Tq, d_model]`` to ``kv [B, Tk, d_model]`` (default ``x``); return ``(out, weights)``.

        ``out`` is ``[B, Tq, d_model]``; ``weights`` is ``[B, H, Tq, Tk]`` (before dropout) when
        ``need_weights`` else None. ``rope`` rotates q and k (from position ``rope_offset``). ``is_causal``
        adds a causal mask (bottom-right aligned, so it also works for the last Tq of Tk positions).
        """
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MultiHeadAttention: x must be [B, Tq, {self.d_model}], got {shape_text(x)}")
        given_kv, kv = kv, x if kv is None else kv
        if not isinstance(kv, Tensor) or kv.dim() != 3 or kv.shape[-1] != self.d_model or kv.shape[0] != x.shape[0]:
            raise ValueError(f"MultiHeadAttention: kv must be [B={x.shape[0]}, Tk, {self.d_model}], got {shape_text(kv)}")
        if self.mha_forward is not None:
            return self._forward_with(given_kv, x, kv, mask, need_weights, rope, is_causal)
        q = split_heads(self.q_proj(x), self.n_heads)
        k = split_heads(self.k_proj(kv), self.n_heads)
        v = split_heads(self.v_proj(kv), self.n_heads)
        if rope is not None:
            q, k = rope.apply(q, k, rope_offset)
        scores_shape = (x.shape[0], self.n_heads, x.shape[1], kv.shape[1])
        if mask is not None:
            mask = _head_mask(mask, scores_shape)
            if mask.is_floating_point():
                mask = mask.to(q.dtype)
        if is_causal:
            causal = causal_mask(x.shape[1], kv.shape[1], device=x.device, align="bottom_right")
            if mask is None:
                mask = causal
            else:
                mask = mask & causal if mask.dtype == torch.bool else mask.masked_fill(~causal, -math.inf)
        p = self.dropout if self.training else 0.0
        weights: Tensor | None = None
        if need_weights:
            heads, weights = scaled_dot_product_attention(q, k, v, mask)
            if p > 0:
                heads = self.attn_dropout(weights) @ v
        else:
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out_proj(merge_heads(heads)), weights

    def _forward_with(self, given_kv: Tensor | None, x: Tensor, kv: Tensor, mask: Tensor | None, need_weights: bool,
                      rope: RotaryEmbedding | None, is_causal: bool) -> tuple[Tensor, Tensor | None]:
        """The forward pass through ``self.mha_forward`` (see the class docstring)."""
        if rope is not None:
            raise ValueError("MultiHeadAttention: mha_forward knows no rope; build the model without rotary positions")
        if self.training and self.dropout > 0:
            raise ValueError(f"MultiHeadAttention: mha_forward applies no attention dropout, but dropout="
                             f"{self.dropout} and the module is training; use dropout=0 or call .eval()")
        scores_shape = (x.shape[0], self.n_heads, x.shape[1], kv.shape[1])
        if mask is not None:
            mask = _head_mask(mask, scores_shape)
            if mask.dtype != torch.bool:
                raise ValueError("MultiHeadAttention: mha_forward takes bool masks (True = may attend), got a float "
                                 f"mask of shape {shape_text(mask)}")
        if is_causal:
            mask = _with_causal(mask, x.shape[1], kv.shape[1], x.device)
        out, weights = self.mha_forward(self, x, given_kv, mask)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            raise ValueError(f"MultiHeadAttention: mha_forward must return (out {tuple(x.shape)}, weights), got out "
                             f"{shape_text(out)}")
        return out, (weights if need_weights else None)


# --- the block -----------------------------------------------------------------------------------------


class FeedForward(nn.Module):
    """The position-wise MLP of a Transformer block: ``Linear(d_model, d_ff), GELU, Dropout, Linear(d_ff, d_model)``."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def block_forward(block: "TransformerBlock", x: Tensor, mask: Tensor | None = None) -> Tensor:
    """The block of Exercise 4.4, written out (no cross-attention, no dropout): pre-norm
    ``x + attn(norm1(x))`` then ``x + ff(norm2(x))`` if ``block.norm_first``, else post-norm
    ``norm1(x + attn(x))`` then ``norm2(x + ff(x))``; the attention is ``block.self_attn(h, mask=mask)[0]``."""
    if block.norm_first:
        x = x + block.self_attn(block.norm1(x), mask=mask)[0]
        return x + block.ff(block.norm2(x))
    x = block.norm1(x + block.self_attn(x, mask=mask)[0])
    return block.norm2(x + block.ff(x))


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention and a feed-forward net, each in a residual branch with LayerNorm.

    Pre-norm (``norm_first=True``, GPT-2 and later): ``x = x + drop(f(norm(x)))``; the residual path stays an
    identity, which keeps deep stacks trainable without warm-up. Post-norm (the 2017 original):
    ``x = norm(x + drop(f(x)))``.

    ``block_forward(block, x, mask=None) -> x`` (e.g. the student's, Exercise 4.4) replaces the package's forward
    pass when given; it knows no cross-attention (refused here), rope or dropout (refused in ``forward``), and
    ``is_causal`` reaches it folded into a bool mask. ``mha_forward`` goes to the block's attention layers
    (see ``MultiHeadAttention``).
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, *, norm_first: bool = True,
                 cross_attention: bool = False, block_forward: BlockForward | None = None,
                 mha_forward: MhaForward | None = None) -> None:
        super().__init__()
        _callable_or_none("TransformerBlock", "block_forward", block_forward)
        if block_forward is not None and cross_attention:
            raise ValueError("TransformerBlock: block_forward knows no cross-attention; build the block without "
                             "cross_attention, or without block_forward")
        self.norm_first = norm_first
        self.block_forward = block_forward
        self.dropout = dropout
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, mha_forward=mha_forward)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout, mha_forward=mha_forward) \
            if cross_attention else None
        self.norm_cross = nn.LayerNorm(d_model) if cross_attention else None
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def _residual(self, x: Tensor, norm: nn.Module,
                  f: Callable[[Tensor], tuple[Tensor, Tensor | None]]) -> tuple[Tensor, Tensor | None]:
        if self.norm_first:
            y, w = f(norm(x))
            return x + self.drop(y), w
        y, w = f(x)
        return norm(x + self.drop(y)), w

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        need_weights: bool = False,
        *,
        rope: RotaryEmbedding | None = None,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``x [B, T, d]`` (and ``memory [B, S, d]`` with cross-attention) -> ``(x, self_weights, cross_weights)``.

        The weights are ``[B, H, T, T]`` and ``[B, H, T, S]`` when ``need_weights`` else None. ``rope`` is used
        in self-attention only; ``is_causal`` adds a causal mask to self-attention.

        With ``block_forward`` the output is ``block_forward(self, x, mask)``. It returns no weights, so when
        ``need_weights`` is set, the self-attention weights come from one more call of ``self.self_attn`` (with
        its ``mha_forward``, if any) on the input the attention branch reads, ``norm1(x)`` in pre-norm and ``x``
        in post-norm, with the same mask: the weights that branch computes.
        """
        if self.block_forward is not None:
            return self._forward_with(x, mask, memory, need_weights, rope, is_causal)
        x, self_w = self._residual(x, self.norm1, lambda h: self.self_attn(
            h, None, mask, need_weights=need_weights, rope=rope, is_causal=is_causal))
        cross_w = None
        if self.cross_attn is not None:
            if memory is None:
                raise ValueError("TransformerBlock: this block has cross-attention, pass memory [B, S, d_model]")
            x, cross_w = self._residual(x, self.norm_cross, lambda h: self.cross_attn(
                h, memory, memory_mask, need_weights=need_weights))
        elif memory is not None:
            raise ValueError("TransformerBlock: memory was given but the block has no cross-attention "
                             "(build it with cross_attention=True)")
        x, _ = self._residual(x, self.norm2, lambda h: (self.ff(h), None))
        return x, self_w, cross_w

    def _forward_with(self, x: Tensor, mask: Tensor | None, memory: Tensor | None, need_weights: bool,
                      rope: RotaryEmbedding | None, is_causal: bool) -> tuple[Tensor, Tensor | None, None]:
        """The forward pass through ``self.block_forward`` (see ``forward``)."""
        if rope is not None:
            raise ValueError("TransformerBlock: block_forward knows no rope; build the model without rotary positions")
        if memory is not None:
            raise ValueError("TransformerBlock: memory was given but the block has no cross-attention "
                             "(build it with cross_attention=True)")
        if self.training and self.dropout > 0:
            raise ValueError(f"TransformerBlock: block_forward applies no dropout, but dropout={self.dropout} and "
                             "the block is training; use dropout=0 or call .eval()")
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise ValueError(f"TransformerBlock: x must be [B, T, d_model], got {shape_text(x)}")
        if is_causal:
            mask = _with_causal(mask, x.shape[1], x.shape[1], x.device)
        out = self.block_forward(self, x, mask)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            raise ValueError(f"TransformerBlock: block_forward must return x {tuple(x.shape)}, got {shape_text(out)}")
        weights = None
        if need_weights:
            weights = self.self_attn(self.norm1(x) if self.norm_first else x, None, mask, need_weights=True)[1]
        return out, weights, None


class TransformerEncoder(nn.Module):
    """Token embedding, positions (``"sinusoidal"``, ``"learned"``, ``"rope"`` or ``"none"``), ``n_layers`` blocks.

    With ``norm_first`` a final LayerNorm follows the last block (pre-norm leaves the residual stream
    un-normalised). ``forward(tokens, mask=None, need_weights=False)`` returns ``(hidden [B, T, d_model],
    weights [L, B, H, T, T] or None)``.

    ``functions``: a ``TransformerFunctions`` whose set fields replace the package's attention (every block's
    ``mha_forward``), block (``block_forward``) and sinusoidal table (``sinusoidal_encoding``); see
    ``MultiHeadAttention`` and ``TransformerBlock`` for what they cannot do (rope is refused here).
    """

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, d_ff: int, max_len: int,
                 dropout: float = 0.0, *, norm_first: bool = True,
                 pos: Literal["sinusoidal", "learned", "rope", "none"] = "sinusoidal",
                 functions: TransformerFunctions | None = None) -> None:
        super().__init__()
        if pos not in ("sinusoidal", "learned", "rope", "none"):
            raise ValueError(f"TransformerEncoder: pos must be 'sinusoidal', 'learned', 'rope' or 'none', got {pos!r}")
        check_int("TransformerEncoder", "n_layers", n_layers)
        if functions is not None and not isinstance(functions, TransformerFunctions):
            raise TypeError(f"TransformerEncoder: functions must be a TransformerFunctions or None, got "
                            f"{type(functions).__name__}")
        fns = functions or TransformerFunctions()
        if pos == "rope" and (fns.mha_forward is not None or fns.block_forward is not None):
            raise ValueError("TransformerEncoder: mha_forward and block_forward know no rope; use pos='sinusoidal', "
                             "'learned' or 'none' with them")
        if pos != "sinusoidal" and fns.sinusoidal_encoding is not None:
            raise ValueError(f"TransformerEncoder: sinusoidal_encoding is given but pos={pos!r}; it is used only with "
                             "pos='sinusoidal'")
        self.max_len, self.pos_kind = max_len, pos
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos: nn.Module | None = None
        self.rope: RotaryEmbedding | None = None
        if pos == "sinusoidal":
            self.pos = SinusoidalPositionalEncoding(d_model, max_len, sinusoidal_encoding=fns.sinusoidal_encoding)
        elif pos == "learned":
            self.pos = LearnedPositionalEncoding(d_model, max_len)
        elif pos == "rope":
            self.rope = RotaryEmbedding(d_model // n_heads, max_len)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, d_ff, dropout, norm_first=norm_first, block_forward=fns.block_forward,
                             mha_forward=fns.mha_forward) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, tokens: Tensor, mask: Tensor | None = None,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            raise ValueError(f"TransformerEncoder: tokens must be integer ids [B, T], got {shape_text(tokens)}")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"TransformerEncoder: sequence length {tokens.shape[1]} exceeds max_len={self.max_len}")
        x = self.embed(tokens)
        if self.pos is not None:
            x = self.pos(x)
        x = self.drop(x)
        weights = []
        for block in self.blocks:
            x, w, _ = block(x, mask, need_weights=need_weights, rope=self.rope)
            if w is not None:
                weights.append(w)
        return self.norm(x), (torch.stack(weights) if need_weights else None)
