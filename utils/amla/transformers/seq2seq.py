"""A GRU encoder-decoder, with and without additive (Bahdanau) attention (Hour 03; Hour 05 compares with it).

- ``additive_attention``: scores ``e_j = v^T tanh(W_q s + W_k h_j)``, padding masked *before* the
  softmax over the source positions, context ``c = sum_j a_j h_j``. ``AdditiveAttention``, ``AttentionDecoder``
  and ``Seq2Seq.build`` take an ``attention_fn`` of the same signature (a student's Exercise 3.1) to run on.
- ``Encoder``: embedding + (bidirectional) GRU over the padded source; returns every position's
  state and a final state.
- ``AttentionDecoder``: one ``step`` reads the previous token and the previous state, attends over the
  encoder states with that state as the query, updates a GRU cell with [token; context] and predicts
  the next token from [state; context; token].
- ``PlainDecoder``: the baseline without attention: every step sees only the *final* encoder state.
- ``teacher_forcing_loss``: the training loss (the ground-truth previous token is fed at each step);
  ``greedy_decode``: inference (the model's own previous token is fed, until ``<eos>``).

Conventions: ids ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2 (``amla.transformers.tasks``); a mask is a bool tensor
that is True at real tokens and False at padding, like the boolean ``attn_mask`` of PyTorch's
``scaled_dot_product_attention``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from amla.toolkit.errors import check_hook, shape_text
from amla.toolkit.train import eval_batches
from amla.transformers.tasks import BOS_ID, EOS_ID, PAD_ID

__all__ = [
    "AdditiveAttention",
    "AttentionDecoder",
    "Encoder",
    "Memory",
    "PlainDecoder",
    "Seq2Seq",
    "additive_attention",
    "alignments",
    "exact_match",
    "greedy_decode",
    "monotone_fraction",
    "seq2seq_loss",
    "teacher_forced_logits",
    "teacher_forcing_loss",
]


# --- additive attention ---------------------------------------------------------------------------


def _attend(q_proj: torch.Tensor, k_proj: torch.Tensor, values: torch.Tensor, v: torch.Tensor,
            mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores from projected query [B, A] and keys [B, S, A]; masked softmax over S; context from ``values``."""
    scores = torch.tanh(q_proj.unsqueeze(1) + k_proj) @ v  # [B, S]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # before the softmax: padding gets exactly 0
    weights = scores.softmax(dim=-1)
    context = (weights.unsqueeze(1) @ values).squeeze(1)  # [B, D]
    return context, weights


def _check_attention(query: torch.Tensor, keys: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor,
                     v: torch.Tensor, mask: torch.Tensor | None) -> None:
    if not isinstance(query, torch.Tensor) or query.dim() != 2:
        raise ValueError(f"additive_attention: query must be [B, Dq], got {shape_text(query)}")
    if not isinstance(keys, torch.Tensor) or keys.dim() != 3 or keys.shape[0] != query.shape[0]:
        raise ValueError(f"additive_attention: keys must be [B, S, Dk] with B={query.shape[0]}, got {shape_text(keys)}")
    a = v.shape[0] if isinstance(v, torch.Tensor) and v.dim() == 1 else None
    if a is None:
        raise ValueError(f"additive_attention: v must be a vector [A], got {shape_text(v)}")
    if not isinstance(W_q, torch.Tensor) or tuple(W_q.shape) != (query.shape[1], a):
        raise ValueError(f"additive_attention: W_q must be [Dq, A] = {(query.shape[1], a)}, got {shape_text(W_q)}")
    if not isinstance(W_k, torch.Tensor) or tuple(W_k.shape) != (keys.shape[2], a):
        raise ValueError(f"additive_attention: W_k must be [Dk, A] = {(keys.shape[2], a)}, got {shape_text(W_k)}")
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                             or tuple(mask.shape) != tuple(keys.shape[:2])):
        raise ValueError(f"additive_attention: mask must be a bool tensor [B, S] = {tuple(keys.shape[:2])} "
                         f"(True at real tokens), got {shape_text(mask)}"
                         + (f" of {mask.dtype}" if isinstance(mask, torch.Tensor) else ""))


