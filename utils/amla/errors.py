"""Helpers for the course's one-line error messages."""

from __future__ import annotations

from torch import Tensor


def shape_text(t: object) -> str:
    """``(2, 5, 8)`` for a tensor, else the type's name, for messages like ``q (2, 5, 8) but k list``."""
    return str(tuple(t.shape)) if isinstance(t, Tensor) else type(t).__name__
