"""The self-check of Exercise 5.2: label smoothing (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.toolkit.errors import shape_text
from amla.transformers.encoder_decoder import label_smoothed_cross_entropy
from amla.transformers.tasks import PAD_ID

SMOOTHING = exercise(5, "5.2", "Label-smoothed cross-entropy", "label_smoothed_cross_entropy")


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
        Case(f"logits {shape_text(ordinary[0])}, targets with padding in two rows, smoothing 0.2", (*ordinary, 0.2)),
        Case(f"smoothing 0 (plain cross-entropy), logits {shape_text(plain[0])}", (*plain, 0.0)),
        Case(f"a batch of 1 (logits {shape_text(one[0])}), smoothing 0.1", (*one, 0.1)),
        Case(f"no padding at all (logits {shape_text(full[0])}), smoothing 0.3", (*full, 0.3)),
        Case(f"very large logits (about 1e4, shape {shape_text(large[0])}), smoothing 0.1", (*large, 0.1)),
        Case(f"float64 logits {shape_text(double[0])}, smoothing 0.1", (*double, 0.1)),
        Case(f"targets that include the last class (V - 1 = 7, logits {shape_text(last_logits)}), smoothing 0.1",
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
                 "loss and gradients match on {cases} cases (padding, smoothing 0, a batch of 1, no "
                 "padding, logits of 1e4, float64, the last class as a target)")