def additive_attention(query: torch.Tensor, keys: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor,
                       v: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Bahdanau attention of one query per sequence over its keys; returns (context [B, Dk], weights [B, S]).

    ``query`` [B, Dq] (the decoder state), ``keys`` [B, S, Dk] (the encoder states, also the values),
    ``W_q`` [Dq, A], ``W_k`` [Dk, A], ``v`` [A], ``mask`` [B, S] bool, True at real tokens.
    ``e_j = v . tanh(query W_q + keys_j W_k)``; ``a = softmax_j(e)`` with padding set to -inf first;
    ``context = sum_j a_j keys_j``.
    """
    _check_attention(query, keys, W_q, W_k, v, mask)
    return _attend(query @ W_q, keys @ W_k, keys, v, mask)


AttentionFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""``attention_fn(query, keys, W_q, W_k, v, mask) -> (context, weights)``, the signature of ``additive_attention``."""


class AdditiveAttention(nn.Module):
    """``additive_attention`` with learned ``W_q``, ``W_k``, ``v``; the key projection can be computed once per sequence.

    ``attention_fn``: a function with the signature of ``additive_attention`` (e.g. a student's Exercise 3.1) that
    computes every call instead; it projects the keys itself, so ``projected_keys`` is then not used.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int, attention_fn: AttentionFn | None = None):
        super().__init__()
        self.attention_fn = check_hook("AdditiveAttention", "attention_fn", attention_fn,
                                       "additive_attention(query, keys, W_q, W_k, v, mask) -> (context, weights)")
        self.W_q = nn.Parameter(torch.empty(query_dim, attn_dim))
        self.W_k = nn.Parameter(torch.empty(key_dim, attn_dim))
        self.v = nn.Parameter(torch.empty(attn_dim))
        for p, fan_in in ((self.W_q, query_dim), (self.W_k, key_dim), (self.v, attn_dim)):
            nn.init.uniform_(p, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))  # as nn.Linear does

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """``keys W_k`` [B, S, A]: it does not change while decoding, so compute it once."""
        return keys @ self.W_k

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor | None = None,
                projected_keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.attention_fn is not None:
            if mask is None:  # the exercise's signature takes a mask: "every position is real"
                mask = torch.ones(keys.shape[:2], dtype=torch.bool, device=keys.device)
            return self.attention_fn(query, keys, self.W_q, self.W_k, self.v, mask)
        if projected_keys is None:
            return additive_attention(query, keys, self.W_q, self.W_k, self.v, mask)
        return _attend(query @ self.W_q, projected_keys, keys, self.v, mask)


# --- encoder ----------------------------------------------------------------------------------


class Encoder(nn.Module):
    """Embedding + GRU over right-padded ids [B, S]; padding is skipped (packed sequences).

    Returns ``values`` [B, S, D] (every position's state; zeros at padding) and ``final`` [B, D]: the
    last state of the forward GRU, concatenated with the backward GRU's state after reading back to
    position 0 when ``bidirectional``. D = hidden (x 2 when bidirectional).
    """

    def __init__(self, vocab_size: int, emb_dim: int, hidden: int, bidirectional: bool = True):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD_ID)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=bidirectional)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, src: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if src.dim() != 2 or tuple(mask.shape) != tuple(src.shape):
            raise ValueError(f"Encoder: src must be ids [B, S] with a mask of the same shape, got src "
                             f"{shape_text(src)} and mask {shape_text(mask)}")
        lengths = mask.sum(1)
        if bool((lengths == 0).any()):
            raise ValueError("Encoder: every source needs at least one non-padding token; found an empty one")
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(src), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, h = self.rnn(packed)  # h: [directions, B, hidden]
        values, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return values, torch.cat(list(h), dim=-1)


# --- decoders ---------------------------------------------------------------------------------


@dataclass
class Memory:
    """What the decoder reads from the encoder: ``values`` [B, S, D], ``mask`` [B, S], ``final`` [B, D],
    and ``keys`` [B, S, A], the attention's key projection (None for the plain decoder, and when the decoder's
    ``attention_fn`` projects the keys itself)."""

    values: torch.Tensor
    mask: torch.Tensor
    final: torch.Tensor
    keys: torch.Tensor | None = None


class AttentionDecoder(nn.Module):
    """GRU decoder with additive attention over the encoder states (Bahdanau et al., 2015).

    ``start(values, mask, final)`` -> (state [B, H], memory); ``step(prev, state, memory)`` ->
    (logits [B, V], new state, attention weights [B, S]). ``attention_fn`` (see ``AdditiveAttention``) computes
    the attention of every step instead of the built-in one; ``memory.keys`` is then None.
    """

    def __init__(self, vocab_size: int, emb_dim: int, hidden: int, enc_dim: int, attn_dim: int,
                 attention_fn: AttentionFn | None = None):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD_ID)
        self.init = nn.Linear(enc_dim, hidden)
        self.attention = AdditiveAttention(hidden, enc_dim, attn_dim, attention_fn)
        self.cell = nn.GRUCell(emb_dim + enc_dim, hidden)
        self.out = nn.Linear(hidden + enc_dim + emb_dim, vocab_size)

    def start(self, values: torch.Tensor, mask: torch.Tensor, final: torch.Tensor) -> tuple[torch.Tensor, Memory]:
        keys = self.attention.project_keys(values) if self.attention.attention_fn is None else None
        memory = Memory(values, mask, final, keys)
        return torch.tanh(self.init(final)), memory

    def step(self, prev: torch.Tensor, state: torch.Tensor, memory: Memory
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        emb = self.embed(prev)  # [B, E]
        context, weights = self.attention(state, memory.values, memory.mask, memory.keys)  # query: s_{i-1}
        state = self.cell(torch.cat([emb, context], dim=-1), state)  # s_i from y_{i-1}, c_i, s_{i-1}
        logits = self.out(torch.cat([state, context, emb], dim=-1))
        return logits, state, weights


class PlainDecoder(nn.Module):
    """The baseline: a GRU decoder that sees the source only through the final encoder state.

    The final state initializes the decoder and is fed again at every step (as the fixed context of
    Cho et al., 2014), so the *only* thing missing compared with ``AttentionDecoder`` is attention.
    ``step`` returns None in place of attention weights.
    """

    def __init__(self, vocab_size: int, emb_dim: int, hidden: int, enc_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD_ID)
        self.init = nn.Linear(enc_dim, hidden)
        self.cell = nn.GRUCell(emb_dim + enc_dim, hidden)
        self.out = nn.Linear(hidden + enc_dim + emb_dim, vocab_size)

    def start(self, values: torch.Tensor, mask: torch.Tensor, final: torch.Tensor) -> tuple[torch.Tensor, Memory]:
        return torch.tanh(self.init(final)), Memory(values, mask, final)

    def step(self, prev: torch.Tensor, state: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor, None]:
        emb = self.embed(prev)
        state = self.cell(torch.cat([emb, memory.final], dim=-1), state)
        logits = self.out(torch.cat([state, memory.final, emb], dim=-1))
        return logits, state, None


class Seq2Seq(nn.Module):
    """Encoder + decoder. ``forward(src, tgt)`` gives teacher-forced logits [B, T, V] for targets ``tgt``."""

    def __init__(self, encoder: Encoder, decoder: AttentionDecoder | PlainDecoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    @classmethod
    def build(cls, src_vocab: int, tgt_vocab: int, *, emb_dim: int = 32, hidden: int = 64,
              attn_dim: int = 64, attention: bool = True, bidirectional: bool = True,
              attention_fn: AttentionFn | None = None) -> "Seq2Seq":
        """A model of the usual shape: decoder state as large as the encoder's output. ``attention_fn``: the
        attention every decoder step uses instead of the built-in one (see ``AdditiveAttention``)."""
        if attention_fn is not None and not attention:
            raise ValueError("Seq2Seq.build: attention_fn is given but attention=False (the plain decoder has none)")
        encoder = Encoder(src_vocab, emb_dim, hidden, bidirectional)
        d = encoder.out_dim
        decoder = (AttentionDecoder(tgt_vocab, emb_dim, d, d, attn_dim, attention_fn) if attention
                   else PlainDecoder(tgt_vocab, emb_dim, d, d))
        return cls(encoder, decoder)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, Memory]:
        """(initial decoder state, memory) for source ids [B, S]."""
        mask = src != PAD_ID
        values, final = self.encoder(src, mask)
        return self.decoder.start(values, mask, final)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        state, memory = self.encode(src)
        return teacher_forced_logits(self.decoder, state, memory, tgt)


# --- training and inference -----------------------------------------------------------------------


def _teacher_forced(decoder: nn.Module, state: torch.Tensor, memory: Memory, targets: torch.Tensor
                    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    if targets.dim() != 2:
        raise ValueError(f"targets must be ids [B, T], got {shape_text(targets)}")
    prev = torch.full((targets.shape[0],), BOS_ID, dtype=torch.long, device=targets.device)
    logits, weights = [], []
    for t in range(targets.shape[1]):
        step_logits, state, w = decoder.step(prev, state, memory)
        logits.append(step_logits)
        weights.append(w)
        prev = targets[:, t]  # teacher forcing: the ground truth, not step_logits.argmax(-1)
    return torch.stack(logits, dim=1), weights


def teacher_forced_logits(decoder: nn.Module, state: torch.Tensor, memory: Memory, targets: torch.Tensor) -> torch.Tensor:
    """Logits [B, T, V]: step t is fed ``<bos>`` (t = 0) or the true token ``targets[:, t - 1]``, and predicts ``targets[:, t]``."""
    return _teacher_forced(decoder, state, memory, targets)[0]


@torch.no_grad()
def alignments(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Attention weights [N, T, S] while the decoder writes the true targets (teacher forcing).

    For an example that greedy decoding gets right, these are exactly the weights of ``greedy_decode``.
    """
    if not isinstance(getattr(model.decoder, "attention", None), AdditiveAttention):
        raise TypeError(f"alignments needs a decoder with attention, got {type(model.decoder).__name__}")
    out = []
    for s, t in eval_batches(model, (src, tgt), batch_size):
        state, memory = model.encode(s)
        out.append(torch.stack(_teacher_forced(model.decoder, state, memory, t)[1], dim=1).cpu())
    return torch.cat(out)


def teacher_forcing_loss(decoder: nn.Module, state: torch.Tensor, memory: Memory, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the non-padding target tokens, with teacher forcing (Exercise 3.2)."""
    logits = teacher_forced_logits(decoder, state, memory, targets)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD_ID)


def seq2seq_loss(model: Seq2Seq, batch: Sequence[torch.Tensor]) -> torch.Tensor:
    """``loss_fn`` for ``amla.Trainer`` with batches (src [B, S], tgt [B, T])."""
    src, tgt = batch[0], batch[1]
    state, memory = model.encode(src)
    return teacher_forcing_loss(model.decoder, state, memory, tgt)


@torch.no_grad()
def greedy_decode(model: Seq2Seq, src: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Feed the model its own most likely token until every sequence has said ``<eos>`` (or ``max_len`` steps).

    Returns tokens [B, L] (L <= max_len; ``<pad>`` after a sequence's ``<eos>``) and the attention
    weights [B, L, S] of each step (None for a decoder without attention).
    """
    if src.dim() != 2:
        raise ValueError(f"greedy_decode: src must be ids [B, S], got {shape_text(src)}")
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"greedy_decode: max_len must be a positive int, got {max_len!r}")
    state, memory = model.encode(src)
    prev = torch.full((src.shape[0],), BOS_ID, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    tokens, weights = [], []
    for _ in range(max_len):
        logits, state, w = model.decoder.step(prev, state, memory)
        prev = logits.argmax(-1).masked_fill(done, PAD_ID)
        tokens.append(prev)
        weights.append(w)
        done |= prev == EOS_ID
        if bool(done.all()):
            break
    stacked = torch.stack(weights, dim=1) if weights[0] is not None else None
    return torch.stack(tokens, dim=1), stacked


@torch.no_grad()
def exact_match(model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Per example, whether greedy decoding reproduces the target exactly (up to and including ``<eos>``): bool [N]."""
    if src.shape[0] != tgt.shape[0]:
        raise ValueError(f"exact_match: src {shape_text(src)} and tgt {shape_text(tgt)} must have the same number of rows")
    hits = []
    for s, t in eval_batches(model, (src, tgt), batch_size):
        pred, _ = greedy_decode(model, s, t.shape[1])
        pred = F.pad(pred, (0, t.shape[1] - pred.shape[1]), value=PAD_ID)
        hits.append((pred == t).all(dim=1).cpu())
    return torch.cat(hits)


def monotone_fraction(weights: torch.Tensor, groups: Sequence[Sequence[int]] | None = None) -> float:
    """Fraction of consecutive output steps whose most-attended input position does not move backwards.

    ``weights`` [N, T, S] (or [T, S]). Each group is a sequence of output positions; the pairs of
    neighbours inside a group count (default: one group, all T steps). With
    ``amla.transformers.tasks.ISO_FIELDS`` only the steps inside the year, the month and the day count.
    """
    if weights.dim() == 2:
        weights = weights.unsqueeze(0)
    if weights.dim() != 3:
        raise ValueError(f"monotone_fraction: weights must be [N, T, S] or [T, S], got {shape_text(weights)}")
    groups = [range(weights.shape[1])] if groups is None else groups
    pairs = [(g[k], g[k + 1]) for g in groups for k in range(len(g) - 1)]
    if not pairs or not all(0 <= t < weights.shape[1] for pair in pairs for t in pair):
        raise ValueError(f"monotone_fraction: groups {[list(g) for g in groups]} need pairs of output steps "
                         f"in 0..{weights.shape[1] - 1}")
    where = weights.argmax(dim=-1)  # [N, T]: the input position each output step looks at most
    before, after = torch.tensor(pairs).T
    return (where[:, after] >= where[:, before]).float().mean().item()
