"""Swin's windowed and shifted-window attention (Liu et al. 2021), small enough to read (Hour 08).

Tokens live on a grid ``x [B, H, W, C]`` (channels last). W-MSA attends only inside non-overlapping
``window x window`` windows; SW-MSA first rolls the grid by ``(-shift, -shift)`` so the windows straddle the old
borders, masks the pairs that the roll brought together from different parts of the image, and rolls back.

- ``window_partition(x [B, H, W, C], window) -> [B * nW, window * window, C]``: windows row-major over the grid
  (index ``b * nW + window_row * (W / window) + window_col``), tokens row-major inside a window.
- ``window_reverse(windows [B * nW, window * window, C], window, H, W) -> [B, H, W, C]``: the inverse.
- ``shifted_window_mask(H, W, window, shift) -> bool [nW, window^2, window^2]`` (True = may attend): the paper's
  mask, from region labels of the rolled grid; all True when ``shift == 0``.
- ``WindowAttention(dim, n_heads, window, shift=0)``: ``forward(x [B, H, W, C], need_weights=False)`` ->
  ``[B, H, W, C]`` (and the weights ``[B * nW, n_heads, window^2, window^2]`` when ``need_weights``); the
  attention is the course's ``amla.transformers.nn.MultiHeadAttention``.
- ``receptive_field(module_or_fn, H, W, C, pixel, seed=0) -> bool [H, W]``: the input positions whose gradient
  of the output at ``pixel`` is non-zero.
- ``attention_flops(H, W, C, window=None) -> int``: multiply-adds of the two attention matmuls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from amla.toolkit.errors import check_int, shape_text
from amla.transformers.nn import MultiHeadAttention

__all__ = ["WindowAttention", "attention_flops", "receptive_field", "shifted_window_mask", "window_partition",
           "window_reverse"]


def _check_grid(owner: str, h: int, w: int, window: int) -> None:
    check_int(owner, "window", window)
    if h % window or w % window:
        raise ValueError(f"{owner}: window={window} must divide H={h} and W={w}")


def _check_shift(owner: str, window: int, shift: int) -> None:
    if not isinstance(shift, int) or isinstance(shift, bool) or not 0 <= shift < window:
        raise ValueError(f"{owner}: shift must be an int in [0, window={window}), got {shift!r}")


def window_partition(x: Tensor, window: int) -> Tensor:
    """``x [B, H, W, C]`` -> ``[B * nW, window * window, C]`` with ``nW = (H / window) (W / window)``."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"window_partition: x must be a [B, H, W, C] tensor, got {shape_text(x)}")
    b, h, w, c = x.shape
    _check_grid("window_partition", h, w, window)
    x = x.reshape(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """``[B * nW, window * window, C]`` -> ``x [B, H, W, C]``, the inverse of ``window_partition``."""
    _check_grid("window_reverse", h, w, window)
    n_w = (h // window) * (w // window)
    if not isinstance(windows, Tensor) or windows.dim() != 3 or windows.shape[1] != window * window \
            or windows.shape[0] % n_w:
        raise ValueError(f"window_reverse: windows must be [B * {n_w}, {window * window}, C], got "
                         f"{shape_text(windows)}")
    b, c = windows.shape[0] // n_w, windows.shape[2]
    x = windows.reshape(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def shifted_window_mask(h: int, w: int, window: int, shift: int) -> Tensor:
    """bool ``[nW, window^2, window^2]``, True = may attend, for the grid rolled by ``(-shift, -shift)``.

    Along each axis the rolled grid has three regions: ``[0, H - window)`` (windows that wrap nothing),
    ``[H - window, H - shift)`` and ``[H - shift, H)`` (the rows the roll carried from the top to the bottom).
    A token's label is ``3 * row_region + col_region``; two tokens of one window may attend iff their labels agree.
    """
    _check_grid("shifted_window_mask", h, w, window)
    _check_shift("shifted_window_mask", window, shift)
    labels = torch.zeros(1, h, w, 1)
    if shift > 0:
        spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        for i, rows in enumerate(spans):
            for j, cols in enumerate(spans):
                labels[:, rows, cols, :] = 3 * i + j
    lab = window_partition(labels, window)[..., 0]  # [nW, window^2]
    return lab[:, :, None] == lab[:, None, :]


class WindowAttention(nn.Module):
    """(Shifted-)window multi-head self-attention on ``x [B, H, W, dim]``: roll by ``(-shift, -shift)``, partition
    into windows, attend inside each window (with ``shifted_window_mask`` when ``shift > 0``), reverse, roll back.

    Only the attention of a Swin block (no norm, MLP, residual or relative position bias), so that its effect on
    the receptive field is plain to see.
    """

    def __init__(self, dim: int, n_heads: int, window: int, shift: int = 0) -> None:
        super().__init__()
        check_int("WindowAttention", "window", window)
        _check_shift("WindowAttention", window, shift)
        self.dim, self.n_heads, self.window, self.shift = dim, n_heads, window, shift
        self.attn = MultiHeadAttention(dim, n_heads)

    def forward(self, x: Tensor, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[-1] != self.dim:
            raise ValueError(f"WindowAttention: x must be [B, H, W, {self.dim}], got {shape_text(x)}")
        b, h, w, _ = x.shape
        _check_grid("WindowAttention", h, w, self.window)
        s = self.shift
        if s:
            x = torch.roll(x, (-s, -s), (1, 2))
        windows = window_partition(x, self.window)  # [B * nW, T, C]
        mask = None
        if s:
            mask = shifted_window_mask(h, w, self.window, s).to(x.device).repeat(b, 1, 1)  # [B * nW, T, T]
        out, weights = self.attn(windows, mask=mask, need_weights=need_weights)
        out = window_reverse(out, self.window, h, w)
        if s:
            out = torch.roll(out, (s, s), (1, 2))
        return (out, weights) if need_weights else out


def receptive_field(module_or_fn: Callable[[Tensor], Tensor], h: int, w: int, c: int,
                    pixel: tuple[int, int], seed: int = 0) -> Tensor:
    """bool ``[H, W]``: True where the input ``[1, H, W, C]`` (random, from ``seed``) changes the output at
    ``pixel = (row, col)``, i.e. where the gradient of ``out[0, row, col].sum()`` with respect to it is non-zero.

    Masked attention weights are exactly 0 after the softmax, so positions outside the field get exactly 0.
    """
    row, col = pixel
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"receptive_field: pixel must be inside the {h}x{w} grid, got {pixel}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, h, w, c, generator=gen).requires_grad_(True)
    out = module_or_fn(x)
    if not isinstance(out, Tensor) or out.shape[:3] != (1, h, w):
        raise ValueError(f"receptive_field: module_or_fn must map [1, {h}, {w}, {c}] to [1, {h}, {w}, ...], got "
                         f"{shape_text(out)}")
    (grad,) = torch.autograd.grad(out[0, row, col].sum(), x)
    return grad[0].abs().sum(-1) != 0


def attention_flops(h: int, w: int, c: int, window: int | None = None) -> int:
    """Multiply-adds of the two attention matmuls ``Q K^T`` and ``A V`` for ``N = H W`` tokens of width ``C``,
    as in Eq. (1)-(2) of the Swin paper (the ``4 H W C^2`` of the q/k/v/out projections left out, being equal):

    - global (``window=None``): ``2 (H W)^2 C``;
    - windowed: ``2 (H W) window^2 C`` (each of the ``H W`` queries meets ``window^2`` keys, twice).

    Linear in ``H W`` with windows, quadratic without. (Double them for floating-point operations.)
    """
    check_int("attention_flops", "H", h)
    check_int("attention_flops", "W", w)
    check_int("attention_flops", "C", c)
    n = h * w
    if window is None:
        return 2 * n * n * c
    _check_grid("attention_flops", h, w, window)
    return 2 * n * window * window * c
