"""Helpers shared by the checks of this hour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def _shape(t: Tensor | None) -> str:
    return "None" if t is None else str(tuple(t.shape))

def _seeded(seed: int, make: Callable[[], Any]) -> Any:
    """``make()`` with the global generator seeded, without moving the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
