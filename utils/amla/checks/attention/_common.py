"""Helpers shared by the checks of this hour."""

from __future__ import annotations

import math

from torch import Tensor

_NEG_INF = -math.inf

def _shape(t: Tensor | None) -> str:
    return "None" if t is None else str(tuple(t.shape))
