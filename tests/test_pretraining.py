"""Hour 07's pretraining objectives: BERT's masking, static vs dynamic masking, the tiny BERT, T5's framing."""

import pytest
import torch
import torch.nn.functional as F

from amla.transformers.encoder_decoder import EncoderDecoder, translation_loss
from amla.transformers.pretraining import (
    IGNORE_INDEX, BertMLM, MaskedExamples, mask_coverage, mask_tokens, masked_accuracy, mlm_loss, mlm_mask_id,
    mlm_vocab_size, text_to_text_task, text_windows,
)
from amla.transformers.text import CharTokenizer

V, MASK = 60, 3


def _batch(b=400, t=64, seed=0):
    ids = torch.randint(4, V, (b, t), generator=torch.Generator().manual_seed(seed))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -5:] = True
    ids[:, 0], ids[:, -5:] = 1, 0
    return ids, special


def test_mask_tokens_follows_berts_rule_on_a_large_batch():
    ids, special = _batch()
    before = ids.clone()
    inputs, labels = mask_tokens(ids, vocab_size=V, mask_id=MASK, special_mask=special,
                                 generator=torch.Generator().manual_seed(1))
    assert torch.equal(ids, before), "ids changed in place"
    assert inputs.dtype == labels.dtype == torch.long and inputs.shape == labels.shape == ids.shape
    chosen = labels != IGNORE_INDEX
    assert not chosen[special].any()
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    assert abs(chosen[~special].float().mean().item() - 0.15) < 0.01
    n = chosen.sum().item()
    masked = (inputs[chosen] == MASK).sum().item() / n
    kept = (inputs[chosen] == ids[chosen]).sum().item() / n
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1 - 0.1 / V) < 0.015 and abs(1 - masked - kept - 0.1) < 0.015
    assert ((inputs >= 0) & (inputs < V)).all()


def test_mask_tokens_edges_and_seeds():
    ids, special = _batch(8, 12)
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    inputs, labels = mask_tokens(ids, vocab_size=V, mask_id=MASK, special_mask=special, p=0.0, generator=g(0))
    assert torch.equal(inputs, ids) and (labels == IGNORE_INDEX).all()
    _, labels = mask_tokens(ids, vocab_size=V, mask_id=MASK, special_mask=special, p=1.0, generator=g(0))
    assert torch.equal(labels, torch.where(special, IGNORE_INDEX, ids))
    a = mask_tokens(ids, vocab_size=V, mask_id=MASK, p=0.5, generator=g(3))
    b = mask_tokens(ids, vocab_size=V, mask_id=MASK, p=0.5, generator=g(3))
    c = mask_tokens(ids, vocab_size=V, mask_id=MASK, p=0.5, generator=g(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(ids=torch.zeros(3, 4)), "long tensor"), (dict(p=1.5), "probability"), (dict(mask_id=V), "mask_id"),
    (dict(special_mask=torch.zeros(2, 2, dtype=torch.bool)), "special_mask"),
])
def test_mask_tokens_refuses_bad_input_in_one_line(kwargs, phrase):
    args = dict(ids=torch.zeros(3, 4, dtype=torch.long), vocab_size=V, mask_id=MASK) | kwargs
    with pytest.raises(ValueError, match=phrase) as info:
        mask_tokens(args.pop("ids"), **args)
    assert "\n" not in str(info.value)


def test_static_masking_repeats_and_dynamic_masking_covers_more():
    ids, special = _batch(64, 32)
    static = MaskedExamples(ids, vocab_size=V, mask_id=MASK, special_mask=special, dynamic=False)
    dynamic = MaskedExamples(ids, vocab_size=V, mask_id=MASK, special_mask=special, dynamic=True)
    assert torch.equal(static.epoch(0)[1], static.epoch(3)[1]) and not torch.equal(dynamic.epoch(0)[1],
                                                                                    dynamic.epoch(1)[1])
    assert torch.equal(dynamic.epoch(2)[0], dynamic.epoch(2)[0]), "an epoch's masking must be repeatable"
    assert abs(mask_coverage(static, 5) - 0.15) < 0.03
    assert abs(mask_coverage(dynamic, 5) - (1 - 0.85 ** 5)) < 0.03


def test_copies_stack_epochs_for_the_trainer():
    ids, special = _batch(16, 8)
    static = MaskedExamples(ids, vocab_size=V, mask_id=MASK, special_mask=special, dynamic=False)
    dynamic = MaskedExamples(ids, vocab_size=V, mask_id=MASK, special_mask=special, dynamic=True)
    s_in, s_lab = static.copies(3)
    d_in, d_lab = dynamic.copies(3)
    assert s_in.shape == d_lab.shape == (48, 8)
    assert torch.equal(s_lab[:16], s_lab[32:]) and torch.equal(s_in[:16], static.epoch(0)[0])
    assert torch.equal(d_lab[16:32], dynamic.epoch(1)[1]) and not torch.equal(d_lab[:16], d_lab[16:32])
    with pytest.raises(ValueError, match="n must be"):
        static.copies(0)


