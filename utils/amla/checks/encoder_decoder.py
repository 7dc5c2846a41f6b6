"""Self-checks of Hour 05 (the encoder-decoder Transformer): the decoder mask, label smoothing, a beam-search step.

Each check runs on the engine (``amla.checks.engine``): ordinary inputs on which every known mistake gives a
different answer, then the edge inputs of the exercise.

- 5.1 ``decoder_mask(tgt_in) -> bool [B, 1, T, T]``: one position, a batch of one, no padding, a row that is
  only ``<bos>`` and padding, left padding, repeated tokens, ids >= 10 and ``<bos>``/``<eos>`` ids in the middle.
- 5.2 ``label_smoothed_cross_entropy(logits, targets, smoothing) -> 0-d tensor``: smoothing 0, a batch of one,
  no padding, logits of 1e4, float64 logits (the loss stays float64, as ``F.cross_entropy``'s does), a target
  that is the last class; gradients with respect to the logits.
- 5.3 ``beam_step(scores, log_probs, finished) -> (new_scores, parent, token)``: one beam (greedy), every beam
  finished, none finished, a batch of one, the first step (one live beam), float64, and ties (where any of the
  tied extensions is right: only the scores and the consistency of parent and token are compared there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.encoder_decoder import beam_step, decoder_mask, label_smoothed_cross_entropy
from amla.transformers.tasks import BOS_ID, EOS_ID, PAD_ID

__all__ = ["check_beam_step", "check_decoder_mask", "check_label_smoothing"]

MASK = exercise(5, "5.1", "The decoder mask", "decoder_mask")
SMOOTHING = exercise(5, "5.2", "Label-smoothed cross-entropy", "label_smoothed_cross_entropy")
BEAM = exercise(5, "5.3", "One step of beam search", "beam_step")


def _shape(t: Tensor) -> str:
    return str(tuple(t.shape))


# --- Exercise 5.1: the decoder's self-attention mask ------------------------------------------------


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
        Case(f"tgt_in of shape {_shape(ordinary)}: <bos>, ids 3 to 12, right padding (lengths 7, 5, 3, 6)", (ordinary,)),
        Case("a single position (T = 1: tgt_in = [[<bos>], [<bos>]])", (single,)),
        Case(f"a batch of 1 (tgt_in = {one.tolist()})", (one,)),
        Case(f"no padding at all (shape {_shape(full)})", (full,)),
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
                 f"bool [B, 1, T, T], causal, padded keys hidden, on {len(_mask_cases())} cases (right and left "
                 "padding, T = 1, a batch of 1, no padding, a row of only <bos>, ids >= 10 and <bos>/<eos> ids inside)")


# --- Exercise 5.2: label smoothing ----------------------------------------------------------------


def _smoothing_reference(logits: Tensor, targets: Tensor, smoothing: float) -> Tensor:
    return label_smoothed_cross_entropy(logits, targets, smoothing)


def _smoothing_variant(*, classes: str = "all", ignore_pad: bool = True, norm: str = "real", sign: int = 1,
                       uniform: str = "mean", keep_confidence: bool = True, log: str = "log_softmax",
                       one_hot: bool = False) -> Callable[..., Tensor]:
    """Label-smoothed cross-entropy with one typical bug switched on (the defaults give the correct loss).

    ``log``: "log_softmax" (right), "softmax" (probabilities instead of log-probabilities), "softmax_log"
    (softmax then log: -inf once a probability underflows). ``one_hot``: the smoothed target built from
    ``F.one_hot(targets)`` without ``num_classes``."""

    def loss_fn(logits: Tensor, targets: Tensor, smoothing: float) -> Tensor:
        v = logits.shape[-1]
        logp = {"log_softmax": lambda: logits.log_softmax(-1), "softmax": lambda: logits.softmax(-1),
                "softmax_log": lambda: logits.softmax(-1).log()}[log]()  # [B, T, V]
        nll = -logp.gather(-1, targets[..., None]).squeeze(-1)  # [B, T]
        if one_hot:
            q = (1 - smoothing) * F.one_hot(targets).to(logp.dtype) + smoothing / v
            per = -(q * logp).sum(-1)
        elif classes == "all":
            other = -logp.sum(-1) / v if uniform == "mean" else -logp.sum(-1)
            per = (1 - smoothing if keep_confidence else 1.0) * nll + smoothing * other
        elif classes == "others":  # eps / (V - 1) on every class but the target
            per = (1 - smoothing) * nll + smoothing * (-logp.sum(-1) - nll) / (v - 1)
        else:  # "no_pad": eps / (V - 1) on every class but <pad>
            per = (1 - smoothing) * nll + smoothing * (-logp.sum(-1) + logp[..., PAD_ID]) / (v - 1)
        keep = (targets != PAD_ID) if ignore_pad else torch.ones_like(targets, dtype=torch.bool)
        keep = keep.to(per.dtype)
        total = (per * keep).sum()
        if norm == "real":
            out = total / keep.sum()
        elif norm == "all":
            out = total / targets.numel()
        elif norm == "per_sequence":
            out = ((per * keep).sum(-1) / keep.sum(-1)).mean()
        else:  # "sum"
            out = total
        return sign * out

    return loss_fn


_SMOOTHING_MISTAKES = [
    Mistake("the smoothing mass goes to the V - 1 classes other than the target (eps / (V - 1) each). That is a "
            "valid variant, but here, as in F.cross_entropy(label_smoothing=...), every one of the V classes gets "
            "eps / V and the target gets 1 - eps + eps / V.", _smoothing_variant(classes="others")),
    Mistake("the smoothing mass skips the <pad> class (eps / (V - 1) on the others). The Annotated Transformer does "
            "that, but this exercise spreads eps over all V classes, as F.cross_entropy does.",
            _smoothing_variant(classes="no_pad")),
    Mistake("padding is not ignored: the loss also trains the model to predict <pad> after <eos>. Average only over "
            "the positions whose target is not PAD_ID.", _smoothing_variant(ignore_pad=False)),
    Mistake("padding positions are zeroed but the sum is divided by all B*T positions; divide by the number of real "
            "(non-pad) targets.", _smoothing_variant(norm="all")),
    Mistake("the loss is averaged per sequence and then over the sequences, so a token of a short sequence weighs "
            "more than one of a long sequence; average over all real tokens of the batch at once.",
            _smoothing_variant(norm="per_sequence")),
    Mistake("the loss is summed over the tokens instead of averaged over the real ones.",
            _smoothing_variant(norm="sum")),
    Mistake("the sign is flipped: a cross-entropy is -sum q(c) log p(c), a positive number.",
            _smoothing_variant(sign=-1)),
    Mistake("the smoothing term sums -log p(c) over the classes without dividing by V: the uniform distribution puts "
            "eps / V on each class, not eps.", _smoothing_variant(uniform="sum")),
    Mistake("the target term keeps weight 1 instead of 1 - eps: the smoothed target distribution must still sum to 1.",
            _smoothing_variant(keep_confidence=False)),
    Mistake("probabilities are used where log-probabilities belong (softmax instead of log_softmax).",
            _smoothing_variant(log="softmax")),
    Mistake("the log-probabilities are computed as softmax(...).log(): with large logits a probability underflows to "
            "0 and log(0) = -inf. Use log_softmax, which computes x - logsumexp(x) without forming the probabilities.",
            _smoothing_variant(log="softmax_log")),
    Mistake("the one-hot target is built with F.one_hot(targets) without num_classes, which makes only "
            "targets.max() + 1 classes; pass num_classes=logits.shape[-1].", _smoothing_variant(one_hot=True)),
]


def _smoothing_cases() -> list[Case]:
    g = torch.Generator().manual_seed(52)

    def batch(b: int, t: int, v: int, lengths: list[int] | None = None, scale: float = 2.0,
              dtype: torch.dtype = torch.float32, top: int | None = None) -> tuple[Tensor, Tensor]:
        logits = torch.randn(b, t, v, generator=g, dtype=dtype) * scale
        targets = torch.randint(3, v - 1 if top is None else top, (b, t), generator=g)  # never the last class here
        for row, length in enumerate(lengths or []):
            targets[row, length:] = PAD_ID
        return logits, targets

    ordinary = batch(3, 6, 9, [6, 4, 2])
    plain = batch(2, 5, 7, [5, 3])
    one = batch(1, 4, 9, [3])
    full = batch(2, 4, 6)
    large = batch(2, 3, 5, [3, 2], scale=1e4)
    double = batch(2, 5, 8, [4, 5], dtype=torch.float64)
    last_logits, last = batch(2, 4, 8, [4, 3])
    last[0, 1] = last[1, 0] = 7  # the last class, V - 1
    return [
        Case(f"logits {_shape(ordinary[0])}, targets with padding in two rows, smoothing 0.2", (*ordinary, 0.2)),
        Case(f"smoothing 0 (plain cross-entropy), logits {_shape(plain[0])}", (*plain, 0.0)),
        Case(f"a batch of 1 (logits {_shape(one[0])}), smoothing 0.1", (*one, 0.1)),
        Case(f"no padding at all (logits {_shape(full[0])}), smoothing 0.3", (*full, 0.3)),
        Case(f"very large logits (about 1e4, shape {_shape(large[0])}), smoothing 0.1", (*large, 0.1)),
        Case(f"float64 logits {_shape(double[0])}, smoothing 0.1", (*double, 0.1)),
        Case(f"targets that include the last class (V - 1 = 7, logits {_shape(last_logits)}), smoothing 0.1",
             (last_logits, last, 0.1)),
    ]


def _loss_non_negative(case: Case, out: Tensor, rerun: Any) -> str | None:
    if float(out) < -1e-6:
        return f"the loss is {float(out):.4g}; a cross-entropy is never negative"
    return None


def _loss_ignores_padded_logits(case: Case, out: Tensor, rerun: Any) -> str | None:
    logits, targets, smoothing = case.args
    pad = targets == PAD_ID
    if not bool(pad.any()):
        return None
    noisy = logits.clone()
    noisy[pad] = noisy[pad] * 3 + 5.0
    again = rerun(noisy, targets, smoothing)
    if not torch.allclose(again.detach().double(), out.detach().double(), atol=1e-5, rtol=1e-4):
        return (f"changing the logits of the padded positions changed the loss from {float(out):.6g} to "
                f"{float(again):.6g}: positions whose target is PAD_ID must not count")
    return None


def _loss_plain_is_nll(case: Case, out: Tensor, rerun: Any) -> str | None:
    logits, targets, _ = case.args
    again = rerun(logits, targets, 0.0)
    want = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID)
    if not torch.allclose(again.detach().double(), want.double(), atol=1e-5, rtol=1e-4):
        return (f"with smoothing 0 your loss is {float(again):.6g}, but the mean of -log p(target) over the real tokens "
                f"is {float(want):.6g}")
    return None


def _loss_one_long_sequence(case: Case, out: Tensor, rerun: Any) -> str | None:
    logits, targets, smoothing = case.args
    again = rerun(logits.reshape(1, -1, logits.shape[-1]), targets.reshape(1, -1), smoothing)
    if not torch.allclose(again.detach().double(), out.detach().double(), atol=1e-5, rtol=1e-4):
        return (f"the same tokens as one long sequence (logits {(1, targets.numel(), logits.shape[-1])}) give "
                f"{float(again):.6g} instead of {float(out):.6g}: the loss is the mean over all real tokens of the batch")
    return None


_SMOOTHING_PROPERTIES = [
    Property("'the loss is >= 0'", _loss_non_negative),
    Property("'the logits of padded positions do not change the loss'", _loss_ignores_padded_logits),
    Property("'with smoothing 0 the loss is the mean -log p(target) of the real tokens'", _loss_plain_is_nll),
    Property("'the loss does not depend on how the tokens are split into sequences'", _loss_one_long_sequence),
]

_SMOOTHING_SPEC = Spec(reference=_smoothing_reference, cases=_smoothing_cases, mistakes=_SMOOTHING_MISTAKES,
                       properties=_SMOOTHING_PROPERTIES, differentiable=True, part="loss")


def check_label_smoothing(label_smoothing_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 5.2: ``label_smoothed_cross_entropy(logits [B, T, V], targets [B, T], smoothing) -> 0-d tensor``;
    returns the loss the rest of the hour trains with (yours once it passes)."""
    return check(SMOOTHING, _SMOOTHING_SPEC, (label_smoothing_fn,), (_smoothing_reference,),
                 f"loss and gradients match on {len(_smoothing_cases())} cases (padding, smoothing 0, a batch of 1, no "
                 "padding, logits of 1e4, float64, the last class as a target)")


