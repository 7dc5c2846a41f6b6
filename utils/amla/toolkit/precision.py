"""Mixed precision in three small functions: which dtype, the autocast context, the gradient scaler.

On CUDA, ``auto`` runs matrix multiplications in bf16 where the GPU supports it, else in fp16 with a
GradScaler (fp16's small range makes tiny gradients underflow without loss scaling). On cpu and mps every
setting resolves to plain fp32, so the same notebook runs unchanged everywhere.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, ContextManager

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32.

    Mixed precision is a CUDA feature here: on cpu and mps every setting resolves to fp32, so the
    same notebook runs unchanged everywhere. ``auto`` picks bf16 where the GPU supports it, else fp16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager[Any]:
    """``torch.autocast`` for ``dtype``, or a no-op context for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 (bf16 has fp32's range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
