r"""Self-checks of Hour 06 (GPT): merging a BPE pair (6.1), causal self-attention and the GPT block (6.2), top-p
probabilities (6.3) and one decode step with the KV cache (6.4).

The merge cases are token lists where the usual mistakes give different answers (runs like 5 5 5 5 5 that
overlap, a pair at the very end, a list where (a, b) and (b, a) both occur), plus the edge inputs: an empty list,
a single id, ids of merged tokens (>= 256), a pair (a, a), no occurrence at all. A tuple of ids is not a case: the
hour only ever passes lists (``list(text.encode())`` and what ``merge_pair`` returns), and a correct solution for a
list may use list methods (``ids.copy()``, ``ids + [...]``). ``merge_pair`` must return a new list of ints (a tuple
is refused: the hour hands the result to the next pair count and to the caller of ``BPETokenizer.encode``);
returning the input list itself is fine as long as it was not changed.

The block cases are ``amla.transformers.gpt.Block``\ s with random LayerNorm weights and projections larger than
GPT-2's initial ones (so that a missing or swapped part shows): 1, 2, 4 and 8 heads, biases, a batch of one, one
position, float64, and one block in training mode with dropout, where every call starts from the same random state
(so a block that applies ``resid_drop`` and the MLP in the reference's order draws the reference's masks).
Outputs and the gradients of x and of every parameter are compared; properties (causality, the identity when both
branches output 0, the first position attending to itself alone) localise what no known mistake explains. Any
correct way to attend passes: ``F.scaled_dot_product_attention(..., is_causal=True)`` or scores, a mask and a
softmax written out.

The top-p cases use random logits, temperatures other than 1 and several values of p, chosen so that no
cumulative probability lies within 1e-4 of p (so ``before >= p`` and ``cumsum > p`` shifted by one agree), plus
the edges: p = 1 (a plain softmax), a tiny p (the top token alone), logits of 1e4, a batch of 1, a vocabulary of
1, exact ties among the top tokens (all of them inside the nucleus: which of two tied tokens a sort lists first
is not defined), -inf logits as top-k filtering leaves them, float64 logits, and the temperature left out.

The KV-cache cases give caches whose slots after ``pos`` hold leftovers (as a cache does after ``reset()``) or
zeros, an empty cache (pos 0), the last free slot, one head, head_dim 1 and float64. What is compared is the output
and both caches after the call (the caches are meant to be written in place, in slot ``pos`` only), and the
gradients of q, k, v and the stored keys and values.
"""

from amla.checks.gpt.gpt_block import check_gpt_block
from amla.checks.gpt.kv_attend import check_kv_attend
from amla.checks.gpt.merge_pair import check_merge_pair
from amla.checks.gpt.top_p import check_top_p

__all__ = ["check_gpt_block", "check_kv_attend", "check_merge_pair", "check_top_p"]
