"""Hour 05: the addition task, the encoder-decoder Transformer, label smoothing, greedy and beam search, the checks."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

import amla
from amla.checks import CheckFailed
from amla.checks import encoder_decoder as C
from amla.transformers.encoder_decoder import (
    EncoderDecoder,
    beam_search,
    beam_step,
    cross_attention_maps,
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


# --- the checks -------------------------------------------------------------------------------------


def test_checks_pass_the_references(capsys):
    C.check_decoder_mask(decoder_mask)
    C.check_label_smoothing(label_smoothed_cross_entropy)
    C.check_beam_step(beam_step)
    assert capsys.readouterr().out.count("passed") == 3


def _names(fn, variants):
    for variant, words in variants:
        state = torch.random.get_rng_state()
        with pytest.raises(CheckFailed, match=words):
            fn(variant)
        assert torch.equal(state, torch.random.get_rng_state())


def test_decoder_mask_mistakes_are_named():
    v = C._mask_variant
    _names(C.check_decoder_mask, [
        (v(causal="none"), "not causal"), (v(causal="triu"), "wrong way round"), (v(causal="strict"), "diagonal"),
        (v(padding="none"), "padding is not masked"), (v(padding="queries"), "queries"),
        (v(invert=True), "inverted"),
    ])


def test_label_smoothing_mistakes_are_named():
    v = C._smoothing_variant
    _names(C.check_label_smoothing, [
        (v(classes="others"), "V - 1 classes other than the target"), (v(classes="no_pad"), "skips the <pad>"),
        (v(ignore_pad=False), "padding is not ignored"), (v(norm="all"), "divided by all"),
        (v(norm="sum"), "summed"), (v(sign=-1), "sign is flipped"), (v(uniform="sum"), "without dividing by V"),
        (v(keep_confidence=False), "1 - eps"), (v(log=False), "probabilities are used"),
    ])


def test_beam_step_mistakes_are_named():
    v = C._beam_variant
    _names(C.check_beam_step, [
        (v(add_scores=False), "previous scores are not added"), (v(per_beam=True), "each beam keeps"),
        (v(freeze="drop"), "thrown away"), (v(freeze="pad_cost"), "pay the model"),
        (v(freeze="none"), "extended like live ones"), (v(swap=True), "swapped"),
    ])


def test_check_reports_not_implemented():
    def todo(*args):
        raise NotImplementedError("Exercise 5.2")

    with pytest.raises(CheckFailed, match="not implemented yet"):
        C.check_label_smoothing(todo)
