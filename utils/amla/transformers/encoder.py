"""The Transformer encoder (Hour 04): token embedding, positions and a stack of blocks, the model Hour 04 trains
and Hour 05's encoder-decoder reuses.

``TransformerEncoder(..., functions=TransformerFunctions(mha_forward=..., block_forward=...,
sinusoidal_encoding=...))`` builds it from a student's pieces of Exercises 4.2-4.4 (each None keeps the package's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from amla.toolkit.errors import check_int, shape_text
from amla.transformers.nn import BlockForward, MhaForward, TransformerBlock
from amla.transformers.positions import (
    LearnedPositionalEncoding,
    RotaryEmbedding,
    SinusoidalEncoding,
    SinusoidalPositionalEncoding,
)

__all__ = ["TransformerEncoder", "TransformerFunctions"]


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

class TransformerEncoder(nn.Module):
    """Token embedding, positions (``"sinusoidal"``, ``"learned"``, ``"rope"`` or ``"none"``), ``n_layers`` blocks.

    With ``norm_first`` a final LayerNorm follows the last block (pre-norm leaves the residual stream
    un-normalised). ``forward(tokens, mask=None, need_weights=False)`` returns ``(hidden [B, T, d_model],
    weights [L, B, H, T, T] or None)``. ``d_ff=0``: blocks without their feed-forward branch (attention only).

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
