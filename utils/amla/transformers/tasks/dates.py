"""The date task (Hour 03): human-written dates ("3rd of March 2021", "Mar 3, 21", ...) to ISO "2021-03-03".

The splits are disjoint in *dates*, not only in strings: a held-out date never appears in training in any format.
Month and weekday names come from tables here, never from ``strftime``, so nothing depends on the locale.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from amla.toolkit.errors import check_int
from amla.transformers.tasks.vocab import PairSet, Vocab

__all__ = [
    "DATE_CHARACTERS", "DATE_END", "DATE_FORMATS", "DATE_START", "ISO_CHARACTERS", "ISO_FIELDS", "MONTHS", "WEEKDAYS",
    "YMD_FORMATS", "DateTask", "date_task", "render_date",
]

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
    for name, value, least in [("n_train", n_train, 1), ("n_val", n_val, 0), ("n_test", n_test, 0), ("seed", seed, 0)]:
        check_int("date_task", name, value, least)
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