def test_bert_mlm_embeddings_start_small_so_positions_do_not_drown_the_tokens():
    model = BertMLM(V, d_model=64, n_heads=2, n_layers=1, max_len=16, tie=False)
    assert model.encoder.embed.weight.std() < 0.03 and model.encoder.pos.embedding.weight.std() < 0.03


def test_masked_examples_use_the_given_mask_fn():
    calls = []

    def mine(ids, **kw):
        calls.append(kw["p"])
        return mask_tokens(ids, **kw)

    data = MaskedExamples(torch.randint(4, V, (4, 8)), vocab_size=V, mask_id=MASK, p=0.3, mask_fn=mine)
    data.epoch(0), data.epoch(1)
    assert calls == [0.3, 0.3]
    with pytest.raises(ValueError, match="mask_fn must return"):
        MaskedExamples(torch.randint(4, V, (4, 8)), vocab_size=V, mask_id=MASK, mask_fn=lambda ids, **kw: ids).epoch(0)


def test_bert_mlm_is_bidirectional_tied_and_learns_a_batch():
    torch.manual_seed(0)
    model = BertMLM(V, d_model=16, n_heads=2, n_layers=1, max_len=16)
    assert model.decoder.weight is model.encoder.embed.weight
    assert not BertMLM(V, 16, 2, 1, max_len=16, tie=False).decoder.weight is model.encoder.embed.weight
    x = torch.randint(4, V, (2, 16))
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1) % V
    with torch.no_grad():
        assert not torch.allclose(model(x)[:, 0], model(y)[:, 0]), "position 0 must see the last token (no causal mask)"
    ids = torch.randint(4, V, (8, 16), generator=torch.Generator().manual_seed(0))
    inputs, labels = mask_tokens(ids, vocab_size=V, mask_id=MASK, p=0.3, generator=torch.Generator().manual_seed(0))
    loss0 = mlm_loss(model, (inputs, labels))
    assert abs(loss0.item() - torch.log(torch.tensor(float(V))).item()) < 1.0, "the tied head starts near uniform"
    for _ in range(40):  # plain gradient descent by hand: torch.optim's first step imports torch._dynamo (~2 s)
        model.zero_grad()
        loss = mlm_loss(model, (inputs, labels))
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= 0.5 * param.grad
    assert loss.item() < 0.7 * loss0.item()


def test_mlm_loss_and_masked_accuracy_read_the_labelled_positions_only():
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, 3, -100, 1, -100], [2, -100, -100, -100, 6]])
    keep = labels != -100

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits

    assert torch.allclose(mlm_loss(Fixed(), (labels, labels)), F.cross_entropy(logits[keep], labels[keep]))
    hits = (logits.argmax(-1)[keep] == labels[keep]).float().mean().item()
    assert masked_accuracy(logits, labels) == pytest.approx(hits)
    perfect = F.one_hot(labels.clamp(min=0), 7).float()
    assert masked_accuracy(perfect, labels) == 1.0
    with pytest.raises(ValueError, match="no labelled position"):
        masked_accuracy(logits, torch.full_like(labels, -100))


def test_char_vocabulary_with_mask_and_windows():
    tok = CharTokenizer("to be or not to be, that is")
    assert mlm_vocab_size(tok) == tok.vocab_size + 1 and mlm_mask_id(tok) == tok.vocab_size
    ids = tok.encode("to be or not to be, that is")[:18]
    w = text_windows(ids, 5, 7, seed=1)
    assert w.shape == (7, 5) and w.dtype == torch.long
    text = tok.decode(ids)
    assert all(tok.decode(row) in text for row in w)
    with pytest.raises(ValueError, match="block_size"):
        text_windows(ids, 50, 2)


def test_text_to_text_task_frames_two_tasks_by_prefix_for_the_encoder_decoder():
    task = text_to_text_task(40, 10, 10, seed=3)
    for split in (task.train, task.val, task.test):
        for src, tgt, tag in split:
            prefix, s = src.split(": ")
            assert prefix == tag and tgt == (s[::-1] if tag == "reverse" else "".join(sorted(s)))
        assert sorted(split.tags).count("reverse") == len(split) // 2
    strings = [{src.split(": ")[1] for src in split.sources} for split in (task.train, task.val, task.test)]
    assert not (strings[0] & strings[1] or strings[0] & strings[2] or strings[1] & strings[2])
    src, tgt = task.train.tensors(task.vocab, task.vocab)
    model = EncoderDecoder(len(task.vocab), len(task.vocab), d_model=16, n_heads=2, n_layers=1)
    assert torch.isfinite(translation_loss(model, (src, tgt)))
    assert text_to_text_task(40, 10, 10, seed=3).train.sources == task.train.sources
