"""Hour 04: the reversal task and the self-checks of the exercises (each named mistake is recognised)."""

import math

import pytest
import torch

from amla.checks import CheckFailed
from amla.checks import transformer as C
from amla.transformers.nn import merge_heads
from amla.transformers.tasks import reversal_task

# --- the reversal task -------------------------------------------------------------------------------


def test_reversal_task_pairs_splits_and_determinism():
    task = reversal_task(300, 50, 80, min_len=4, max_len=7, n_symbols=6, seed=3)
    assert (len(task.train), len(task.val), len(task.test)) == (300, 50, 80)
    for split in (task.train, task.val, task.test):
        for s, t, tag in zip(split.sources, split.targets, split.tags):
            assert t == s[::-1] and 4 <= len(s) <= 7 and tag == f"len {len(s)}" and set(s) <= set("012345")
    all_sources = task.train.sources + task.val.sources + task.test.sources
    assert len(set(all_sources)) == len(all_sources)  # no sequence in two splits (nor twice in one)
    again = reversal_task(300, 50, 80, min_len=4, max_len=7, n_symbols=6, seed=3)
    assert (again.train, again.val, again.test, again.vocab.itos) == (task.train, task.val, task.test, task.vocab.itos)
    assert reversal_task(300, 50, 80, min_len=4, max_len=7, n_symbols=6, seed=4).test != task.test
    x, y = task.vocab.encode_batch(task.test.sources), task.vocab.encode_batch(task.test.targets)
    assert x.shape == y.shape and torch.equal(x != 0, y != 0)  # same padding on both sides
    state = torch.random.get_rng_state()
    reversal_task(10, 0, 0)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_train=0), "n_train must be an int >= 1"),
    (dict(n_symbols=1), "n_symbols must be an int >= 2"),
    (dict(n_symbols=40), "n_symbols <= 36"),
    (dict(min_len=5, max_len=3), "min_len <= max_len"),
    (dict(n_train=100, min_len=2, max_len=2, n_symbols=3), "give only 9"),
])
def test_reversal_task_rejects_bad_input_in_one_line(kwargs, message):
    args = dict(n_train=10, n_val=0, n_test=0) | kwargs
    with pytest.raises(ValueError, match=message) as info:
        reversal_task(args.pop("n_train"), args.pop("n_val"), args.pop("n_test"), **args)
    assert "\n" not in str(info.value)


# --- the checks: correct solutions pass, each mistake is named ----------------------------------------


def _solutions():
    def split_heads(x, n_heads):
        b, t, d = x.shape
        return x.view(b, t, n_heads, d // n_heads).permute(0, 2, 1, 3)

    def mha_forward(mha, x, kv=None, mask=None):
        kv = x if kv is None else kv
        q, k, v = (split_heads(p(s), mha.n_heads) for p, s in ((mha.q_proj, x), (mha.k_proj, kv), (mha.v_proj, kv)))
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, -1e9)  # a large negative number works as well as -inf
        weights = scores.softmax(-1)
        return mha.out_proj(merge_heads(weights @ v)), weights

    def sinusoidal(max_len, d_model):
        pe = torch.zeros(max_len, d_model)
        for p in range(max_len):
            for i in range(d_model // 2):
                pe[p, 2 * i] = math.sin(p / 10000 ** (2 * i / d_model))
                pe[p, 2 * i + 1] = math.cos(p / 10000 ** (2 * i / d_model))
        return pe

    def block_forward(block, x, mask=None):
        if block.norm_first:
            x = x + block.self_attn(block.norm1(x), mask=mask)[0]
            return x + block.ff(block.norm2(x))
        x = block.norm1(x + block.self_attn(x, mask=mask)[0])
        return block.norm2(x + block.ff(x))

    return split_heads, mha_forward, sinusoidal, block_forward


CHECKS = [C.check_split_heads, C.check_mha_forward, C.check_sinusoidal, C.check_transformer_block]


def test_correct_solutions_pass_and_keep_the_global_rng(capsys):
    state = torch.random.get_rng_state()
    for check, solution in zip(CHECKS, _solutions()):
        check(solution)
    for check, variant in zip(CHECKS, [C._split_variant(), C._mha_variant(), C._sinusoidal_variant(),
                                       C._block_variant()]):
        check(variant)
    assert torch.equal(state, torch.random.get_rng_state())
    assert capsys.readouterr().out.count("passed") == 8


def test_checks_say_not_implemented_and_reject_other_wrong_results():
    def todo(*args):
        raise NotImplementedError

    for check in CHECKS:
        with pytest.raises(CheckFailed, match="not implemented yet"):
            check(todo)
    split, mha, _, _ = _solutions()
    with pytest.raises(CheckFailed, match="differs from the reference"):
        C.check_mha_forward(lambda *a: (mha(*a)[0] * 1.1, mha(*a)[1]))
    with pytest.raises(CheckFailed, match=r"has shape \(2, 3, 4, 5\), expected \(2, 3, 5, 4\)"):
        C.check_split_heads(lambda x, h: split(x, h).transpose(-2, -1))


@pytest.mark.parametrize("kind, phrase", [
    ("view_bhtd", "reshaped straight to \\[B, H, T, d_head\\]"),
    ("no_transpose", "head axis was not moved in front"),
    ("interleaved", "split as \\(d_head, H\\) instead of \\(H, d_head\\)"),
])
def test_split_heads_check_names_the_mistake(kind, phrase):
    with pytest.raises(CheckFailed, match=phrase):
        C.check_split_heads(C._split_variant(kind))


@pytest.mark.parametrize("variant, phrase", [
    (dict(split="view_bhtd"), "wrong reshape/transpose order"),
    (dict(split="interleaved"), "split as \\(d_head, H\\)"),
    (dict(merge="no_transpose"), "merged by reshaping"),
    (dict(out_proj=False), "output projection is missing"),
    (dict(scale="d_model"), "1/sqrt\\(d_model\\) instead of 1/sqrt\\(d_head\\)"),
    (dict(scale="d_head_no_sqrt"), "divided by d_head instead of sqrt\\(d_head\\)"),
    (dict(scale="none"), "scores are not scaled"),
    (dict(keys_from="x"), "computed from x instead of kv"),
    (dict(v_proj="k"), "values are computed with k_proj"),
    (dict(mask="ignored"), "mask is ignored"),
])
def test_mha_check_names_the_mistake(variant, phrase):
    with pytest.raises(CheckFailed, match=phrase):
        C.check_mha_forward(C._mha_variant(**variant))


@pytest.mark.parametrize("kind, phrase", [
    ("swapped", "sin and cos are swapped"),
    ("halves", "first half of the features"),
    ("i_not_2i", "pair index i instead of 2i"),
    ("no_d", "not divided by d_model"),
    ("times", "multiplied by 10000"),
    ("base_1000", "base is 1000"),
])
def test_sinusoidal_check_names_the_mistake(kind, phrase):
    with pytest.raises(CheckFailed, match=phrase):
        C.check_sinusoidal(C._sinusoidal_variant(kind))


@pytest.mark.parametrize("kind, phrase", [
    ("swapped", "pre-norm and post-norm are swapped"),
    ("residual_normed", "residual adds the normalised input"),
    ("no_attn_residual", "residual connection around the attention is missing"),
    ("no_ff_residual", "residual connection around the feed-forward net is missing"),
    ("same_norm", "same LayerNorm \\(norm1\\) is used for both"),
    ("norm_branch", "applied to the branch output before the residual sum"),
])
def test_block_check_names_the_mistake(kind, phrase):
    with pytest.raises(CheckFailed, match=phrase):
        C.check_transformer_block(C._block_variant(kind))
