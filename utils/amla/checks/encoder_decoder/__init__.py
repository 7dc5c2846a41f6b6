"""Self-checks of Hour 05 (the encoder-decoder Transformer): the decoder block, label smoothing, a beam-search step.

Each check runs on the engine (``amla.checks.engine``): ordinary inputs on which every known mistake gives a
different answer, then the edge inputs of the exercise.

- 5.1 ``decoder_block(block, x, memory, src_mask, tgt_in) -> x``: the causal and target-padding mask built from
  ``tgt_in``, then masked self-attention, cross-attention on the memory and the feed-forward net, each a pre-norm
  residual branch with dropout: padding on both sides, 1 to 4 heads, a batch of one, one target position, a row of
  ``<bos>`` and padding only, ``<eos>`` in the middle, float64, dropout in training mode (seeded); gradients with
  respect to x, the memory and the block's parameters; properties: causality, padded source positions do not
  matter, a block whose branches output 0 is the identity.
- 5.2 ``label_smoothed_cross_entropy(logits, targets, smoothing) -> 0-d tensor``: smoothing 0, a batch of one,
  no padding, logits of 1e4, float64 logits (the loss stays float64, as ``F.cross_entropy``'s does), a target
  that is the last class; gradients with respect to the logits.
- 5.3 ``beam_step(scores, log_probs, finished) -> (new_scores, parent, token)``: one beam (greedy), every beam
  finished, none finished, a batch of one, the first step (one live beam), float64, and ties (where any of the
  tied extensions is right: only the scores and the consistency of parent and token are compared there).
"""

from amla.checks.encoder_decoder.beam_step import check_beam_step
from amla.checks.encoder_decoder.decoder_block import check_decoder_block
from amla.checks.encoder_decoder.label_smoothing import check_label_smoothing

__all__ = ["check_beam_step", "check_decoder_block", "check_label_smoothing"]
