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

from amla.checks.gpt.merge_pair import check_merge_pair
from amla.checks.gpt.pair_counts import check_pair_counts
from amla.checks.gpt.top_p import check_top_p

__all__ = ["check_merge_pair", "check_pair_counts", "check_top_p"]
