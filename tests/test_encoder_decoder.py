"""Hour 05: the addition task, the encoder-decoder Transformer, label smoothing, greedy and beam search, and the hooks
through which the exercises' functions plug in. (The checks are tested in test_checks_encoder_decoder.py.)"""

from __future__ import annotations

import functools
import re

import pytest
import torch
import torch.nn.functional as F

import amla
from amla.transformers.encoder_decoder import (
    EncoderDecoder,
    beam_search,
    beam_step,
    cross_attention_maps,
    decoder_block,
    decoder_mask,
    exact_match,
    greedy_decode,
    label_smoothed_cross_entropy,
    shift_right,
    source_mask,
    translation_loss,
)
from amla.transformers.tasks import BOS_ID, EOS_ID, PAD_ID, addition_task

# --- the addition task ------------------------------------------------------------------------------


def test_addition_task_sums_are_right_and_splits_disjoint():
    task = addition_task(3000, 200, 300, max_digits=3, seed=1)
    for split in (task.train, task.val, task.test):
        for source, target, tag in split:
            a, b = source.rstrip("=").split("+")
            assert int(target) == int(a) + int(b) and tag == f"{len(a)}+{len(b)}"
    key = lambda s: tuple(sorted(s.rstrip("=").split("+")))  # noqa: E731
    train = {key(s) for s in task.train.sources}
    held = [key(s) for s in task.val.sources + task.test.sources]
    assert len(train) == len(task.train) and len(set(held)) == len(held) and not train & set(held)
    assert {len(t) for t in task.train.tags} == {3} and {tag for tag in task.train.tags} >= {"1+3", "3+1", "3+3"}
    # at most a tenth of the 55 sums of two one-digit numbers is held out
    assert sum(t == "1+1" for t in task.val.tags + task.test.tags) <= 5


def test_addition_task_reverse_seed_and_errors():
    plain = addition_task(50, 5, 5, seed=3)
    rev = addition_task(50, 5, 5, seed=3, reverse=True)
    assert plain.train.sources == rev.train.sources
    assert [t[::-1] for t in plain.train.targets] == rev.train.targets
    assert rev.read(rev.test.targets[0]) == plain.test.targets[0] and plain.read("12") == "12"
    assert addition_task(50, 5, 5, seed=3).train == plain.train
    src, tgt = plain.train.tensors(plain.src_vocab, plain.tgt_vocab)
    assert src.dtype == torch.long and (tgt == EOS_ID).sum() == 50
    state = torch.random.get_rng_state()
    addition_task(10, 1, 1)
    assert torch.equal(state, torch.random.get_rng_state())
    with pytest.raises(ValueError, match="n_train must be an int >= 1"):
        addition_task(0, 1, 1)
    with pytest.raises(ValueError, match="distinct sums"):
        addition_task(5000, 1, 1, max_digits=1)
    with pytest.raises(ValueError, match="min_digits <= max_digits"):
        addition_task(5, 1, 1, min_digits=3, max_digits=2)


# --- masks and the model ----------------------------------------------------------------------------


def test_masks():
    tgt_in = torch.tensor([[BOS_ID, 5, 6, PAD_ID]])
    m = decoder_mask(tgt_in)
    assert m.shape == (1, 1, 4, 4) and m.dtype == torch.bool
    expected = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(m[0, 0], expected)
    assert torch.equal(source_mask(torch.tensor([[4, 5, PAD_ID]])), torch.tensor([[[True, True, False]]]))
    assert torch.equal(shift_right(torch.tensor([[7, 8, EOS_ID]])), torch.tensor([[BOS_ID, 7, 8]]))
    with pytest.raises(ValueError, match=r"integer ids \[B, T\]"):
        decoder_mask(torch.zeros(3))


def _model(**kw) -> EncoderDecoder:
    torch.manual_seed(0)
    return EncoderDecoder(9, 8, d_model=16, n_heads=2, n_layers=2, max_len=16, **kw).eval()


