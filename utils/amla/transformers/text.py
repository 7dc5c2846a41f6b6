"""Text for Hour 06: the corpus, a character tokenizer, a small byte-pair encoding, and training windows.

``load_corpus()`` returns tiny Shakespeare when it is in the data directory (or can be downloaded,
sha256-verified, through ``amla.toolkit.data``) and otherwise Python's own reference text, which ships with every
Python (``pydoc_data.topics``), so the hour runs offline too. It prints which corpus is in use.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from amla.toolkit import data
from amla.toolkit.errors import check_hook, check_int

__all__ = [
    "BPETokenizer", "CharTokenizer", "Corpus", "TokenWindows", "load_corpus", "merge_pair", "pair_counts",
    "train_bpe",
]


@dataclass(frozen=True)
class Corpus:
    name: str
    text: str


def _python_reference_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def load_corpus(download: bool = True, verbose: bool = True) -> Corpus:
    """Tiny Shakespeare (1.1 M characters) if present or downloadable, else Python's reference text (0.47 M)."""
    try:
        path = data.fetch("tinyshakespeare", download=download)
        corpus = Corpus("tinyshakespeare", path.read_text(encoding="utf-8"))
        where = str(path)
    except data.DataMissing as err:
        corpus = Corpus("python-reference", _python_reference_text())
        where = f"pydoc_data.topics, the built-in fallback ({err})"
    if verbose:
        print(f"Corpus in use: {corpus.name}, {len(corpus.text):,} characters, from {where}")
    return corpus


class CharTokenizer:
    """One token per distinct character of the text it is built from."""

    def __init__(self, text: str) -> None:
        if not text:
            raise ValueError("CharTokenizer needs a non-empty text to collect its characters from")
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"characters {unknown[:5]} are not in the tokenizer's {self.vocab_size} characters")
        return torch.tensor([self.stoi[c] for c in text], dtype=torch.long)

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        values = ids.tolist() if isinstance(ids, Tensor) else ids
        return "".join(self.chars[i] for i in values)


# --- byte-pair encoding -----------------------------------------------------------------------------


def pair_counts(ids: Sequence[int]) -> dict[tuple[int, int], int]:
    """How often each pair of neighbours occurs, overlapping pairs included ("aaa" has ("a", "a") twice)."""
    return dict(Counter(zip(ids, ids[1:])))


