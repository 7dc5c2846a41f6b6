"""What every task shares: the character ``Vocab`` with its special tokens, and ``PairSet`` of text pairs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["BOS", "BOS_ID", "EOS", "EOS_ID", "PAD", "PAD_ID", "SPECIALS", "PairSet", "Vocab"]

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
"""The ids of the special tokens, the same in every ``Vocab``."""


class Vocab:
    """Characters <-> ids. Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>``; the symbols follow in the given order."""

    def __init__(self, symbols: Iterable[str]):
        symbols = list(dict.fromkeys(symbols))  # unique, order kept
        for s in symbols:
            if not isinstance(s, str) or len(s) != 1:
                raise ValueError(f"Vocab: symbols must be single characters, got {s!r}")
        self.itos: list[str] = [*SPECIALS, *symbols]
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = PAD_ID, BOS_ID, EOS_ID

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "Vocab":
        """The sorted set of characters that occur in ``texts``."""
        return cls(sorted({c for text in texts for c in text}))

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        shown = "".join(self.itos[len(SPECIALS):])
        return f"Vocab({len(self)} ids: 3 specials + {shown!r})"

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """The ids of ``text``'s characters, optionally framed by ``<bos>`` / ``<eos>``."""
        if not isinstance(text, str):
            raise TypeError(f"Vocab.encode expected a str, got {type(text).__name__}")
        try:
            ids = [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(f"Vocab.encode: character {err.args[0]!r} of {text!r} is not in the vocabulary "
                             f"{''.join(self.itos[len(SPECIALS):])!r}") from None
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def encode_batch(self, texts: Sequence[str], *, bos: bool = False, eos: bool = False,
                     length: int | None = None) -> torch.Tensor:
        """A LongTensor [N, L] of ids, right-padded with ``<pad>`` to the longest text (or to ``length``)."""
        if isinstance(texts, str):
            raise TypeError("Vocab.encode_batch expected a list of str, got one str; wrap it in a list")
        rows = [self.encode(t, bos=bos, eos=eos) for t in texts]
        longest = max((len(r) for r in rows), default=0)
        width = longest if length is None else length
        if width < longest:
            raise ValueError(f"Vocab.encode_batch: length={length} is shorter than the longest text ({longest} ids)")
        out = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """The text of ``ids``: stops at the first ``<eos>``, skips ``<pad>`` and ``<bos>``."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"Vocab.decode expected one sequence of ids [L], got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        chars = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"Vocab.decode: id {i} is outside the vocabulary (0..{len(self.itos) - 1})")
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                chars.append(self.itos[i])
        return "".join(chars)

    def decode_batch(self, ids: torch.Tensor) -> list[str]:
        """``decode`` of every row of a [N, L] tensor."""
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"Vocab.decode_batch expected a tensor of ids [N, L], got {shape}")
        return [self.decode(row) for row in ids]


@dataclass(frozen=True)
class PairSet:
    """(source, target) text pairs, with a tag per pair (the format or variant that produced it)."""

    sources: list[str]
    targets: list[str]
    tags: list[str]

    def __post_init__(self) -> None:
        if not len(self.sources) == len(self.targets) == len(self.tags):
            raise ValueError(f"PairSet: {len(self.sources)} sources, {len(self.targets)} targets and "
                             f"{len(self.tags)} tags; expected the same number of each")

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[str, str, str]:
        return self.sources[i], self.targets[i], self.tags[i]

    def tensors(self, src_vocab: Vocab, tgt_vocab: Vocab) -> tuple[torch.Tensor, torch.Tensor]:
        """(src [N, S], tgt [N, T]): padded ids; every target ends with ``<eos>`` (no ``<bos>``, the decoder adds it)."""
        return src_vocab.encode_batch(self.sources), tgt_vocab.encode_batch(self.targets, eos=True)

    def examples(self, src_vocab: Vocab, tgt_vocab: Vocab, max_source: int | None = None
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One ``(source ids, target ids)`` pair of 1-D tensors per text pair, unpadded (``pad_collate`` pads each
        batch to its own longest); every target ends with ``<eos>``. Truncation policy: a source longer than
        ``max_source`` ids keeps its first ``max_source``; targets are never cut (a cut target would teach the
        decoder to stop before the end)."""
        if max_source is not None and (not isinstance(max_source, int) or max_source < 1):
            raise ValueError(f"PairSet.examples: max_source must be a positive int or None, got {max_source!r}")
        return [(torch.tensor(src_vocab.encode(s)[:max_source], dtype=torch.long),
                 torch.tensor(tgt_vocab.encode(t, eos=True), dtype=torch.long))
                for s, t in zip(self.sources, self.targets)]

    def subset(self, keep: Callable[[str, str, str], bool]) -> "PairSet":
        """The pairs for which ``keep(source, target, tag)`` is true."""
        rows = [row for row in zip(self.sources, self.targets, self.tags) if keep(*row)]
        return PairSet([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
