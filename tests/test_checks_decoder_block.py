"""The self-check of Exercise 5.1 (Hour 05): the decoder block with its mask. Every class is covered: correct
answers written differently pass, the not-done template gives the reference, each known mistake is named, changed
inputs, wrong types and dtypes, a bug that shows only on an edge case, right values with a wrong gradient, and a
diagnosis by property where no known mistake fits. A student's block then runs the course model:
``EncoderDecoder(decoder_block_fn=...)`` gives the package's logits, and greedy decoding runs through it."""

import re

import pytest
import torch
import torch.nn.functional as F

from amla.checks import encoder_decoder as C
from amla.checks.encoder_decoder.decoder_block import _MISTAKES
from amla.transformers.attention import causal_mask
from amla.transformers.encoder_decoder import EncoderDecoder, decoder_block, decoder_mask, greedy_decode
from amla.transformers.tasks import PAD_ID
from checks_support import fails, not_done, passes, raise_not_done


def _block(block, x, memory, src_mask, tgt_in):  # the solution of the notebook
    t = tgt_in.shape[1]
    mask = torch.ones(t, t, dtype=torch.bool, device=tgt_in.device).tril() & (tgt_in != PAD_ID)[:, None, None, :]
    x = x + block.drop(block.self_attn(block.norm1(x), None, mask)[0])
    x = x + block.drop(block.cross_attn(block.norm_cross(x), memory, src_mask)[0])
    return x + block.drop(block.ff(block.norm2(x)))


def _block_keywords(block, x, memory, src_mask, tgt_in):  # keyword arguments, Hour 02's causal_mask, a helper
    keep = causal_mask(tgt_in.size(1), device=x.device) & tgt_in.ne(PAD_ID).unsqueeze(1).unsqueeze(2)

    def branch(x, norm, f):
        return x + block.drop(f(norm(x)))

    x = branch(x, block.norm1, lambda h: block.self_attn(h, mask=keep)[0])
    x = branch(x, block.norm_cross, lambda h: block.cross_attn(h, kv=memory, mask=src_mask)[0])
    return branch(x, block.norm2, block.ff)


def _block_float_mask(block, x, memory, src_mask, tgt_in):  # an additive float mask (-inf where hidden)
    t = tgt_in.shape[1]
    allowed = torch.tril(torch.ones(t, t, device=x.device)).bool()[None, None] & (tgt_in != PAD_ID)[:, None, None]
    additive = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(~allowed, float("-inf"))
    h = x + block.drop(block.self_attn(block.norm1(x), None, additive)[0])
    h = h + block.drop(block.cross_attn(block.norm_cross(h), memory, src_mask)[0])
    return h + block.drop(block.ff(block.norm2(h)))


@pytest.mark.parametrize("fn", [_block, _block_keywords, _block_float_mask], ids=["notebook", "keywords", "float_mask"])
def test_decoder_block_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_decoder_block, fn)
    out = capsys.readouterr().out
    assert "Exercise 5.1 (The decoder block) passed" in out and "the rest of this hour uses your `decoder_block`" in out.lower()


def test_the_reference_is_the_blocks_own_forward_pass():
    from amla.checks.encoder_decoder.decoder_block import _cases

    for case in _cases():
        block, x, memory, src_mask, tgt_in = case.args
        torch.manual_seed(1)
        want = block(x, decoder_mask(tgt_in), memory, src_mask)[0]
        torch.manual_seed(1)
        assert torch.allclose(decoder_block(*case.args), want, atol=1e-6), case.label


def test_decoder_block_not_done_returns_the_reference(capsys):
    assert not_done(C.check_decoder_block, raise_not_done, capsys=capsys) is decoder_block


@pytest.mark.parametrize("mistake", _MISTAKES, ids=lambda m: m.description[:40])
def test_decoder_block_names_the_known_mistakes(mistake):
    fails(C.check_decoder_block, mistake.fn, match="it looks like " + re.escape(mistake.description[:60]))


def test_decoder_block_notices_changed_inputs():
    def adds_in_place(block, x, memory, src_mask, tgt_in):
        out = _block(block, x, memory, src_mask, tgt_in)
        x += 0.0 * x + 1.0
        return out

    fails(C.check_decoder_block, adds_in_place, match=r"changed its argument `x` in place")

    def masks_memory_in_place(block, x, memory, src_mask, tgt_in):
        memory.masked_fill_(~src_mask.transpose(1, 2), 0.0)
        return _block(block, x, memory, src_mask, tgt_in)

    fails(C.check_decoder_block, masks_memory_in_place, match=r"changed its argument `memory` in place")

    def switches_to_eval(block, x, memory, src_mask, tgt_in):
        block.eval()
        return _block(block, x, memory, src_mask, tgt_in)

    fails(C.check_decoder_block, switches_to_eval, match=r"changed its argument `block` in place")


def test_decoder_block_refuses_the_wrong_type_and_dtype():
    fails(C.check_decoder_block, lambda *a: (_block(*a), None), match=r"should be a tensor")
    fails(C.check_decoder_block, lambda *a: _block(*a).double(), match=r"dtype torch.float64")
    fails(C.check_decoder_block, lambda *a: _block(*a)[:, -1], match=r"shape")
    fails(C.check_decoder_block, lambda *a: None, match=r"returned None")


