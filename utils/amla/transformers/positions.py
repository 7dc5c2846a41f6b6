"""Where a token is (Hour 04): the three ways a Transformer gets positions.

- ``sinusoidal_table`` (the reference of Exercise 4.2) and ``SinusoidalPositionalEncoding``: the fixed table of
  "Attention is all you need", added to ``x [B, T, d]``; a student's ``sinusoidal_encoding(max_len, d_model)``
  can make the table instead (``SinusoidalPositionalEncoding(..., sinusoidal_encoding=fn)``).
- ``LearnedPositionalEncoding``: one trained vector per position, added to ``x``.
- ``RotaryEmbedding`` (RoPE): rotates q and k ``[B, H, T, d_head]``, so attention scores depend on relative
  positions only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from amla.toolkit.errors import check_hook, check_int, shape_text

__all__ = ["LearnedPositionalEncoding", "RotaryEmbedding", "SinusoidalPositionalEncoding", "sinusoidal_table"]

SinusoidalEncoding = Callable[[int, int], Tensor]  # (max_len, d_model) -> [max_len, d_model]


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

    ``sinusoidal_encoding(max_len, d_model)`` (e.g. the student's, Exercise 4.2) makes the table instead of
    ``sinusoidal_table``; it is called once, here.
    """

    pe: Tensor

    def __init__(self, d_model: int, max_len: int, *, sinusoidal_encoding: SinusoidalEncoding | None = None) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        check_hook("SinusoidalPositionalEncoding", "sinusoidal_encoding", sinusoidal_encoding,
                   "sinusoidal_encoding(max_len, d_model) -> table")
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
