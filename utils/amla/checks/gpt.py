"""Self-checks of Hour 06 (GPT): byte-pair counts (6.1), merging a pair (6.2) and top-p probabilities (6.3).

The BPE cases are token lists where the usual mistakes give different answers (runs like 7 7 7 7 and 5 5 5 5 5
that overlap, a pair at the very end, a list where (a, b) and (b, a) both occur), plus the edge inputs: an empty
list, a single id, ids of merged tokens (>= 256), a pair (a, a), no occurrence at all. A tuple of ids is not a
case: the hour only ever passes lists (``list(text.encode())`` and what ``merge_pair`` returns), and a correct
solution for a list may use list methods (``ids.copy()``, ``ids + [...]``).

Counts compare as a dict of (int, int) -> int: a ``Counter`` or a ``defaultdict`` is a dict, and entries whose
count is 0 (a ``Counter`` after a subtraction, a ``defaultdict`` that was read) are left out before comparing.
``merge_pair`` must return a new list of ints (a tuple is refused: the exercise asks for a list, and the hour
hands the result to the next ``pair_counts`` and to the caller of ``BPETokenizer.encode``); returning the input
list itself is fine as long as it was not changed.

The top-p cases use random logits, temperatures other than 1 and several values of p, chosen so that no
cumulative probability lies within 1e-4 of p (so ``before >= p`` and ``cumsum > p`` shifted by one agree), plus
the edges: p = 1 (a plain softmax), a tiny p (the top token alone), logits of 1e4, a batch of 1, a vocabulary of
1, exact ties among the top tokens (all of them inside the nucleus: which of two tied tokens a sort lists first
is not defined), -inf logits as top-k filtering leaves them, float64 logits, and the temperature left out.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.gpt import top_p_probs
from amla.transformers.text import merge_pair, pair_counts

__all__ = ["check_merge_pair", "check_pair_counts", "check_top_p"]

PAIR_COUNTS = exercise(6, "6.1", "Counting pairs", "pair_counts")
MERGE_PAIR = exercise(6, "6.2", "Merging a pair", "merge_pair")
TOP_P = exercise(6, "6.3", "Top-p probabilities", "top_p_probs")


def _is_id(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _not_an_id(v: Any) -> str:
    return f"{v!r} (a {type(v).__name__}, not an int)"


# --- Exercise 6.1: counting pairs -------------------------------------------------------------------


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
                 f"the counts match on {len(_count_cases())} lists (overlapping runs, ids >= 256, a single pair, "
                 "a single id, an empty list), and `ids` is left alone")


# --- Exercise 6.2: merging a pair -------------------------------------------------------------------


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
    """Exercise 6.2: ``merge_pair(ids, pair, new_id) -> list``; returns the merge_pair the rest of the hour uses
    (yours once it passes)."""
    return check(MERGE_PAIR, _MERGE_SPEC, (merge_pair_fn,), (_reference_merge_pair,),
                 f"a new list, right on {len(_merge_cases())} cases (overlapping runs, a pair (a, a), the pair at "
                 "the end or nowhere, new_id >= 256, a single id, an empty list), and `ids` is left alone")


# --- Exercise 6.3: top-p probabilities --------------------------------------------------------------


def _top_p_variant(kind: str) -> Callable[..., Tensor]:
    """top_p_probs with one typical bug switched on (kind); the default is right."""

    def fn(logits: Tensor, p: float, temperature: float = 1.0) -> Tensor:
        if kind == "temperature_after_softmax":
            probs = logits.softmax(-1) / temperature
            probs = probs / probs.sum(-1, keepdim=True)
        elif kind == "temperature_multiplied":
            probs = (logits * temperature).softmax(-1)
        elif kind == "naive_exp":
            e = (logits / temperature).exp()
            probs = e / e.sum(-1, keepdim=True)
        elif kind == "wrong_dim":
            probs = (logits / temperature).softmax(0)
        else:
            probs = (logits / temperature).softmax(-1)
        if kind == "unsorted":  # the cumulative sum in vocabulary order
            kept = probs.masked_fill(probs.cumsum(-1) - probs >= p, 0.0)
            return kept / kept.sum(-1, keepdim=True)
        s, order = probs.sort(-1, descending=kind != "ascending")
        if kind == "cut_before_crossing":
            keep = s.masked_fill(s.cumsum(-1) > p, 0.0)
            keep[..., 0] = s[..., 0]  # at least the most likely token
        else:
            keep = s.masked_fill(s.cumsum(-1) - s >= p, 0.0)
        if kind == "sorted_order":
            return keep / keep.sum(-1, keepdim=True)
        if kind == "gather":
            kept = keep.gather(-1, order)
        else:
            kept = torch.zeros_like(probs).scatter(-1, order, keep)
        if kind == "not_renormalised":
            return kept
        return kept / kept.sum(-1, keepdim=True)

    return fn


_TOP_P_MISTAKES = [
    Mistake("the cumulative sum runs over the tokens in vocabulary order: sort the probabilities (descending) first.",
            _top_p_variant("unsorted")),
    Mistake("the token whose probability crosses p is cut: keep tokens while the mass *before* them is below p, so "
            "the kept mass reaches p.", _top_p_variant("cut_before_crossing")),
    Mistake("the kept probabilities are not renormalised: divide by their sum so they add up to 1.",
            _top_p_variant("not_renormalised")),
    Mistake("the temperature is applied after the softmax (or not at all): dividing probabilities by it changes "
            "nothing once they are renormalised. Divide the logits by the temperature, then take the softmax.",
            _top_p_variant("temperature_after_softmax")),
    Mistake("the logits are multiplied by the temperature instead of divided by it: a temperature below 1 must "
            "sharpen the distribution, softmax(logits / temperature).", _top_p_variant("temperature_multiplied")),
    Mistake("the exponentials overflow: exp(1e4) is inf, and inf / inf is nan. Use softmax, or subtract each "
            "row's maximum before exp.", _top_p_variant("naive_exp")),
    Mistake("the softmax is taken over the batch (dim=0) instead of over the vocabulary (dim=-1).",
            _top_p_variant("wrong_dim")),
    Mistake("the probabilities are sorted in ascending order, so the least likely tokens are kept: use "
            "sort(dim=-1, descending=True).", _top_p_variant("ascending")),
    Mistake("the result is still in sorted order: put the kept probabilities back at their tokens' places with "
            "torch.zeros_like(probs).scatter(-1, indices, values).", _top_p_variant("sorted_order")),
    Mistake("the sorted values are put back with gather(-1, indices), which applies the permutation the wrong way "
            "round: scatter(-1, indices, values) puts value j at position indices[j].", _top_p_variant("gather")),
]


def _top_p_cases() -> list[Case]:
    g = torch.Generator().manual_seed(6)

    def randn(*shape: int, scale: float = 2.0, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype) * scale

    ties = torch.tensor([[2.0, 2.0, 0.0, -1.0, 1.0], [0.0, 3.0, 3.0, 3.0, -2.0]])
    masked = randn(3, 9)
    masked[0, [1, 4, 5]] = float("-inf")
    masked[1, :6] = float("-inf")
    masked[2, [0, 8]] = float("-inf")
    return [
        Case("logits of shape (4, 12), p=0.9, temperature=0.7", (randn(4, 12), 0.9, 0.7)),
        Case("logits of shape (4, 12), p=0.5, temperature=1.0", (randn(4, 12), 0.5, 1.0)),
        Case("logits of shape (3, 20), p=0.8, temperature=2.0", (randn(3, 20), 0.8, 2.0)),
        Case("p=1.0 (every token kept: a plain softmax), logits (3, 10), temperature=0.8", (randn(3, 10), 1.0, 0.8)),
        Case("a tiny p=0.001 (only the most likely token), logits (3, 10), temperature=1.0",
             (randn(3, 10), 0.001, 1.0)),
        Case("logits as large as 1e4 (shape (2, 8)), p=0.9, temperature=1.0", (randn(2, 8, scale=1e4), 0.9, 1.0),
             grad=False),  # saturated rows: their gradients are 0 up to float32 rounding
        Case("a batch of 1 (logits (1, 15)), p=0.7, temperature=1.0", (randn(1, 15), 0.7, 1.0)),
        Case("a vocabulary of 1 (logits (3, 1)), p=0.9, temperature=1.0", (randn(3, 1), 0.9, 1.0)),
        Case("tied top tokens (logits [[2, 2, 0, -1, 1], [0, 3, 3, 3, -2]]), p=0.9, temperature=1.0",
             (ties, 0.9, 1.0)),
        Case("-inf logits (as top-k filtering leaves them; shape (3, 9)), p=0.9, temperature=1.0",
             (masked, 0.9, 1.0)),
        Case("float64 logits (shape (3, 9)), p=0.8, temperature=1.3", (randn(3, 9, dtype=torch.float64), 0.8, 1.3)),
        Case("the temperature left out: top_p_probs(logits, 0.6) (logits (2, 10))", (randn(2, 10), 0.6)),
    ]


def _args(case: Case) -> tuple[Tensor, float, float]:
    logits, p, *rest = case.args
    return logits, p, rest[0] if rest else 1.0


def _probs64(case: Case) -> tuple[Tensor, float]:
    logits, p, temperature = _args(case)
    return (logits.double() / temperature).softmax(-1), p


def _before64(probs: Tensor) -> Tensor:
    """For each token, the probability of the tokens more likely than it (in vocabulary order)."""
    s, order = probs.sort(-1, descending=True)
    return torch.zeros_like(probs).scatter(-1, order, s.cumsum(-1) - s)


def _rows(out: Tensor) -> Tensor:
    return out.detach().double()


def _finite(case: Case, out: Any, rerun: Any) -> str | None:
    bad = ~torch.isfinite(_rows(out))
    if bool(bad.any()):
        return f"{int(bad.sum())} entries are nan or inf (an exponential overflowed, or 0 / 0)"
    return None


def _sums_to_one(case: Case, out: Any, rerun: Any) -> str | None:
    sums = _rows(out).sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return f"the row sums range from {sums.min().item():.4g} to {sums.max().item():.4g}"
    return None


def _exact_zeros(case: Case, out: Any, rerun: Any) -> str | None:
    probs, p = _probs64(case)
    outside = _before64(probs) >= p + 1e-4  # clearly outside the nucleus
    leaked = _rows(out)[outside]
    if leaked.numel() and bool((leaked != 0).any()):
        return (f"a token outside the nucleus got {leaked.abs().max().item():.3g} instead of exactly 0 "
                "(no epsilon: set the dropped tokens to 0)")
    return None


def _top_token_kept(case: Case, out: Any, rerun: Any) -> str | None:
    probs, _ = _probs64(case)
    top = probs >= probs.amax(-1, keepdim=True) * (1 - 1e-9)
    kept = (_rows(out) > 0) & top
    if not bool(kept.any(-1).all()):
        return "in some row the most likely token got probability 0; it is always in the nucleus"
    return None


def _kept_is_prefix(case: Case, out: Any, rerun: Any) -> str | None:
    probs, _ = _probs64(case)
    kept = _rows(out) > 0
    for row in range(probs.shape[0]):
        k, d = probs[row][kept[row]], probs[row][~kept[row]]
        if k.numel() and d.numel() and k.min() < d.max() * (1 - 1e-6) - 1e-12:
            return (f"in row {row} a token of probability {k.min().item():.3g} is kept while a more likely one "
                    f"({d.max().item():.3g}) is dropped: the nucleus is the most likely tokens")
    return None


def _not_too_many(case: Case, out: Any, rerun: Any) -> str | None:
    probs, p = _probs64(case)
    kept = _rows(out) > 0
    for row in range(probs.shape[0]):
        k = probs[row][kept[row]]
        if k.numel() and (k.sum() - k.min()).item() >= p + 1e-4:
            return (f"in row {row} the kept tokens other than the least likely one already hold "
                    f"{(k.sum() - k.min()).item():.3g} >= p={p}: the nucleus stops at the token that crosses p")
    return None


def _reaches_p(case: Case, out: Any, rerun: Any) -> str | None:
    probs, p = _probs64(case)
    kept = _rows(out) > 0
    for row in range(probs.shape[0]):
        mass = probs[row][kept[row]].sum().item()
        if mass < p - 1e-4:
            return (f"in row {row} the kept tokens hold only {mass:.3g} of the probability, less than p={p}: keep the "
                    "token that crosses p")
    return None


def _proportional(case: Case, out: Any, rerun: Any) -> str | None:
    probs, _ = _probs64(case)
    got = _rows(out)
    kept = got > 0
    want = torch.where(kept, probs, 0)
    want = want / want.sum(-1, keepdim=True)
    if not torch.allclose(got, want, atol=1e-5):
        return ("the kept tokens' probabilities are not softmax(logits / temperature) divided by the kept mass "
                "(is the temperature applied to the logits, before the softmax?)")
    return None


_TOP_P_PROPERTIES = [
    Property("'the result is finite'", _finite),
    Property("'each row sums to 1'", _sums_to_one),
    Property("'tokens outside the nucleus get exactly 0'", _exact_zeros),
    Property("'the most likely token is always kept'", _top_token_kept),
    Property("'the kept tokens are the most likely ones'", _kept_is_prefix),
    Property("'the kept mass before the last kept token is below p'", _not_too_many),
    Property("'the kept tokens hold at least p of the probability'", _reaches_p),
    Property("'a kept token's probability is its tempered softmax divided by the kept mass'", _proportional),
]


def _reference_top_p(logits: Tensor, p: float, temperature: float = 1.0) -> Tensor:
    return top_p_probs(logits, p, temperature)


_TOP_P_SPEC = Spec(reference=_reference_top_p, cases=_top_p_cases, mistakes=_TOP_P_MISTAKES,
                   properties=_TOP_P_PROPERTIES, differentiable=True, atol=1e-6, rtol=1e-5,
                   arg_names=("logits", "p", "temperature"))


def check_top_p(top_p_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 6.3: ``top_p_probs(logits [B, V], p, temperature=1.0) -> probs [B, V]``; returns the top_p_probs the
    rest of the hour uses (yours once it passes)."""
    return check(TOP_P, _TOP_P_SPEC, (top_p_fn,), (_reference_top_p,),
                 f"values, dtype and gradients match on {len(_top_p_cases())} cases (p = 1, a tiny p, logits of 1e4, "
                 "a batch of 1, one token, ties, -inf logits, float64, the default temperature)")
