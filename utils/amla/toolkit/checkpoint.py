"""Checkpoints that survive a crash mid-write and load with ``weights_only=True``.

``save_checkpoint`` writes to a temporary file in the same folder, flushes it to disk, then renames
it over the target: the target always holds either the previous complete checkpoint or the new one.
``load_checkpoint`` verifies the archive's checksums, refuses arbitrary pickles (``weights_only=True``) and
turns a truncated, damaged or foreign file into a one-line error.

Random-number-generator states are stored as tensors and plain numbers (no numpy objects), so a
resumed run draws the same dropout masks and batches as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, or not a course checkpoint."""


def rng_state() -> dict[str, Any]:
    """The state of python's, numpy's and torch's global generators, in a weights_only-safe form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    if not isinstance(state, dict):
        raise TypeError(f"checkpoint state must be a dict, got {type(state).__name__}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` with ``weights_only=True``; clear errors otherwise."""
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"no checkpoint at {source}")
    size = source.stat().st_size
    if size == 0 or not zipfile.is_zipfile(source):
        raise CheckpointError(
            f"{source} ({size} bytes) is truncated or not a torch checkpoint; "
            "it was probably cut off while being copied, so use an earlier checkpoint or train again"
        )
    with zipfile.ZipFile(source) as archive:  # torch.load itself does not verify the stored CRC32s
        try:
            damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            damaged = f"? ({err})"
    if damaged is not None:
        raise CheckpointError(f"{source} is damaged (entry {damaged} fails its checksum); use an earlier checkpoint")
    try:
        state = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged archives and foreign pickles
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{source} could not be loaded as a weights-only checkpoint: {first}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} holds a {type(state).__name__}, expected a dict of states")
    return state
