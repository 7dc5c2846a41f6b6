"""The tabular exercises of Hour 15 work on numpy arrays; the check engine compares torch tensors. A case holds
tensors, the call hands the student numpy views of them (``Tensor.numpy()`` shares memory, so a change in place is
still seen by the engine), and what comes back is turned into tensors: float arrays as float64 (float32 answers
pass, compared within the case's tolerance), integer arrays as int64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor


def as_numpy(value: Any) -> Any:
    """Tensors become numpy views sharing their memory; everything else is passed as it is."""
    return value.numpy() if isinstance(value, Tensor) else value


def as_tensor(value: Any, what: str, shape: str) -> Tensor:
    """A numpy array the student returned, as a tensor (float64 or int64, bool kept); a one-line error otherwise."""
    if isinstance(value, Tensor):
        raise TypeError(f"{what} must be a numpy array {shape}, got a torch tensor: this hour works in numpy "
                        "(np.zeros, np.einsum, @)")
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what} must be a numpy array {shape}, got {type(value).__name__} (np.asarray(...) or "
                        "np.zeros(...) make one)")
    if value.dtype == np.bool_:
        return torch.from_numpy(value.copy())
    if np.issubdtype(value.dtype, np.integer):
        return torch.from_numpy(value.astype(np.int64))
    if np.issubdtype(value.dtype, np.floating):
        return torch.from_numpy(value.astype(np.float64))
    raise TypeError(f"{what} must be a numpy array of numbers {shape}, got dtype {value.dtype}")


def numpy_call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """``fn`` called on numpy views of the case's tensors."""
    return fn(*(as_numpy(a) for a in args))


def from_np(x: np.ndarray) -> Tensor:
    """A case's array as a tensor sharing its memory (contiguous first)."""
    return torch.from_numpy(np.ascontiguousarray(x))


def to_np(t: Any) -> Any:
    return t.detach().cpu().numpy() if isinstance(t, Tensor) else np.asarray(t)
