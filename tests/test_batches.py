"""Per-batch padding and length buckets (amla.toolkit.batches, Hour 03): pad_collate pads each field of a batch to
its own longest sequence; BucketBatches draws every example at most once an epoch, deterministically, with less
padding than random batches; PairSet.examples states its truncation policy."""

import pytest
import torch

import amla
from amla.toolkit.batches import BucketBatches, pad_collate, sorted_runs
from amla.transformers.tasks import EOS_ID, PAD_ID, date_task


def _examples(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 40, (n,), generator=g)
    return [(torch.randint(3, 20, (int(k),), generator=g), torch.randint(3, 20, (int(k) % 7 + 1,), generator=g))
            for k in lengths]


def test_pad_collate_pads_each_field_to_its_own_longest_in_the_batch():
    a, b = (torch.tensor([5, 6, 7]), torch.tensor([8])), (torch.tensor([9]), torch.tensor([3, 4]))
    src, tgt = pad_collate(PAD_ID)([a, b])
    assert src.tolist() == [[5, 6, 7], [9, PAD_ID, PAD_ID]] and tgt.tolist() == [[8, PAD_ID], [3, 4]]
    assert pad_collate(-1)([a])[1].tolist() == [[8]]
    with pytest.raises(ValueError, match="pad_collate: field 1 of every example must be a 1-D tensor"):
        pad_collate()([(torch.tensor([1]), torch.tensor(2))])
    with pytest.raises(ValueError, match="same number of fields"):
        pad_collate()([a, (torch.tensor([1]),)])


def test_bucket_batches_draw_each_example_once_an_epoch_deterministically():
    examples = [(torch.full((int(k),), 3 + i), torch.tensor([i])) for i, k in enumerate(torch.randint(1, 30, (200,)))]
    buckets = BucketBatches(examples, 16, seed=3, chunk=4)  # field 1 of example i is [i]: the batches name them
    assert len(buckets) == 200 // 16
    drawn = []
    for m in range(len(buckets)):
        src, ids = buckets.batch(m)
        assert src.shape == (16, int(buckets.widths(0)[m])) and src.shape[1] == max(len(examples[i][0]) for i in ids[:, 0])
        drawn += ids[:, 0].tolist()
    assert len(drawn) == len(set(drawn)) == len(buckets) * 16  # no example twice within the epoch
    again = BucketBatches(examples, 16, seed=3, chunk=4)
    assert all(torch.equal(again.batch(m)[1], buckets.batch(m)[1]) for m in (5, 0, 11, 3))  # m alone decides
    assert not torch.equal(buckets.batch(len(buckets))[1], buckets.batch(0)[1])  # the next epoch is another order


def test_buckets_leave_less_padding_than_random_batches():
    examples = _examples(1000)
    random_batches, buckets = BucketBatches(examples, 32, chunk=1), BucketBatches(examples, 32, chunk=20)
    lengths = buckets.lengths.double()
    split = 1 - float(lengths.mean()) / float(lengths.max())
    assert buckets.padding_fraction() < 0.1 < random_batches.padding_fraction() < split
    assert float(buckets.widths().double().mean()) < float(random_batches.widths().double().mean())


def test_bucket_batches_refuse_bad_sizes_in_one_line():
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 200\]"):
        BucketBatches(_examples(), 500)
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        BucketBatches(_examples(), 8, chunk=0)


def test_the_trainer_trains_on_buckets_and_on_per_batch_padding():
    examples = [(s, t[:1]) for s, t in _examples(64)]

    class Mean(torch.nn.Module):  # the mean embedding of the real tokens predicts a class
        def __init__(self):
            super().__init__()
            self.embed, self.out = torch.nn.Embedding(20, 8, padding_idx=PAD_ID), torch.nn.Linear(8, 20)

        def forward(self, x):
            return self.out(self.embed(x).sum(1) / (x != PAD_ID).sum(1, keepdim=True))

    loss = lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1][:, 0])  # noqa: E731
    config = amla.TrainConfig(max_steps=3, batch_size=8, progress=False)
    for data, collate in ((BucketBatches(examples, 8), None), (examples, pad_collate())):
        history = amla.Trainer(Mean(), data, config, loss_fn=loss, collate_fn=collate, device="cpu").fit()
        assert len(history.train) == 3


def test_pair_examples_are_unpadded_and_truncate_sources_only():
    task = date_task(50, 5, 5, seed=0)
    examples = task.train.examples(task.src_vocab, task.tgt_vocab)
    assert all(len(s) == len(text) for (s, _), text in zip(examples, task.train.sources))
    assert all(t[-1].item() == EOS_ID and PAD_ID not in t.tolist() for _, t in examples)
    cut = task.train.examples(task.src_vocab, task.tgt_vocab, max_source=8)
    assert all(len(s) == min(8, len(text)) for (s, _), text in zip(cut, task.train.sources))
    assert all(torch.equal(s, full[: len(s)]) and torch.equal(t, t2) for (s, t), (full, t2) in zip(cut, examples))
    with pytest.raises(ValueError, match="max_source must be a positive int or None"):
        task.train.examples(task.src_vocab, task.tgt_vocab, max_source=0)


def test_sorted_runs_sorts_each_run_stably_and_keeps_every_index():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 6, (60,), generator=g)  # many ties: the sort must be stable
    perm = torch.randperm(60, generator=g)[:48]
    batches = sorted_runs(perm, lengths, batch_size=4, chunk=3)
    assert batches.shape == (12, 4) and sorted(batches.flatten().tolist()) == sorted(perm.tolist())
    for run, original in zip(batches.view(4, 12), perm.view(4, 12)):  # runs of chunk * batch_size = 12
        assert lengths[run].tolist() == sorted(lengths[original].tolist())
        for value in set(lengths[original].tolist()):  # equal lengths keep their order in the permutation
            same = [i for i in original.tolist() if lengths[i] == value]
            assert [i for i in run.tolist() if lengths[i] == value] == same
