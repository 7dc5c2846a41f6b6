"""Helpers shared by the checks of Hour 06."""

from __future__ import annotations

import numbers
from typing import Any


def _is_id(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _not_an_id(v: Any) -> str:
    return f"{v!r} (a {type(v).__name__}, not an int)"
