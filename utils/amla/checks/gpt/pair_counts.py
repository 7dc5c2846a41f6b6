"""The self-check of Exercise 6.1: counting pairs (what it checks: the package docstring)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.gpt._common import _is_id
from amla.transformers.text import pair_counts

PAIR_COUNTS = exercise(6, "6.1", "Counting pairs", "pair_counts")


def _nonzero(counts: Mapping[Any, Any]) -> dict[Any, Any]:
    return {k: v for k, v in counts.items() if v != 0}


def _counts_view(counts: Mapping[Any, Any]) -> dict[Any, Any]:
    """What is compared: the entries with a count other than 0, a key that is not a pair of ints named as such."""
    out = {}
    for key, value in _nonzero(counts).items():
        ok = isinstance(key, tuple) and len(key) == 2 and all(_is_id(t) for t in key)
        out[key if ok else f"{key!r} (a key should be a pair of ints, (ids[i], ids[i + 1]))"] = value
    return out


def _counts_variant(kind: str) -> Callable[[list[int]], dict[tuple[int, int], int]]:
    """pair_counts with one typical bug switched on (kind)."""

    def fn(ids: list[int]) -> dict[tuple[int, int], int]:
        ids = list(ids)
        if kind == "distinct":
            return {p: 1 for p in zip(ids, ids[1:])}
        if kind == "non_overlapping":
            return dict(Counter(zip(ids[0::2], ids[1::2])))
        if kind == "wrap_around":
            return dict(Counter(zip(ids, ids[1:] + ids[:1])))
        if kind == "unordered":
            return dict(Counter(tuple(sorted(p)) for p in zip(ids, ids[1:])))
        if kind == "misses_last":
            return dict(Counter((ids[i], ids[i + 1]) for i in range(len(ids) - 2)))
        return dict(Counter(zip(ids, ids[1:])))

    return fn


_COUNT_MISTAKES = [
    Mistake("every pair is counted once, however often it occurs (a set of pairs, not their counts).",
            _counts_variant("distinct")),
    Mistake("the pairs are taken two tokens at a time (0-1, 2-3, ...), missing the overlapping ones (1-2, 3-4, ...).",
            _counts_variant("non_overlapping")),
    Mistake("the last token is paired with the first one (zip(ids, ids[1:] + ids[:1])): the text does not wrap around.",
            _counts_variant("wrap_around")),
    Mistake("(a, b) and (b, a) are counted as the same pair: the order of a pair matters.",
            _counts_variant("unordered")),
    Mistake("the last pair is missed (a loop over range(len(ids) - 2) stops one pair early; the pairs are "
            "(ids[i], ids[i + 1]) for i in range(len(ids) - 1)).", _counts_variant("misses_last")),
]


def _count_cases() -> list[Case]:
    text = list("the cat sat on the mat".encode("utf-8"))
    cases = [
        ("ids [1, 2, 3, 1, 2] (the pair (1, 2) twice)", ([1, 2, 3, 1, 2],)),
        ("ids [7, 7, 7, 7] (one repeated token: its pairs overlap)", ([7, 7, 7, 7],)),
        ("ids [1, 2, 1, 2, 1, 5, 5]", ([1, 2, 1, 2, 1, 5, 5],)),
        ("ids [3, 4, 4, 3, 3, 4] (both (3, 4) and (4, 3))", ([3, 4, 4, 3, 3, 4],)),
        (f"the {len(text)} bytes of 'the cat sat on the mat'", (text,)),
        ("ids of merged tokens (>= 256): [256, 101, 256, 101, 300, 32, 256]",
         ([256, 101, 256, 101, 300, 32, 256],)),
        ("two ids [4, 2] (a single pair)", ([4, 2],)),
        ("a single id [9] (no pair at all)", ([9],)),
        ("an empty list []", ([],)),
    ]
    return [Case(label, args, view=_counts_view) for label, args in cases]


def _counts_add_up(case: Case, result: Any, rerun: Any) -> str | None:
    (ids,) = case.args
    total, want = sum(_nonzero(result).values()), max(len(ids) - 1, 0)
    if total != want:
        return f"they add up to {total}, but a list of {len(ids)} ids has {want} neighbouring pairs"
    return None


def _keys_are_neighbours(case: Case, result: Any, rerun: Any) -> str | None:
    (ids,) = case.args
    pairs = set(zip(ids, ids[1:]))
    for key in _nonzero(result):
        if not (isinstance(key, tuple) and len(key) == 2 and all(_is_id(t) for t in key)):
            return f"the key {key!r} is a {type(key).__name__}; a key should be a pair of ints (ids[i], ids[i + 1])"
        if key not in pairs:
            return f"the key {key!r} is not (ids[i], ids[i + 1]) for any i"
    return None


def _reversal_reverses_pairs(case: Case, result: Any, rerun: Any) -> str | None:
    (ids,) = case.args
    if len(ids) < 2:
        return None
    backwards = _nonzero(rerun(list(reversed(ids))))
    want = {(b, a): v for (a, b), v in _nonzero(result).items()}
    if backwards != want:
        return "the counts of the reversed list are not the counts of the reversed pairs"
    return None


_COUNT_PROPERTIES = [
    Property("'the counts add up to len(ids) - 1'", _counts_add_up),
    Property("'every key is a pair of neighbours (ids[i], ids[i + 1])'", _keys_are_neighbours),
    Property("'reversing ids reverses every pair and keeps its count'", _reversal_reverses_pairs),
]


def _reference_pair_counts(ids: list[int]) -> dict[tuple[int, int], int]:
    return pair_counts(ids)


_COUNT_SPEC = Spec(reference=_reference_pair_counts, cases=_count_cases, mistakes=_COUNT_MISTAKES,
                   properties=_COUNT_PROPERTIES, arg_names=("ids",))


def check_pair_counts(pair_counts_fn: Callable[[list[int]], dict[tuple[int, int], int]]
                      ) -> Callable[[list[int]], dict[tuple[int, int], int]]:
    """Exercise 6.1: ``pair_counts(ids) -> {(a, b): count}``; returns the pair_counts the rest of the hour uses
    (yours once it passes)."""
    return check(PAIR_COUNTS, _COUNT_SPEC, (pair_counts_fn,), (_reference_pair_counts,),
                 "the counts match on {cases} lists (overlapping runs, ids >= 256, a single pair, "
                 "a single id, an empty list), and `ids` is left alone")
