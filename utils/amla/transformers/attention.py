"""Attention from first principles (Hour 02): the reference implementations later hours import.

- ``softmax``: numerically stable softmax (subtracts the maximum along ``dim``).
- ``scaled_dot_product_attention(q, k, v, mask)``: ``softmax(q k^T / sqrt(d) + mask) v``, returning the
  output **and** the weights; equals ``torch.nn.functional.scaled_dot_product_attention`` to 1e-5.
- ``causal_mask``, ``padding_mask``, ``to_additive``: the two mask kinds and the two ways to write them.
- ``nadaraya_watson``: Gaussian kernel regression, attention before it had the name.

Mask conventions (those of ``torch.nn.functional.scaled_dot_product_attention``): a **boolean** mask is
True where a query **may attend** to a key; an **additive** (float) mask is added to the scores, 0 where
allowed and ``-inf`` where blocked (any other value is a bias). A mask only has to *broadcast* to the
scores' shape ``[..., Tq, Tk]``. A query whose keys are all blocked gets all-zero weights and a zero
output, as torch's SDPA does, instead of the NaN a plain softmax would give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from amla.toolkit.errors import check_int

__all__ = [
    "causal_mask",
    "nadaraya_watson",
    "padding_mask",
    "scaled_dot_product_attention",
    "softmax",
    "to_additive",
]


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Stable softmax along ``dim``: ``exp(x - max) / sum(exp(x - max))``.

    Subtracting the maximum changes nothing mathematically but keeps ``exp`` from overflowing (``exp(1000)``
    is ``inf`` in float32). A slice with no finite entry (all ``-inf``: every key masked) gives zeros, not NaN.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"softmax expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"softmax expects a floating-point tensor, got dtype {x.dtype} (shape {_shape(x)})")
    if x.dim() == 0 or not -x.dim() <= dim < x.dim():
        raise ValueError(f"softmax: dim={dim} is out of range for a tensor of shape {_shape(x)}")
    top = x.amax(dim=dim, keepdim=True).detach()
    top = top.masked_fill(top == -math.inf, 0.0)  # all -inf: exp(-inf - 0) = 0 instead of exp(nan)
    e = torch.exp(x - top)
    total = e.sum(dim=dim, keepdim=True)
    return e / total.masked_fill(total == 0, 1.0)  # 0 / 1 = 0 for fully masked slices, no NaN gradient


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> tuple[int, ...]:
    """Validate q [..., Tq, d], k [..., Tk, d], v [..., Tk, dv]; return the scores' shape [..., Tq, Tk]."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape [..., T, d] (at least 2 dims), got {_shape(t)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype} (shape {_shape(t)})")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q has d={q.shape[-1]} but k has d={k.shape[-1]} (q {_shape(q)}, k {_shape(k)})")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k has Tk={k.shape[-2]} keys but v has {v.shape[-2]} values (k {_shape(k)}, v {_shape(v)})"
        )
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch, head) dims of q {_shape(q)}, k {_shape(k)} and v {_shape(v)} do not broadcast"
        ) from None
    return (*batch, q.shape[-2], k.shape[-2])


def _check_mask(mask: Tensor, scores_shape: tuple[int, ...]) -> None:
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor (bool or float) or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(
            f"mask must be bool (True = may attend) or float (added to the scores), got dtype {mask.dtype}"
        )
    try:
        ok = torch.broadcast_shapes(mask.shape, scores_shape) == torch.Size(scores_shape)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"mask of shape {_shape(mask)} does not broadcast to the scores' shape {scores_shape} = [..., Tq, Tk]"
        )


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *, scale: float | None = None
) -> tuple[Tensor, Tensor]:
    """``softmax(q k^T * scale + mask) v`` with ``scale = 1 / sqrt(d)`` by default; returns ``(output, weights)``.

    Shapes: q ``[..., Tq, d]``, k ``[..., Tk, d]``, v ``[..., Tk, dv]`` (leading dims broadcast), mask
    broadcastable to ``[..., Tq, Tk]``, either bool (True = may attend) or float (added to the scores).
    Returns the output ``[..., Tq, dv]`` and the weights ``[..., Tq, Tk]`` (each row sums to 1, or is all
    zero when every key of that query is masked, as in torch). The same as
    ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)``, plus the weights.
    """
    scores_shape = _check_qkv(q, k, v)
    if mask is not None:
        _check_mask(mask, scores_shape)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(-2, -1)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask
    weights = softmax(scores, dim=-1)
    return weights @ v, weights


