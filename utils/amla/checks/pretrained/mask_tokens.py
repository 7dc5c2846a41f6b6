"""The self-check of Exercise 7.1: BERT's masking rule (what it checks: the package doc).

The masking is random, so the student's function and the reference cannot be compared value by value. ``_invoke``
turns one call into what *is* comparable: the inputs and labels themselves where they are determined (p = 0: nothing
chosen; p = 1: every label), their dtype and shape otherwise, counts of broken invariants (exact), and on large
batches the shares of chosen, [MASK]ed, randomised and kept tokens (within a tolerance of about five standard
deviations of the difference of two independent maskings).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.pretraining import IGNORE_INDEX, mask_tokens

MASK_TOKENS = exercise(7, "7.1", "BERT's masking rule", "mask_tokens")

MaskFn = Callable[..., tuple[Tensor, Tensor]]

LARGE = 16_384  # from this many positions on, the shares are compared
TOL = 0.03
_STATS = ("share of the maskable positions chosen", "share of the chosen set to [MASK]",
          "share of the chosen set to another token", "share of the chosen left as they were")
_COUNTS = ("labels that are neither -100 nor the original token", "special positions chosen",
           "positions not chosen whose input changed", "inputs outside [0, vocab_size)")
_SAME_SEED = "the same generator seed gives the same masking"


def reference_mask_tokens(ids: Tensor, *, vocab_size: int, mask_id: int, special_mask: Tensor | None = None,
                          p: float = 0.15, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The course's ``amla.transformers.pretraining.mask_tokens``."""
    return mask_tokens(ids, vocab_size=vocab_size, mask_id=mask_id, special_mask=special_mask, p=p,
                       generator=generator)


def _call(fn: MaskFn, ids: Tensor, vocab_size: int, mask_id: int, special: Tensor | None, p: float | None,
          seed: int) -> Any:
    kw: dict[str, Any] = dict(vocab_size=vocab_size, mask_id=mask_id, special_mask=special,
                              generator=torch.Generator().manual_seed(seed))
    if p is not None:
        kw["p"] = p
    return fn(ids, **kw)


def _pair(out: Any, ids: Tensor) -> tuple[Tensor, Tensor]:
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, Tensor) for t in out)):
        raise TypeError(f"mask_tokens must return (inputs, labels), two tensors of shape {tuple(ids.shape)}, got "
                        f"{type(out).__name__}{f' of {len(out)} items' if isinstance(out, (tuple, list)) else ''}")
    return out[0], out[1]


def _invoke(fn: MaskFn, ids: Tensor, vocab_size: int, mask_id: int, special: Tensor | None, p: float | None,
            seed: int) -> tuple[Tensor, Tensor, dict[str, Any]]:
    original = ids.clone()
    inputs, labels = _pair(_call(fn, ids, vocab_size, mask_id, special, p, seed), ids)
    prob = 0.15 if p is None else p
    shown_inputs = inputs if prob == 0 else torch.zeros_like(inputs)
    shown_labels = labels if prob in (0, 1) else torch.zeros_like(labels)
    if inputs.shape != ids.shape or labels.shape != ids.shape:
        return shown_inputs, shown_labels, {}  # the shape is reported first
    again = _pair(_call(fn, ids, vocab_size, mask_id, special, p, seed), ids)
    chosen = labels != IGNORE_INDEX
    maskable = torch.ones_like(chosen) if special is None else ~special
    stats: dict[str, Any] = {
        _COUNTS[0]: int((chosen & (labels != original)).sum()),
        _COUNTS[1]: int((chosen & ~maskable).sum()),
        _COUNTS[2]: int((~chosen & (inputs != original)).sum()),
        _COUNTS[3]: int(((inputs < 0) | (inputs >= vocab_size)).sum()),
        _SAME_SEED: bool(torch.equal(again[0], inputs) and torch.equal(again[1], labels)),
    }
    if ids.numel() >= LARGE:
        n = max(int(chosen.sum()), 1)
        masked, kept = chosen & (inputs == mask_id), chosen & (inputs == original)
        stats[_STATS[0]] = float(chosen.sum()) / max(int(maskable.sum()), 1)
        stats[_STATS[1]] = float(masked.sum()) / n
        stats[_STATS[2]] = float((chosen & ~masked & ~kept).sum()) / n
        stats[_STATS[3]] = float(kept.sum()) / n
    return shown_inputs, shown_labels, stats


# --- known mistakes ---------------------------------------------------------------------------------------


