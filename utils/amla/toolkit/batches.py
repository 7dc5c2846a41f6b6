"""The Trainer's batch order: micro-batch ``m`` is a pure function of the seed and ``m``.

So a resumed run sees exactly the batches an uninterrupted one would, and inside a process group each rank takes its
shard of the same global batch (``amla.toolkit.distributed.shard_indices``). ``OwnBatches`` wraps a source with an
order of its own (Hour 07's ``LengthBuckets``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from amla.toolkit import distributed as ddp

Batch = Sequence[torch.Tensor]


class SeededBatches:
    """Micro-batch ``m`` = slice ``m % per_epoch`` of a permutation seeded by (seed, epoch ``m // per_epoch``)."""

    def __init__(self, data: Any, batch_size: int, seed: int, collate: Callable[[list[Any]], Batch] | None,
                 shard: tuple[int, int] = (0, 1)):
        if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
            sizes = [t.shape[0] for t in data]
            if len(set(sizes)) != 1:
                shapes = ", ".join(str(tuple(t.shape)) for t in data)
                raise ValueError(f"train_data tensors must share their first dimension; got shapes {shapes}")
            self.tensors: tuple[torch.Tensor, ...] | None = tuple(data)
            self.n = sizes[0]
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
            self.tensors, self.n = None, len(data)
        else:
            raise TypeError(f"train_data must be a tuple of tensors or a Dataset, got {type(data).__name__}")
        if batch_size > self.n:
            raise ValueError(f"batch_size={batch_size} is larger than the training set ({self.n} examples)")
        self.data, self.batch_size, self.seed, (self.rank, self.world) = data, batch_size, seed, shard
        self.per_epoch = self.n // batch_size  # the last incomplete batch of an epoch is dropped
        self.collate = collate or torch.utils.data.default_collate
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, m: int) -> Batch:
        epoch, pos = divmod(m, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        idx = ddp.shard_indices(self._perm[pos * self.batch_size : (pos + 1) * self.batch_size], self.rank, self.world)
        if self.tensors is not None:
            return tuple(t[idx] for t in self.tensors)
        return self.collate([self.data[int(i)] for i in idx])


class OwnBatches:
    """A batch source of its own: ``source.batch(m)`` is micro-batch ``m`` (a pure function of ``m``, so a resumed run
    sees the same batches), of ``source.batch_size`` rows; one process only."""

    def __init__(self, source: Any, batch_size: int):
        if getattr(source, "batch_size", None) != batch_size:
            raise ValueError(f"train_data draws batches of {getattr(source, 'batch_size', None)} rows; "
                             f"TrainConfig.batch_size is {batch_size}; make them equal")
        if ddp.shard(batch_size)[1] != 1:
            raise ValueError("train_data with its own batch order trains in one process only; pass a Dataset for DDP")
        self.source, self.world = source, 1

    def __call__(self, m: int) -> Batch:
        return self.source.batch(m)


def pad_collate(pad_id: int = 0) -> Callable[[list[Sequence[torch.Tensor]]], tuple[torch.Tensor, ...]]:
    """A ``collate_fn``: a list of examples, each a tuple of 1-D id tensors of any lengths, becomes a tuple of
    ``[B, L]`` tensors, each field right-padded with ``pad_id`` to **its own longest sequence in this batch**."""

    def collate(examples: list[Sequence[torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        if not examples or any(len(e) != len(examples[0]) for e in examples):
            raise ValueError("pad_collate: expected a non-empty list of examples with the same number of fields")
        fields = list(zip(*examples))
        for i, field in enumerate(fields):
            if any(not isinstance(t, torch.Tensor) or t.dim() != 1 for t in field):
                raise ValueError(f"pad_collate: field {i} of every example must be a 1-D tensor of ids")
        return tuple(pad_sequence(list(field), batch_first=True, padding_value=pad_id) for field in fields)

    return collate


def sorted_runs(perm: torch.Tensor, lengths: torch.Tensor, batch_size: int, chunk: int) -> torch.Tensor:
    """Length bucketing, the part every bucketed sampler shares: ``perm`` (example indices, a multiple of
    ``batch_size`` of them) cut into runs of ``chunk`` batches, each run sorted by ``lengths`` (stable), then cut
    into batches: ``[len(perm) // batch_size, batch_size]``. The caller shuffles the batches with its own RNG."""
    runs = []
    for start in range(0, len(perm), chunk * batch_size):
        run = perm[start : start + chunk * batch_size]
        runs.append(run[torch.sort(lengths[run], stable=True).indices])
    return torch.cat(runs).view(-1, batch_size)


class BucketBatches:
    """Batches of sequences of about one length, for the Trainer (``train_data=BucketBatches(...)``).

    Epoch ``e``: the examples in a permutation seeded by (``seed``, ``e``); each run of ``chunk`` batches' worth of
    them sorted by the length of field 0; cut into batches; the batches shuffled. Every batch is still a random draw
    from its chunk, its sequences have about one length, and ``collate`` (default ``pad_collate()``) pads it to its
    own longest. ``chunk=1`` gives random batches (per-batch padding without bucketing). The last incomplete batch of
    an epoch is dropped. ``batch(m)`` is a pure function of ``m``, so a resumed run sees the same batches.
    """

    def __init__(self, examples: Sequence[Sequence[torch.Tensor]], batch_size: int, seed: int = 0, chunk: int = 50,
                 collate: Callable[[list[Any]], Batch] | None = None):
        if not isinstance(batch_size, int) or batch_size < 1 or batch_size > len(examples):
            raise ValueError(f"BucketBatches: batch_size must be an int in [1, {len(examples)}] (the number of "
                             f"examples), got {batch_size!r}")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"BucketBatches: chunk must be a positive int (batches per sorted run), got {chunk!r}")
        self.examples, self.batch_size, self.seed, self.chunk = examples, batch_size, seed, chunk
        self.collate = collate or pad_collate()
        self.lengths = torch.tensor([len(e[0]) for e in examples])
        self.per_epoch = len(examples) // batch_size
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def _batches_of(self, epoch: int) -> torch.Tensor:
        """``[per_epoch, batch_size]`` example indices of epoch ``epoch``, in the order they are drawn."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.examples), generator=g)[: self.per_epoch * self.batch_size]
        batches = sorted_runs(perm, self.lengths, self.batch_size, self.chunk)
        return batches[torch.randperm(self.per_epoch, generator=g)]

    def batch(self, m: int) -> Batch:
        epoch, pos = divmod(m, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self._batches_of(epoch)
        return self.collate([self.examples[int(i)] for i in self._order[pos]])

    def widths(self, epoch: int = 0) -> torch.Tensor:
        """The padded length of field 0 of every batch of ``epoch`` (without building the batches)."""
        return self.lengths[self._batches_of(epoch)].max(dim=1).values

    def padding_fraction(self, epoch: int = 0) -> float:
        """The share of field 0's padded positions in ``epoch`` that are padding."""
        batches = self._batches_of(epoch)
        real = int(self.lengths[batches].sum())
        return 1.0 - real / max(1, int(self.widths(epoch).sum()) * self.batch_size)

    def __len__(self) -> int:
        return self.per_epoch

