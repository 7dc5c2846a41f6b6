"""The self-checks of Hour 09: Exercise 9.1 (the bytes of the attention scores) and 9.2 (training FLOPs per token).

Both take Python numbers and a dtype, so no answer can change its inputs in place and there is no gradient: those
two classes of answers do not apply here."""

import math

import pytest
import torch

from amla.checks import efficient as C
from amla.checks.efficient.flops import _variant as flops_variant
from amla.checks.efficient.score_memory import _variant as bytes_variant
from amla.transformers.gpt import GPTConfig, flops_per_token
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 9.1 -----------------------------------------------------------------------------------------


def _b_itemsize(batch, heads, seq_len, dtype):
    return 2 * batch * heads * seq_len**2 * dtype.itemsize


def _b_tensors(batch, heads, seq_len, dtype):
    scores = torch.empty(batch, heads, seq_len, seq_len, dtype=dtype, device="meta")
    return scores.numel() * scores.element_size() + scores.nbytes


def _b_finfo(batch, heads, seq_len, dtype):
    bits = torch.finfo(dtype).bits
    return int(batch * heads * seq_len * seq_len * bits // 8 * 2)


@pytest.mark.parametrize("fn", [_b_itemsize, _b_tensors, _b_finfo], ids=lambda f: f.__name__)
def test_score_bytes_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_score_bytes, fn)
    assert "the rest of this hour uses your `score_bytes`" in capsys.readouterr().out.lower()


def test_score_bytes_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_score_bytes, raise_not_done, capsys=capsys)
    assert reference(2, 3, 4, torch.bfloat16) == 2 * 2 * 3 * 16 * 2


@pytest.mark.parametrize("kind, phrase", [("one", "only one T x T matrix"), ("always4", "counted as 4 bytes"),
                                          ("linear", "T x T entries per head"), ("no_heads", "heads are left out"),
                                          ("bits", "in bits")])
def test_score_bytes_names_the_known_mistakes(kind, phrase):
    fails(C.check_score_bytes, bytes_variant(kind), match=phrase)


def test_score_bytes_refuses_the_wrong_type():
    fails(C.check_score_bytes, lambda b, h, t, d: float(_b_itemsize(b, h, t, d)), match=r"should be an int")
    fails(C.check_score_bytes, lambda b, h, t, d: torch.tensor(_b_itemsize(b, h, t, d)), match=r"should be")


def test_score_bytes_catches_a_bug_on_an_edge_input_only():
    def half_unless_float32(b, h, t, d):  # "everything that is not float32 is half precision"
        return 2 * b * h * t * t * (4 if d == torch.float32 else 2)

    fails(C.check_score_bytes, half_unless_float32, match=r"with batch 2, 3 heads, T = 5, float64")


def test_score_bytes_catches_a_bug_only_a_property_sees():
    def capped(b, h, t, d):  # the context clipped to a block_size of 1024 (no known mistake does this)
        return _b_itemsize(b, h, min(t, 1024), d)

    fails(C.check_score_bytes, capped, match=r"4 times the memory")


# --- Exercise 9.2 -----------------------------------------------------------------------------------------


def _f_formula(n_params, n_layer, seq_len, n_embd):
    return 6.0 * n_params + 12.0 * n_layer * seq_len * n_embd


def _f_split(n_params, n_layer, seq_len, n_embd):
    forward = 2 * n_params + 2 * 2 * n_layer * seq_len * n_embd
    return float(3 * forward)


def _f_library(n_params, n_layer, seq_len, n_embd):
    return flops_per_token(GPTConfig(vocab_size=2, n_layer=n_layer, n_embd=n_embd, n_head=1, block_size=seq_len),
                           n_params)


@pytest.mark.parametrize("fn", [_f_formula, _f_split, _f_library], ids=lambda f: f.__name__)
def test_flops_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_train_flops_per_token, fn)
    assert "uses your `train_flops_per_token`" in capsys.readouterr().out.lower()


def test_flops_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_train_flops_per_token, raise_not_done, capsys=capsys)
    assert math.isclose(reference(1000, 2, 8, 4), 6000.0 + 12 * 2 * 8 * 4)


@pytest.mark.parametrize("kind, phrase", [("forward", "only the forward"), ("no_attn", "attention term is missing"),
                                          ("six", "is 6 L T C"), ("t2", "uses T\\^2")])
def test_flops_names_the_known_mistakes(kind, phrase):
    fails(C.check_train_flops_per_token, flops_variant(kind), match=phrase)


def test_flops_refuses_the_wrong_type():
    fails(C.check_train_flops_per_token, lambda n, l, t, c: torch.tensor(_f_formula(n, l, t, c)), match=r"should be")


def test_flops_catches_a_bug_on_an_edge_input_only():
    def layers_from_two(n, l, t, c):  # "the attention of the first layer is in 6N already"
        return 6.0 * n + 12.0 * max(l - 1, 1) * t * c if l > 1 else 6.0 * n

    fails(C.check_train_flops_per_token, layers_from_two, match=r"with one layer")
