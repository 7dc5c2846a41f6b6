"""Multi-head attention and the Transformer block (Hour 04): the building blocks Hours 05-09 import.

- ``split_heads`` / ``merge_heads``: ``[B, T, H*d_head] <-> [B, H, T, d_head]``.
- ``MultiHeadAttention``: separate q/k/v projections, ``H`` heads of scaled dot-product attention, an output
  projection. Self-attention when ``kv`` is None, cross-attention otherwise. ``need_weights=False`` runs
  ``torch.nn.functional.scaled_dot_product_attention`` (fast); ``need_weights=True`` runs
  ``amla.transformers.attention.scaled_dot_product_attention`` and returns the weights ``[B, H, Tq, Tk]``; same
  output.
- ``FeedForward`` (Linear, GELU, Linear), ``TransformerBlock`` (pre-norm or post-norm, optional cross-attention;
  ``d_ff=0`` leaves out the feed-forward branch, for Hour 04's ablation).
  The positions are in ``amla.transformers.positions``, the whole encoder in ``amla.transformers.encoder``.
- ``mha_forward``, ``block_forward``: the reference forward passes of Exercises 4.1 and 4.3. A student's versions
  plug in through explicit, optional parameters (default None: the package's own path):
  ``MultiHeadAttention(..., mha_forward=fn)`` and ``TransformerBlock(..., block_forward=fn, mha_forward=fn)``.

Masks follow ``amla.transformers.attention``: bool (True = may attend) or float (added to the scores),
broadcastable to ``[B, H, Tq, Tk]``. A 3-D mask is read as ``[B, Tq or 1, Tk]`` and shared by all heads, so the
output of ``amla.transformers.attention.padding_mask(lengths)`` (``[B, 1, T]``) can be passed as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.toolkit.errors import check_hook, check_int, shape_text
from amla.transformers.attention import causal_mask, scaled_dot_product_attention
from amla.transformers.positions import RotaryEmbedding

__all__ = [
    "FeedForward",
    "MultiHeadAttention",
    "TransformerBlock",
    "block_forward",
    "merge_heads",
    "mha_forward",
    "split_heads",
]

MhaForward = Callable[..., "tuple[Tensor, Tensor]"]  # (mha, x, kv=None, mask=None) -> (out, weights)
BlockForward = Callable[..., Tensor]  # (block, x, mask=None) -> x


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
    """The multi-head attention of Exercise 4.1, written out: ``(out [B, Tq, d], weights [B, H, Tq, Tk])``.

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

    ``mha_forward(mha, x, kv=None, mask=None) -> (out, weights)`` (e.g. the student's, Exercise 4.1) replaces the
    package's path when given. It knows no dropout, rope or ``is_causal`` and only bool masks: the mask reaches it
    as a bool ``[B or 1, H or 1, Tq, Tk]`` (``is_causal`` already folded in); rope, a float mask, or attention
    dropout while training raise a ValueError.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, *,
                 mha_forward: MhaForward | None = None) -> None:
        super().__init__()
        check_hook("MultiHeadAttention", "mha_forward", mha_forward, "mha_forward(mha, x, kv, mask) -> (out, weights)")
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
            mask = _with_causal(mask, x.shape[1], kv.shape[1], x.device)
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
        check_int("FeedForward", "d_ff", d_ff)
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def block_forward(block: "TransformerBlock", x: Tensor, mask: Tensor | None = None) -> Tensor:
    """The block of Exercise 4.3, written out (no cross-attention, no dropout): pre-norm
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

    ``block_forward(block, x, mask=None) -> x`` (e.g. the student's, Exercise 4.3) replaces the package's forward
    pass when given; it knows no cross-attention (refused here), rope or dropout (refused in ``forward``), and
    ``is_causal`` reaches it folded into a bool mask. ``mha_forward`` goes to the block's attention layers
    (see ``MultiHeadAttention``).

    ``d_ff=0`` builds the block without its feed-forward branch (``ff`` and ``norm2`` are None): attention only,
    ``x + attn(norm1(x))`` or ``norm1(x + attn(x))``. ``block_forward`` needs the branch, so it is refused then.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, *, norm_first: bool = True,
                 cross_attention: bool = False, block_forward: BlockForward | None = None,
                 mha_forward: MhaForward | None = None) -> None:
        super().__init__()
        check_hook("TransformerBlock", "block_forward", block_forward, "block_forward(block, x, mask) -> x")
        if not isinstance(d_ff, int) or isinstance(d_ff, bool) or d_ff < 0:
            raise ValueError(f"TransformerBlock: d_ff must be an int >= 0 (0: no feed-forward branch), got {d_ff!r}")
        if block_forward is not None and cross_attention:
            raise ValueError("TransformerBlock: block_forward knows no cross-attention; build the block without "
                             "cross_attention, or without block_forward")
        if block_forward is not None and d_ff == 0:
            raise ValueError("TransformerBlock: block_forward uses block.ff, but d_ff=0 builds no feed-forward branch; "
                             "use d_ff >= 1, or no block_forward")
        self.norm_first = norm_first
        self.block_forward = block_forward
        self.dropout = dropout
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout, mha_forward=mha_forward)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout, mha_forward=mha_forward) \
            if cross_attention else None
        self.norm_cross = nn.LayerNorm(d_model) if cross_attention else None
        self.ff: FeedForward | None = FeedForward(d_model, d_ff, dropout) if d_ff else None
        self.norm2: nn.LayerNorm | None = nn.LayerNorm(d_model) if d_ff else None
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
        if self.ff is not None and self.norm2 is not None:  # d_ff=0: no feed-forward branch
            ff = self.ff
            x, _ = self._residual(x, self.norm2, lambda h: (ff(h), None))
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