def merge_pair(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` by ``new_id``, scanning left to right; a merged token is not
    reused for the next pair ("aaa" with ("a", "a") becomes [new, "a"])."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


PairCounts = Callable[[list[int]], Mapping[tuple[int, int], int]]
MergePair = Callable[[list[int], tuple[int, int], int], list[int]]


def _hook(owner: str, name: str, fn: Callable[..., object] | None, default: Callable[..., object],
          signature: str) -> Callable[..., object]:
    return default if fn is None else check_hook(owner, name, fn, signature)


def _counted(owner: str, counts: object) -> Mapping[tuple[int, int], int]:
    if not isinstance(counts, Mapping):
        raise TypeError(f"{owner}: pair_counts_fn must return a dict {{(a, b): count}}, got {type(counts).__name__}")
    return counts


def _merged(owner: str, ids: list[int], merged: object, pair: tuple[int, int]) -> list[int]:
    if not isinstance(merged, list):
        raise TypeError(f"{owner}: merge_pair_fn must return a list of ids, got {type(merged).__name__}")
    if len(merged) >= len(ids):
        raise ValueError(f"{owner}: merging {pair} did not shorten the list of {len(ids)} ids (got {len(merged)}): "
                         "pair_counts_fn reported a pair that does not occur, or merge_pair_fn did not merge it")
    return merged


def train_bpe(text: str, n_merges: int, *, pair_counts_fn: PairCounts | None = None,
              merge_pair_fn: MergePair | None = None) -> list[tuple[int, int]]:
    """The merges of a byte-level BPE: start from the UTF-8 bytes (ids 0-255); merge ``i`` creates id ``256 + i``
    from the most frequent pair (ties: the pair that occurs first in the text). Stops early when no pair occurs
    twice.

    ``pair_counts_fn`` and ``merge_pair_fn`` (default: this module's ``pair_counts`` and ``merge_pair``) count the
    pairs and merge one; Hour 06 passes the student's. Only their answers matter, not the order of a dict's keys.
    """
    if not isinstance(text, str):
        raise TypeError(f"train_bpe: text must be a str, got {type(text).__name__}")
    check_int("train_bpe", "n_merges", n_merges, least=0)
    count = _hook("train_bpe", "pair_counts_fn", pair_counts_fn, pair_counts, "pair_counts(ids) -> dict")
    merge = _hook("train_bpe", "merge_pair_fn", merge_pair_fn, merge_pair, "merge_pair(ids, pair, new_id) -> list")
    ids, merges = list(text.encode("utf-8")), []
    for i in range(n_merges):
        counts = _counted("train_bpe", count(ids))
        top = max(counts.values(), default=0)
        if top < 2:
            break
        tied = [p for p, c in counts.items() if c == top]
        if len(tied) == 1:
            best = tied[0]
        else:  # the tied pair that occurs first in the text, whatever the order of the dict's keys
            tied_set = set(tied)
            best = next((p for p in zip(ids, ids[1:]) if p in tied_set), tied[0])
        merges.append(best)
        ids = _merged("train_bpe", ids, merge(ids, best, 256 + i), best)
    return merges


class BPETokenizer:
    """Encode with merges learned by ``train_bpe``; decoding expands ids back to bytes.

    ``pair_counts_fn`` and ``merge_pair_fn`` (default: this module's ``pair_counts`` and ``merge_pair``) are what
    ``encode`` counts and merges with; Hour 06 passes the student's.
    """

    def __init__(self, merges: Sequence[tuple[int, int]], *, pair_counts_fn: PairCounts | None = None,
                 merge_pair_fn: MergePair | None = None) -> None:
        self.merges = [tuple(m) for m in merges]
        self.vocab = {i: bytes([i]) for i in range(256)}
        for i, pair in enumerate(self.merges):
            if len(pair) != 2 or not all(isinstance(t, numbers.Integral) and 0 <= t < 256 + i for t in pair):
                raise ValueError(f"BPETokenizer: merge {i} must be a pair of ids below {256 + i} (the bytes and the "
                                 f"earlier merges), got {pair}")
            a, b = pair
            self.vocab[256 + i] = self.vocab[a] + self.vocab[b]
        self.rank = {pair: i for i, pair in enumerate(self.merges)}
        self.pair_counts_fn = _hook("BPETokenizer", "pair_counts_fn", pair_counts_fn, pair_counts,
                                 "pair_counts(ids) -> dict")
        self.merge_pair_fn = _hook("BPETokenizer", "merge_pair_fn", merge_pair_fn, merge_pair,
                                "merge_pair(ids, pair, new_id) -> list")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Apply the merges in the order they were learned: always the earliest-learned pair present next."""
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode: text must be a str, got {type(text).__name__}")
        ids = list(text.encode("utf-8"))
        none = len(self.rank)
        while len(ids) > 1:
            counts = _counted("BPETokenizer.encode", self.pair_counts_fn(ids))
            pair = min((p for p, c in counts.items() if c), key=lambda p: self.rank.get(p, none), default=None)
            if pair not in self.rank:
                break
            ids = _merged("BPETokenizer.encode", ids, self.merge_pair_fn(ids, pair, 256 + self.rank[pair]), pair)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        unknown = [i for i in ids if i not in self.vocab]
        if unknown:
            raise ValueError(f"BPETokenizer.decode: ids {unknown[:5]} are not in the vocabulary of {self.vocab_size}")
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")


# --- training windows ---------------------------------------------------------------------------------


class TokenWindows(torch.utils.data.Dataset):
    """Every window of ``block_size + 1`` tokens of ``ids``: example ``i`` is (ids[i:i+T], ids[i+1:i+T+1]).

    ``collate`` builds a batch with one gather, so ``Trainer(..., collate_fn=windows.collate)`` stays fast.
    """

    def __init__(self, ids: Tensor, block_size: int) -> None:
        if ids.dim() != 1 or len(ids) <= block_size:
            raise ValueError(f"need a 1-D tensor of more than block_size={block_size} token ids, got shape {tuple(ids.shape)}")
        self.ids, self.block_size = ids, block_size
        self._offsets = torch.arange(block_size + 1)

    def __len__(self) -> int:
        return len(self.ids) - self.block_size

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range [0, {len(self)})")
        return i

    def collate(self, starts: Sequence[int]) -> tuple[Tensor, Tensor]:
        chunk = self.ids[torch.as_tensor(starts).unsqueeze(1) + self._offsets]  # [B, T + 1]
        return chunk[:, :-1], chunk[:, 1:]

    def tiles(self, n: int | None = None) -> tuple[Tensor, Tensor]:
        """Non-overlapping windows from the start (the first ``n`` of them): a fixed evaluation set."""
        count = (len(self.ids) - 1) // self.block_size
        starts = list(range(0, count * self.block_size, self.block_size))[: n or count]
        return self.collate(starts)
