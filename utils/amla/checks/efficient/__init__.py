"""Self-checks of Hour 09 (efficient and scalable transformers): the memory of the attention scores and the
training FLOPs per token that MFU divides by.

- 9.1 ``score_bytes(batch, heads, seq_len, dtype) -> int``: the bytes of the T x T matrices one attention layer's
  math path materialises in a forward pass, the scores ``Q K^T / sqrt(d)`` and the softmax probabilities (kept for
  the backward), ``2 B H T^2`` elements of ``dtype``. Cases: float32, bfloat16 and float16 (2 bytes), float64,
  T = 1, one head, a batch of one, a large T (Python ints do not overflow). Mistakes: one matrix only, 4 bytes
  whatever the dtype, T instead of T^2, the heads left out, bits instead of bytes. Properties: an int; 4 times the
  memory for twice T.
- 9.2 ``train_flops_per_token(n_params, n_layer, seq_len, n_embd) -> float``: ``6 N + 12 L T C`` (forward 2N,
  backward 4N, plus the attention scores and weighted sums). Cases: a GPT-2 small shape, a tiny model, T = 1, one
  layer. Mistakes: 2N (the forward only), the attention term left out, 6 L T C instead of 12, T^2 in the attention
  term. Properties: a float; above 6N.
"""

from amla.checks.efficient.flops import check_train_flops_per_token
from amla.checks.efficient.score_memory import check_score_bytes

__all__ = ["check_score_bytes", "check_train_flops_per_token"]
