"""The self-check of Exercise 6.1: merging a pair (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.gpt._common import _is_id, _not_an_id
from amla.transformers.text import merge_pair

MERGE_PAIR = exercise(6, "6.1", "Merging a pair", "merge_pair")


def _ids_view(ids: list[Any]) -> list[Any]:
    """What is compared: the list, an item that is not an int named as such (a float 3.0 equals 3 otherwise)."""
    return [t if _is_id(t) else _not_an_id(t) for t in ids]


def _merge_variant(kind: str) -> Callable[[list[int], tuple[int, int], int], list[int]]:
    """merge_pair with one typical bug switched on (kind)."""

    def fn(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
        ids, (a, b) = list(ids), pair
        if kind == "right_to_left":
            return merge_pair(ids[::-1], (b, a), new_id)[::-1]
        out, i, done = [], 0, False
        while i < len(ids):
            if kind == "drops_last" and i == len(ids) - 1:
                break  # a loop over range(len(ids) - 1)
            here = i + 1 < len(ids) and (ids[i], ids[i + 1]) in ([(a, b), (b, a)] if kind == "either_order" else [(a, b)])
            if here and not (kind == "first_only" and done):
                out.append(new_id)
                done = True
                i += 1 if kind == "skips_one" else 2
            else:
                out.append(ids[i])
                i += 1
        return out

    return fn


def _merge_reuses(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Each position that starts the pair becomes new_id and the second halves vanish: 5 5 5 -> [new, new]."""
    out = []
    for i, t in enumerate(ids):
        if i + 1 < len(ids) and t == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
        elif i > 0 and ids[i - 1] == pair[0] and t == pair[1]:
            continue
        else:
            out.append(t)
    return out


_MERGE_MISTAKES = [
    Mistake("overlapping occurrences are merged twice (in 5 5 5 the middle 5 is used by both pairs): after a merge, "
            "skip both tokens.", _merge_reuses),
    Mistake("the scan goes right to left: 5 5 5 must become [new, 5], scanning from the left.",
            _merge_variant("right_to_left")),
    Mistake("only the first occurrence is merged; replace every occurrence.", _merge_variant("first_only")),
    Mistake("the last token is dropped when it is not part of a merge (the loop stops one token early).",
            _merge_variant("drops_last")),
    Mistake("(b, a) is merged as well as (a, b): only the pair in its order is merged.",
            _merge_variant("either_order")),
    Mistake("after a merge only one token is skipped, so the second token of the pair is kept as well "
            "(i += 1 where it must be i += 2).", _merge_variant("skips_one")),
]


def _merge_cases() -> list[Case]:
    text = list("the cat sat on the mat".encode("utf-8"))
    cases = [
        ("ids [1, 2, 3, 1, 2], pair (1, 2), new_id 99", ([1, 2, 3, 1, 2], (1, 2), 99)),
        ("ids [5, 5, 5], pair (5, 5), new_id 99 (an overlapping run of 3)", ([5, 5, 5], (5, 5), 99)),
        ("ids [5, 5, 5, 5, 5], pair (5, 5), new_id 99 (an overlapping run of 5)", ([5, 5, 5, 5, 5], (5, 5), 99)),
        ("ids [2, 1, 1, 2, 4, 1, 2], pair (1, 2), new_id 99 ((2, 1) occurs too)", ([2, 1, 1, 2, 4, 1, 2], (1, 2), 99)),
        ("ids [3, 4, 3], pair (3, 4), new_id 99 (the last token is not merged)", ([3, 4, 3], (3, 4), 99)),
        ("ids [7, 1, 2, 8, 1, 2], pair (1, 2), new_id 256 (the pair at the very end)", ([7, 1, 2, 8, 1, 2], (1, 2), 256)),
        ("ids [1, 3, 2, 1], pair (1, 2), new_id 99 (the pair does not occur)", ([1, 3, 2, 1], (1, 2), 99)),
        (f"the {len(text)} bytes of 'the cat sat on the mat', pair (116, 104) ('t', 'h'), new_id 256",
         (text, (116, 104), 256)),
        ("ids of merged tokens [256, 32, 116, 256, 32, 256], pair (256, 32), new_id 300",
         ([256, 32, 116, 256, 32, 256], (256, 32), 300)),
        ("a single id [1], pair (1, 2), new_id 256", ([1], (1, 2), 256)),
        ("an empty list [], pair (1, 2), new_id 256", ([], (1, 2), 256)),
    ]
    return [Case(label, args, view=_ids_view) for label, args in cases]


def _merges_in(result: list[Any], new_id: int) -> int:
    return sum(1 for t in result if t == new_id)


def _merge_length(case: Case, result: Any, rerun: Any) -> str | None:
    ids, pair, new_id = case.args
    k = _merges_in(result, new_id)
    if len(result) != len(ids) - k:
        return (f"the result has {len(result)} ids with {k} merge{'s' * (k != 1)}, but each merge replaces two ids "
                f"by one: {len(ids)} - {k} = {len(ids) - k}")
    return None


def _merge_expands_back(case: Case, result: Any, rerun: Any) -> str | None:
    ids, pair, new_id = case.args
    expanded = [t for token in result for t in (pair if token == new_id else (token,))]
    if expanded != list(ids):
        return "replacing every new_id in the result by the pair does not give ids back"
    return None


def _merge_leaves_no_pair(case: Case, result: Any, rerun: Any) -> str | None:
    ids, pair, new_id = case.args
    left = sum(1 for p in zip(result, result[1:]) if p == tuple(pair))
    if left:
        return f"the result still contains the pair {tuple(pair)} {left} time{'s' * (left != 1)}"
    return None


_MERGE_PROPERTIES = [
    Property("'len(result) = len(ids) - the number of merges'", _merge_length),
    Property("'putting the pair back in place of new_id gives ids again'", _merge_expands_back),
    Property("'the result no longer contains the pair'", _merge_leaves_no_pair),
]


def _reference_merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    return merge_pair(ids, pair, new_id)


_MERGE_SPEC = Spec(reference=_reference_merge_pair, cases=_merge_cases, mistakes=_MERGE_MISTAKES,
                   properties=_MERGE_PROPERTIES, arg_names=("ids", "pair", "new_id"))


def check_merge_pair(merge_pair_fn: Callable[[list[int], tuple[int, int], int], list[int]]
                     ) -> Callable[[list[int], tuple[int, int], int], list[int]]:
    """Exercise 6.1: ``merge_pair(ids, pair, new_id) -> list``; returns the merge_pair the rest of the hour uses
    (yours once it passes)."""
    return check(MERGE_PAIR, _MERGE_SPEC, (merge_pair_fn,), (_reference_merge_pair,),
                 "a new list, right on {cases} cases (overlapping runs, a pair (a, a), the pair at "
                 "the end or nowhere, new_id >= 256, a single id, an empty list), and `ids` is left alone")
