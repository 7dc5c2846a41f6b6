"""Self-checks of Hour 07 (pretraining objectives and a pretrained sentence encoder). Importing this package does not
import ``transformers``: the references live in ``amla.transformers.pretraining`` and ``amla.transformers.pretrained``,
which import it only to load the model.

- 7.1 ``mask_tokens(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None) -> (inputs, labels)``:
  BERT's rule (each non-special position chosen with probability p; of the chosen, 80 % [MASK], 10 % a random id,
  10 % unchanged; labels the original id where chosen, -100 elsewhere). The masking is random, so the answer is
  compared by what is determined (everything at p = 0, the labels at p = 1), by invariants counted exactly (labels
  are the original token or -100; special positions never chosen; unchosen inputs unchanged; inputs in the
  vocabulary; the same generator seed gives the same masking) and, on large batches, by the shares of chosen,
  [MASK]ed, random and kept tokens within a tolerance. Cases: [CLS]/[SEP]/padding special, no special_mask, p = 0.4,
  p = 1, p = 0, an all-special row, B = 1, T = 1, the default p. Mistakes: every chosen token [MASK]ed; no random
  tokens; labels at every position; labels from the masked inputs; label 0 instead of -100; labels only where the
  input changed; special tokens chosen; the random 10 % drawn over all positions. Properties: the invariants above,
  about p chosen, the 80/10/10 split.
- 7.2 ``mean_pool(token_embeddings [B, T, D], attention_mask [B, T]) -> [B, D]``: the mean of the real tokens'
  vectors (0/1 long or bool mask); gradients compared. Cases: right and left padding, a bool mask, one real token,
  all ones, float64, B = 1 with T = D, masks with holes, values of 1e4. Mistakes: padding averaged too, divided by T,
  the mask not broadcast, divided by the batch's count, not divided at all. Properties: padded vectors do not
  matter; the mean of identical vectors is that vector.
"""

from amla.checks.pretrained.mask_tokens import check_mask_tokens
from amla.checks.pretrained.mean_pool import check_mean_pool

__all__ = ["check_mask_tokens", "check_mean_pool"]
