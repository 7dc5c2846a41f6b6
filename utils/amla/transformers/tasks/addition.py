"""Multi-digit addition (Hour 05): ``"123+4567="`` -> ``"4690"``, optionally with the sum's digits reversed."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from amla.toolkit.errors import check_int
from amla.transformers.tasks.vocab import PairSet, Vocab

__all__ = ["AdditionTask", "addition_task"]


@dataclass(frozen=True)
class AdditionTask:
    """Train/validation/test sums whose operand pairs are disjoint, and the source/target vocabularies."""

    train: PairSet
    val: PairSet
    test: PairSet
    src_vocab: Vocab
    tgt_vocab: Vocab
    reverse: bool

    def read(self, target: str) -> str:
        """The sum as people write it: undoes the reversal of ``reverse=True`` targets."""
        return target[::-1] if self.reverse else target


def addition_task(
    n_train: int,
    n_val: int,
    n_test: int,
    *,
    min_digits: int = 1,
    max_digits: int = 4,
    reverse: bool = False,
    seed: int = 0,
) -> AdditionTask:
    """Sums of two non-negative integers: ``"123+4567="`` -> ``"4690"`` (``"0964"`` with ``reverse=True``).

    Each operand's number of digits is drawn uniformly from ``min_digits..max_digits`` and then the
    operand uniformly among the numbers with that many digits, so short and long operands are equally
    common. The splits are disjoint in *unordered operand pairs*: if ``a+b`` is held out, neither
    ``a+b`` nor ``b+a`` occurs in training. Training pairs are all distinct; the tag of a pair is
    ``"<digits of a>+<digits of b>"``. ``reverse=True`` writes the sum's digits least significant
    first (the order in which addition produces them). The global random state is not touched.
    """
    for name, value, least in [("n_train", n_train, 1), ("n_val", n_val, 0), ("n_test", n_test, 0),
                               ("seed", seed, 0), ("min_digits", min_digits, 1), ("max_digits", max_digits, 1)]:
        check_int("addition_task", name, value, least)
    if not min_digits <= max_digits <= 18:
        raise ValueError(f"addition_task: need 1 <= min_digits <= max_digits <= 18, got {min_digits}..{max_digits}")
    lows = [0 if d == 1 else 10 ** (d - 1) for d in range(min_digits, max_digits + 1)]
    sizes = [10**d - low for d, low in zip(range(min_digits, max_digits + 1), lows)]
    n_pairs = sum(sizes) * (sum(sizes) + 1) // 2  # unordered pairs
    if n_train + n_val + n_test > n_pairs // 2:
        raise ValueError(f"addition_task: {n_train + n_val + n_test} pairs asked for, but operands of "
                         f"{min_digits}..{max_digits} digits give only {n_pairs} distinct sums; ask for at most "
                         f"half of them or allow more digits")
    rng = random.Random(seed)

    def operand() -> int:
        k = rng.randrange(len(lows))
        return lows[k] + rng.randrange(sizes[k])

    seen: set[tuple[int, int]] = set()
    held: dict[tuple[int, int], int] = {}  # held-out sums per (shorter, longer) operand length

    def draw(n: int, held_out: bool) -> PairSet:
        rows = []
        while len(rows) < n:
            a, b = operand(), operand()
            key = (min(a, b), max(a, b))
            if key in seen:
                continue
            lengths = tuple(sorted((len(str(a)), len(str(b)))))
            if held_out:  # never hold out more than a tenth of a length combination (there are 55 sums 1+1)
                i, j = lengths[0] - min_digits, lengths[1] - min_digits
                space = sizes[i] * (sizes[i] + 1) // 2 if i == j else sizes[i] * sizes[j]
                if held.get(lengths, 0) + 1 > max(1, space // 10):
                    continue
                held[lengths] = held.get(lengths, 0) + 1
            seen.add(key)
            total = str(a + b)
            rows.append((f"{a}+{b}=", total[::-1] if reverse else total, f"{len(str(a))}+{len(str(b))}"))
        return PairSet([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])

    test = draw(n_test, True)
    val = draw(n_val, True)
    train = draw(n_train, False)
    return AdditionTask(train, val, test, Vocab(string.digits + "+="), Vocab(string.digits), reverse)
