"""Helpers shared by the checks of Hour 02."""

from __future__ import annotations

import math

_NEG_INF = -math.inf
