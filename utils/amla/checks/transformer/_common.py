"""Helpers shared by the checks of Hour 04."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def _seeded(seed: int, make: Callable[[], Any]) -> Any:
    """``make()`` with the global generator seeded, without moving the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()
