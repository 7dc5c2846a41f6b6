"""Fine-tuning a pretrained encoder as a sentence classifier (Hour 07), with the course Trainer.

- ``SentenceClassifier(encoder, n_classes, dropout=0.1, pool=mean_pool, freeze_word_embeddings=True)``: the
  encoder's token vectors, pooled over the real tokens (``pool(hidden [B, T, d], mask [B, T]) -> [B, d]``, the
  student's ``mean_pool`` from Exercise 7.2), dropout, one linear layer: ``forward(input_ids, attention_mask) ->
  logits [B, n_classes]``. The word-embedding table stays frozen by default: words the labelled sentences never
  contain keep their place next to the words they do (and the step skips a dense gradient of 30,522 x 384).
  ``optimizer(lr, head_lr, weight_decay)``: AdamW, the new head at its own, larger learning rate.
- ``TextSet(texts, labels)``: a Dataset of ``(text, label)``; ``text_collate(tokenizer, max_length=48)`` turns a
  list of them into ``(input_ids, attention_mask, labels)``, padded to the longest sentence of the batch
  (dynamic padding: no batch pays for the longest sentence of the data set).
- ``LengthBuckets(tokenizer, texts, labels, batch_size, max_length=48, chunk=50, seed=0)``: training batches
  for the Trainer of sentences of similar length (random batches, sorted within chunks): a random batch of 32 of
  Hour 07's movie-review sentences pads to 47 tokens (their mean is 27), a bucketed one to 27.
- ``classifier_loss(model, batch)``: the cross-entropy, the ``loss_fn`` for ``amla.Trainer``.
- ``eval_batches_by_length(tokenizer, texts, labels, batch_size=128, max_length=48)``: fixed evaluation batches of
  sentences of similar length (sorted), so little is spent on padding; ``accuracy(model, batches) -> float``.
- ``split_indices(labels, fractions=(0.8, 0.1, 0.1), seed=0)``: stratified train / validation / test indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.toolkit.batches import sorted_runs
from amla.transformers.pretrained import mean_pool

__all__ = ["LengthBuckets", "SentenceClassifier", "TextSet", "accuracy", "classifier_loss", "eval_batches_by_length",
           "split_indices", "text_collate"]

Batch = tuple[Tensor, Tensor, Tensor]


class SentenceClassifier(nn.Module):
    """A pretrained encoder, pooling over the real tokens, dropout and a linear head."""

    def __init__(self, encoder: nn.Module, n_classes: int, *, dropout: float = 0.1,
                 pool: Callable[[Tensor, Tensor], Tensor] = mean_pool, freeze_word_embeddings: bool = True):
        super().__init__()
        width = getattr(getattr(encoder, "config", None), "hidden_size", None)
        if not isinstance(width, int):
            raise ValueError("SentenceClassifier: encoder must be a transformers model with config.hidden_size")
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"SentenceClassifier: n_classes must be an int >= 2, got {n_classes!r}")
        self.encoder, self.pool = encoder, pool
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_classes)
        words = encoder.get_input_embeddings() if hasattr(encoder, "get_input_embeddings") else None
        if freeze_word_embeddings and words is not None:
            words.weight.requires_grad_(False)

    def optimizer(self, lr: float, head_lr: float, weight_decay: float = 0.01) -> torch.optim.Optimizer:
        """AdamW with the new head at ``head_lr`` (it starts from random weights) and the pretrained encoder at
        ``lr``; no weight decay on biases and LayerNorms; frozen parameters left out."""
        groups: list[dict[str, Any]] = []
        for part, rate in ((self.encoder, lr), (self.head, head_lr)):
            params = [p for p in part.parameters() if p.requires_grad]
            groups += [{"params": [p for p in params if p.dim() >= 2], "lr": rate, "weight_decay": weight_decay},
                       {"params": [p for p in params if p.dim() < 2], "lr": rate, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(self.dropout(self.pool(hidden, attention_mask)))


class TextSet(torch.utils.data.Dataset):
    """``(text, label)`` pairs for the Trainer (tokenized per batch by ``text_collate``)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int] | np.ndarray):
        if len(texts) != len(labels) or not len(texts):
            raise ValueError(f"TextSet: texts and labels must have equal, non-zero lengths, got {len(texts)} and "
                             f"{len(labels)}")
        self.texts, self.labels = list(texts), [int(y) for y in labels]

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[str, int]:
        return self.texts[i], self.labels[i]


