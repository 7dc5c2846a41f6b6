"""Self-checks of Hour 06 (GPT): byte-pair counts and merges, and top-p (nucleus) filtering.

The BPE checks run hand-picked token lists where the usual mistakes give different answers (runs like
"aaaa" that overlap, a pair at the very end, a text whose first and last token form a pair). The top-p
check uses compare with random logits, a temperature other than 1 and several values of p.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

import torch

from amla.checks.core import CheckFailed, Mistake, compare, fail, passed
from amla.transformers.text import merge_pair, pair_counts

__all__ = ["check_merge_pair", "check_pair_counts", "check_top_p"]


def _values(name: str, student: Callable[..., Any], reference: Callable[..., Any], cases: Sequence[tuple[Any, ...]],
            mistakes: Sequence[Mistake], normalise: Callable[[Any], Any], what: str) -> None:
    """Compare plain Python results (lists, dicts) case by case; name the first mistake that reproduces a wrong one."""
    for args in cases:
        expected = normalise(reference(*args))
        try:
            got = normalise(student(*args))
        except NotImplementedError:
            fail(name, "not implemented yet: replace the `raise NotImplementedError` line with your code.")
        except CheckFailed:
            raise
        except Exception as err:  # noqa: BLE001 - the student's code crashed: say where, in one line
            fail(name, f"your code raised {type(err).__name__}: {err}")
        if got == expected:
            continue
        for mistake in mistakes:
            try:
                buggy = normalise(mistake.fn(*args))
            except Exception:  # noqa: BLE001 - a variant that cannot run here does not match
                continue
            if buggy == got and buggy != expected:
                fail(name, f"for {args!r} the {what} is {got}, expected {expected}; it looks like {mistake.description}")
        fail(name, f"for {args!r} the {what} is {got}, expected {expected}.")
    passed(name, f"matches the reference on {len(cases)} cases")


# --- pair counts ------------------------------------------------------------------------------------


def _counts_distinct(ids):
    return {p: 1 for p in zip(ids, ids[1:])}


def _counts_non_overlapping(ids):
    counts: Counter = Counter()
    i = 0
    while i + 1 < len(ids):
        counts[(ids[i], ids[i + 1])] += 1
        i += 2
    return dict(counts)


def _counts_wrap_around(ids):
    return dict(Counter(zip(ids, list(ids[1:]) + list(ids[:1]))))


def _counts_unordered(ids):
    return dict(Counter(tuple(sorted(p)) for p in zip(ids, ids[1:])))


_COUNT_CASES = [([1, 2, 3, 1, 2],), ([7, 7, 7, 7],), ([1, 2, 1, 2, 1, 5, 5],), ([3, 4, 4, 3, 3, 4],), ([9],)]
_COUNT_MISTAKES = [
    Mistake("every pair is counted once, however often it occurs (a set of pairs, not their counts).", _counts_distinct),
    Mistake("the pairs are taken two tokens at a time (0-1, 2-3, ...), missing the overlapping ones (1-2, 3-4, ...).",
            _counts_non_overlapping),
    Mistake("the last token is paired with the first one (zip(ids, ids[1:] + ids[:1])): the text does not wrap around.",
            _counts_wrap_around),
    Mistake("(a, b) and (b, a) are counted as the same pair: the order of a pair matters.", _counts_unordered),
]


def check_pair_counts(student: Callable[[list[int]], dict[tuple[int, int], int]]) -> None:
    """``pair_counts(ids)``: a dict mapping each adjacent pair ``(a, b)`` to how often it occurs."""
    _values("pair_counts", student, pair_counts, _COUNT_CASES, _COUNT_MISTAKES,
            lambda d: {tuple(k): int(v) for k, v in dict(d).items() if v}, "dict of counts")


# --- merging ----------------------------------------------------------------------------------------


def _merge_reuses_new_token(ids, pair, new_id):  # "aaa" -> [X, X]: the second a is used twice
    out = []
    for i, t in enumerate(ids):
        if i + 1 < len(ids) and t == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
        elif i > 0 and ids[i - 1] == pair[0] and t == pair[1]:
            continue
        else:
            out.append(t)
    return out


def _merge_right_to_left(ids, pair, new_id):
    reversed_pair = (pair[1], pair[0])
    return merge_pair(list(ids)[::-1], reversed_pair, new_id)[::-1]


def _merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            return list(ids[:i]) + [new_id] + list(ids[i + 2:])
    return list(ids)


def _merge_drops_last(ids, pair, new_id):  # a loop over range(len(ids) - 1) that forgets the final token
    out, i = [], 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_either_order(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) in (tuple(pair), tuple(pair)[::-1]):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


_MERGE_CASES = [
    ([1, 2, 3, 1, 2], (1, 2), 99),
    ([5, 5, 5], (5, 5), 99),
    ([5, 5, 5, 5, 5], (5, 5), 99),
    ([2, 1, 1, 2, 4, 1, 2], (1, 2), 99),
    ([3, 4, 3], (3, 4), 99),
]
_MERGE_MISTAKES = [
    Mistake("overlapping occurrences are merged twice (in 5 5 5 the middle 5 is used by both pairs): after a merge, "
            "skip both tokens.", _merge_reuses_new_token),
    Mistake("the scan goes right to left: 5 5 5 must become [new, 5], scanning from the left.", _merge_right_to_left),
    Mistake("only the first occurrence is merged; replace every occurrence.", _merge_first_only),
    Mistake("the last token is dropped when it is not part of a merge (the loop stops one token early).",
            _merge_drops_last),
    Mistake("(b, a) is merged as well as (a, b): only the pair in its order is merged.", _merge_either_order),
]


def check_merge_pair(student: Callable[[list[int], tuple[int, int], int], list[int]]) -> None:
    """``merge_pair(ids, pair, new_id)``: a new list with every ``pair`` replaced by ``new_id``, left to right."""
    _values("merge_pair", student, merge_pair, _MERGE_CASES, _MERGE_MISTAKES,
            lambda ids: [int(t) for t in ids], "merged list")


# --- top-p ------------------------------------------------------------------------------------------


def _top_p_reference(logits, p, temperature):
    from amla.transformers.gpt import top_p_probs

    return top_p_probs(logits, p, temperature)


def _keep_and_renorm(probs, keep_sorted, order):
    kept = torch.zeros_like(probs).scatter(-1, order, keep_sorted)
    return kept / kept.sum(-1, keepdim=True)


def _top_p_unsorted(logits, p, temperature):
    probs = (logits / temperature).softmax(-1)
    before = probs.cumsum(-1) - probs  # vocabulary order, not probability order
    kept = probs.masked_fill(before >= p, 0.0)
    return kept / kept.sum(-1, keepdim=True)


def _top_p_cut_before_crossing(logits, p, temperature):
    probs = (logits / temperature).softmax(-1)
    s, order = probs.sort(-1, descending=True)
    cum = s.cumsum(-1)
    keep = s.masked_fill(cum > p, 0.0)
    keep[..., 0] = s[..., 0]  # at least the most likely token
    return _keep_and_renorm(probs, keep, order)


def _top_p_not_renormalised(logits, p, temperature):
    probs = (logits / temperature).softmax(-1)
    s, order = probs.sort(-1, descending=True)
    keep = s.masked_fill(s.cumsum(-1) - s >= p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, keep)


def _top_p_temperature_after_softmax(logits, p, temperature):
    probs = logits.softmax(-1) / temperature
    probs = probs / probs.sum(-1, keepdim=True)
    s, order = probs.sort(-1, descending=True)
    keep = s.masked_fill(s.cumsum(-1) - s >= p, 0.0)
    return _keep_and_renorm(probs, keep, order)


def _top_p_inputs(g: torch.Generator) -> tuple[Any, ...]:
    logits = torch.randn(4, 12, generator=g) * 2.0
    p = [0.5, 0.8, 0.9][int(torch.randint(0, 3, (1,), generator=g))]
    return logits, p, 0.7


_TOP_P_MISTAKES = [
    Mistake("the cumulative sum runs over the tokens in vocabulary order: sort the probabilities (descending) first.",
            _top_p_unsorted),
    Mistake("the token whose probability crosses p is cut: keep tokens while the mass *before* them is below p, so "
            "the kept mass reaches p.", _top_p_cut_before_crossing),
    Mistake("the kept probabilities are not renormalised: divide by their sum so they add up to 1.",
            _top_p_not_renormalised),
    Mistake("the temperature is applied after the softmax (or not at all): dividing probabilities by it changes "
            "nothing once they are renormalised. Divide the logits by the temperature, then take the softmax.",
            _top_p_temperature_after_softmax),
]


def check_top_p(student: Callable[[torch.Tensor, float, float], torch.Tensor]) -> None:
    """``top_p_probs(logits [B, V], p, temperature)``: nucleus probabilities in vocabulary order, rows summing to 1."""
    with torch.random.fork_rng(devices=[]):
        compare("top_p_probs", student, _top_p_reference, _top_p_inputs, _TOP_P_MISTAKES, trials=4,
                what="top-p distribution", atol=1e-6)
