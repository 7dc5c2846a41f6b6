"""The Trainer's batch order: micro-batch ``m`` is a pure function of the seed and ``m``.

So a resumed run sees exactly the batches an uninterrupted one would, and inside a process group each rank takes its
shard of the same global batch (``amla.toolkit.distributed.shard_indices``). ``OwnBatches`` wraps a source with an
order of its own (Hour 07's ``LengthBuckets``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

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
