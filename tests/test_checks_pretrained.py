"""The self-checks of Hour 07: Exercise 7.1 (BERT's masking rule) and 7.2 (masked mean pooling).

7.1 is random: correct answers drawn differently (Bernoulli draws, an exact count per row, a multinomial split) must
pass on their statistics and invariants; a wrong answer is caught by a named mistake, an invariant or a share."""

import importlib
import sys

import pytest
import torch

from amla.checks import pretrained as C
from amla.checks.pretrained.mask_tokens import _variant as mask_variant
from amla.checks.pretrained.mean_pool import _variant as pool_variant
from amla.transformers.pretrained import mean_pool
from checks_support import fails, not_done, passes, raise_not_done


def test_importing_the_checks_does_not_import_transformers(monkeypatch):
    """Re-import the checks and the modules of their references with ``transformers`` made unimportable."""
    import amla.checks
    import amla.transformers

    for name in [m for m in sys.modules if m.startswith(("amla.checks.pretrained", "amla.transformers.pretrain"))]:
        monkeypatch.delitem(sys.modules, name)
    for parent, attr in [(amla.checks, "pretrained"), (amla.transformers, "pretrained"),
                         (amla.transformers, "pretraining")]:
        monkeypatch.setattr(parent, attr, parent.__dict__.get(attr), raising=False)
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now raises ImportError
    fresh = importlib.import_module("amla.checks.pretrained")
    assert callable(fresh.check_mask_tokens) and callable(fresh.check_mean_pool)


# --- Exercise 7.1 -----------------------------------------------------------------------------------------


def _m_bernoulli(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None):  # as HF's collator
    labels = ids.clone()
    prob = torch.full(ids.shape, float(p))
    if special_mask is not None:
        prob.masked_fill_(special_mask, 0.0)
    chosen = torch.bernoulli(prob, generator=generator).bool()
    labels[~chosen] = -100
    inputs = ids.clone()
    replaced = torch.bernoulli(torch.full(ids.shape, 0.8), generator=generator).bool() & chosen
    inputs[replaced] = mask_id
    rand = torch.bernoulli(torch.full(ids.shape, 0.5), generator=generator).bool() & chosen & ~replaced
    inputs[rand] = torch.randint(vocab_size, ids.shape, generator=generator)[rand]
    return inputs, labels


def _m_exact_count(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None):  # round(p n) per row
    maskable = torch.ones_like(ids, dtype=torch.bool) if special_mask is None else ~special_mask
    chosen = torch.zeros_like(maskable)
    for row in range(ids.shape[0]):
        where = maskable[row].nonzero().flatten()
        k = int(round(p * len(where)))
        chosen[row, where[torch.randperm(len(where), generator=generator)[:k]]] = True
    kind = torch.multinomial(torch.tensor([0.8, 0.1, 0.1]), ids.numel(), replacement=True,
                             generator=generator).view(ids.shape)
    inputs = torch.where(chosen & (kind == 0), mask_id, ids)
    inputs = torch.where(chosen & (kind == 1), torch.randint(0, vocab_size, ids.shape, generator=generator), inputs)
    return inputs, torch.where(chosen, ids, -100)


def _m_loops(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None):  # row by row, lists
    inputs, labels = [], []
    for i, row in enumerate(ids.tolist()):
        u = torch.rand(len(row), 3, generator=generator).tolist()
        special = [False] * len(row) if special_mask is None else special_mask[i].tolist()
        inputs.append([mask_id if not s and a < p and b < 0.8 else int(c * vocab_size) if not s and a < p and b < 0.9
                       else t for t, s, (a, b, c) in zip(row, special, u)])
        labels.append([t if not s and a < p else -100 for t, s, (a, _, _) in zip(row, special, u)])
    return torch.tensor(inputs), torch.tensor(labels)


@pytest.mark.parametrize("fn", [_m_bernoulli, _m_exact_count, _m_loops], ids=lambda f: f.__name__)
def test_mask_tokens_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_mask_tokens, fn)
    assert "the rest of this hour uses your `mask_tokens`" in capsys.readouterr().out.lower()


