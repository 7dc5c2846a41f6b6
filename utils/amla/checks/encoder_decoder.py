"""Self-checks of Hour 05 (the encoder-decoder Transformer): the decoder mask, label smoothing, a beam-search step."""

from __future__ import annotations

from typing import Any, Callable

import torch

from amla.checks.core import Mistake, compare
from amla.transformers.encoder_decoder import beam_step, decoder_mask, label_smoothed_cross_entropy
from amla.transformers.tasks import BOS_ID, PAD_ID

# --- Exercise 5.1: the decoder's self-attention mask ------------------------------------------------


def _mask_variant(*, causal: str = "tril", padding: str = "keys", invert: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The decoder mask with one typical bug switched on (the defaults give the correct mask)."""

    def mask_fn(tgt_in: torch.Tensor) -> torch.Tensor:
        t = tgt_in.shape[1]
        ones = torch.ones(t, t, dtype=torch.bool)
        allowed = {"tril": ones.tril(), "triu": ones.triu(), "strict": ones.tril(-1), "none": ones}[causal]
        real = tgt_in != PAD_ID
        if padding == "keys":
            allowed = allowed & real[:, None, None, :]
        elif padding == "queries":
            allowed = allowed & real[:, None, :, None]
        else:
            allowed = allowed.expand(tgt_in.shape[0], 1, t, t)
        return ~allowed if invert else allowed

    return mask_fn


def _mask_inputs(g: torch.Generator) -> tuple[Any, ...]:
    b, t = 4, 7
    tgt_in = torch.randint(3, 13, (b, t), generator=g)
    tgt_in[:, 0] = BOS_ID
    for row, length in enumerate([7, 5, 3, 6]):
        tgt_in[row, length:] = PAD_ID
    return (tgt_in,)


def check_decoder_mask(decoder_mask_fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 5.1: bool ``[B, 1, T, T]`` mask of ``decoder_mask(tgt_in)``, True = may attend."""
    mistakes = [
        Mistake("the mask is not causal: every position may look at later tokens, so in training the decoder "
                "can copy the very token it is asked to predict.", _mask_variant(causal="none")),
        Mistake("the triangle is the wrong way round (triu instead of tril): each position sees the future and "
                "not the past.", _mask_variant(causal="triu")),
        Mistake("the diagonal is masked (tril(-1)): a position must be allowed to attend to itself, and the first "
                "position (<bos>) then has nothing to attend to at all.", _mask_variant(causal="strict")),
        Mistake("the padding is not masked: real positions never look at padding here (it comes after them), but "
                "padded positions do, and with left padding real ones would too.", _mask_variant(padding="none")),
        Mistake("the padding mask is applied to the queries (rows) instead of the keys (columns): it must stop "
                "every position from attending *to* a padded token.", _mask_variant(padding="queries")),
        Mistake("the mask is inverted: True must mean 'may attend' (the convention of Hour 02 and PyTorch).",
                _mask_variant(invert=True)),
    ]
    compare("Exercise 5.1 (decoder mask)", decoder_mask_fn, decoder_mask, _mask_inputs, mistakes, what="mask")


# --- Exercise 5.2: label smoothing ----------------------------------------------------------------


def _smoothing_variant(*, classes: str = "all", ignore_pad: bool = True, norm: str = "real", sign: int = 1,
                       uniform: str = "mean", keep_confidence: bool = True,
                       log: bool = True) -> Callable[..., torch.Tensor]:
    """Label-smoothed cross-entropy with one typical bug switched on (the defaults give the correct loss)."""

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
        v = logits.shape[-1]
        logp = logits.log_softmax(-1) if log else logits.softmax(-1)
        logp = logp.reshape(-1, v)
        y = targets.reshape(-1)
        nll = -logp.gather(1, y[:, None]).squeeze(1)
        if classes == "all":
            other = -logp.sum(1) / v if uniform == "mean" else -logp.sum(1)
            per = (1 - smoothing if keep_confidence else 1.0) * nll + smoothing * other
        elif classes == "others":  # eps / (V - 1) on every class but the target
            per = (1 - smoothing) * nll + smoothing * (-logp.sum(1) - nll) / (v - 1)
        else:  # "no_pad": eps / (V - 1) on every class but <pad>
            per = (1 - smoothing) * nll + smoothing * (-logp.sum(1) + logp[:, PAD_ID]) / (v - 1)
        keep = (y != PAD_ID).float() if ignore_pad else torch.ones_like(y, dtype=torch.float)
        total = (per * keep).sum()
        if norm == "real":
            out = total / keep.sum()
        elif norm == "all":
            out = total / y.numel()
        else:  # "sum"
            out = total
        return sign * out

    return loss_fn


def _smoothing_inputs(g: torch.Generator) -> tuple[Any, ...]:
    b, t, v = 3, 6, 9
    logits = torch.randn(b, t, v, generator=g) * 2
    targets = torch.randint(3, v, (b, t), generator=g)
    targets[1, 4:] = PAD_ID
    targets[2, 2:] = PAD_ID
    return logits, targets, 0.2


def check_label_smoothing(label_smoothing_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 5.2: ``label_smoothed_cross_entropy(logits [B, T, V], targets [B, T], smoothing)``."""
    reference = lambda logits, targets, eps: label_smoothed_cross_entropy(logits, targets, eps)  # noqa: E731
    mistakes = [
        Mistake("the smoothing mass goes to the V - 1 classes other than the target (eps / (V - 1) each). That is "
                "a valid variant, but here, as in F.cross_entropy(label_smoothing=...), every one of the V classes "
                "gets eps / V and the target gets 1 - eps + eps / V.", _smoothing_variant(classes="others")),
        Mistake("the smoothing mass skips the <pad> class (eps / (V - 1) on the others). The Annotated Transformer "
                "does that, but this exercise spreads eps over all V classes, as F.cross_entropy does.",
                _smoothing_variant(classes="no_pad")),
        Mistake("padding is not ignored: the loss also trains the model to predict <pad> after <eos>. Average "
                "only over the positions whose target is not PAD_ID.", _smoothing_variant(ignore_pad=False)),
        Mistake("padding positions are zeroed but the sum is divided by all B*T positions; divide by the number "
                "of real (non-pad) targets.", _smoothing_variant(norm="all")),
        Mistake("the loss is summed over the tokens instead of averaged over the real ones.",
                _smoothing_variant(norm="sum")),
        Mistake("the sign is flipped: a cross-entropy is -sum q(c) log p(c), a positive number.",
                _smoothing_variant(sign=-1)),
        Mistake("the smoothing term sums -log p(c) over the classes without dividing by V: the uniform "
                "distribution puts eps / V on each class, not eps.", _smoothing_variant(uniform="sum")),
        Mistake("the target term keeps weight 1 instead of 1 - eps: the smoothed target distribution must still "
                "sum to 1.", _smoothing_variant(keep_confidence=False)),
        Mistake("probabilities are used where log-probabilities belong (softmax instead of log_softmax).",
                _smoothing_variant(log=False)),
    ]
    compare("Exercise 5.2 (label smoothing)", label_smoothing_fn, reference, _smoothing_inputs, mistakes,
            what="loss")


# --- Exercise 5.3: one step of beam search ----------------------------------------------------------


def _beam_variant(*, add_scores: bool = True, per_beam: bool = False, freeze: str = "pad",
                  swap: bool = False) -> Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A beam step with one typical bug switched on (the defaults give the correct step)."""

    def step(scores: torch.Tensor, log_probs: torch.Tensor, finished: torch.Tensor):
        b, k, v = log_probs.shape
        if freeze == "pad":
            frozen = torch.full_like(log_probs, float("-inf"))
            frozen[..., PAD_ID] = 0.0
            log_probs = torch.where(finished[..., None], frozen, log_probs)
        elif freeze == "drop":  # finished beams are thrown away
            log_probs = log_probs.masked_fill(finished[..., None], float("-inf"))
        elif freeze == "pad_cost":  # forced to <pad>, but paying the model's log-probability for it
            pad_only = torch.full_like(log_probs, float("-inf"))
            pad_only[..., PAD_ID] = log_probs[..., PAD_ID]
            log_probs = torch.where(finished[..., None], pad_only, log_probs)
        total = scores[..., None] + log_probs if add_scores else log_probs
        if per_beam:  # the best token of each beam, instead of the best K of all K*V
            best, token = total.max(-1)
            return best, torch.arange(k).expand(b, k), token
        best, index = total.reshape(b, k * v).topk(k, dim=-1)
        if swap:
            return best, index % v, index // v
        return best, index // v, index % v

    return step


def _beam_inputs(g: torch.Generator) -> tuple[Any, ...]:
    b, k, v = 3, 4, 11
    scores = -torch.rand(b, k, generator=g) * 4
    log_probs = (torch.randn(b, k, v, generator=g) * 2).log_softmax(-1)
    finished = torch.rand(b, k, generator=g) < 0.3
    finished[0, 0] = True  # a finished beam with a good score: it must survive, extended by <pad>
    scores[0, 0] = -0.01
    return scores, log_probs, finished


def check_beam_step(beam_step_fn: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> None:
    """Exercise 5.3: ``(new_scores, parent, token)`` of ``beam_step(scores, log_probs, finished)``."""
    mistakes = [
        Mistake("the previous scores are not added: a beam's score is the *sum* of the log-probabilities of all "
                "its tokens, so add scores[..., None] to log_probs before choosing.",
                _beam_variant(add_scores=False)),
        Mistake("each beam keeps its own best token: the K survivors must be the best K of all K * V extensions "
                "(flatten to [B, K * V], then topk), so a strong beam can have several children and a weak one "
                "none.", _beam_variant(per_beam=True)),
        Mistake("finished beams are thrown away (-inf). A beam that said <eos> is a complete candidate: keep it, "
                "extended by <pad> at no cost (log-probability 0).", _beam_variant(freeze="drop")),
        Mistake("finished beams pay the model's log-probability of <pad>; the extension of a finished beam must "
                "cost nothing (0), or complete outputs lose to unfinished ones for no reason.",
                _beam_variant(freeze="pad_cost")),
        Mistake("finished beams are extended like live ones: after <eos> a beam may only be followed by <pad>.",
                _beam_variant(freeze="none")),
        Mistake("parent and token are swapped: in the flattened [B, K * V] index, the beam is index // V and "
                "the token index % V.", _beam_variant(swap=True)),
    ]
    compare("Exercise 5.3 (beam step)", beam_step_fn, beam_step, _beam_inputs, mistakes,
            what="result (new_scores, parent, token)")


__all__ = ["check_beam_step", "check_decoder_mask", "check_label_smoothing"]