# --- Exercise 5.3: one step of beam search ----------------------------------------------------------


def _beam_variant(*, add_scores: bool = True, per_beam: bool = False, freeze: str = "pad", swap: bool = False,
                  smallest: bool = False, split_by: str = "v") -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """A beam step with one typical bug switched on (the defaults give the correct step)."""

    def step(scores: Tensor, log_probs: Tensor, finished: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, k, v = log_probs.shape
        if freeze == "pad":
            frozen = torch.full_like(log_probs, -math.inf)
            frozen[..., PAD_ID] = 0.0
            log_probs = torch.where(finished[..., None], frozen, log_probs)
        elif freeze == "drop":  # finished beams are thrown away
            log_probs = log_probs.masked_fill(finished[..., None], -math.inf)
        elif freeze == "pad_cost":  # forced to <pad>, but paying the model's log-probability for it
            pad_only = torch.full_like(log_probs, -math.inf)
            pad_only[..., PAD_ID] = log_probs[..., PAD_ID]
            log_probs = torch.where(finished[..., None], pad_only, log_probs)
        elif freeze == "pad_zero_only":  # 0 at <pad>, but the other tokens are left open
            log_probs = log_probs.clone()
            log_probs[..., PAD_ID] = torch.where(finished, 0.0, log_probs[..., PAD_ID])
        total = scores[..., None] + log_probs if add_scores else log_probs
        if per_beam:  # the best token of each beam, instead of the best K of all K*V
            best, token = total.max(-1)
            return best, torch.arange(k).expand(b, k), token
        best, index = total.reshape(b, k * v).topk(k, dim=-1, largest=not smallest)
        d = v if split_by == "v" else k
        if swap:
            return best, index % d, index // d
        return best, index // d, index % d

    return step


_BEAM_MISTAKES = [
    Mistake("the previous scores are not added: a beam's score is the *sum* of the log-probabilities of all its "
            "tokens, so add scores[..., None] to log_probs before choosing.", _beam_variant(add_scores=False)),
    Mistake("each beam keeps its own best token: the K survivors must be the best K of all K * V extensions "
            "(flatten to [B, K * V], then topk), so a strong beam can have several children and a weak one none.",
            _beam_variant(per_beam=True)),
    Mistake("finished beams are thrown away (-inf). A beam that said <eos> is a complete candidate: keep it, "
            "extended by <pad> at no cost (log-probability 0).", _beam_variant(freeze="drop")),
    Mistake("finished beams pay the model's log-probability of <pad>; the extension of a finished beam must cost "
            "nothing (0), or complete outputs lose to unfinished ones for no reason.", _beam_variant(freeze="pad_cost")),
    Mistake("finished beams are extended like live ones: after <eos> a beam may only be followed by <pad>.",
            _beam_variant(freeze="none")),
    Mistake("a finished beam gets 0 at <pad>, but its other tokens keep their log-probabilities: it may only be "
            "followed by <pad>, so the rest of its row must be -inf.", _beam_variant(freeze="pad_zero_only")),
    Mistake("parent and token are swapped: in the flattened [B, K * V] index, the beam is index // V and the token "
            "index % V.", _beam_variant(swap=True)),
    Mistake("the flattened index is split with K instead of V: the [B, K * V] index of beam p and token t is "
            "p * V + t, so parent = index // V and token = index % V.", _beam_variant(split_by="k")),
    Mistake("the K *worst* extensions are kept (topk(..., largest=False) or an ascending sort): the best "
            "log-probability is the largest, the one closest to 0.", _beam_variant(smallest=True)),
]


def _frozen(log_probs: Tensor, finished: Tensor) -> Tensor:
    only_pad = torch.full_like(log_probs, -math.inf)
    only_pad[..., PAD_ID] = 0.0
    return torch.where(finished[..., None], only_pad, log_probs)


def _chosen(scores: Tensor, log_probs: Tensor, finished: Tensor, parent: Tensor, token: Tensor) -> Tensor | None:
    """The score of the extension (parent, token) of each new beam, or None when an index is out of range."""
    b, k, v = log_probs.shape
    if bool(((parent < 0) | (parent >= k) | (token < 0) | (token >= v)).any()):
        return None
    total = scores[..., None] + _frozen(log_probs, finished)
    return total[torch.arange(b)[:, None], parent, token]


def _tie_view(scores: Tensor, log_probs: Tensor, finished: Tensor) -> Callable[[Any], Any]:
    """What is compared where extensions tie: the new scores, the score of the chosen (parent, token), and how many
    distinct extensions were chosen (any of the tied ones is right)."""

    def view(out: Any) -> Any:
        new_scores, parent, token = out
        chosen = _chosen(scores, log_probs, finished, parent, token)
        if chosen is None:
            chosen = torch.full_like(new_scores, math.nan)
        pairs = parent * log_probs.shape[-1] + token
        distinct = torch.tensor([len(set(row)) for row in pairs.tolist()])
        return new_scores, chosen, distinct

    return view


def _beam_cases() -> list[Case]:
    g = torch.Generator().manual_seed(53)

    def beams(b: int, k: int, v: int = 11, p_finished: float = 0.3, dtype: torch.dtype = torch.float32
              ) -> tuple[Tensor, Tensor, Tensor]:
        scores = -torch.rand(b, k, generator=g, dtype=dtype) * 4
        log_probs = (torch.randn(b, k, v, generator=g, dtype=dtype) * 2).log_softmax(-1)
        finished = torch.rand(b, k, generator=g) < p_finished
        return scores, log_probs, finished

    ordinary = beams(3, 4)
    ordinary[2][0, 0] = True  # a finished beam with the best score: it must survive, extended by <pad>
    ordinary[2][0, 1] = False
    ordinary[0][0, 0] = -0.01
    greedy = beams(2, 1, p_finished=0.0)
    greedy[2][1, 0] = True
    done = beams(2, 3, p_finished=1.1)
    live = beams(2, 3, p_finished=-0.1)
    one = beams(1, 3)
    one[2][0] = torch.tensor([False, True, False])
    one[0][0, 1] = -0.05
    first = beams(2, 3, p_finished=-0.1)
    first[0][:] = -math.inf
    first[0][:, 0] = 0.0  # the first step of beam_search: one live beam, the others at -inf
    double = beams(2, 3, dtype=torch.float64)
    double[2][0, 2] = True
    tie_scores = torch.tensor([[-1.0, -1.0, -2.0], [-0.5, -3.0, -3.0]])
    tie_lp = torch.full((2, 3, 6), math.log(1 / 6))  # every token equally likely: many extensions tie
    tie_finished = torch.tensor([[False, False, False], [False, True, False]])
    return [
        Case(f"scores {_shape(ordinary[0])}, log_probs {_shape(ordinary[1])}, some beams finished, one of them with "
             "the best score", ordinary),
        Case(f"a single beam (K = 1, greedy; scores {_shape(greedy[0])}, beam 0 of example 1 finished)", greedy),
        Case(f"every beam finished (scores {_shape(done[0])})", done),
        Case(f"no beam finished (scores {_shape(live[0])})", live),
        Case(f"a batch of 1 (scores {_shape(one[0])}), the finished beam 1 has the best score", one),
        Case(f"the first step: one live beam, the others at -inf (scores {first[0].tolist()})", first),
        Case(f"float64 scores {_shape(double[0])} and log_probs {_shape(double[1])}", double),
        Case(f"ties: every token equally likely and equal scores (scores {tie_scores.tolist()}, V = 6; any of the "
             "tied extensions is accepted)", (tie_scores, tie_lp, tie_finished),
             view=_tie_view(tie_scores, tie_lp, tie_finished)),
    ]


def _beam_sorted(case: Case, out: Any, rerun: Any) -> str | None:
    new_scores = out[0]
    bad = new_scores[:, 1:] > new_scores[:, :-1]
    if bool(bad.any()):
        b, k = (int(x) for x in bad.nonzero()[0])
        return f"in example {b}, new_scores[{k + 1}] = {float(new_scores[b, k + 1]):.4g} is larger than " \
               f"new_scores[{k}] = {float(new_scores[b, k]):.4g}: they must come best first"
    return None


def _beam_consistent(case: Case, out: Any, rerun: Any) -> str | None:
    scores, log_probs, finished = case.args
    new_scores, parent, token = out
    chosen = _chosen(scores, log_probs, finished, parent, token)
    if chosen is None:
        return f"parent must lie in 0..{scores.shape[1] - 1} and token in 0..{log_probs.shape[-1] - 1}"
    if not torch.allclose(new_scores.double(), chosen.double(), atol=1e-5, equal_nan=True):
        b, k = (int(x) for x in (~torch.isclose(new_scores.double(), chosen.double(), atol=1e-5)).nonzero()[0])
        p, t = int(parent[b, k]), int(token[b, k])
        where = " (a finished beam followed by anything but <pad> scores -inf)" if bool(finished[b, p]) else ""
        return (f"in example {b}, new beam {k} = beam {p} + token {t} should score scores[{b}, {p}] + "
                f"log_probs[{b}, {p}, {t}] = {float(chosen[b, k]):.4g}{where}, but new_scores[{b}, {k}] = "
                f"{float(new_scores[b, k]):.4g}")
    return None


def _beam_distinct(case: Case, out: Any, rerun: Any) -> str | None:
    _, log_probs, _ = case.args
    _, parent, token = out
    for b, row in enumerate((parent * log_probs.shape[-1] + token).tolist()):
        if len(set(row)) < len(row):
            return f"in example {b} the same extension (parent, token) is kept twice"
    return None


def _beam_best(case: Case, out: Any, rerun: Any) -> str | None:
    scores, log_probs, finished = case.args
    b, k, v = log_probs.shape
    best = (scores[..., None] + _frozen(log_probs, finished)).reshape(b, k * v).topk(k, dim=-1).values
    have = out[0].sort(dim=-1, descending=True).values
    if not torch.allclose(have.double(), best.double(), atol=1e-5, equal_nan=True):
        return f"the best {k} of the {k * v} extensions score {best[0].tolist()} in example 0, yours {have[0].tolist()}"
    return None


_BEAM_PROPERTIES = [
    Property("'new_scores are sorted best first in each example'", _beam_sorted),
    Property("'new_scores[b, k] = scores[b, parent] + log_probs[b, parent, token] (a finished beam: + 0, token "
             "<pad>)'", _beam_consistent),
    Property("'no extension is kept twice'", _beam_distinct),
    Property("'the K survivors are the K best of the K * V extensions'", _beam_best),
]

_BEAM_SPEC = Spec(reference=beam_step, cases=_beam_cases, mistakes=_BEAM_MISTAKES, properties=_BEAM_PROPERTIES,
                  items=("new_scores", "parent", "token"))


def check_beam_step(beam_step_fn: Callable[..., tuple[Tensor, Tensor, Tensor]]
                    ) -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """Exercise 5.3: ``beam_step(scores, log_probs, finished) -> (new_scores, parent, token)``; returns the step the
    rest of the hour's beam search uses (yours once it passes)."""
    return check(BEAM, _BEAM_SPEC, (beam_step_fn,), (beam_step,),
                 f"new scores, parents and tokens match on {len(_beam_cases())} cases (finished beams, K = 1, all or "
                 "no beam finished, a batch of 1, the first step, float64, ties)")
