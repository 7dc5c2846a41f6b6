"""The self-check of Exercise 5.1: the decoder's self-attention mask (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.toolkit.errors import shape_text
from amla.transformers.encoder_decoder import decoder_mask
from amla.transformers.tasks import BOS_ID, EOS_ID, PAD_ID

MASK = exercise(5, "5.1", "The decoder mask", "decoder_mask")


def _mask_variant(*, causal: str = "tril", padding: str = "keys", invert: bool = False, special: bool = False,
                  heads: bool = True) -> Callable[[Tensor], Tensor]:
    """The decoder mask with one typical bug switched on (the defaults give the correct mask)."""

    def mask_fn(tgt_in: Tensor) -> Tensor:
        t = tgt_in.shape[1]
        ones = torch.ones(t, t, dtype=torch.bool)
        allowed = {"tril": ones.tril(), "triu": ones.triu(), "strict": ones.tril(-1), "none": ones}[causal]
        real = tgt_in > EOS_ID if special else tgt_in != PAD_ID
        if padding == "keys":
            allowed = allowed & real[:, None, None, :]
        elif padding == "queries":
            allowed = allowed & real[:, None, :, None]
        else:
            allowed = allowed.expand(tgt_in.shape[0], 1, t, t)
        if not heads:
            allowed = allowed[:, 0]
        return ~allowed if invert else allowed

    return mask_fn


_MASK_MISTAKES = [
    Mistake("the mask is not causal: every position may look at later tokens, so in training the decoder can copy "
            "the very token it is asked to predict.", _mask_variant(causal="none")),
    Mistake("the triangle is the wrong way round (triu instead of tril): each position sees the future and not the "
            "past.", _mask_variant(causal="triu")),
    Mistake("the diagonal is masked (tril(-1)): a position must be allowed to attend to itself, and the first "
            "position (<bos>) then has nothing to attend to at all.", _mask_variant(causal="strict")),
    Mistake("the padding is not masked: real positions never look at padding here (it comes after them), but padded "
            "positions do, and with left padding real ones would too.", _mask_variant(padding="none")),
    Mistake("the padding mask is applied to the queries (rows) instead of the keys (columns): it must stop every "
            "position from attending *to* a padded token.", _mask_variant(padding="queries")),
    Mistake("the mask is inverted: True must mean 'may attend' (the convention of Hour 02 and PyTorch).",
            _mask_variant(invert=True)),
    Mistake("<bos> and <eos> are treated as padding (e.g. tgt_in > EOS_ID): only PAD_ID is padding, and <bos> is the "
            "one key the first position has.", _mask_variant(special=True)),
    Mistake("the head axis is missing: the mask is [B, T, T]; it must be [B, 1, T, T], the 1 broadcasting over the "
            "heads (index the padding as (tgt_in != PAD_ID)[:, None, None, :]).", _mask_variant(heads=False)),
]


def _mask_cases() -> list[Case]:
    g = torch.Generator().manual_seed(51)
    ordinary = torch.randint(3, 13, (4, 7), generator=g)
    ordinary[:, 0] = BOS_ID
    for row, length in enumerate([7, 5, 3, 6]):
        ordinary[row, length:] = PAD_ID
    single = torch.full((2, 1), BOS_ID)
    one = torch.tensor([[BOS_ID, 5, 9, 4, PAD_ID, PAD_ID]])
    full = torch.randint(3, 13, (3, 5), generator=g)
    full[:, 0] = BOS_ID
    empty = torch.tensor([[BOS_ID, 7, 3, 8, 4], [BOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    left = torch.tensor([[PAD_ID, PAD_ID, BOS_ID, 4, 5, 6], [BOS_ID, 7, 8, 9, 10, 11]])
    odd = torch.tensor([[BOS_ID, 11, 11, BOS_ID, EOS_ID, 23, EOS_ID, PAD_ID],
                        [BOS_ID, 10, 10, 10, 12, EOS_ID, PAD_ID, PAD_ID]])
    return [
        Case(f"tgt_in of shape {shape_text(ordinary)}: <bos>, ids 3 to 12, right padding (lengths 7, 5, 3, 6)", (ordinary,)),
        Case("a single position (T = 1: tgt_in = [[<bos>], [<bos>]])", (single,)),
        Case(f"a batch of 1 (tgt_in = {one.tolist()})", (one,)),
        Case(f"no padding at all (shape {shape_text(full)})", (full,)),
        Case(f"a row that is only <bos> and padding (tgt_in = {empty.tolist()})", (empty,)),
        Case(f"left padding (tgt_in = {left.tolist()}: row 0 starts with 2 pads)", (left,)),
        Case(f"repeated tokens, ids >= 10, and the ids of <bos> and <eos> in the middle (tgt_in = {odd.tolist()})",
             (odd,)),
    ]


def _mask_causal(case: Case, out: Tensor, rerun: Any) -> str | None:
    t = out.shape[-1]
    future = ~torch.ones(t, t, dtype=torch.bool).tril()
    bad = out & future
    if bool(bad.any()):
        b, _, i, j = (int(x) for x in bad.nonzero()[0])
        return f"in row {b}, query {i} may attend the later key {j}"
    return None


def _mask_diagonal(case: Case, out: Tensor, rerun: Any) -> str | None:
    (tgt_in,) = case.args
    diagonal = out.diagonal(dim1=-2, dim2=-1)[:, 0]  # [B, T]
    bad = (tgt_in != PAD_ID) & ~diagonal
    if bool(bad.any()):
        b, i = (int(x) for x in bad.nonzero()[0])
        return f"in row {b}, the real position {i} may not attend to itself"
    return None


def _mask_padded_keys(case: Case, out: Tensor, rerun: Any) -> str | None:
    (tgt_in,) = case.args
    bad = out[:, 0] & (tgt_in == PAD_ID)[:, None, :]
    if bool(bad.any()):
        b, i, j = (int(x) for x in bad.nonzero()[0])
        return f"in row {b}, query {i} may attend key {j}, which is padding"
    return None


def _mask_only_padding_matters(case: Case, out: Tensor, rerun: Any) -> str | None:
    (tgt_in,) = case.args
    other = torch.where(tgt_in != PAD_ID, (tgt_in * 7 + 3) % 17 + 3, tgt_in)  # other ids >= 3, the same padding
    again = rerun(other)
    if not torch.equal(again, out):
        return (f"tgt_in = {other.tolist()} has its padding at the same places but gets a different mask: the mask "
                "may depend only on where tgt_in == PAD_ID")
    return None


def _mask_rows_independent(case: Case, out: Tensor, rerun: Any) -> str | None:
    (tgt_in,) = case.args
    for b in range(tgt_in.shape[0]):
        alone = rerun(tgt_in[b:b + 1])
        if not torch.equal(alone, out[b:b + 1]):
            return f"row {b} gets a different mask when it is passed alone: each row's mask may depend only on that row"
    return None


_MASK_PROPERTIES = [
    Property("'no query attends a later key' (causal)", _mask_causal),
    Property("'every real position may attend to itself'", _mask_diagonal),
    Property("'no query attends a padded key'", _mask_padded_keys),
    Property("'the mask depends only on where the padding is'", _mask_only_padding_matters),
    Property("'each row of the batch gets its own mask'", _mask_rows_independent),
]

_MASK_SPEC = Spec(reference=decoder_mask, cases=_mask_cases, mistakes=_MASK_MISTAKES, properties=_MASK_PROPERTIES,
                  part="mask")


def check_decoder_mask(decoder_mask_fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Exercise 5.1: ``decoder_mask(tgt_in) -> bool [B, 1, T, T]`` (True = may attend); returns the mask function
    the rest of the hour uses (yours once it passes)."""
    return check(MASK, _MASK_SPEC, (decoder_mask_fn,), (decoder_mask,),
                 "bool [B, 1, T, T], causal, padded keys hidden, on {cases} cases (right and left "
                 "padding, T = 1, a batch of 1, no padding, a row of only <bos>, ids >= 10 and <bos>/<eos> ids inside)")
