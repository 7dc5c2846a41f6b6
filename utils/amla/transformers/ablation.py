"""Head ablation: switch attention heads off and measure what the model loses (Hours 04 and 06).

An attention map shows where a head *reads*; it does not show whether the rest of the model uses what the head
writes. Removing the head and measuring the loss or accuracy again does. A head's output is its slice of the
merged heads ``[..., h * d_head : (h + 1) * d_head]`` just before the output projection, so setting that slice
to zero (zero ablation) removes exactly that head's contribution and leaves the others untouched.

    with heads_removed(block.attn.proj, heads=[0, 2], n_heads=4):
        loss = evaluate(model)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn

__all__ = ["heads_removed"]


@contextmanager
def heads_removed(proj: nn.Linear, heads: Iterable[int], n_heads: int) -> Iterator[None]:
    """Inside the ``with`` block the given ``heads`` contribute nothing: their slices of the input of ``proj``
    (the attention's output projection, e.g. ``amla.transformers.nn.MultiHeadAttention.out_proj`` or the GPT's
    ``attn.proj``) are set to zero. The hook is removed on exit, also after an error."""
    if not isinstance(proj, nn.Linear):
        raise TypeError(f"heads_removed expected the output projection (an nn.Linear), got {type(proj).__name__}")
    if not isinstance(n_heads, int) or n_heads < 1 or proj.in_features % n_heads:
        raise ValueError(f"heads_removed: n_heads={n_heads!r} must be a positive int dividing the projection's "
                         f"{proj.in_features} input features")
    chosen = sorted(set(heads))
    if any(not isinstance(h, int) or not 0 <= h < n_heads for h in chosen):
        raise ValueError(f"heads_removed: heads must be ints in [0, {n_heads}), got {chosen}")
    d_head = proj.in_features // n_heads

    def zero_heads(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        x = args[0].clone()  # never write into a tensor that autograd or the caller may still need
        for h in chosen:
            x[..., h * d_head : (h + 1) * d_head] = 0.0
        return (x, *args[1:])

    handle = proj.register_forward_pre_hook(zero_heads)
    try:
        yield
    finally:
        handle.remove()