def test_model_shapes_causality_and_padding():
    model = _model()
    src = torch.tensor([[3, 4, 5, 6], [7, 8, PAD_ID, PAD_ID]])
    tgt = torch.tensor([[3, 4, 5, EOS_ID], [6, EOS_ID, PAD_ID, PAD_ID]])
    logits = model(src, tgt)
    assert logits.shape == (2, 4, 8)
    # causal: changing a later target token leaves earlier positions' logits unchanged
    changed = tgt.clone()
    changed[0, 2] = 7
    assert torch.allclose(model(src, changed)[0, :3], logits[0, :3], atol=1e-6)
    assert not torch.allclose(model(src, changed)[0, 3], logits[0, 3])
    # source padding: extra padding changes nothing
    padded = F.pad(src, (0, 3), value=PAD_ID)
    assert torch.allclose(model(padded, tgt), logits, atol=1e-5)
    # a sequence alone gives what it gives in a padded batch
    assert torch.allclose(model(src[1:, :2], tgt[1:, :2]), logits[1:, :2], atol=1e-5)
    weights = cross_attention_maps(model, src, tgt)
    assert weights.shape == (2, 2, 2, 4, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 2, 2, 4), atol=1e-5)
    assert float(weights[1, ..., 2:].abs().max()) == 0.0
    learned = _model(pos="learned")
    assert learned(src, tgt).shape == (2, 4, 8)
    with pytest.raises(ValueError, match="exceeds max_len=16"):
        model(torch.ones(1, 17, dtype=torch.long), tgt[:1])
    with pytest.raises(ValueError, match="pos must be"):
        EncoderDecoder(9, 8, pos="rope")  # type: ignore[arg-type]


# --- the loss -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_equals_torch(eps):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 11, generator=g) * 3
    targets = torch.randint(3, 11, (4, 5), generator=g)
    targets[2, 3:] = PAD_ID
    ours = label_smoothed_cross_entropy(logits, targets, eps)
    theirs = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1), ignore_index=PAD_ID, label_smoothing=eps)
    assert torch.allclose(ours, theirs, atol=1e-6)
    with pytest.raises(ValueError, match="must agree"):
        label_smoothed_cross_entropy(logits, targets[:, :2], eps)
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\)"):
        label_smoothed_cross_entropy(logits, targets, 1.0)


# --- decoding -------------------------------------------------------------------------------------


def test_beam_step_picks_best_extensions():
    scores = torch.tensor([[0.0, -1.0]])
    log_probs = torch.full((1, 2, 4), -10.0)
    log_probs[0, 0, 3] = -0.1
    log_probs[0, 0, 2] = -0.2
    log_probs[0, 1, 3] = -0.05
    new, parent, token = beam_step(scores, log_probs, torch.tensor([[False, False]]))
    assert torch.allclose(new, torch.tensor([[-0.1, -0.2]])) and parent.tolist() == [[0, 0]] and token.tolist() == [[3, 2]]
    new, parent, token = beam_step(scores, log_probs, torch.tensor([[True, False]]))
    assert torch.allclose(new, torch.tensor([[0.0, -1.05]])) and token.tolist() == [[PAD_ID, 3]]


@functools.lru_cache(maxsize=1)  # trained once, decoded by two tests (nothing changes it)
def _trained_tiny():
    task = addition_task(600, 20, 40, max_digits=2, reverse=True, seed=0)
    src, tgt = task.train.tensors(task.src_vocab, task.tgt_vocab)
    amla.seed_everything(0)
    model = EncoderDecoder(len(task.src_vocab), len(task.tgt_vocab), d_model=32, n_heads=2, n_layers=1, max_len=16)
    config = amla.TrainConfig(max_steps=60, batch_size=64, lr=3e-3, progress=False)
    amla.Trainer(model, (src, tgt), config, loss_fn=functools.partial(translation_loss, smoothing=0.1),
                 device="cpu").fit()
    return task, model.eval()