def test_mask_tokens_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_mask_tokens, raise_not_done, capsys=capsys)
    ids = torch.arange(5, 25).view(2, 10)
    inputs, labels = reference(ids, vocab_size=30, mask_id=4, p=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(labels, ids) and inputs.shape == ids.shape


@pytest.mark.parametrize("kind, phrase", [
    ("all_mask", "every chosen token is replaced by \\[MASK\\]"), ("no_random", "none a random token"),
    ("label_everywhere", "original token at every position"), ("label_inputs", "labels hold the new input"),
    ("label_zero", "get label 0"), ("label_changed_only", "only the positions whose input changed"),
    ("specials", "special tokens .* are chosen too"), ("split_everywhere", "drawn over all positions"),
])
def test_mask_tokens_names_the_known_mistakes(kind, phrase):
    fails(C.check_mask_tokens, mask_variant(kind), match=phrase)


def test_mask_tokens_refuses_an_answer_that_changes_ids_in_place():
    def in_place(ids, **kw):
        inputs, labels = _m_bernoulli(ids, **kw)
        ids.copy_(inputs)
        return ids, labels

    fails(C.check_mask_tokens, in_place, match=r"changed its argument `ids` in place")


def test_mask_tokens_refuses_the_wrong_dtype_and_type():
    fails(C.check_mask_tokens, lambda ids, **kw: (_m_bernoulli(ids, **kw)[0], _m_bernoulli(ids, **kw)[1].float()),
          match=r"labels has dtype torch.float32, expected torch.int64")
    fails(C.check_mask_tokens, lambda ids, **kw: _m_bernoulli(ids, **kw)[0], match=r"must return \(inputs, labels\)")


def test_mask_tokens_catches_a_bug_on_an_edge_input_only():
    def at_least_one(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None):
        inputs, labels = _m_bernoulli(ids, vocab_size=vocab_size, mask_id=mask_id, special_mask=special_mask, p=p,
                                      generator=generator)
        for row in range(ids.shape[0]):  # "every row needs a loss": one more position where nothing was chosen
            if bool((labels[row] == -100).all()):
                labels[row, -1] = ids[row, -1]
                inputs[row, -1] = mask_id
        return inputs, labels

    fails(C.check_mask_tokens, at_least_one, match=r"with p = 0 \(nothing chosen\)")


def test_mask_tokens_catches_bugs_only_a_property_sees():
    fails(C.check_mask_tokens, lambda ids, **kw: _m_bernoulli(ids, **{**kw, "p": 0.15}),
          match=r"about p of the non-special positions are chosen' does not hold: 0\.1\d+ .* p = 0\.4")
    fails(C.check_mask_tokens, lambda ids, **kw: _m_bernoulli(ids, **{**kw, "generator": None}),
          match=r"the same generator seed gives the same masking' does not hold")


# --- Exercise 7.2 -----------------------------------------------------------------------------------------


def _p_einsum(token_embeddings, attention_mask):
    m = attention_mask.to(token_embeddings.dtype)
    return torch.einsum("btd,bt->bd", token_embeddings, m) / m.sum(1, keepdim=True)


def _p_masked_fill(token_embeddings, attention_mask):
    keep = attention_mask.bool().unsqueeze(-1)
    return token_embeddings.masked_fill(~keep, 0.0).sum(1) / keep.sum(1).clamp(min=1)


def _p_bmm(token_embeddings, attention_mask):
    m = attention_mask.to(token_embeddings.dtype).unsqueeze(1)  # [B, 1, T]
    return (m @ token_embeddings).squeeze(1) / m.sum(-1)


def _p_loop(token_embeddings, attention_mask):
    return torch.stack([x[m.bool()].mean(0) for x, m in zip(token_embeddings, attention_mask)])


@pytest.mark.parametrize("fn", [_p_einsum, _p_masked_fill, _p_bmm, _p_loop, mean_pool], ids=lambda f: f.__name__)
def test_mean_pool_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_mean_pool, fn)
    assert "uses your `mean_pool`" in capsys.readouterr().out.lower()


def test_mean_pool_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_mean_pool, raise_not_done, capsys=capsys)
    x = torch.arange(12.0).view(1, 4, 3)
    assert torch.allclose(reference(x, torch.tensor([[1, 1, 0, 0]])), torch.tensor([[1.5, 2.5, 3.5]]))


@pytest.mark.parametrize("kind, phrase", [("padding", "padding positions are averaged too"), ("by_t", "divided by T"),
                                          ("no_broadcast", "not broadcast"), ("batch_count", "whole batch"),
                                          ("sum", "not divided")])
def test_mean_pool_names_the_known_mistakes(kind, phrase):
    fails(C.check_mean_pool, pool_variant(kind), match=phrase)


def test_mean_pool_refuses_in_place_changes_and_the_wrong_dtype():
    def in_place(token_embeddings, attention_mask):
        token_embeddings *= attention_mask.unsqueeze(-1)
        return token_embeddings.sum(1) / attention_mask.sum(1, keepdim=True)

    fails(C.check_mean_pool, in_place, match=r"changed its argument `token_embeddings` in place")
    fails(C.check_mean_pool, lambda x, m: _p_einsum(x, m).float(), match=r"dtype torch.float32, expected torch.float64")


def test_mean_pool_catches_a_bug_on_an_edge_input_only():
    fails(C.check_mean_pool, lambda x, m: _p_einsum(x, m).squeeze(), match=r"with a batch of one .* shape \(4,\)")


def test_mean_pool_catches_a_wrong_gradient():
    fails(C.check_mean_pool, lambda x, m: _p_einsum(x, m).detach(), match=r"detached")


def test_mean_pool_catches_a_bug_only_a_property_sees():
    def real_count_only(x, m):  # the sum runs over every position, only the count is masked
        return x.sum(1) / m.sum(1, keepdim=True)

    fails(C.check_mean_pool, real_count_only, match=r"vectors at padded positions do not matter' does not hold")
