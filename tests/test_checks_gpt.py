"""The self-checks of Hour 06's tokenizer and sampler: Exercise 6.1 (merging a pair) and 6.3 (top-p probabilities);
6.2 (the GPT block) and 6.4 (the KV-cache step) are in test_checks_gpt_model.py.

6.1 works on lists of Python ints and is not differentiable: the class "right values with a wrong gradient" cannot
occur for it (no tensor goes in or comes out). Every other class is covered for both exercises.
"""

import inspect

import pytest
import torch

from amla.checks import gpt as G
from amla.checks.contract import summary, yours
from amla.checks.gpt.merge_pair import _MERGE_MISTAKES, _MERGE_SPEC
from amla.checks.gpt.top_p import _TOP_P_MISTAKES, _TOP_P_SPEC, _before64, _probs64, _top_p_cases
from amla.transformers.gpt import top_p_probs
from amla.transformers.text import merge_pair
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 6.1 ------------------------------------------------------------------------------------------


def _merge_while(ids, pair, new_id):  # the solution of the notebook
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _merge_skip_flag(ids, pair, new_id):
    out, skip = [], False
    for i, t in enumerate(ids):
        if skip:
            skip = False
            continue
        if (t, ids[i + 1] if i + 1 < len(ids) else None) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(t)
    return out


def _merge_look_back(ids, pair, new_id):  # rewrite the last output token when it starts the pair
    out = []
    for t in ids:
        if out and out[-1] == pair[0] and t == pair[1]:
            out[-1] = new_id
        else:
            out.append(t)
    return out


def _merge_splice_a_copy(ids, pair, new_id):  # in place, but on a copy
    ids, i = list(ids), 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            ids[i : i + 2] = [new_id]
        i += 1
    return ids


def _merge_same_list_when_absent(ids, pair, new_id):  # returns the (unchanged) input when there is nothing to do
    if tuple(pair) not in set(zip(ids, ids[1:])):
        return ids
    return _merge_while(ids, pair, new_id)


@pytest.mark.parametrize("fn", [_merge_while, _merge_skip_flag, _merge_look_back, _merge_splice_a_copy,
                                _merge_same_list_when_absent, merge_pair], ids=lambda f: f.__name__)
def test_merge_pair_accepts_correct_answers_written_differently(fn, capsys):
    passes(G.check_merge_pair, fn)
    assert "the rest of this hour uses your `merge_pair`" in capsys.readouterr().out.lower()


def test_merge_pair_not_done_returns_the_reference_with_the_students_signature(capsys):
    reference = not_done(G.check_merge_pair, raise_not_done, capsys=capsys)
    assert list(inspect.signature(reference).parameters) == ["ids", "pair", "new_id"]
    assert reference([5, 5, 5], (5, 5), 9) == [9, 5]


@pytest.mark.parametrize("mistake", _MERGE_MISTAKES, ids=lambda m: m.description[:40])
def test_merge_pair_names_the_known_mistakes(mistake):
    fails(G.check_merge_pair, mistake.fn, match="it looks like " + _escaped(mistake.description))


def test_merge_pair_notices_a_changed_input():
    def in_place(ids, pair, new_id):  # the right list, but it is the caller's list, changed
        i = 0
        while i < len(ids) - 1:
            if ids[i] == pair[0] and ids[i + 1] == pair[1]:
                ids[i : i + 2] = [new_id]
            i += 1
        return ids

    fails(G.check_merge_pair, in_place, match=r"changed its argument `ids` in place")


def test_merge_pair_refuses_the_wrong_type():
    fails(G.check_merge_pair, lambda ids, pair, new_id: tuple(_merge_while(ids, pair, new_id)),
          match=r"should be a list, got a tuple")
    fails(G.check_merge_pair, lambda ids, pair, new_id: [float(t) for t in _merge_while(ids, pair, new_id)],
          match=r"a float, not an int")
    fails(G.check_merge_pair, lambda ids, pair, new_id: torch.tensor(_merge_while(ids, pair, new_id)),
          match=r"should be a list, got a tensor")


def test_merge_pair_catches_a_bug_on_an_edge_input_only():
    def short_lists_vanish(ids, pair, new_id):
        return [] if len(ids) < 2 else _merge_while(ids, pair, new_id)

    fails(G.check_merge_pair, short_lists_vanish, match=r"with a single id \[1\], pair \(1, 2\), new_id 256, .len")

    def bytes_only(ids, pair, new_id):  # keeps ids as bytes: breaks on merged tokens (>= 256)
        return list(bytes(t % 256 for t in _merge_while(ids, pair, new_id)))

    fails(G.check_merge_pair, bytes_only, match=r"with ids \[7, 1, 2, 8, 1, 2\], pair \(1, 2\), new_id 256")


