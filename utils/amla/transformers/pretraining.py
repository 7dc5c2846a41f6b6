"""Pretraining objectives (Hour 07): BERT's masked language modelling, RoBERTa's dynamic masking, T5's text-to-text.

- ``mask_tokens(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None) -> (inputs, labels)``:
  BERT's rule (Exercise 7.1). Each non-special position is chosen with probability ``p``; a chosen token becomes
  ``mask_id`` with probability 0.8, a uniformly random id in ``[0, vocab_size)`` with 0.1, and stays with 0.1.
  ``labels`` holds the original id at the chosen positions and ``IGNORE_INDEX`` (-100) elsewhere; ``ids`` is not
  changed.
- ``MaskedExamples``: fixed examples ``[N, T]`` masked once (``dynamic=False``, BERT's static masking: the same
  mask every epoch) or anew every epoch (``dynamic=True``, RoBERTa); ``epoch(e) -> (inputs, labels)``.
  ``copies(n)`` stacks ``n`` epochs' maskings into tensors for the Trainer (RoBERTa's duplicated data).
  ``mask_coverage(data, epochs)`` measures the share of maskable positions a model sees masked at least once.
- ``mlm_vocab_size(tokenizer)``/``mlm_mask_id``: the course's ``CharTokenizer`` plus one ``[MASK]`` id at the end;
  ``text_windows(ids, block_size, n, seed)``: ``n`` random windows of a 1-D id tensor.
- ``BertMLM``: a tiny BERT-style encoder (``amla.transformers.encoder.TransformerEncoder``, the Hour 04 block stack,
  learned positions) with an MLM head whose output matrix is the token embedding (tied, optional);
  ``mlm_loss(model, batch)`` is the ``loss_fn`` for ``amla.Trainer``; ``masked_accuracy(logits, labels)``.
- ``text_to_text_task(...)``: T5-style framing, two toy tasks told apart by a prefix, ``"reverse: abc" -> "cba"``
  and ``"sort: cab" -> "abc"``, as ``PairSet``\\ s and a ``Vocab`` for Hour 05's ``EncoderDecoder``
  (``split.tensors(vocab, vocab)`` gives ``(src, tgt)``).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.toolkit.errors import check_hook, check_int, shape_text
from amla.transformers.encoder import TransformerEncoder
from amla.transformers.tasks.vocab import PairSet, Vocab

__all__ = [
    "IGNORE_INDEX", "BertMLM", "MaskedExamples", "TextToTextTask", "mask_coverage", "mask_tokens", "masked_accuracy",
    "mlm_loss", "mlm_mask_id", "mlm_vocab_size", "text_to_text_task", "text_windows",
]

IGNORE_INDEX = -100
"""The label of a position the loss ignores (``F.cross_entropy``'s default ``ignore_index``)."""

MaskFn = Callable[..., tuple[Tensor, Tensor]]


# --- BERT's masking rule ---------------------------------------------------------------------------


def _check_ids(owner: str, ids: object, special_mask: object) -> None:
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
        raise ValueError(f"{owner}: ids must be a long tensor [B, T], got {shape_text(ids)}"
                         f"{' ' + str(ids.dtype) if isinstance(ids, Tensor) else ''}")
    if special_mask is not None and (not isinstance(special_mask, Tensor) or special_mask.dtype != torch.bool
                                     or special_mask.shape != ids.shape):
        raise ValueError(f"{owner}: special_mask must be a bool tensor of the shape of ids {tuple(ids.shape)}, "
                         f"got {shape_text(special_mask)}")


def mask_tokens(ids: Tensor, *, vocab_size: int, mask_id: int, special_mask: Tensor | None = None, p: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """BERT's masking of ``ids [B, T]`` (long): ``(inputs, labels)``, both long ``[B, T]`` (see the module doc)."""
    _check_ids("mask_tokens", ids, special_mask)
    check_int("mask_tokens", "vocab_size", vocab_size)
    if not isinstance(mask_id, int) or not 0 <= mask_id < vocab_size:
        raise ValueError(f"mask_tokens: mask_id must be an int in [0, vocab_size={vocab_size}), got {mask_id!r}")
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"mask_tokens: p must be a probability in [0, 1], got {p!r}")
    kw = dict(generator=generator, device=ids.device)
    chosen = torch.rand(ids.shape, **kw) < p
    if special_mask is not None:
        chosen &= ~special_mask
    r = torch.rand(ids.shape, **kw)
    to_mask = chosen & (r < 0.8)
    to_random = chosen & (r >= 0.8) & (r < 0.9)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, torch.randint(vocab_size, ids.shape, **kw), inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    return inputs, labels


# --- static vs dynamic masking (RoBERTa) ---------------------------------------------------------------


class MaskedExamples:
    """Examples ``ids [N, T]`` and their masks, epoch by epoch.

    ``dynamic=False`` (BERT): the examples are masked once, with ``seed``, and ``epoch(e)`` returns that same masking
    every epoch. ``dynamic=True`` (RoBERTa): epoch ``e`` masks anew with the seed ``seed + e``. ``mask_fn`` (default
    ``mask_tokens``; Exercise 7.1 passes the student's) is called as ``mask_fn(ids, vocab_size=..., mask_id=...,
    special_mask=..., p=..., generator=...)``.
    """

    def __init__(self, ids: Tensor, *, vocab_size: int, mask_id: int, special_mask: Tensor | None = None,
                 p: float = 0.15, dynamic: bool = True, seed: int = 0, mask_fn: MaskFn | None = None) -> None:
        _check_ids("MaskedExamples", ids, special_mask)
        check_int("MaskedExamples", "seed", seed, 0)
        check_hook("MaskedExamples", "mask_fn", mask_fn, "mask_tokens(ids, *, vocab_size, mask_id, ...) -> "
                   "(inputs, labels)")
        self.ids, self.special_mask, self.dynamic, self.seed = ids, special_mask, bool(dynamic), seed
        self.kwargs = dict(vocab_size=vocab_size, mask_id=mask_id, special_mask=special_mask, p=p)
        self.mask_fn: MaskFn = mask_tokens if mask_fn is None else mask_fn
        self._static = None if self.dynamic else self._mask(seed)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def _mask(self, seed: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator(device=self.ids.device).manual_seed(seed)
        out = self.mask_fn(self.ids, generator=g, **self.kwargs)
        if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) and t.shape == self.ids.shape
                                                                 for t in out)):
            raise ValueError(f"MaskedExamples: mask_fn must return (inputs, labels), two tensors of shape "
                             f"{tuple(self.ids.shape)}")
        return out

    def epoch(self, e: int) -> tuple[Tensor, Tensor]:
        """``(inputs, labels)`` of every example for epoch ``e`` (>= 0)."""
        check_int("MaskedExamples.epoch", "e", e, 0)
        return self._mask(self.seed + e) if self.dynamic else self._static  # type: ignore[return-value]

    def copies(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` copies of the examples, copy ``k`` masked as epoch ``k``: ``(inputs, labels)`` of ``[n * N, T]``.
        RoBERTa's implementation of dynamic masking (its data duplicated 10 times, each copy masked differently);
        with ``dynamic=False`` every copy holds the same masking. One pass of a Trainer over them shows every example
        ``n`` times, each time with another masking (dynamic) or the same one (static)."""
        check_int("MaskedExamples.copies", "n", n)
        parts = [self.epoch(e) for e in range(n)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def mask_coverage(data: MaskedExamples, epochs: int) -> float:
    """Share of the maskable (non-special) positions that are chosen in at least one of ``epochs`` epochs: about
    ``p`` for static masking whatever the number of epochs, ``1 - (1 - p)^epochs`` for dynamic masking."""
    check_int("mask_coverage", "epochs", epochs)
    seen = torch.zeros_like(data.ids, dtype=torch.bool)
    for e in range(epochs):
        seen |= data.epoch(e)[1] != IGNORE_INDEX
    maskable = torch.ones_like(seen) if data.special_mask is None else ~data.special_mask
    return float(seen[maskable].float().mean()) if bool(maskable.any()) else 0.0


# --- data: characters plus [MASK] ----------------------------------------------------------------------


def mlm_vocab_size(tokenizer: object) -> int:
    """The vocabulary of a tokenizer with ``vocab_size`` ids plus one ``[MASK]`` id (the last one)."""
    return check_int("mlm_vocab_size", "tokenizer.vocab_size", getattr(tokenizer, "vocab_size", None)) + 1


def mlm_mask_id(tokenizer: object) -> int:
    """The id of ``[MASK]`` added after a tokenizer's own ids (``tokenizer.vocab_size``)."""
    return mlm_vocab_size(tokenizer) - 1


def text_windows(ids: Tensor, block_size: int, n: int, seed: int = 0) -> Tensor:
    """``n`` windows of ``block_size`` tokens from random places of the 1-D ``ids``: long ``[n, block_size]``."""
    check_int("text_windows", "block_size", block_size)
    check_int("text_windows", "n", n)
    if not isinstance(ids, Tensor) or ids.dim() != 1 or len(ids) < block_size:
        raise ValueError(f"text_windows: ids must be 1-D with at least block_size={block_size} ids, got "
                         f"{shape_text(ids)}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(ids) - block_size + 1, (n,), generator=g)
    return ids[starts.to(ids.device).unsqueeze(1) + torch.arange(block_size, device=ids.device)].long()


# --- a tiny BERT ---------------------------------------------------------------------------------------


class BertMLM(nn.Module):
    """Token embedding + learned positions + ``n_layers`` pre-norm blocks (``TransformerEncoder``), then BERT's
    MLM head: Linear, GELU, LayerNorm and a projection to the vocabulary whose weight is the token embedding when
    ``tie`` (plus a bias). ``forward(tokens [B, T], mask=None) -> logits [B, T, vocab_size]``; no causal mask: every
    position sees the whole sequence."""

    def __init__(self, vocab_size: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 d_ff: int | None = None, max_len: int = 128, dropout: float = 0.0, tie: bool = True) -> None:
        super().__init__()
        check_int("BertMLM", "vocab_size", vocab_size, 2)
        self.encoder = TransformerEncoder(vocab_size, d_model, n_heads, n_layers, d_ff or 4 * d_model, max_len,
                                          dropout, pos="learned")
        self.transform = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.LayerNorm(d_model))
        self.decoder = nn.Linear(d_model, vocab_size)
        # BERT initialises every embedding N(0, 0.02^2): tied logits start near uniform, and the positions (N(0, 1)
        # by default) must be as small as the tokens, or they drown out which token sits where
        nn.init.normal_(self.encoder.embed.weight, std=0.02)
        nn.init.normal_(self.encoder.pos.embedding.weight, std=0.02)  # type: ignore[union-attr]
        if tie:
            self.decoder.weight = self.encoder.embed.weight
        self.tied = tie

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        hidden, _ = self.encoder(tokens, mask)
        return self.decoder(self.transform(hidden))


def mlm_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """``loss_fn`` for ``amla.Trainer``: cross-entropy of ``model(inputs)`` at the labelled positions only."""
    inputs, labels = batch[0], batch[1]
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=IGNORE_INDEX)


def masked_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Share of the labelled positions (``labels != -100``) where ``logits.argmax(-1)`` is the label."""
    if not isinstance(logits, Tensor) or not isinstance(labels, Tensor) or logits.shape[:-1] != labels.shape:
        raise ValueError(f"masked_accuracy: logits must be [..., V] with labels [...], got {shape_text(logits)} "
                         f"and {shape_text(labels)}")
    keep = labels != IGNORE_INDEX
    if not bool(keep.any()):
        raise ValueError("masked_accuracy: no labelled position (every label is -100)")
    return float((logits.argmax(-1)[keep] == labels[keep]).float().mean())


# --- T5: every task is text to text ----------------------------------------------------------------------


@dataclass(frozen=True)
class TextToTextTask:
    """Train/validation/test pairs (tagged ``"reverse"`` or ``"sort"``) and one vocabulary for both sides."""

    train: PairSet
    val: PairSet
    test: PairSet
    vocab: Vocab


TASKS: dict[str, Callable[[str], str]] = {"reverse": lambda s: s[::-1], "sort": lambda s: "".join(sorted(s))}


def text_to_text_task(n_train: int, n_val: int, n_test: int, *, min_len: int = 3, max_len: int = 8,
                      n_symbols: int = 8, seed: int = 0) -> TextToTextTask:
    """T5's framing on two toy tasks: source ``"reverse: " + s`` -> target ``s[::-1]`` and ``"sort: " + s`` ->
    ``sorted(s)``, one model for both, told apart only by the prefix. ``s`` has ``min_len..max_len`` symbols from
    the first ``n_symbols`` letters; each split holds both tasks on the same strings (so only the prefix tells the
    model what to do; one more ``reverse`` when its size is odd), in random order, on strings no other split contains. The global
    random state is not touched."""
    for name, value, least in [("n_train", n_train, 2), ("n_val", n_val, 0), ("n_test", n_test, 0),
                               ("min_len", min_len, 2), ("max_len", max_len, 2), ("n_symbols", n_symbols, 2),
                               ("seed", seed, 0)]:
        check_int("text_to_text_task", name, value, least)
    if n_symbols > 26 or min_len > max_len:
        raise ValueError(f"text_to_text_task: need n_symbols <= 26 and min_len <= max_len, got n_symbols={n_symbols}, "
                         f"lengths {min_len}..{max_len}")
    alphabet = string.ascii_lowercase[:n_symbols]
    sizes = [n_train, n_val, n_test]
    need = sum((n + 1) // 2 for n in sizes)  # one string per pair of pairs: a split never holds a string twice
    if need > sum(n_symbols ** k for k in range(min_len, max_len + 1)) // 2:
        raise ValueError(f"text_to_text_task: {need} distinct strings asked for, too many for lengths "
                         f"{min_len}..{max_len} over {n_symbols} symbols")
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < need:
        seen.add("".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len))))
    strings = sorted(seen)
    rng.shuffle(strings)
    splits, start = [], 0
    for n in sizes:
        chunk, start = strings[start:start + (n + 1) // 2], start + (n + 1) // 2
        rows = [(f"{task}: {s}", TASKS[task](s), task) for s in chunk for task in TASKS][:n]
        rng.shuffle(rows)
        splits.append(PairSet([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]))
    vocab = Vocab(sorted(set(alphabet) | set("".join(TASKS)) | {":", " "}))
    return TextToTextTask(*splits, vocab=vocab)
