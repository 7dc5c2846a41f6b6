"""The self-checks of Hour 03: Exercise 3.1 (additive attention), 3.2 (the teacher-forced loss) and 3.3 (how
monotone an alignment is).

Every class of wrong answer is covered for each exercise, except one that cannot occur: Exercise 3.3 is not
differentiable (it returns a Python float from an argmax), so it has no "right values, wrong gradient" answer.
Exercise 3.2 has no float64 case: the decoder it is given is float32.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from amla.checks import seq2seq as C
from amla.checks.seq2seq.additive_attention import _attention_variant
from amla.checks.seq2seq.monotone_fraction import _monotone_variant
from amla.checks.seq2seq.teacher_forcing import _forcing_variant
from amla.transformers.seq2seq import additive_attention, monotone_fraction, teacher_forced_logits, teacher_forcing_loss
from amla.transformers.tasks import BOS_ID, PAD_ID
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 3.1 ------------------------------------------------------------------------------------------


def _additive(query, keys, W_q, W_k, v, mask):  # the notebook's solution
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
    weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return (weights.unsqueeze(1) @ keys).squeeze(1), weights


def _additive_einsum_1e9(query, keys, W_q, W_k, v, mask):  # einsum everywhere, a large negative fill
    hidden = torch.tanh(torch.einsum("bd,da->ba", query, W_q)[:, None] + torch.einsum("bsd,da->bsa", keys, W_k))
    scores = torch.einsum("bsa,a->bs", hidden, v)
    weights = scores.masked_fill(~mask, -1e9).softmax(-1)
    return torch.einsum("bs,bsd->bd", weights, keys), weights


def _additive_loops_finfo(query, keys, W_q, W_k, v, mask):  # one position at a time, torch.where with finfo.min
    q = query @ W_q
    scores = torch.stack([torch.tanh(q + keys[:, j] @ W_k) @ v for j in range(keys.shape[1])], dim=1)
    scores = torch.where(mask, scores, torch.finfo(scores.dtype).min)
    e = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = e / e.sum(-1, keepdim=True)
    return (weights[..., None] * keys).sum(1), weights


def _additive_logsumexp_bmm(query, keys, W_q, W_k, v, mask):  # log-space softmax, bmm for the context
    scores = (torch.tanh(keys @ W_k + (query @ W_q)[:, None, :]) * v).sum(-1)
    scores = scores.masked_fill(mask.logical_not(), -math.inf)
    weights = torch.exp(scores - torch.logsumexp(scores, dim=-1, keepdim=True))
    return torch.bmm(weights[:, None, :], keys)[:, 0], weights


@pytest.mark.parametrize("fn", [_additive, _additive_einsum_1e9, _additive_loops_finfo, _additive_logsumexp_bmm,
                                additive_attention], ids=lambda f: f.__name__)
def test_attention_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_additive_attention, fn)
    assert "the rest of this hour uses your `additive_attention`" in capsys.readouterr().out.lower()


def test_attention_not_done_returns_a_reference_with_the_students_signature(capsys):
    reference = not_done(C.check_additive_attention, raise_not_done, capsys=capsys)
    query, keys = torch.randn(2, 3), torch.randn(2, 4, 5)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    context, weights = reference(query, keys, torch.randn(3, 6), torch.randn(5, 6), torch.randn(6), mask)
    assert context.shape == (2, 5) and weights.shape == (2, 4) and bool((weights[1, 2:] == 0).all())


@pytest.mark.parametrize(
    "variant, phrase",
    [
        (dict(softmax_dim=0), "softmax runs over the batch axis"),
        (dict(tanh=False), "tanh is missing"),
        (dict(use_v=False), "v is missing"),
        (dict(mask="none"), "padding mask is not applied"),
        (dict(mask="after"), "mask is applied after the softmax"),
        (dict(mask="zero"), "set to 0 instead of -inf"),
        (dict(mask="inverted"), "mask is inverted"),
        (dict(context_from="projected"), "weighted sum of the projected keys"),
        (dict(context_from="raw_scores"), "computed from the scores instead of the softmax weights"),
        (dict(context_from="masked_scores"), "computed from the scores instead of the softmax weights"),
        (dict(unsqueeze=False), r"without \.unsqueeze\(1\)"),
    ],
)
def test_attention_names_the_known_mistakes(variant, phrase):
    fails(C.check_additive_attention, _attention_variant(**variant), match=phrase)


def test_attention_notices_a_changed_input():
    def zeroes_padding_in_place(query, keys, W_q, W_k, v, mask):
        keys *= mask[..., None]  # the padded encoder states are zero anyway in the model, but not here
        return _additive(query, keys, W_q, W_k, v, mask)

    fails(C.check_additive_attention, zeroes_padding_in_place, match=r"changed its argument `keys` in place")


def test_attention_refuses_the_wrong_dtype_and_type():
    fails(C.check_additive_attention, lambda *a: (_additive(*a)[0], _additive(*a)[1].double()),
          match=r"the weights has dtype torch\.float64, expected torch\.float32")
    fails(C.check_additive_attention, lambda *a: _additive(*a)[0],
          match=r"should be a tuple of 2, got a tensor of shape \(3, 6\)")
    fails(C.check_additive_attention, lambda *a: [t.tolist() for t in _additive(*a)],
          match=r"the context should be a tensor")


def test_attention_catches_a_bug_on_an_edge_input_only():
    def squeezes(query, keys, W_q, W_k, v, mask):  # .squeeze() also drops the batch axis of a batch of one
        context, weights = _additive(query, keys, W_q, W_k, v, mask)
        return (weights.unsqueeze(1) @ keys).squeeze(), weights

    fails(C.check_additive_attention, squeezes, match=r"with a batch of one .*has shape \(4,\), expected \(1, 4\)")

    def right_padding_only(query, keys, W_q, W_k, v, mask):  # rebuilds the mask from the lengths
        right = torch.arange(keys.shape[1]) < mask.sum(1, keepdim=True)
        return _additive(query, keys, W_q, W_k, v, right)

    fails(C.check_additive_attention, right_padding_only, match=r"^Exercise 3\.1 \(Additive attention\): with left padding")

    def float32_only(query, keys, W_q, W_k, v, mask):
        return _additive(query.float(), keys.float(), W_q.float(), W_k.float(), v.float(), mask)

    fails(C.check_additive_attention, float32_only, match=r"with float64 inputs.*dtype torch\.float32, expected torch\.float64")


def test_attention_catches_a_wrong_gradient():
    fails(C.check_additive_attention, lambda *a: tuple(t.detach() for t in _additive(*a)),
          match=r"values are right but the result is detached")

    def weights_detached_in_the_context(query, keys, W_q, W_k, v, mask):
        context, weights = _additive(query, keys, W_q, W_k, v, mask)
        return (weights.detach().unsqueeze(1) @ keys).squeeze(1), weights

    fails(C.check_additive_attention, weights_detached_in_the_context,
          match=r"values are right but the gradient with respect to `query` differs")


def test_attention_diagnoses_by_property_when_no_known_mistake_matches():
    def leaky(query, keys, W_q, W_k, v, mask):  # padding filled with -20: a tiny weight, not exactly 0
        scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v
        weights = scores.masked_fill(~mask, -20.0).softmax(-1)
        return (weights.unsqueeze(1) @ keys).squeeze(1), weights

    fails(C.check_additive_attention, leaky, match=r"'padding gets weight exactly 0' does not hold")

    def position_bias(query, keys, W_q, W_k, v, mask):  # a made-up bias towards the first positions
        scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v - 0.3 * torch.arange(keys.shape[1])
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        return (weights.unsqueeze(1) @ keys).squeeze(1), weights

    fails(C.check_additive_attention, position_bias, match=r"'the order of the source positions does not matter'")

    def context_from_the_last_key(query, keys, W_q, W_k, v, mask):
        context, weights = _additive(query, keys, W_q, W_k, v, mask)
        return context + 0.1 * keys[:, -1], weights

    fails(C.check_additive_attention, context_from_the_last_key, match=r"'context = weights times keys' does not hold")


# --- Exercise 3.2 ------------------------------------------------------------------------------------------


def _forcing(decoder, state, memory, targets):  # the notebook's solution
    prev = torch.full((targets.shape[0],), BOS_ID, dtype=torch.long, device=targets.device)
    logits = []
    for t in range(targets.shape[1]):
        step_logits, state, _ = decoder.step(prev, state, memory)
        logits.append(step_logits)
        prev = targets[:, t]
    logits = torch.stack(logits, dim=1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD_ID)


def _forcing_masked_mean(decoder, state, memory, targets):  # inputs built with cat, logits[keep], no ignore_index
    inputs = torch.cat([torch.full_like(targets[:, :1], BOS_ID), targets[:, :-1]], dim=1)
    steps = []
    for t in range(inputs.shape[1]):
        out, state, _ = decoder.step(inputs[:, t], state, memory)
        steps.append(out)
    logits = torch.stack(steps, 1)
    keep = targets != PAD_ID
    return F.cross_entropy(logits[keep], targets[keep])


def _forcing_log_softmax_gather(decoder, state, memory, targets):  # log_softmax, gather, a masked mean
    prev, terms = torch.full_like(targets[:, 0], BOS_ID), []
    for t in range(targets.shape[1]):
        out, state, _ = decoder.step(prev, state, memory)
        terms.append(-F.log_softmax(out, -1).gather(1, targets[:, t : t + 1]).squeeze(1))
        prev = targets[:, t]
    nll = torch.stack(terms, 1)
    real = (targets != PAD_ID).to(nll.dtype)
    return (nll * real).sum() / real.sum()


def _forcing_class_axis(decoder, state, memory, targets):  # F.cross_entropy on [B, V, T], the library's helper
    logits = teacher_forced_logits(decoder, state, memory, targets)
    return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD_ID)


@pytest.mark.parametrize("fn", [_forcing, _forcing_masked_mean, _forcing_log_softmax_gather, _forcing_class_axis,
                                teacher_forcing_loss], ids=lambda f: f.__name__)
def test_forcing_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_teacher_forcing, fn)
    assert "the rest of this hour uses your `teacher_forcing_loss`" in capsys.readouterr().out.lower()


def test_forcing_not_done_returns_the_reference(capsys):
    assert not_done(C.check_teacher_forcing, raise_not_done, capsys=capsys) is teacher_forcing_loss


@pytest.mark.parametrize(
    "variant, phrase",
    [
        (dict(feed="own"), "the model's own prediction"),
        (dict(shift="none"), "inputs are not shifted"),
        (dict(shift="drop_first"), "as if they began with <bos>"),
        (dict(shift="next"), "off-by-one between predictions and labels"),
        (dict(first=PAD_ID), r"step 0 is fed id 0 \(<pad>"),
        (dict(carry_state=False), "state is not carried"),
        (dict(detach_state=True), r"values are right but the gradient .* state is detached between steps"),
        (dict(pad=True), "padding is counted in the loss"),
        (dict(reduce="sum_steps"), "sum over time steps"),
        (dict(reduce="per_sequence"), "averaged within each sequence"),
        (dict(reduce="all_positions"), "divided by the number of all positions"),
        (dict(loss="nll_on_logits"), "F.nll_loss is applied to the raw logits"),
    ],
)
def test_forcing_names_the_known_mistakes(variant, phrase):
    fails(C.check_teacher_forcing, _forcing_variant(**variant), match=phrase)


def test_forcing_notices_a_changed_input():
    def bos_into_the_targets(decoder, state, memory, targets):  # shifts the caller's targets in place
        labels = targets.clone()
        targets[:, 1:] = labels[:, :-1]
        targets[:, 0] = BOS_ID
        steps = []
        for t in range(targets.shape[1]):
            out, state, _ = decoder.step(targets[:, t], state, memory)
            steps.append(out)
        logits = torch.stack(steps, 1)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=PAD_ID)

    fails(C.check_teacher_forcing, bos_into_the_targets, match=r"changed its argument `targets` in place")

    def eval_mode(decoder, state, memory, targets):  # switches the caller's decoder to eval mode
        decoder.eval()
        return _forcing(decoder, state, memory, targets)

    fails(C.check_teacher_forcing, eval_mode, match=r"changed its argument `decoder` in place")


def test_forcing_refuses_the_wrong_dtype_and_type():
    fails(C.check_teacher_forcing, lambda *a: _forcing(*a).item(), match=r"the loss should be a tensor")
    fails(C.check_teacher_forcing, lambda *a: _forcing(*a).double(), match=r"dtype torch\.float64, expected torch\.float32")
    fails(C.check_teacher_forcing, lambda *a: _forcing(*a).reshape(1), match=r"has shape \(1,\), expected \(\)")


def test_forcing_catches_a_bug_on_an_edge_input_only():
    def log_of_softmax(decoder, state, memory, targets):  # log(softmax(x)) underflows to -inf for large logits
        logits = teacher_forced_logits(decoder, state, memory, targets)
        logp = torch.log(torch.softmax(logits, -1))
        return F.nll_loss(logp.reshape(-1, logp.shape[-1]), targets.reshape(-1), ignore_index=PAD_ID)

    fails(C.check_teacher_forcing, log_of_softmax, match=r"^Exercise 3\.2 \(The teacher-forced loss\): with logits around 1e4")

    def squeezes(decoder, state, memory, targets):  # .squeeze() drops the batch axis of a batch of one
        logits = teacher_forced_logits(decoder, state, memory, targets).squeeze()
        return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD_ID)

    fails(C.check_teacher_forcing, squeezes, match=r"^Exercise 3\.2 \(The teacher-forced loss\): with a batch of one.*raised")


def test_forcing_catches_a_wrong_gradient():
    fails(C.check_teacher_forcing, lambda *a: _forcing(*a).detach(), match=r"values are right but the loss is detached")

    def detached_every_other_step(decoder, state, memory, targets):
        prev, logits = torch.full_like(targets[:, 0], BOS_ID), []
        for t in range(targets.shape[1]):
            out, state, _ = decoder.step(prev, state if t % 2 == 0 else state.detach(), memory)
            logits.append(out)
            prev = targets[:, t]
        logits = torch.stack(logits, 1)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD_ID)

    fails(C.check_teacher_forcing, detached_every_other_step,
          match=r"values are right but the gradient with respect to `decoder\.[\w.]+` differs")


def test_forcing_diagnoses_by_property_when_no_known_mistake_matches():
    def peeks_after_the_first_step(decoder, state, memory, targets):  # <bos> first, then targets[:, t] at step t
        prev, logits = torch.full_like(targets[:, 0], BOS_ID), []
        for t in range(targets.shape[1]):
            out, state, _ = decoder.step(prev, state, memory)
            logits.append(out)
            prev = targets[:, min(t + 1, targets.shape[1] - 1)]
        logits = torch.stack(logits, 1)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD_ID)

    fails(C.check_teacher_forcing, peeks_after_the_first_step,
          match=r"'step t sees only the tokens before position t' does not hold: changing targets\[:, \d+:\]")

    def mean_of_step_means(decoder, state, memory, targets):  # the mean over steps of each step's mean
        logits = teacher_forced_logits(decoder, state, memory, targets)
        return torch.stack([F.cross_entropy(logits[:, t], targets[:, t], ignore_index=PAD_ID)
                            for t in range(targets.shape[1])]).mean()

    fails(C.check_teacher_forcing, mean_of_step_means, match=r"'padding does not count' does not hold")


# --- Exercise 3.3 ------------------------------------------------------------------------------------------


def _monotone(weights, groups):  # the notebook's solution
    where = weights.argmax(dim=-1)
    pairs = [(g[k], g[k + 1]) for g in groups for k in range(len(g) - 1)]
    before = torch.tensor([a for a, _ in pairs])
    after = torch.tensor([b for _, b in pairs])
    return (where[:, after] >= where[:, before]).float().mean().item()


def _monotone_sum(weights, groups):  # a sum of counts over zipped neighbours
    where = weights.argmax(-1)
    pairs = [(a, b) for g in groups for a, b in zip(g[:-1], g[1:])]
    return sum(float((where[:, b] >= where[:, a]).float().sum()) for a, b in pairs) / (len(pairs) * len(weights))


def _monotone_loops(weights, groups):  # plain Python over examples, groups and neighbours, max(...).indices
    hits = total = 0
    where = weights.max(dim=-1).indices.tolist()
    for row in where:
        for g in groups:
            for k in range(len(g) - 1):
                hits += row[g[k + 1]] >= row[g[k]]
                total += 1
    return hits / total


def _monotone_numpy_diff(weights, groups):  # numpy argmax and diff per group (a numpy float is a float)
    where = weights.numpy().argmax(-1)
    steps = np.concatenate([np.diff(where[:, list(g)], axis=1).ravel() for g in groups if len(g) > 1])
    return np.mean(steps >= 0)


@pytest.mark.parametrize("fn", [_monotone, _monotone_sum, _monotone_loops, _monotone_numpy_diff, monotone_fraction],
                         ids=lambda f: f.__name__)
def test_monotone_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_monotone_fraction, fn)
    assert "the rest of this hour uses your `monotone_fraction`" in capsys.readouterr().out.lower()


def test_monotone_not_done_returns_a_reference_with_the_students_signature(capsys):
    reference = not_done(C.check_monotone_fraction, raise_not_done, capsys=capsys)
    value = reference(torch.eye(4)[None], [(0, 1, 2, 3)])
    assert type(value) is float and value == 1.0


@pytest.mark.parametrize(
    "variant, phrase",
    [
        (dict(axis=1), "argmax runs over the output steps"),
        (dict(strict=True), "staying on the same input position counts as a step back"),
        (dict(across_groups=True), "pairs between groups are counted"),
        (dict(compare_weights=True), "largest weights are compared"),
        (dict(wrap=True), "neighbours wrap around"),
        (dict(backwards=True), "fraction of pairs that move backwards"),
        (dict(per_example=True), "not by the number of examples N"),
        (dict(per_group=True), "fractions of the groups are averaged"),
    ],
)
def test_monotone_names_the_known_mistakes(variant, phrase):
    fails(C.check_monotone_fraction, _monotone_variant(**variant), match=phrase)


def test_monotone_notices_a_changed_input():
    def normalises_in_place(weights, groups):  # divides by the largest weight of each row, in place
        weights /= weights.amax(-1, keepdim=True)
        return _monotone(weights, groups)

    fails(C.check_monotone_fraction, normalises_in_place, match=r"changed its argument `weights` in place")

    def sorts_in_place(weights, groups):  # sorts the caller's weights, then takes the last index of the sorted order
        order = weights.argsort(-1)
        weights.copy_(weights.gather(-1, order))
        return _monotone(torch.zeros_like(weights).scatter_(-1, order[..., -1:], 1.0), groups)

    fails(C.check_monotone_fraction, sorts_in_place, match=r"changed its argument `weights` in place")


def test_monotone_refuses_the_wrong_type():
    fails(C.check_monotone_fraction, lambda w, g: torch.tensor(_monotone(w, g)),
          match=r"the fraction should be a Python float .*got a 0-d tensor")
    fails(C.check_monotone_fraction, lambda w, g: [_monotone(w, g)], match=r"the fraction should be a Python float")


def test_monotone_catches_a_bug_on_an_edge_input_only():
    def last_of_a_tie(weights, groups):  # argmax from the right: the last of equal weights
        where = weights.shape[-1] - 1 - weights.flip(-1).argmax(-1)
        return _monotone(F.one_hot(where, weights.shape[-1]).float(), groups)

    fails(C.check_monotone_fraction, last_of_a_tie, match=r"^Exercise 3\.3 \(How monotone is an alignment\?\): with ties")

    def unfold_pairs(weights, groups):  # unfold(0, 2, 1) needs at least two steps in every group
        where = weights.argmax(-1)
        pairs = torch.cat([torch.tensor(g).unfold(0, 2, 1) for g in groups])
        return (where[:, pairs[:, 1]] >= where[:, pairs[:, 0]]).float().mean().item()

    fails(C.check_monotone_fraction, unfold_pairs, match=r"with groups of one step .*raised RuntimeError")

    def squeezes(weights, groups):  # .squeeze() drops the example axis of a single example
        return _monotone(weights.squeeze(), groups)

    fails(C.check_monotone_fraction, squeezes, match=r"with a single example .*raised IndexError")


def test_monotone_diagnoses_by_property_when_no_known_mistake_matches():
    def first_example_only(weights, groups):  # forgot the example axis: looks at weights[0]
        return _monotone(weights[:1], groups)

    fails(C.check_monotone_fraction, first_example_only, match=r"'the order of the examples does not matter' does not hold")

    def count_not_fraction(weights, groups):  # the number of pairs that do not move back
        where = weights.argmax(-1)
        return float(sum(int((where[:, b] >= where[:, a]).sum()) for g in groups for a, b in zip(g[:-1], g[1:])))

    fails(C.check_monotone_fraction, count_not_fraction, match=r"'the result lies in \[0, 1\]' does not hold")

    def softer_threshold(weights, groups):  # counts a step back of one position as "not backwards"
        where = weights.argmax(-1)
        pairs = [(a, b) for g in groups for a, b in zip(g[:-1], g[1:])]
        return float(np.mean([float((where[:, b] >= where[:, a] - 1).float().mean()) for a, b in pairs]))

    fails(C.check_monotone_fraction, softer_threshold, match=r"'an alignment that moves backwards gives 0\.0' does not hold")