def test_greedy_and_beam_search():
    task, model = _trained_tiny()
    src, tgt = task.test.tensors(task.src_vocab, task.tgt_vocab)
    greedy = greedy_decode(model, src, 6)
    assert greedy.shape[0] == 40 and greedy.shape[1] <= 6
    after_eos = (greedy == EOS_ID).long().cumsum(1) - (greedy == EOS_ID).long() > 0
    assert bool((greedy[after_eos] == PAD_ID).all())
    beam1, _ = beam_search(model, src, 6, beam_size=1)
    assert torch.equal(beam1, greedy)
    # a wider beam finds outputs at least as likely as greedy's (by the summed log-probability)
    beam4, score4 = beam_search(model, src, 6, beam_size=4)

    def logprob(tokens):
        full = F.pad(tokens, (0, 6 - tokens.shape[1]), value=PAD_ID)
        logp = model(src, full).log_softmax(-1).gather(2, full[..., None]).squeeze(-1)
        return (logp * (full != PAD_ID)).sum(1)

    with torch.no_grad():
        finished = (greedy == EOS_ID).any(1) & (beam4 == EOS_ID).any(1)
        assert bool((logprob(beam4)[finished] >= logprob(greedy)[finished] - 1e-4).all())
        assert torch.allclose(score4[finished], logprob(beam4)[finished], atol=1e-4)
    normalised, _ = beam_search(model, src, 6, beam_size=4, length_penalty=1.0)
    assert normalised.shape[0] == 40
    hits = exact_match(model, src, tgt)
    assert hits.dtype == torch.bool and hits.shape == (40,)
    assert torch.equal(exact_match(model, src, tgt, beam_size=1), hits)
    assert exact_match(model, src, tgt, beam_size=3).shape == (40,)
    with pytest.raises(ValueError, match="beam_size must be a positive int"):
        beam_search(model, src, 6, beam_size=0)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, src, 0)


# --- the hooks: the exercises' functions plug in ------------------------------------------------------


def _fit(steps=15, **hooks):
    """A tiny model trained for a few steps, with the given hooks (decoder_block_fn, loss); its parameters."""
    task = addition_task(400, 10, 10, max_digits=2, reverse=True, seed=0)
    src, tgt = task.train.tensors(task.src_vocab, task.tgt_vocab)
    amla.seed_everything(0)
    model = EncoderDecoder(len(task.src_vocab), len(task.tgt_vocab), d_model=16, n_heads=2, n_layers=1, max_len=16,
                           **({"decoder_block_fn": hooks["decoder_block_fn"]} if "decoder_block_fn" in hooks else {}))
    loss_fn = functools.partial(translation_loss, smoothing=0.1, **({"loss": hooks["loss"]} if "loss" in hooks else {}))
    config = amla.TrainConfig(max_steps=steps, batch_size=32, lr=3e-3, progress=False)
    amla.Trainer(model, (src, tgt), config, loss_fn=loss_fn, device="cpu").fit()
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_through_the_hooks_with_the_references_is_bit_for_bit_the_default():
    default = _fit()
    hooked = _fit(decoder_block_fn=decoder_block, loss=label_smoothed_cross_entropy)
    assert default.keys() == hooked.keys() and all(torch.equal(default[k], hooked[k]) for k in default)


def test_decoder_block_fn_is_used_for_every_block_but_not_for_the_attention_maps():
    calls = []

    def counting(block, x, memory, src_mask, tgt_in):
        calls.append(tuple(tgt_in.shape))
        return decoder_block(block, x, memory, src_mask, tgt_in)

    src = torch.tensor([[3, 4, 5, 6], [7, 8, PAD_ID, PAD_ID]])
    tgt = torch.tensor([[3, 4, 5, EOS_ID], [6, EOS_ID, PAD_ID, PAD_ID]])
    plain, hooked = _model(), _model(decoder_block_fn=counting)
    assert plain.decoder_block_fn is None
    assert torch.allclose(plain(src, tgt), hooked(src, tgt), atol=1e-6) and calls == [(2, 4)] * len(hooked.decoder)
    assert torch.equal(greedy_decode(plain, src, 5), greedy_decode(hooked, src, 5))
    calls.clear()
    memory, mask = hooked.encode(src)
    _, weights = hooked.decode(shift_right(tgt), memory, mask, need_weights=True)  # the blocks' own forward pass
    assert calls == [] and weights.shape == (2, len(hooked.decoder), 2, 4, 4)


def test_decoder_block_fn_bad_input_gives_one_line_errors():
    with pytest.raises(TypeError, match=r"^EncoderDecoder: decoder_block_fn must be a function .* got int$"):
        _model(decoder_block_fn=3)
    src, tgt = torch.tensor([[3, 4]]), torch.tensor([[5, EOS_ID]])
    for bad, what in [(lambda *a: decoder_block(*a).double(), r"torch\.float64"),
                      (lambda *a: decoder_block(*a)[:, :1], r"\(1, 1, "), (lambda *a: None, "got None")]:
        with pytest.raises(ValueError, match=r"decoder_block_fn must return x's \(1, 2, \d+\) torch.float32") as info:
            _model(decoder_block_fn=bad)(src, tgt)
        assert "\n" not in str(info.value)
        assert re.search(what, str(info.value))