def test_merge_pair_diagnoses_by_property_when_no_known_mistake_matches():
    def merges_a_lone_first_half_at_the_end(ids, pair, new_id):  # a made-up bug: a final pair[0] is merged too
        out = _merge_while(ids, pair, new_id)
        return out[:-1] + [new_id] if out and out[-1] == pair[0] else out

    fails(G.check_merge_pair, merges_a_lone_first_half_at_the_end,
          match=r"'len\(result\) = len\(ids\) - the number of merges' does not hold")

    def swaps_neighbours_of_a_merge(ids, pair, new_id):  # the right length, but the tokens after a merge swapped
        out = _merge_while(ids, pair, new_id)
        for i in range(len(out) - 2):
            if out[i] == new_id and new_id not in out[i + 1 : i + 3]:
                out[i + 1], out[i + 2] = out[i + 2], out[i + 1]
        return out

    fails(G.check_merge_pair, swaps_neighbours_of_a_merge,
          match=r"'putting the pair back in place of new_id gives ids again' does not hold")


# --- Exercise 6.3 ------------------------------------------------------------------------------------------


def _top_p(logits, p, temperature=1.0):  # the solution of the notebook
    probs = (logits / temperature).softmax(dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(before >= p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def _top_p_hf(logits, p, temperature=1.0):  # the transformers way: mask the logits, softmax again
    logits = logits / temperature
    s, order = logits.sort(dim=-1, descending=True)
    cum = s.softmax(-1).cumsum(-1)
    remove = cum > p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    remove = remove.scatter(-1, order, remove)
    return logits.masked_fill(remove, float("-inf")).softmax(-1)


def _top_p_rows(logits, p, temperature=1.0):  # one row at a time, with an inverse permutation and torch.where
    rows = []
    for row in logits / temperature:
        probs = torch.exp(row - row.max())
        probs = probs / probs.sum()
        order = torch.argsort(probs, descending=True, stable=True)
        s = probs[order]
        keep = torch.cumsum(s, 0) - s < p
        kept = torch.where(keep, s, torch.zeros_like(s))[torch.argsort(order)]
        rows.append(kept / kept.sum())
    return torch.stack(rows)


def _top_p_log_space(logits, p, temperature=1.0):  # log-softmax, a mask scattered back, exp at the end
    logp = torch.log_softmax(logits / temperature, dim=-1)
    s, order = logp.sort(dim=-1, descending=True)
    before = s.exp().cumsum(-1) - s.exp()
    drop = torch.zeros_like(logp, dtype=torch.bool).scatter(-1, order, before >= p)
    kept = logp.masked_fill(drop, float("-inf"))
    return (kept - torch.logsumexp(kept, dim=-1, keepdim=True)).exp()


@pytest.mark.parametrize("fn", [_top_p, _top_p_hf, _top_p_rows, _top_p_log_space, top_p_probs],
                         ids=lambda f: f.__name__)
def test_top_p_accepts_correct_answers_written_differently(fn, capsys):
    passes(G.check_top_p, fn)
    assert "the rest of this hour uses your `top_p_probs`" in capsys.readouterr().out.lower()


def test_top_p_not_done_returns_the_reference_with_the_students_signature(capsys):
    reference = not_done(G.check_top_p, raise_not_done, capsys=capsys)
    params = inspect.signature(reference).parameters
    assert list(params) == ["logits", "p", "temperature"] and params["temperature"].default == 1.0
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    torch.testing.assert_close(reference(logits, 0.9), top_p_probs(logits, 0.9))


@pytest.mark.parametrize("mistake", _TOP_P_MISTAKES, ids=lambda m: m.description[:40])
def test_top_p_names_the_known_mistakes(mistake):
    fails(G.check_top_p, mistake.fn, match="it looks like " + _escaped(mistake.description))


def test_top_p_notices_a_changed_input():
    def divides_in_place(logits, p, temperature=1.0):
        logits /= temperature
        return _top_p(logits, p)

    fails(G.check_top_p, divides_in_place, match=r"changed its argument `logits` in place")


def test_top_p_refuses_the_wrong_dtype_and_type():
    fails(G.check_top_p, lambda logits, p, temperature=1.0: _top_p(logits.double(), p, temperature),
          match=r"dtype torch\.float64, expected torch\.float32")
    fails(G.check_top_p, lambda logits, p, temperature=1.0: _top_p(logits, p, temperature).numpy(),
          match=r"should be a tensor")
    fails(G.check_top_p, lambda logits, p, temperature=1.0: _top_p(logits, p, temperature).tolist(),
          match=r"should be a tensor")


def test_top_p_catches_a_bug_on_an_edge_input_only():
    def float32_only(logits, p, temperature=1.0):  # silently casts float64 logits down
        return _top_p(logits.float(), p, temperature)

    fails(G.check_top_p, float32_only, match=r"with float64 logits.*dtype torch\.float32, expected torch\.float64")

    def squeezes(logits, p, temperature=1.0):
        return _top_p(logits, p, temperature).squeeze()

    fails(G.check_top_p, squeezes, match=r"with a batch of 1 .*shape \(15,\), expected \(1, 15\)")

    def no_default(logits, p, temperature):  # the temperature must stay optional
        return _top_p(logits, p, temperature)

    fails(G.check_top_p, no_default, match=r"with the temperature left out.*TypeError")

    def finite_fill(logits, p, temperature=1.0):  # nan_to_num turns -inf logits (top-k's dropped tokens) into 0
        probs = torch.nan_to_num(logits / temperature, neginf=0.0).softmax(-1)
        s, order = probs.sort(-1, descending=True)
        s = s.masked_fill(s.cumsum(-1) - s >= p, 0.0)
        kept = torch.zeros_like(probs).scatter(-1, order, s)
        return kept / kept.sum(-1, keepdim=True)

    fails(G.check_top_p, finite_fill, match=r"with -inf logits \(as top-k filtering leaves them")


def test_top_p_catches_a_wrong_gradient():
    def rebuilt(logits, p, temperature=1.0):  # right numbers, rebuilt from a list: no graph
        return torch.tensor(_top_p(logits, p, temperature).tolist(), dtype=logits.dtype)

    fails(G.check_top_p, rebuilt, match=r"values are right but the result is detached")

    def frozen_mass(logits, p, temperature=1.0):  # the kept mass treated as a constant
        probs = (logits / temperature).softmax(-1)
        s, order = probs.sort(-1, descending=True)
        s = s.masked_fill(s.cumsum(-1) - s >= p, 0.0)
        kept = torch.zeros_like(probs).scatter(-1, order, s)
        return kept / kept.sum(-1, keepdim=True).detach()

    fails(G.check_top_p, frozen_mass, match=r"values are right but the gradient with respect to `logits` differs")


def test_top_p_diagnoses_by_property_when_no_known_mistake_matches():
    def leaks(logits, p, temperature=1.0):  # the dropped tokens keep a little probability
        out = _top_p(logits, p, temperature) + 1e-3
        return out / out.sum(-1, keepdim=True)

    fails(G.check_top_p, leaks, match=r"'tokens outside the nucleus get exactly 0' does not hold")

    def one_token_too_many(logits, p, temperature=1.0):  # keeps the token after the one that crosses p too
        probs = (logits / temperature).softmax(-1)
        s, order = probs.sort(-1, descending=True)
        before = s.cumsum(-1) - s
        keep = torch.cat([torch.ones_like(before[..., :1], dtype=torch.bool), before[..., :-1] < p], -1)
        kept = torch.zeros_like(probs).scatter(-1, order, s * keep)
        return kept / kept.sum(-1, keepdim=True)

    fails(G.check_top_p, one_token_too_many,
          match=r"'tokens outside the nucleus get exactly 0' does not hold: a token outside the nucleus got 0\.0616")

    def squared(logits, p, temperature=1.0):  # sharper than the temperature asks: p ** 2 renormalised
        out = _top_p(logits, p, temperature) ** 2
        return out / out.sum(-1, keepdim=True)

    fails(G.check_top_p, squared, match=r"'a kept token's probability is its tempered softmax divided by the kept mass'")


# --- both -----------------------------------------------------------------------------------------


def _escaped(text):
    import re

    return re.escape(text[:60])


@pytest.mark.parametrize("spec", [_MERGE_SPEC, _TOP_P_SPEC], ids=["6.1", "6.3"])
def test_every_property_holds_for_the_reference_on_every_case(spec):
    for case in spec.cases():
        result = spec.reference(*case.args)
        for prop in spec.properties:
            assert prop.test(case, result, spec.reference) is None, (prop.description, case.label)


def test_no_cumulative_probability_lies_near_p():
    """So that `before >= p` and `cumsum > p` shifted by one (and float32 rounding) agree on every case."""
    for case in _top_p_cases():
        probs, p = _probs64(case)
        if p < 1.0:
            assert (_before64(probs) - p).abs().min() > 1e-4, case.label


def test_checks_do_not_move_the_global_rng():
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    G.check_merge_pair(_merge_while)
    G.check_top_p(_top_p)
    assert torch.equal(before, torch.random.get_rng_state())


def test_summary_lists_the_four_exercises(capsys, monkeypatch):
    from amla.checks.contract import EXPECT_ENV, start_hour

    monkeypatch.delenv(EXPECT_ENV, raising=False)
    start_hour(6)
    G.check_merge_pair(_merge_while)
    G.check_gpt_block(raise_not_done)
    assert yours("6.1") and not yours("6.2")
    result = summary()
    assert result == {"6.1": "passed", "6.2": "open", "6.3": "unchecked", "6.4": "unchecked"}
    out = capsys.readouterr().out
    assert "Exercise 6.3 (Top-p probabilities): not checked" in out
    start_hour(None)
