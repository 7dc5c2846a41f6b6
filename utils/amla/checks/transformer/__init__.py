"""Self-checks of Hour 04 (multi-head attention and the Transformer block), on the engine.

The multi-head attention forward pass, with its heads split and merged (4.1), the sinusoidal table (4.2) and the
residual block with pre-norm and post-norm (4.3). The references are those of ``amla.transformers.nn``
(``mha_forward``, ``sinusoidal_table``, ``block_forward``), the same functions the hour's model runs while an
exercise is not done.

The cases are chosen so that the typical mistakes give different answers (``T != H != d_head``,
``d_model != d_head``, cross-attention with ``Tq != Tk``, asymmetric padding, LayerNorms with random weights),
and include the edge inputs: one query, one key, one head, a query that may attend to nothing (any answer is
accepted for that row), float64 modules, no mask argument (4.1); one position, one pair of features, a long table
(4.2); one position, a batch of one, no mask argument, float64 blocks (4.3).
"""

from amla.checks.transformer.mha_forward import check_mha_forward
from amla.checks.transformer.sinusoidal import check_sinusoidal
from amla.checks.transformer.transformer_block import check_transformer_block

__all__ = ["check_mha_forward", "check_sinusoidal", "check_transformer_block"]