def test_translation_loss_hook():
    model = _model()
    src = torch.tensor([[3, 4, 5, 6], [7, 8, PAD_ID, PAD_ID]])
    tgt = torch.tensor([[3, 4, 5, EOS_ID], [6, EOS_ID, PAD_ID, PAD_ID]])
    default = translation_loss(model, (src, tgt), smoothing=0.1)
    assert torch.equal(translation_loss(model, (src, tgt), smoothing=0.1, loss=label_smoothed_cross_entropy), default)

    def torch_loss(logits, targets, smoothing):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=smoothing, ignore_index=PAD_ID)

    assert torch.allclose(translation_loss(model, (src, tgt), 0.1, loss=torch_loss), default, atol=1e-6)
    seen = []
    translation_loss(model, (src, tgt), 0.3, loss=lambda lg, tg, eps: seen.append(eps) or lg.sum() * 0)
    assert seen == [0.3]
    with pytest.raises(TypeError, match=r"^translation_loss: loss must be a function"):
        translation_loss(model, (src, tgt), 0.1, loss="cross_entropy")
    with pytest.raises(ValueError, match=r"^translation_loss: loss\(logits, targets, smoothing\) must return a 0-d "
                                         r"tensor, got float$"):
        translation_loss(model, (src, tgt), 0.1, loss=lambda *a: 1.0)


def test_label_smoothing_keeps_float64_and_computes_half_precision_in_float32():
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    targets = torch.tensor([[3, 4, 0], [2, 1, 0]])
    ours = label_smoothed_cross_entropy(logits, targets, 0.1)
    theirs = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID, label_smoothing=0.1)
    assert ours.dtype == torch.float64 and torch.allclose(ours, theirs, atol=1e-12)
    assert label_smoothed_cross_entropy(logits.bfloat16(), targets, 0.1).dtype == torch.float32
    assert label_smoothed_cross_entropy(logits.float(), targets, 0.1).dtype == torch.float32


def test_beam_step_fn_hook():
    task, model = _trained_tiny()
    src, tgt = task.test.tensors(task.src_vocab, task.tgt_vocab)
    calls = []

    def counting(scores, log_probs, finished):
        calls.append(tuple(log_probs.shape[:2]))
        return beam_step(scores, log_probs, finished)

    default, default_score = beam_search(model, src, 6, beam_size=3)
    hooked, hooked_score = beam_search(model, src, 6, beam_size=3, beam_step_fn=counting)
    assert torch.equal(default, hooked) and torch.equal(default_score, hooked_score) and calls[0] == (40, 3)
    assert torch.equal(exact_match(model, src, tgt, beam_size=3, beam_step_fn=beam_step),
                       exact_match(model, src, tgt, beam_size=3))
    greedy_calls = len(calls)
    exact_match(model, src, tgt, beam_size=1, beam_step_fn=counting)  # beam_size 1: greedy, no beam step
    assert len(calls) == greedy_calls
    assert torch.equal(beam_search(model, src, 6, beam_size=1, beam_step_fn=beam_step)[0], greedy_decode(model, src, 6))


def test_beam_step_fn_bad_input_gives_one_line_errors():
    model = _model()
    src = torch.tensor([[3, 4, 5]])
    with pytest.raises(TypeError, match=r"^beam_search: beam_step_fn must be a function"):
        beam_search(model, src, 4, beam_size=2, beam_step_fn=object())
    with pytest.raises(TypeError, match=r"^exact_match: beam_step_fn must be a function"):
        exact_match(model, src, src, beam_size=2, beam_step_fn=1)

    def float_parent(scores, log_probs, finished):
        new, parent, token = beam_step(scores, log_probs, finished)
        return new, parent.float(), token

    for bad, got in [(float_parent, r"torch\.float32"), (lambda s, lp, f: beam_step(s, lp, f)[:2], r"got \(\(1, 2\)"),
                     (lambda s, lp, f: None, r"got \(None\)")]:
        with pytest.raises(ValueError, match=r"^beam_search: beam_step_fn must return \(new_scores float \(1, 2\), "
                                             r"parent int64 \(1, 2\), token int64 \(1, 2\)\)") as info:
            beam_search(model, src, 4, beam_size=2, beam_step_fn=bad)
        assert "\n" not in str(info.value) and re.search(got, str(info.value)), str(info.value)
