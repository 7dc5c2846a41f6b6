"""Self-checks of Hour 02 (attention): the stable softmax and scaled dot-product attention with masks.

The cases are chosen so that the typical mistakes give different answers (Tq != Tk, d_k != d_v, masks that are
not symmetric, values around +-1000 and 1e4), and include the edge inputs: one query, one key, a batch of one,
left padding, float64 inputs, no mask argument at all, and a query whose keys are all masked (any answer is
accepted for that row: NaN as a plain softmax gives, zeros as PyTorch's SDPA gives, uniform weights as a
``finfo.min`` fill gives; the other rows must be right).
"""

from amla.checks.attention.attention import check_attention
from amla.checks.attention.softmax import check_softmax

__all__ = ["check_attention", "check_softmax"]