def causal_mask(
    tq: int,
    tk: int | None = None,
    *,
    device: torch.device | str | None = None,
    align: Literal["top_left", "bottom_right"] = "top_left",
) -> Tensor:
    """Boolean ``[tq, tk]`` mask, True where query ``i`` may see key ``j`` (``j`` not in its future).

    ``align="top_left"`` (default): ``j <= i``, what ``scaled_dot_product_attention(..., is_causal=True)``
    uses. ``align="bottom_right"``: ``j <= i + tk - tq``, for queries that are the *last* ``tq`` of ``tk``
    positions (generation with a key-value cache); with ``tq > tk`` its first rows see no key at all.
    """
    tk = tq if tk is None else tk
    for name, n in (("tq", tq), ("tk", tk)):
        check_int("causal_mask", name, n)
    if align not in ("top_left", "bottom_right"):
        raise ValueError(f"causal_mask: align must be 'top_left' or 'bottom_right', got {align!r}")
    offset = 0 if align == "top_left" else tk - tq
    rows = torch.arange(tq, device=device)[:, None]
    cols = torch.arange(tk, device=device)[None, :]
    return cols <= rows + offset


def padding_mask(lengths: Tensor | Sequence[int], max_len: int | None = None) -> Tensor:
    """Boolean ``[B, 1, max_len]`` mask, True at the real tokens (position < length) of each sequence.

    The middle axis of size 1 broadcasts over the queries, so every query ignores the padded *keys* of its
    own sequence. For multi-head scores ``[B, H, Tq, Tk]`` add a head axis: ``padding_mask(...)[:, None]``
    (``[B, 1, 1, Tk]``). ``max_len`` defaults to the longest length.
    """
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.numel() == 0 or lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(f"padding_mask: lengths must be a non-empty 1-D sequence of ints, got {lengths.tolist()!r}")
    longest = int(lengths.max())
    max_len = longest if max_len is None else max_len
    check_int("padding_mask", "max_len", max_len)
    if int(lengths.min()) < 0 or longest > max_len:
        raise ValueError(f"padding_mask: lengths {lengths.tolist()} must lie in 0..max_len={max_len}")
    positions = torch.arange(max_len, device=lengths.device)
    return (positions[None, :] < lengths[:, None])[:, None, :]


def to_additive(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """A boolean mask (True = may attend) as an additive one: 0 where True, ``-inf`` where False.

    A floating-point mask is already additive and is returned unchanged.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"to_additive expects a torch.Tensor, got {type(mask).__name__}")
    if mask.is_floating_point():
        return mask
    if mask.dtype != torch.bool:
        raise TypeError(f"to_additive expects a bool mask (True = may attend), got dtype {mask.dtype}")
    if not dtype.is_floating_point:
        raise TypeError(f"to_additive: dtype must be a floating-point dtype, got {dtype}")
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, -math.inf)


def nadaraya_watson(
    x_query: Tensor, x_train: Tensor, y_train: Tensor, bandwidth: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Gaussian kernel regression: predictions ``[Q]`` (or ``[Q, dv]``) and weights ``[Q, N]``.

    The prediction at ``x`` is ``sum_i w_i(x) y_i`` with ``w(x) = softmax_i(-(x - x_i)^2 / (2 h^2))``: attention
    with the query ``x``, the keys ``x_i`` and the values ``y_i``. ``x_query`` is ``[Q]``, ``x_train`` ``[N]``,
    ``y_train`` ``[N]`` or ``[N, dv]``, ``bandwidth`` ``h > 0``.
    """
    for name, t in (("x_query", x_query), ("x_train", x_train)):
        if not isinstance(t, Tensor) or t.dim() != 1:
            shown = _shape(t) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"nadaraya_watson: {name} must be a 1-D tensor, got {shown}")
    if not isinstance(y_train, Tensor) or y_train.dim() not in (1, 2) or y_train.shape[0] != x_train.shape[0]:
        shown = _shape(y_train) if isinstance(y_train, Tensor) else type(y_train).__name__
        raise ValueError(
            f"nadaraya_watson: y_train must be [N] or [N, dv] with N={x_train.shape[0]} like x_train, got {shown}"
        )
    if not bandwidth > 0:
        raise ValueError(f"nadaraya_watson: bandwidth must be > 0, got {bandwidth!r}")
    scores = -((x_query[:, None] - x_train[None, :]) ** 2) / (2 * bandwidth**2)
    weights = softmax(scores, dim=-1)
    return weights @ y_train, weights
