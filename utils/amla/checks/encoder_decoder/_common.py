"""Helpers shared by the checks of this hour."""

from __future__ import annotations

from torch import Tensor


def _shape(t: Tensor) -> str:
    return str(tuple(t.shape))