def _variant(kind: str) -> MaskFn:
    def fn(ids: Tensor, *, vocab_size: int, mask_id: int, special_mask: Tensor | None = None, p: float = 0.15,
           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        chosen = torch.rand(ids.shape, generator=generator) < p
        if special_mask is not None and kind != "specials":
            chosen &= ~special_mask
        r = torch.rand(ids.shape, generator=generator)
        if kind == "all_mask":
            to_mask, to_random = chosen, torch.zeros_like(chosen)
        elif kind == "no_random":
            to_mask, to_random = chosen & (r < 0.8), torch.zeros_like(chosen)
        elif kind == "split_everywhere":  # the 80/10/10 split drawn over every position, not within the chosen
            to_mask, to_random = chosen & (r < 0.8), torch.rand(ids.shape, generator=generator) < 0.1
        else:
            to_mask, to_random = chosen & (r < 0.8), chosen & (r >= 0.8) & (r < 0.9)
        inputs = ids.masked_fill(to_mask, mask_id)
        inputs = torch.where(to_random, torch.randint(vocab_size, ids.shape, generator=generator), inputs)
        ignore = torch.full_like(ids, IGNORE_INDEX)
        if kind == "label_everywhere":
            return inputs, ids.clone()
        if kind == "label_inputs":
            return inputs, torch.where(chosen, inputs, ignore)
        if kind == "label_zero":
            return inputs, torch.where(chosen, ids, torch.zeros_like(ids))
        if kind == "label_changed_only":
            return inputs, torch.where(chosen & (inputs != ids), ids, ignore)
        return inputs, torch.where(chosen, ids, ignore)
    return fn


_MISTAKES = [
    Mistake("every chosen token is replaced by [MASK]: BERT replaces 80 % of them by [MASK], 10 % by a random token "
            "and leaves 10 % as they are (so the model cannot rely on seeing [MASK], which never appears when it "
            "is used).", _variant("all_mask")),
    Mistake("the chosen tokens become [MASK] (80 %) or stay (20 %), none a random token: draw 10 % of them as "
            "torch.randint(vocab_size, ...).", _variant("no_random")),
    Mistake("the labels hold the original token at every position: they must be -100 (ignored by the loss) "
            "wherever no token was chosen.", _variant("label_everywhere")),
    Mistake("the labels hold the new input ([MASK] or the random token) instead of the original token the model "
            "must recover: take the labels from ids, before masking.", _variant("label_inputs")),
    Mistake("the positions that are not chosen get label 0 (a real token id): use -100, the ignore_index of "
            "F.cross_entropy.", _variant("label_zero")),
    Mistake("only the positions whose input changed get a label: the 10 % of chosen tokens left as they are are "
            "predicted too (label = the original token).", _variant("label_changed_only")),
    Mistake("special tokens ([CLS], [SEP], padding) are chosen too: remove the positions of special_mask from "
            "the chosen ones.", _variant("specials")),
    Mistake("the 10 % random tokens are drawn over all positions instead of among the chosen ones, so tokens the "
            "loss ignores are changed: split the chosen positions 80/10/10 with one draw per position.",
            _variant("split_everywhere")),
]


# --- cases ----------------------------------------------------------------------------------------------


V, MASK_ID, CLS, SEP, PAD = 100, 4, 1, 2, 0


def _batch(b: int, t: int, seed: int, specials: bool = True, pad_from: int | None = None
           ) -> tuple[Tensor, Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (b, t), generator=g)  # never the [MASK] id: its "kept" tokens would look masked
    if not specials:
        return ids, None
    ids[:, 0] = CLS
    lengths = torch.randint(max(t // 2, 2), t + 1, (b,), generator=g) if pad_from is None else torch.full(
        (b,), pad_from)
    for i, n in enumerate(lengths.tolist()):
        ids[i, n - 1] = SEP
        ids[i, n:] = PAD
    return ids, (ids == CLS) | (ids == SEP) | (ids == PAD)


def _cases() -> list[Case]:
    large, large_special = _batch(256, 96, 1)
    plain, _ = _batch(192, 100, 2, specials=False)
    wide, wide_special = _batch(200, 96, 3)
    full, full_special = _batch(128, 128, 4)
    small, small_special = _batch(4, 10, 5)
    rows = torch.randint(5, V, (3, 6), generator=torch.Generator().manual_seed(6))
    rows[1] = torch.tensor([CLS, SEP, PAD, PAD, PAD, PAD])
    rows_special = torch.zeros_like(rows, dtype=torch.bool)
    rows_special[:, 0] = True
    rows_special[1] = True
    one, one_special = _batch(1, 12, 7)
    short = torch.randint(5, V, (6, 1), generator=torch.Generator().manual_seed(8))
    big = dict(atol=TOL, rtol=0.0)
    return [
        Case("a large batch (256 x 96) with [CLS], [SEP] and padding marked special, p = 0.15",
             (large, V, MASK_ID, large_special, 0.15, 11), **big),
        Case("a large batch (192 x 100) and no special tokens (special_mask=None), p = 0.15",
             (plain, V, MASK_ID, None, 0.15, 12), **big),
        Case("a large batch (200 x 96) and p = 0.4", (wide, V, MASK_ID, wide_special, 0.4, 13), **big),
        Case("p = 1 (every non-special position chosen), 128 x 128", (full, V, MASK_ID, full_special, 1.0, 14), **big),
        Case("p = 0 (nothing chosen), 4 x 10", (small, V, MASK_ID, small_special, 0.0, 15)),
        Case("a row of special tokens only ([CLS] [SEP] and padding), 3 x 6, p = 0.5",
             (rows, V, MASK_ID, rows_special, 0.5, 16)),
        Case("a batch of one (1 x 12), p = 0.5", (one, V, MASK_ID, one_special, 0.5, 17)),
        Case("one token per row (6 x 1), no special tokens, p = 0.5", (short, V, MASK_ID, None, 0.5, 18)),
        Case("the default p left out (p = 0.15), a large batch (256 x 96)",
             (large, V, MASK_ID, large_special, None, 19), **big),
    ]


# --- properties -----------------------------------------------------------------------------------------


def _count(index: int, what: str) -> Callable[[Case, Any, Any], str | None]:
    def test(case: Case, out: Any, rerun: Any) -> str | None:
        n = out[2].get(_COUNTS[index], 0)
        return f"{n} {what}" if n else None
    return test


def _reproducible(case: Case, out: Any, rerun: Any) -> str | None:
    if out[2].get(_SAME_SEED, True):
        return None
    return ("two calls with generators seeded alike gave different maskings: draw every random number with "
            "generator=generator (torch.rand(..., generator=generator), torch.randint(..., generator=generator))")


def _share_chosen(case: Case, out: Any, rerun: Any) -> str | None:
    share = out[2].get(_STATS[0])
    p = 0.15 if case.args[4] is None else case.args[4]
    if share is None or abs(share - p) <= TOL:
        return None
    return f"{share:.3f} of the non-special positions were chosen (labels != -100), expected about p = {p}"


def _split(case: Case, out: Any, rerun: Any) -> str | None:
    if _STATS[1] not in out[2]:
        return None
    got = [out[2][k] for k in _STATS[1:]]
    if all(abs(g - w) <= TOL for g, w in zip(got, (0.8, 0.1, 0.1))):
        return None
    return (f"of the chosen tokens {got[0]:.3f} became [MASK], {got[1]:.3f} another token and {got[2]:.3f} stayed, "
            "expected about 0.8, 0.1 and 0.1")


_PROPERTIES = [
    Property("'the same generator seed gives the same masking'", _reproducible),
    Property("'the labels are the original tokens (or -100)'", _count(0, "labelled positions hold something else "
                                                                        "than the original token")),
    Property("'special tokens are never chosen'", _count(1, "special positions got a label")),
    Property("'positions that are not chosen keep their token'", _count(2, "positions with label -100 have a "
                                                                           "changed input")),
    Property("'the inputs are ids of the vocabulary'", _count(3, "inputs are outside [0, vocab_size)")),
    Property("'about p of the non-special positions are chosen'", _share_chosen),
    Property("'of the chosen tokens about 80 % become [MASK], 10 % a random token, 10 % stay'", _split),
]

_SPEC = Spec(reference=reference_mask_tokens, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             invoke=_invoke, part="masking", items=("inputs", "labels", "statistics of the masking"),
             arg_names=("ids", "vocab_size", "mask_id", "special_mask", "p", "seed"))


def check_mask_tokens(mask_tokens: MaskFn) -> MaskFn:
    """Exercise 7.1: ``mask_tokens(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None) ->
    (inputs, labels)``; returns the function the hour's MLM data is masked with (yours once it passes)."""
    return check(MASK_TOKENS, _SPEC, (mask_tokens,), (reference_mask_tokens,),
                 "the shares of chosen, [MASK]ed, random and kept tokens and every invariant agree on {cases} batches "
                 "(special tokens, all-special rows, B = 1, T = 1, p = 0, 1, 0.4 and the default)")
