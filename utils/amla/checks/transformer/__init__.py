"""Self-checks of Hour 04 (multi-head attention and the Transformer block), on the engine.

Splitting the heads (4.1), the multi-head attention forward pass (4.2), the sinusoidal table (4.3) and the
residual block with pre-norm and post-norm (4.4). The references are those of ``amla.transformers.nn``
(``split_heads``, ``mha_forward``, ``sinusoidal_table``, ``block_forward``), the same functions the hour's model
runs while an exercise is not done.

The cases are chosen so that the typical mistakes give different answers (``T != H != d_head``,
``d_model != d_head``, cross-attention with ``Tq != Tk``, asymmetric padding, LayerNorms with random weights),
and include the edge inputs: one position, a batch of one, one head and heads of size 1 (4.1); one query, one
key, a query that may attend to nothing (any answer is accepted for that row), float64 modules, no mask argument
(4.2); one position, one pair of features, a long table (4.3); one position, a batch of one, no mask argument,
float64 blocks (4.4).
"""

from amla.checks.transformer.mha_forward import check_mha_forward
from amla.checks.transformer.sinusoidal import check_sinusoidal
from amla.checks.transformer.split_heads import check_split_heads
from amla.checks.transformer.transformer_block import check_transformer_block

__all__ = ["check_mha_forward", "check_sinusoidal", "check_split_heads", "check_transformer_block"]
