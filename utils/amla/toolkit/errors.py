"""Helpers for the course's one-line error messages."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def shape_text(t: object) -> str:
    """``(2, 5, 8)`` for a tensor, ``None`` for None, else the type's name, for messages like ``q (2, 5, 8) but k
    list`` and for the labels of the self-checks' cases."""
    if t is None:
        return "None"
    return str(tuple(t.shape)) if isinstance(t, Tensor) else type(t).__name__


def check_int(owner: str, name: str, value: object, least: int = 1) -> int:
    """``value`` if it is an int (not a bool) >= ``least``; else a one-line ``ValueError`` naming ``owner``,
    ``name``, the bound and the value: ``split_heads: n_heads must be an int >= 1, got 0``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{owner}: {name} must be an int >= {least}, got {value!r}")
    return value


def check_hook(owner: str, name: str, fn: object, signature: str) -> Any:
    """``fn`` if it is a function or None: the optional parameters through which a student's exercise plugs into the
    package (``Trainer(step_fn=...)``, ``EncoderDecoder(decoder_mask_fn=...)``, ...). Else a one-line ``TypeError``:
    ``EncoderDecoder: decoder_mask_fn must be a function like decoder_mask(tgt_in) -> mask or None, got int``."""
    if fn is not None and not callable(fn):
        raise TypeError(f"{owner}: {name} must be a function like {signature} or None, got {type(fn).__name__}")
    return fn
