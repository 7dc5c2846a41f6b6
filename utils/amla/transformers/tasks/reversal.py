"""Sequence reversal (Hour 04): random symbol sequences and the same sequence reversed, ``"3107"`` -> ``"7013"``."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from amla.toolkit.errors import check_int
from amla.transformers.tasks.vocab import PairSet, Vocab

__all__ = ["ReversalTask", "reversal_task"]


@dataclass(frozen=True)
class ReversalTask:
    """Train/validation/test sequences (disjoint, no sequence in two splits) and their vocabulary (both sides)."""

    train: PairSet
    val: PairSet
    test: PairSet
    vocab: Vocab


def reversal_task(
    n_train: int,
    n_val: int,
    n_test: int,
    *,
    min_len: int = 12,
    max_len: int = 12,
    n_symbols: int = 10,
    seed: int = 0,
) -> ReversalTask:
    """Random sequences and the same sequence reversed: ``"3107"`` -> ``"7013"``.

    Symbols are the first ``n_symbols`` of ``0-9a-z``; each sequence's length is drawn uniformly from
    ``min_len..max_len`` (its tag, e.g. ``"len 12"``), then its symbols uniformly and independently. All
    sequences are distinct, so the splits are disjoint. Sources and targets share one ``Vocab``; an
    encoder-only model predicts ``target[i]`` at position ``i`` (``vocab.encode_batch`` on both sides, same
    padding). The global random state is not touched.
    """
    for name, value, least in [("n_train", n_train, 1), ("n_val", n_val, 0), ("n_test", n_test, 0),
                               ("seed", seed, 0), ("min_len", min_len, 1), ("max_len", max_len, 1),
                               ("n_symbols", n_symbols, 2)]:
        check_int("reversal_task", name, value, least)
    alphabet = string.digits + string.ascii_lowercase
    if n_symbols > len(alphabet) or min_len > max_len:
        raise ValueError(f"reversal_task: need n_symbols <= {len(alphabet)} and min_len <= max_len, got "
                         f"n_symbols={n_symbols}, lengths {min_len}..{max_len}")
    total = n_train + n_val + n_test
    space = sum(n_symbols**n for n in range(min_len, max_len + 1))
    if total > space // 2:
        raise ValueError(f"reversal_task: {total} sequences asked for, but lengths {min_len}..{max_len} over "
                         f"{n_symbols} symbols give only {space}; ask for at most half of them")
    symbols = alphabet[:n_symbols]
    rng = random.Random(seed)
    seen: set[str] = set()

    def draw(n: int) -> PairSet:
        rows: list[str] = []
        while len(rows) < n:
            text = "".join(rng.choice(symbols) for _ in range(rng.randint(min_len, max_len)))
            if text not in seen:
                seen.add(text)
                rows.append(text)
        return PairSet(rows, [t[::-1] for t in rows], [f"len {len(t)}" for t in rows])

    test = draw(n_test)
    val = draw(n_val)
    train = draw(n_train)
    return ReversalTask(train, val, test, Vocab(symbols))
