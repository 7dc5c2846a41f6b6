"""Sequence tasks made in code: no download, any size, a seed makes them repeatable.

Every task gives ``PairSet``\\ s of (source text, target text) pairs, and a ``Vocab`` turns text into
padded tensors of token ids and back. What they share:

- ``Vocab``: a character-level vocabulary with the special tokens ``<pad>`` (id 0), ``<bos>`` (1)
  and ``<eos>`` (2); ``encode_batch`` pads with ``<pad>``, ``decode`` stops at ``<eos>``.
- ``PairSet``: sources, targets and a tag per pair (which format or variant made it);
  ``tensors(src_vocab, tgt_vocab)`` gives the padded id tensors a model trains on.

Tasks:

- ``date_task``: human-written dates ("3rd of March 2021", "Mar 3, 21", "03/03/2021", ...) to ISO
  "2021-03-03" (Hour 03). Its splits are disjoint in *dates*, not only in strings: a held-out date
  never appears in training in any format.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "BOS",
    "BOS_ID",
    "DATE_FORMATS",
    "EOS",
    "EOS_ID",
    "ISO_FIELDS",
    "PAD",
    "PAD_ID",
    "DateTask",
    "PairSet",
    "Vocab",
    "YMD_FORMATS",
    "date_task",
    "render_date",
]

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
"""The ids of the special tokens, the same in every ``Vocab``."""


# --- the shared vocabulary -------------------------------------------------------------------------


class Vocab:
    """Characters <-> ids. Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>``; the symbols follow in the given order."""

    def __init__(self, symbols: Iterable[str]):
        symbols = list(dict.fromkeys(symbols))  # unique, order kept
        for s in symbols:
            if not isinstance(s, str) or len(s) != 1:
                raise ValueError(f"Vocab: symbols must be single characters, got {s!r}")
        self.itos: list[str] = [*SPECIALS, *symbols]
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = PAD_ID, BOS_ID, EOS_ID

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "Vocab":
        """The sorted set of characters that occur in ``texts``."""
        return cls(sorted({c for text in texts for c in text}))

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        shown = "".join(self.itos[len(SPECIALS):])
        return f"Vocab({len(self)} ids: 3 specials + {shown!r})"

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """The ids of ``text``'s characters, optionally framed by ``<bos>`` / ``<eos>``."""
        if not isinstance(text, str):
            raise TypeError(f"Vocab.encode expected a str, got {type(text).__name__}")
        try:
            ids = [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(f"Vocab.encode: character {err.args[0]!r} of {text!r} is not in the vocabulary "
                             f"{''.join(self.itos[len(SPECIALS):])!r}") from None
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def encode_batch(self, texts: Sequence[str], *, bos: bool = False, eos: bool = False,
                     length: int | None = None) -> torch.Tensor:
        """A LongTensor [N, L] of ids, right-padded with ``<pad>`` to the longest text (or to ``length``)."""
        if isinstance(texts, str):
            raise TypeError("Vocab.encode_batch expected a list of str, got one str; wrap it in a list")
        rows = [self.encode(t, bos=bos, eos=eos) for t in texts]
        longest = max((len(r) for r in rows), default=0)
        width = longest if length is None else length
        if width < longest:
            raise ValueError(f"Vocab.encode_batch: length={length} is shorter than the longest text ({longest} ids)")
        out = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """The text of ``ids``: stops at the first ``<eos>``, skips ``<pad>`` and ``<bos>``."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"Vocab.decode expected one sequence of ids [L], got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        chars = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"Vocab.decode: id {i} is outside the vocabulary (0..{len(self.itos) - 1})")
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                chars.append(self.itos[i])
        return "".join(chars)

    def decode_batch(self, ids: torch.Tensor) -> list[str]:
        """``decode`` of every row of a [N, L] tensor."""
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"Vocab.decode_batch expected a tensor of ids [N, L], got {shape}")
        return [self.decode(row) for row in ids]


@dataclass(frozen=True)
class PairSet:
    """(source, target) text pairs, with a tag per pair (the format or variant that produced it)."""

    sources: list[str]
    targets: list[str]
    tags: list[str]

    def __post_init__(self) -> None:
        if not len(self.sources) == len(self.targets) == len(self.tags):
            raise ValueError(f"PairSet: {len(self.sources)} sources, {len(self.targets)} targets and "
                             f"{len(self.tags)} tags; expected the same number of each")

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[str, str, str]:
        return self.sources[i], self.targets[i], self.tags[i]

    def tensors(self, src_vocab: Vocab, tgt_vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
        """(src [N, S], tgt [N, T]): padded ids; every target ends with ``<eos>`` (no ``<bos>``, the decoder adds it)."""
        return src_vocab.encode_batch(self.sources), tgt_vocab.encode_batch(self.targets, eos=True)

    def subset(self, keep: Callable[[str, str, str], bool]) -> "PairSet":
        """The pairs for which ``keep(source, target, tag)`` is true."""
        rows = [row for row in zip(self.sources, self.targets, self.tags) if keep(*row)]
        return PairSet([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


# --- dates --------------------------------------------------------------------------------------

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


_ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_IRREGULAR_ORDINALS = {1: "first", 2: "second", 3: "third", 5: "fifth", 8: "eighth", 9: "ninth", 12: "twelfth"}


def _number_words(n: int) -> str:
    """1..99 in words: 7 -> seven, 42 -> forty-two."""
    if n < 20:
        return _ONES[n]
    return _TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else "")


def _ordinal_words(n: int) -> str:
    """1..99 as an ordinal in words: 3 -> third, 20 -> twentieth, 31 -> thirty-first."""
    if n < 20:
        return _IRREGULAR_ORDINALS.get(n, f"{_ONES[n]}th")
    if n % 10 == 0:
        return _TENS[n // 10][:-1] + "ieth"
    return f"{_TENS[n // 10]}-{_ordinal_words(n % 10)}"


def _year_words(year: int) -> str:
    """1970..2049 as spoken: nineteen eighty-four, two thousand, two thousand nine, two thousand twenty-one."""
    if year < 2000:
        return f"{_number_words(year // 100)} {_number_words(year % 100)}"
    return "two thousand" + (f" {_number_words(year % 100)}" if year % 100 else "")


def _month(d: dt.date) -> str:
    return MONTHS[d.month - 1]


def _weekday(d: dt.date) -> str:
    return WEEKDAYS[d.weekday()]


# Month and weekday names come from the tables above, never from strftime: they must not depend on the locale.
DATE_FORMATS: dict[str, Callable[[dt.date], str]] = {
    "d month yyyy": lambda d: f"{d.day} {_month(d)} {d.year}",                            # 3 March 2021
    "d month yyyy, lower": lambda d: f"{d.day} {_month(d).lower()} {d.year}",             # 3 march 2021
    "dth of month yyyy": lambda d: f"{_ordinal(d.day)} of {_month(d)} {d.year}",          # 3rd of March 2021
    "month d, yyyy": lambda d: f"{_month(d)} {d.day}, {d.year}",                          # March 3, 2021
    "weekday, month d, yyyy": lambda d: f"{_weekday(d)}, {_month(d)} {d.day}, {d.year}",  # Wednesday, March 3, 2021
    "wkd d mon yyyy": lambda d: f"{_weekday(d)[:3]} {d.day} {_month(d)[:3]} {d.year}",   # Wed 3 Mar 2021
    "mon d, yy": lambda d: f"{_month(d)[:3]} {d.day}, {d.year % 100:02d}",                # Mar 3, 21
    "dd MON yyyy": lambda d: f"{d.day:02d} {_month(d)[:3].upper()} {d.year}",             # 03 MAR 2021
    "dd/mm/yyyy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",                        # 03/03/2021
    "d.m.yy": lambda d: f"{d.day}.{d.month}.{d.year % 100:02d}",                          # 3.3.21
    "yyyy.mm.dd": lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}",                        # 2021.03.03
    "yyyy/m/d": lambda d: f"{d.year}/{d.month}/{d.day}",                                  # 2021/3/3
    "yyyymmdd": lambda d: f"{d.year}{d.month:02d}{d.day:02d}",                            # 20210303
    "in words": lambda d: f"the {_ordinal_words(d.day)} of {_month(d)}, {_year_words(d.year)}",
    # the third of March, two thousand twenty-one
    "weekday in words": lambda d: f"{_weekday(d)}, {_month(d)} the {_ordinal_words(d.day)}, {_year_words(d.year)}",
    # Wednesday, March the third, two thousand twenty-one
}
"""Every input format of the date task, by name. Two-digit years follow the POSIX rule: 69-99 -> 19xx, 00-68 -> 20xx."""

YMD_FORMATS = ("yyyy.mm.dd", "yyyy/m/d", "yyyymmdd")
"""Formats that already write year, month, day in the ISO order: their alignment with the target is a diagonal."""

ISO_FIELDS = ((0, 1, 2, 3), (5, 6), (8, 9))
"""Positions of the year, month and day digits in the target ``yyyy-mm-dd``."""

DATE_START, DATE_END = dt.date(1970, 1, 1), dt.date(2049, 12, 31)
"""The default range of dates: inside the range where two-digit years are unambiguous (1969-2068)."""

DATE_CHARACTERS = string.ascii_letters + string.digits + " ,./-"
ISO_CHARACTERS = string.digits + "-"


def render_date(date: dt.date, fmt: str) -> str:
    """``date`` written in the format named ``fmt`` (a key of ``DATE_FORMATS``)."""
    if fmt not in DATE_FORMATS:
        raise ValueError(f"unknown date format {fmt!r}; expected one of {list(DATE_FORMATS)}")
    if not isinstance(date, dt.date):
        raise TypeError(f"render_date expected a datetime.date, got {type(date).__name__}")
    return DATE_FORMATS[fmt](date)


@dataclass(frozen=True)
class DateTask:
    """Train/validation/test pairs whose *dates* are disjoint, and the source/target vocabularies."""

    train: PairSet
    val: PairSet
    test: PairSet
    src_vocab: Vocab
    tgt_vocab: Vocab


def _count(name: str, value: object, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"date_task: {name} must be an int >= {least}, got {value!r}")
    return value


def date_task(
    n_train: int,
    n_val: int,
    n_test: int,
    *,
    seed: int = 0,
    formats: Sequence[str] | None = None,
    start: dt.date = DATE_START,
    end: dt.date = DATE_END,
) -> DateTask:
    """Date-translation pairs: a human format -> ISO ``yyyy-mm-dd``, split by date.

    Every day from ``start`` to ``end`` is shuffled with ``seed``; the first ``n_test`` days become the
    test dates, the next ``n_val`` the validation dates, all remaining days the training dates. Each
    test and validation pair has its own date; training pairs draw their dates (with repeats) from the
    training dates. Each pair's format is drawn uniformly from ``formats`` (default: all of
    ``DATE_FORMATS``) and is its tag. The global random state is not touched.
    """
    _count("n_train", n_train, 1)
    _count("n_val", n_val, 0)
    _count("n_test", n_test, 0)
    _count("seed", seed, 0)
    names = list(DATE_FORMATS) if formats is None else list(formats)
    unknown = [f for f in names if f not in DATE_FORMATS]
    if not names or unknown:
        raise ValueError(f"date_task: unknown format(s) {unknown or names}; expected names from {list(DATE_FORMATS)}")
    if not (isinstance(start, dt.date) and isinstance(end, dt.date)) or not DATE_START <= start <= end <= DATE_END:
        raise ValueError(f"date_task: need {DATE_START} <= start <= end <= {DATE_END} (two-digit years must be "
                         f"unambiguous), got start={start}, end={end}")
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    if n_val + n_test >= len(days):
        raise ValueError(f"date_task: n_val + n_test = {n_val + n_test} leaves no training dates; the range "
                         f"{start}..{end} has {len(days)} days")
    rng = random.Random(seed)
    rng.shuffle(days)
    test_days, val_days, train_days = days[:n_test], days[n_test : n_test + n_val], days[n_test + n_val :]

    def pairs(dates: list[dt.date]) -> PairSet:
        tags = [rng.choice(names) for _ in dates]
        return PairSet([render_date(d, f) for d, f in zip(dates, tags)], [d.isoformat() for d in dates], tags)

    test, val = pairs(test_days), pairs(val_days)
    train = pairs([rng.choice(train_days) for _ in range(n_train)])
    return DateTask(train, val, test, Vocab(DATE_CHARACTERS), Vocab(ISO_CHARACTERS))


# --- multi-digit addition (Hour 05) ---------------------------------------------------------------


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
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"addition_task: {name} must be an int >= {least}, got {value!r}")
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


__all__ += ["AdditionTask", "addition_task"]


# --- sequence reversal (Hour 04) ------------------------------------------------------------------


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
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"reversal_task: {name} must be an int >= {least}, got {value!r}")
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


__all__ += ["ReversalTask", "reversal_task"]
