"""Text for Hour 06: the corpus, a character tokenizer, a small byte-pair encoding, and training windows.

``load_corpus()`` returns tiny Shakespeare when it is in the data directory (or can be downloaded,
sha256-verified, through ``amla.toolkit.data``) and otherwise Python's own reference text, which ships with every
Python (``pydoc_data.topics``), so the hour runs offline too. It prints which corpus is in use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from amla.toolkit import data

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


def train_bpe(text: str, n_merges: int) -> list[tuple[int, int]]:
    """The merges of a byte-level BPE: start from the UTF-8 bytes (ids 0-255); merge ``i`` creates id ``256 + i``
    from the most frequent pair (ties: the pair seen first). Stops early when no pair occurs twice."""
    ids, merges = list(text.encode("utf-8")), []
    for i in range(n_merges):
        counts = pair_counts(ids)
        if not counts:
            break
        best = max(counts, key=counts.__getitem__)  # dicts keep first-seen order: ties go to the earliest pair
        if counts[best] < 2:
            break
        merges.append(best)
        ids = merge_pair(ids, best, 256 + i)
    return merges


class BPETokenizer:
    """Encode with merges learned by ``train_bpe``; decoding expands ids back to bytes."""

    def __init__(self, merges: Sequence[tuple[int, int]]) -> None:
        self.merges = [tuple(m) for m in merges]
        self.vocab = {i: bytes([i]) for i in range(256)}
        for i, (a, b) in enumerate(self.merges):
            self.vocab[256 + i] = self.vocab[a] + self.vocab[b]
        self.rank = {pair: i for i, pair in enumerate(self.merges)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Apply the merges in the order they were learned: always the earliest-learned pair present next."""
        ids = list(text.encode("utf-8"))
        while len(ids) > 1:
            pair = min(pair_counts(ids), key=lambda p: self.rank.get(p, len(self.rank)))
            if pair not in self.rank:
                break
            ids = merge_pair(ids, pair, 256 + self.rank[pair])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
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
