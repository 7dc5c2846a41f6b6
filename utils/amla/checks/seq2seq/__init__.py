"""Self-checks of Hour 03 (seq2seq with attention): additive attention, the teacher-forced loss, monotonicity.

- 3.1 ``additive_attention(query, keys, W_q, W_k, v, mask) -> (context, weights)``: cases with right and left
  padding, no padding with as many sequences as positions (a missing ``unsqueeze`` then broadcasts silently), a
  batch of one, a source of one position, float64 inputs, large scores, and a row with no real position (any
  answer is accepted for that row; the other rows must be right). Values and gradients are compared.
- 3.2 ``teacher_forcing_loss(decoder, state, memory, targets)``: small random attention decoders, padded targets,
  a batch of one, targets of one token (just ``<eos>``), rows without padding, repeated tokens and ids above 9,
  logits around 1e4. Gradients reach the decoder's parameters, the initial state and the encoder states, so a
  state detached between steps fails although its loss value is right. Causality is tested by recording the
  logits of every decoder step while a later target token changes.
- 3.3 ``monotone_fraction(weights, groups) -> float``: peaked alignments, one group of non-contiguous steps, a
  single example, groups of one step, ties in the argmax (the first largest weight counts, as ``torch.argmax``),
  float64 weights, fewer input positions than output steps. Groups without any pair make the reference raise a
  ValueError, so they are not a case.
"""

from amla.checks.seq2seq.additive_attention import check_additive_attention
from amla.checks.seq2seq.monotone_fraction import check_monotone_fraction
from amla.checks.seq2seq.teacher_forcing import check_teacher_forcing

__all__ = ["check_additive_attention", "check_monotone_fraction", "check_teacher_forcing"]