def text_collate(tokenizer: Any, max_length: int = 48) -> Callable[[list[tuple[str, int]]], Batch]:
    """A ``collate_fn``: tokenize a list of ``(text, label)``, padded to the batch's longest, cut at ``max_length``."""

    def collate(items: list[tuple[str, int]]) -> Batch:
        enc = tokenizer([t for t, _ in items], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"], torch.tensor([y for _, y in items])

    return collate


class _Tokenized:
    """Sentences tokenized once (truncated at ``max_length``); ``pad(rows)`` makes the batch of those rows, padded
    on the right to their own longest, as the tokenizer pads: ``(input_ids, attention_mask, labels)``."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], labels: Sequence[int] | np.ndarray, max_length: int):
        self.ids: list[list[int]] = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        self.labels = [int(y) for y in labels]
        self.lengths = np.array([len(i) for i in self.ids])
        self.pad_id = int(tokenizer.pad_token_id)

    def pad(self, rows: Sequence[int] | np.ndarray) -> Batch:
        width = int(self.lengths[rows].max())
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, : self.lengths[i]] = torch.tensor(self.ids[i])
            mask[r, : self.lengths[i]] = 1
        return ids, mask, torch.tensor([self.labels[i] for i in rows])


class LengthBuckets:
    """Training batches of sentences of similar length, for the Trainer (``Trainer(model, buckets, ...)``).

    Epoch ``e`` shuffles the sentences (seeded by ``seed`` and ``e``), cuts them into chunks of ``chunk`` batches,
    sorts each chunk by token count, splits it into batches of ``batch_size`` and shuffles the batches: every
    batch is random, but its sentences have about one length, so little of each step is spent on padding.
    ``batch(m)`` is batch ``m`` (epoch ``m // per_epoch``; an incomplete last batch is dropped); ``widths(e)`` the
    padded length of every batch of epoch ``e``; ``lengths`` the token count of every sentence.
    """

    def __init__(self, tokenizer: Any, texts: Sequence[str], labels: Sequence[int] | np.ndarray, batch_size: int,
                 *, max_length: int = 48, chunk: int = 50, seed: int = 0):
        if len(texts) != len(labels) or len(texts) < batch_size or batch_size < 1 or chunk < 1:
            raise ValueError(f"LengthBuckets: need as many labels as texts ({len(texts)} and {len(labels)}), at least "
                             f"batch_size={batch_size} >= 1 of them, and chunk={chunk} >= 1")
        self._data = _Tokenized(tokenizer, texts, labels, max_length)
        self.lengths = self._data.lengths
        self.batch_size, self.chunk, self.seed = batch_size, chunk, seed
        self.per_epoch = len(self.lengths) // batch_size
        self._epoch, self._order = -1, np.empty((0, batch_size), dtype=np.int64)

    def _batches_of(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])  # numpy's RNG: the order Hour 07 was measured with
        perm = rng.permutation(len(self.lengths))[: self.per_epoch * self.batch_size]
        batches = sorted_runs(torch.from_numpy(perm), torch.as_tensor(self.lengths), self.batch_size, self.chunk)
        return batches.numpy()[rng.permutation(self.per_epoch)]

    def widths(self, epoch: int = 0) -> np.ndarray:
        """The padded length (longest sentence) of each batch of ``epoch``, in the order they are drawn."""
        return self.lengths[self._batches_of(epoch)].max(axis=1)

    def batch(self, m: int) -> Batch:
        epoch, pos = divmod(m, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self._batches_of(epoch)
        return self._data.pad(self._order[pos])


def classifier_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Cross-entropy of ``model(input_ids, attention_mask)`` against the labels."""
    ids, mask, labels = batch
    return F.cross_entropy(model(ids, mask), labels)


def eval_batches_by_length(tokenizer: Any, texts: Sequence[str], labels: Sequence[int] | np.ndarray,
                           batch_size: int = 128, max_length: int = 48) -> list[Batch]:
    """Evaluation batches of sentences sorted by token count (each padded to its own longest)."""
    if len(texts) != len(labels) or not len(texts):
        raise ValueError("eval_batches_by_length: texts and labels must have equal, non-zero lengths")
    data = _Tokenized(tokenizer, texts, labels, max_length)  # tokenized once: the lengths and the batches
    order = np.argsort(data.lengths, kind="stable")
    return [data.pad(order[k:k + batch_size]) for k in range(0, len(order), batch_size)]


@torch.no_grad()
def accuracy(model: nn.Module, batches: Sequence[Batch]) -> float:
    """The share of correct argmax predictions over ``batches`` (eval mode inside, the mode restored after)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    right = total = 0
    try:
        for ids, mask, labels in batches:
            pred = model(ids.to(device), mask.to(device)).argmax(-1).cpu()
            right += int((pred == labels).sum())
            total += len(labels)
    finally:
        model.train(was_training)
    return right / total


def split_indices(labels: Sequence[int] | np.ndarray, fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> tuple[np.ndarray, ...]:
    """Stratified, sorted index arrays, one per fraction (they must sum to 1): each class is split alike."""
    if not fractions or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split_indices: fractions must be positive and sum to 1, got {fractions}")
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts)):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(p)) for p in parts)
