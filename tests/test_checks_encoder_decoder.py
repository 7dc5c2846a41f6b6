"""The self-checks of Hour 05: Exercise 5.2 (label-smoothed cross-entropy) and 5.3 (one step of beam search); 5.1
(the decoder block) is in test_checks_decoder_block.py.

Classes of wrong answers that cannot occur: 5.3 is not differentiable (scores chosen by topk, with integer
indices), so there is no "right values, wrong gradient" answer for it.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from amla.checks import encoder_decoder as C
from amla.checks.encoder_decoder.beam_step import _beam_variant
from amla.checks.encoder_decoder.label_smoothing import _smoothing_reference, _smoothing_variant
from amla.transformers.encoder_decoder import beam_step
from amla.transformers.tasks import EOS_ID, PAD_ID
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 5.2 ------------------------------------------------------------------------------------------


def _smoothing(logits, targets, smoothing):
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    per = (1 - smoothing) * nll + smoothing * -logp.mean(-1)
    real = targets != PAD_ID
    return per[real].mean()


def _smoothing_torch(logits, targets, smoothing):
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=smoothing, ignore_index=PAD_ID)


def _smoothing_loop(logits, targets, smoothing):  # one position at a time
    v = logits.shape[-1]
    total, count = 0.0, 0
    for b in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            y = int(targets[b, t])
            if y == PAD_ID:
                continue
            logp = logits[b, t] - torch.logsumexp(logits[b, t], 0)
            q = torch.full((v,), smoothing / v, dtype=logits.dtype)
            q[y] += 1 - smoothing
            total = total - (q * logp).sum()
            count += 1
    return total / count


def _smoothing_one_hot(logits, targets, smoothing):  # the smoothed distribution written out
    v = logits.shape[-1]
    q = F.one_hot(targets, num_classes=v).to(logits.dtype) * (1 - smoothing) + smoothing / v
    per = -(q * (logits - logits.logsumexp(-1, keepdim=True))).sum(-1)
    mask = (targets != PAD_ID).to(logits.dtype)
    return (per * mask).sum() / mask.sum()


@pytest.mark.parametrize("fn", [_smoothing, _smoothing_torch, _smoothing_loop, _smoothing_one_hot,
                                _smoothing_reference],
                         ids=["boolean_index_mean", "F.cross_entropy", "loop", "one_hot_logsumexp", "reference"])
def test_label_smoothing_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_label_smoothing, fn)
    assert "the rest of this hour uses your `label_smoothed_cross_entropy`" in capsys.readouterr().out.lower()


def test_label_smoothing_not_done_returns_a_reference_with_the_students_signature(capsys):
    reference = not_done(C.check_label_smoothing, raise_not_done, capsys=capsys)
    logits, targets = torch.randn(2, 3, 5), torch.tensor([[3, 4, 0], [2, 0, 0]])
    loss = reference(logits, targets, 0.1)
    assert loss.dim() == 0 and torch.allclose(loss, _smoothing_torch(logits, targets, 0.1))
    assert reference(logits.double(), targets, 0.1).dtype == torch.float64  # as F.cross_entropy's


@pytest.mark.parametrize(
    "variant, phrase",
    [
        (dict(classes="others"), "V - 1 classes other than the target"),
        (dict(classes="no_pad"), "skips the <pad> class"),
        (dict(ignore_pad=False), "padding is not ignored"),
        (dict(norm="all"), "divided by all B\\*T positions"),
        (dict(norm="per_sequence"), "averaged per sequence"),
        (dict(norm="sum"), "summed over the tokens"),
        (dict(sign=-1), "sign is flipped"),
        (dict(uniform="sum"), "without dividing by V"),
        (dict(keep_confidence=False), "weight 1 instead of 1 - eps"),
        (dict(log="softmax"), "probabilities are used where log-probabilities belong"),
        (dict(log="softmax_log"), "softmax\\(\\.\\.\\.\\)\\.log\\(\\)"),
        (dict(one_hot=True), "F.one_hot\\(targets\\) without num_classes"),
    ],
)
def test_label_smoothing_names_the_known_mistakes(variant, phrase):
    fails(C.check_label_smoothing, _smoothing_variant(**variant), match=phrase)


def test_label_smoothing_notices_a_changed_input():
    def normalises_in_place(logits, targets, smoothing):
        logits -= logits.logsumexp(-1, keepdim=True)  # now log-probabilities, but the caller's logits are gone
        return _smoothing(logits, targets, smoothing)

    fails(C.check_label_smoothing, normalises_in_place, match=r"changed its argument `logits` in place")


def test_label_smoothing_refuses_the_wrong_dtype_and_type():
    fails(C.check_label_smoothing, lambda logits, targets, smoothing: _smoothing(logits, targets, smoothing).item(),
          match=r"the loss should be a tensor like 0-d tensor")
    fails(C.check_label_smoothing, lambda logits, targets, smoothing: _smoothing(logits.double(), targets, smoothing),
          match=r"dtype torch\.float64, expected torch\.float32")
    fails(C.check_label_smoothing,
          lambda logits, targets, smoothing: _smoothing(logits, targets, smoothing).reshape(1),
          match=r"the loss has shape \(1,\), expected \(\)")


def test_label_smoothing_catches_a_bug_on_an_edge_input_only():
    def float32_only(logits, targets, smoothing):  # right for float32, silently casts float64 down
        return _smoothing(logits.float(), targets, smoothing)

    fails(C.check_label_smoothing, float32_only, match=r"with float64 logits.*dtype torch\.float32, expected torch\.float64")

    def clamped(logits, targets, smoothing):  # clamps the logits "for safety": wrong once they are large
        return _smoothing(logits.clamp(-100, 100), targets, smoothing)

    fails(C.check_label_smoothing, clamped, match=r"with very large logits")


def test_label_smoothing_catches_a_wrong_gradient():
    fails(C.check_label_smoothing, lambda logits, targets, smoothing: _smoothing(logits, targets, smoothing).detach(),
          match=r"values are right but the loss is detached")
    fails(C.check_label_smoothing,
          lambda logits, targets, smoothing: torch.tensor(_smoothing(logits, targets, smoothing).item(),
                                                          dtype=logits.dtype),
          match=r"values are right but the loss is detached")
    # without dtype=, torch.tensor(...) also loses float64: it fails on that case first
    fails(C.check_label_smoothing,
          lambda logits, targets, smoothing: torch.tensor(_smoothing(logits, targets, smoothing).item()),
          match=r"^Exercise 5\.2 ")

    def constant_uniform_term(logits, targets, smoothing):  # the smoothing term treated as a constant
        logp = logits.log_softmax(-1)
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        per = (1 - smoothing) * nll + smoothing * -logp.mean(-1).detach()
        return per[targets != PAD_ID].mean()

    fails(C.check_label_smoothing, constant_uniform_term,
          match=r"values are right but the gradient with respect to `logits` differs")


def test_label_smoothing_diagnoses_by_property_when_no_known_mistake_matches():
    def padded_uniform(logits, targets, smoothing):  # the uniform term averaged over every position, padding too
        logp = logits.log_softmax(-1)
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        real = targets != PAD_ID
        return (1 - smoothing) * nll[real].mean() + smoothing * -logp.mean(-1).mean()

    fails(C.check_label_smoothing, padded_uniform,
          match=r"'the logits of padded positions do not change the loss' does not hold")

    def plus_a_bit(logits, targets, smoothing):
        return _smoothing(logits, targets, smoothing) + 0.01

    fails(C.check_label_smoothing, plus_a_bit,
          match=r"'with smoothing 0 the loss is the mean -log p\(target\) of the real tokens' does not hold")

    def minus_a_lot(logits, targets, smoothing):  # nonsense that goes negative (and is not a known mistake)
        return _smoothing(logits, targets, smoothing) - 50.0 * (1 + smoothing)

    fails(C.check_label_smoothing, minus_a_lot, match=r"'the loss is >= 0' does not hold")


# --- Exercise 5.3 ------------------------------------------------------------------------------------------


def _step(scores, log_probs, finished):
    b, k, v = log_probs.shape
    only_pad = torch.full_like(log_probs, -math.inf)
    only_pad[..., PAD_ID] = 0.0
    lp = torch.where(finished.unsqueeze(-1), only_pad, log_probs)
    best, index = (scores.unsqueeze(-1) + lp).reshape(b, k * v).topk(k, dim=-1)
    return best, index // v, index % v


def _step_sort_divmod(scores, log_probs, finished):  # masked_fill, a stable sort, torch.div(floor) and remainder
    b, k, v = log_probs.shape
    lp = log_probs.masked_fill(finished[..., None], -math.inf)
    lp[..., PAD_ID] = torch.where(finished, torch.zeros_like(lp[..., PAD_ID]), lp[..., PAD_ID])
    total = (lp + scores[..., None]).view(b, -1)
    best, index = total.sort(dim=-1, descending=True, stable=True)
    best, index = best[:, :k], index[:, :k]
    return best, torch.div(index, v, rounding_mode="floor"), torch.remainder(index, v)


def _step_loop(scores, log_probs, finished):  # one example at a time, candidates as a Python list
    b, k, v = log_probs.shape
    new_scores, parents, tokens = [], [], []
    for n in range(b):
        cands = []
        for p in range(k):
            for t in range(v):
                if bool(finished[n, p]):
                    value = scores[n, p] + 0.0 if t == PAD_ID else torch.tensor(-math.inf, dtype=scores.dtype)
                else:
                    value = scores[n, p] + log_probs[n, p, t]
                cands.append((value, p, t))
        cands.sort(key=lambda c: -float(c[0]))
        new_scores.append(torch.stack([c[0] for c in cands[:k]]))
        parents.append(torch.tensor([c[1] for c in cands[:k]]))
        tokens.append(torch.tensor([c[2] for c in cands[:k]]))
    return torch.stack(new_scores), torch.stack(parents), torch.stack(tokens)


def _step_reversed_ties(scores, log_probs, finished):  # topk over the candidates in reverse order: other tie-breaks
    b, k, v = log_probs.shape
    only_pad = torch.full_like(log_probs, -math.inf)
    only_pad[..., PAD_ID] = 0.0
    total = (scores[..., None] + torch.where(finished[..., None], only_pad, log_probs)).reshape(b, k * v)
    best, index = total.flip(-1).topk(k, dim=-1)
    index = k * v - 1 - index
    parent, token = torch.unravel_index(index, (k, v))
    return best, parent, token


@pytest.mark.parametrize("fn", [_step, _step_sort_divmod, _step_loop, _step_reversed_ties, beam_step],
                         ids=["topk", "stable_sort_div", "loop", "reversed_tie_break", "reference"])
def test_beam_step_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_beam_step, fn)
    assert "the rest of this hour uses your `beam_step`" in capsys.readouterr().out.lower()


def test_beam_step_ties_accept_another_tie_break():
    scores = torch.tensor([[-1.0, -1.0, -2.0]])
    log_probs = torch.full((1, 3, 6), math.log(1 / 6))
    finished = torch.zeros(1, 3, dtype=torch.bool)
    a, b = _step(scores, log_probs, finished), _step_reversed_ties(scores, log_probs, finished)
    assert torch.equal(a[0], b[0])  # the same scores ...
    assert not (torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]))  # ... from other extensions: ties really occur


def test_beam_step_ties_still_check_parent_and_token():
    def wrong_parent_on_ties(scores, log_probs, finished):  # right scores, but pointing at another beam
        best, parent, token = _step(scores, log_probs, finished)
        return best, (torch.full_like(parent, 2) if log_probs.shape[-1] == 6 else parent), token

    fails(C.check_beam_step, wrong_parent_on_ties,
          match=r"^Exercise 5\.3 .*: with ties.*'new_scores\[b, k\] = scores\[b, parent\]")

    def one_extension_thrice(scores, log_probs, finished):  # right scores, the same (parent, token) K times
        best, parent, token = _step(scores, log_probs, finished)
        if log_probs.shape[-1] == 6:
            parent, token = torch.zeros_like(parent), torch.full_like(token, 3)
        return best, parent, token

    fails(C.check_beam_step, one_extension_thrice, match=r"with ties.*'no extension is kept twice' does not hold")


def test_beam_step_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_beam_step, raise_not_done, capsys=capsys)
    assert reference is beam_step


@pytest.mark.parametrize(
    "variant, phrase",
    [
        (dict(add_scores=False), "previous scores are not added"),
        (dict(per_beam=True), "each beam keeps its own best token"),
        (dict(freeze="drop"), "finished beams are thrown away"),
        (dict(freeze="pad_cost"), "pay the model's log-probability of <pad>"),
        (dict(freeze="none"), "extended like live ones"),
        (dict(freeze="pad_zero_only"), "other tokens keep their log-probabilities"),
        (dict(swap=True), "parent and token are swapped"),
        (dict(split_by="k"), "split with K instead of V"),
        (dict(smallest=True), "K \\*worst\\* extensions are kept"),
    ],
)
def test_beam_step_names_the_known_mistakes(variant, phrase):
    fails(C.check_beam_step, _beam_variant(**variant), match=phrase)


def test_beam_step_notices_a_changed_input():
    def adds_into_log_probs(scores, log_probs, finished):
        b, k, v = log_probs.shape
        log_probs.masked_fill_(finished[..., None], -math.inf)
        log_probs[..., PAD_ID].masked_fill_(finished, 0.0)
        log_probs += scores[..., None]
        best, index = log_probs.reshape(b, k * v).topk(k, dim=-1)
        return best, index // v, index % v

    fails(C.check_beam_step, adds_into_log_probs, match=r"changed its argument `log_probs` in place")

    def stores_into_scores(scores, log_probs, finished):
        new_scores, parent, token = _step(scores, log_probs, finished)
        scores.copy_(new_scores)  # "update the beams"
        return scores, parent, token

    fails(C.check_beam_step, stores_into_scores, match=r"changed its argument `scores` in place")


def test_beam_step_refuses_the_wrong_dtype_and_type():
    def true_division(scores, log_probs, finished):
        best, parent, token = _step(scores, log_probs, finished)
        index = parent * log_probs.shape[-1] + token
        return best, (index / log_probs.shape[-1]).floor(), token

    fails(C.check_beam_step, true_division,
          match=r"the parent has dtype torch\.float32, expected torch\.int64 \(indices must be integer tensors")

    def int32_tokens(scores, log_probs, finished):
        best, parent, token = _step(scores, log_probs, finished)
        return best, parent, token.int()

    fails(C.check_beam_step, int32_tokens, match=r"the token has dtype torch\.int32, expected torch\.int64")
    fails(C.check_beam_step, lambda s, lp, f: _step(s, lp, f)[:2], match=r"should have 3 items, got 2")


def test_beam_step_catches_a_bug_on_an_edge_input_only():
    def squeezes(scores, log_probs, finished):  # .squeeze(-1) drops the beam axis when K = 1
        return tuple(t.squeeze(-1) for t in _step(scores, log_probs, finished))

    fails(C.check_beam_step, squeezes, match=r"with a single beam \(K = 1.*has shape \(2,\), expected \(2, 1\)")

    def all_done_shortcut(scores, log_probs, finished):  # "nothing to do" when every beam is finished
        if bool(finished.all()):
            b, k = scores.shape
            return scores, torch.arange(k).expand(b, k), torch.full((b, k), PAD_ID)
        return _step(scores, log_probs, finished)

    fails(C.check_beam_step, all_done_shortcut, match=r"^Exercise 5\.3 .*: with every beam finished")


def test_beam_step_diagnoses_by_property_when_no_known_mistake_matches():
    def by_parent(scores, log_probs, finished):  # the right survivors, listed by parent instead of best first
        best, parent, token = _step(scores, log_probs, finished)
        order = (parent * log_probs.shape[-1] + token).argsort(-1)
        return best.gather(1, order), parent.gather(1, order), token.gather(1, order)

    fails(C.check_beam_step, by_parent, match=r"'new_scores are sorted best first in each example' does not hold")

    def eos_after_eos(scores, log_probs, finished):  # the right scores, but a finished beam is followed by <eos>
        best, parent, token = _step(scores, log_probs, finished)
        return best, parent, token.masked_fill(finished.gather(1, parent), EOS_ID)

    fails(C.check_beam_step, eos_after_eos, match=r"'new_scores\[b, k\] = scores\[b, parent\] \+ log_probs")