def test_decoder_block_refuses_calling_the_course_block_or_mask():
    fails(C.check_decoder_block, lambda block, x, memory, src_mask, tgt_in: block(x, None, memory, src_mask)[0],
          match=r"runs the course's code, not yours")

    def course_mask(block, x, memory, src_mask, tgt_in):
        from amla.transformers.encoder_decoder import decoder_mask

        mask = decoder_mask(tgt_in)
        x = x + block.drop(block.self_attn(block.norm1(x), None, mask)[0])
        x = x + block.drop(block.cross_attn(block.norm_cross(x), memory, src_mask)[0])
        return x + block.drop(block.ff(block.norm2(x)))

    fails(C.check_decoder_block, course_mask, match=r"build the mask yourself")


def test_decoder_block_catches_a_bug_on_an_edge_input_only():
    def breaks_on_one_position(block, x, memory, src_mask, tgt_in):  # "one position needs no self-attention"
        if x.size(1) == 1:
            x = x + block.drop(block.cross_attn(block.norm_cross(x), memory, src_mask)[0])
            return x + block.drop(block.ff(block.norm2(x)))
        return _block(block, x, memory, src_mask, tgt_in)

    fails(C.check_decoder_block, breaks_on_one_position, match=r"with a single target position \(T = 1\)")


def test_decoder_block_catches_a_wrong_gradient():
    def detached_memory(block, x, memory, src_mask, tgt_in):  # the encoder would never learn from the decoder
        return _block(block, x, memory.detach(), src_mask, tgt_in)

    fails(C.check_decoder_block, detached_memory, match=r"the values are right but no gradient reaches `memory`")

    def half_the_memory_gradient(block, x, memory, src_mask, tgt_in):  # same values, half the gradient
        memory = memory.detach() + 0.5 * (memory - memory.detach())
        return _block(block, x, memory, src_mask, tgt_in)

    fails(C.check_decoder_block, half_the_memory_gradient,
          match=r"the values are right but the gradient with respect to `memory`")


def test_decoder_block_diagnoses_by_property_when_no_known_mistake_matches():
    def peeks_one_ahead(block, x, memory, src_mask, tgt_in):  # a made-up bug: every position sees the next one
        t = tgt_in.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool).tril(1) & (tgt_in != PAD_ID)[:, None, None, :]
        x = x + block.drop(block.self_attn(block.norm1(x), None, mask)[0])
        x = x + block.drop(block.cross_attn(block.norm_cross(x), memory, src_mask)[0])
        return x + block.drop(block.ff(block.norm2(x)))

    fails(C.check_decoder_block, peeks_one_ahead, match=r"\(causality\) does not hold: changing the last target")

    def averages_the_memory(block, x, memory, src_mask, tgt_in):  # a made-up bug: adds the mean of all memory rows
        return _block(block, x, memory, src_mask, tgt_in) + 0.1 * memory.mean(1, keepdim=True)

    fails(C.check_decoder_block, averages_the_memory, match=r"'padded source positions do not matter' does not hold")


def _model(**hooks):
    torch.manual_seed(0)
    return EncoderDecoder(9, 11, d_model=16, n_heads=2, n_layers=2, max_len=12, **hooks).eval()


def test_a_students_block_runs_the_model_and_gives_the_packages_logits():
    src = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 3]])
    tgt = torch.tensor([[4, 5, 2, 0, 0], [6, 7, 3, 9, 2]])
    calls = []

    def counting(*args):
        calls.append(1)
        return _block_keywords(*args)

    package, students = _model(), _model(decoder_block_fn=counting)
    assert torch.allclose(students(src, tgt), package(src, tgt), atol=1e-5) and len(calls) == 2  # one per layer
    loss = F.cross_entropy(students(src, tgt).flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)
    loss.backward()
    assert all(p.grad is not None for p in students.parameters())
    assert torch.equal(greedy_decode(students, src, 6), greedy_decode(package, src, 6))
    with pytest.raises(TypeError, match=r"^EncoderDecoder: decoder_block_fn must be a function like decoder_block\("):
        _model(decoder_block_fn=3)
    with pytest.raises(ValueError, match=r"decoder_block_fn must return x's \(2, 5, 16\) torch.float32, got"):
        _model(decoder_block_fn=lambda block, x, *rest: x[:, :1])(src, tgt)


def test_a_leaky_block_changes_what_the_model_predicts_early():
    src, tgt = torch.tensor([[3, 4, 5]]), torch.tensor([[4, 5, 6, 2]])
    leaky = _model(decoder_block_fn=_MISTAKES[0].fn)  # not causal
    changed = tgt.clone()
    changed[0, 2] = 7  # the decoder reads it at position 3 (the input is shifted right)
    assert not torch.allclose(leaky(src, changed)[:, :3], leaky(src, tgt)[:, :3], atol=1e-5)
    honest = _model(decoder_block_fn=_block)
    assert torch.allclose(honest(src, changed)[:, :3], honest(src, tgt)[:, :3], atol=1e-5)
