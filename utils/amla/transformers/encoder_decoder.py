"""The encoder-decoder Transformer (Hour 05), built from the blocks of ``amla.transformers.nn`` (Hour 04).

- Masks: ``source_mask`` (padding, ``[B, 1, S]``), ``decoder_mask`` (causal and target padding,
  ``[B, 1, T, T]``), both bool with True = may attend.
- ``EncoderDecoder``: a ``TransformerEncoder`` over the source; a decoder of ``TransformerBlock``\\ s
  with causal self-attention and **cross-attention** (queries from the decoder, keys and values
  from the encoder's output, the *memory*); a linear layer to the target vocabulary. ``decoder_block`` is one
  decoder block's forward pass written out (its mask, then the three pre-norm residual branches).
- ``label_smoothed_cross_entropy``: the loss of Vaswani et al. (2017), equal to
  ``F.cross_entropy(..., label_smoothing=eps, ignore_index=PAD_ID)``; ``translation_loss`` is the
  ``loss_fn`` for ``amla.Trainer`` (teacher forcing).
- Decoding: ``greedy_decode``, ``beam_step`` and ``beam_search`` (with length normalisation),
  ``exact_match``; ``cross_attention_maps`` for ``amla.views.AttentionViewer``.

The exercises of Hour 05 plug in through explicit, optional parameters (the default is the function of this
module): ``EncoderDecoder(..., decoder_block_fn=...)`` (Exercise 5.1), ``translation_loss(..., loss=...)``
(Exercise 5.2), ``beam_search(..., beam_step_fn=...)`` and ``exact_match(..., beam_step_fn=...)`` (Exercise 5.3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.toolkit.errors import check_hook, shape_text
from amla.toolkit.train import eval_batches
from amla.transformers.attention import causal_mask
from amla.transformers.encoder import TransformerEncoder
from amla.transformers.nn import TransformerBlock
from amla.transformers.positions import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from amla.transformers.tasks import BOS_ID, EOS_ID, PAD_ID

__all__ = [
    "EncoderDecoder",
    "beam_search",
    "beam_step",
    "cross_attention_maps",
    "decoder_block",
    "decoder_mask",
    "exact_match",
    "greedy_decode",
    "label_smoothed_cross_entropy",
    "shift_right",
    "source_mask",
    "translation_loss",
]


def _ids(name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor) or t.dim() != 2 or t.is_floating_point():
        raise ValueError(f"{name} must be integer ids [B, T], got {shape_text(t)}")
    return t


# --- masks ------------------------------------------------------------------------------------------


def source_mask(src: Tensor) -> Tensor:
    """Bool ``[B, 1, S]``: True at the real source tokens. Every query (encoder or decoder) may look at them."""
    return (_ids("source_mask: src", src) != PAD_ID).unsqueeze(1)


def decoder_mask(tgt_in: Tensor) -> Tensor:
    """Bool ``[B, 1, T, T]``: query ``i`` may attend key ``j`` iff ``j <= i`` (causal) and token ``j`` is not padding."""
    t = _ids("decoder_mask: tgt_in", tgt_in).shape[1]
    return causal_mask(t, device=tgt_in.device) & (tgt_in != PAD_ID)[:, None, None, :]


def decoder_block(block: TransformerBlock, x: Tensor, memory: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
    """One pre-norm decoder block on ``x [B, T, d]``: causal self-attention (masked by ``decoder_mask(tgt_in)``),
    cross-attention from ``x`` to ``memory [B, S, d]`` (masked by ``src_mask [B, 1, S]``), the feed-forward net; each
    branch ``x = x + drop(f(norm(x)))``. The same computation as ``block(x, decoder_mask(tgt_in), memory, src_mask)``.
    """
    mask = decoder_mask(tgt_in)
    x = x + block.drop(block.self_attn(block.norm1(x), None, mask)[0])
    x = x + block.drop(block.cross_attn(block.norm_cross(x), memory, src_mask)[0])
    if block.ff is None:  # a block built with d_ff=0 has no feed-forward branch
        return x
    return x + block.drop(block.ff(block.norm2(x)))


DecoderBlockFn = Callable[[TransformerBlock, Tensor, Tensor, Tensor, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor, float], Tensor]
BeamStepFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


def shift_right(tgt: Tensor) -> Tensor:
    """The decoder's input for teacher forcing: ``<bos>`` then the targets without their last token."""
    _ids("shift_right: tgt", tgt)
    bos = torch.full_like(tgt[:, :1], BOS_ID)
    return torch.cat([bos, tgt[:, :-1]], dim=1)


def _checked_block(fn: DecoderBlockFn, block: TransformerBlock, x: Tensor, memory: Tensor, src_mask: Tensor,
                   tgt_in: Tensor) -> Tensor:
    """``fn(block, x, memory, src_mask, tgt_in)``, with a one-line error when it does not return x's shape and dtype."""
    out = fn(block, x, memory, src_mask, tgt_in)
    if not isinstance(out, Tensor) or out.shape != x.shape or out.dtype != x.dtype:
        got = f"{shape_text(out)} {out.dtype}" if isinstance(out, Tensor) else shape_text(out)
        raise ValueError(f"EncoderDecoder.decode: decoder_block_fn must return x's {tuple(x.shape)} {x.dtype}, "
                         f"got {got}")
    return out


# --- the model --------------------------------------------------------------------------------------


class EncoderDecoder(nn.Module):
    """Encoder (``TransformerEncoder``) + decoder (causal self-attention, cross-attention, feed-forward) + output layer.

    Pre-norm blocks, a final LayerNorm on each side. Positions: ``"sinusoidal"`` or ``"learned"``
    (added to the embeddings; the same kind on both sides). ``decoder_block_fn(block, x, memory, src_mask, tgt_in)
    -> x`` runs each decoder block (Exercise 5.1 passes the student's ``decoder_block``; default: the block's own
    forward pass, the same computation). Pre-norm only, as the blocks here are. The cross-attention weights that
    ``need_weights`` asks for come from the blocks' own forward pass.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 n_dec_layers: int | None = None, d_ff: int | None = None, dropout: float = 0.0,
                 max_len: int = 128, pos: Literal["sinusoidal", "learned"] = "sinusoidal",
                 decoder_block_fn: DecoderBlockFn | None = None) -> None:
        super().__init__()
        if pos not in ("sinusoidal", "learned"):
            raise ValueError(f"EncoderDecoder: pos must be 'sinusoidal' or 'learned', got {pos!r}")
        check_hook("EncoderDecoder", "decoder_block_fn", decoder_block_fn,
                   "decoder_block(block, x, memory, src_mask, tgt_in) -> x")
        self.decoder_block_fn = decoder_block_fn
        d_ff = 4 * d_model if d_ff is None else d_ff
        n_dec_layers = n_layers if n_dec_layers is None else n_dec_layers
        self.max_len = max_len
        self.encoder = TransformerEncoder(src_vocab, d_model, n_heads, n_layers, d_ff, max_len, dropout, pos=pos)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model)
        self.tgt_pos = (SinusoidalPositionalEncoding if pos == "sinusoidal" else LearnedPositionalEncoding)(
            d_model, max_len)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.ModuleList(
            TransformerBlock(d_model, n_heads, d_ff, dropout, cross_attention=True) for _ in range(n_dec_layers))
        self.dec_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, tgt_vocab)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """(memory ``[B, S, d_model]``, source mask ``[B, 1, S]``)."""
        mask = source_mask(src)
        if src.shape[1] > self.max_len:
            raise ValueError(f"EncoderDecoder: source length {src.shape[1]} exceeds max_len={self.max_len}")
        memory, _ = self.encoder(src, mask)
        return memory, mask

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor, need_weights: bool = False
               ) -> tuple[Tensor, Tensor | None]:
        """Logits ``[B, T, V]`` for decoder inputs ``tgt_in`` (``<bos>``, y_1, ...), and the cross-attention
        weights ``[B, layers, heads, T, S]`` when ``need_weights``."""
        _ids("EncoderDecoder.decode: tgt_in", tgt_in)
        if tgt_in.shape[1] > self.max_len:
            raise ValueError(f"EncoderDecoder: target length {tgt_in.shape[1]} exceeds max_len={self.max_len}")
        x = self.drop(self.tgt_pos(self.tgt_embed(tgt_in)))
        hook = None if need_weights else self.decoder_block_fn
        self_mask = decoder_mask(tgt_in) if hook is None else None  # causal + target padding, [B, 1, T, T]
        cross = []
        for block in self.decoder:
            if hook is not None:
                x = _checked_block(hook, block, x, memory, src_mask, tgt_in)
                continue
            x, _, w = block(x, self_mask, memory, src_mask, need_weights=need_weights)
            cross.append(w)
        logits = self.out(self.dec_norm(x))
        return logits, (torch.stack(cross, dim=1) if need_weights else None)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Teacher forcing: logits ``[B, T, V]``; position t sees the source and the true ``tgt[:, :t]``."""
        memory, mask = self.encode(src)
        return self.decode(shift_right(tgt), memory, mask)[0]


# --- the loss ---------------------------------------------------------------------------------------


def label_smoothed_cross_entropy(logits: Tensor, targets: Tensor, smoothing: float = 0.0,
                                 ignore_index: int = PAD_ID) -> Tensor:
    """Cross-entropy against ``(1 - eps) * one_hot(y) + eps / V`` (every one of the V classes gets ``eps / V``),
    averaged over the positions whose target is not ``ignore_index``: a 0-d tensor of the logits' dtype (float32
    for half-precision logits). Equals ``F.cross_entropy`` with ``label_smoothing=eps`` and ``ignore_index``."""
    if not isinstance(logits, Tensor) or logits.dim() < 2 or not isinstance(targets, Tensor) or \
            logits.shape[:-1] != targets.shape:
        raise ValueError(f"label_smoothed_cross_entropy: logits [..., V] and targets [...] must agree, got "
                         f"{shape_text(logits)} and {shape_text(targets)}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label_smoothed_cross_entropy: smoothing must be in [0, 1), got {smoothing!r}")
    if logits.dtype in (torch.float16, torch.bfloat16):  # mixed precision: the loss is computed in float32
        logits = logits.float()
    logp = logits.log_softmax(dim=-1).reshape(-1, logits.shape[-1])
    y = targets.reshape(-1)
    keep = y != ignore_index
    nll = -logp.gather(1, y.clamp(min=0).unsqueeze(1)).squeeze(1)  # -log p(y)
    uniform = -logp.mean(dim=1)  # -(1/V) sum_c log p(c)
    per_token = (1.0 - smoothing) * nll + smoothing * uniform
    return (per_token * keep).sum() / keep.sum().clamp(min=1)


def translation_loss(model: EncoderDecoder, batch: Sequence[Tensor], smoothing: float = 0.0,
                     loss: LossFn | None = None) -> Tensor:
    """``loss_fn`` for ``amla.Trainer``: batches (src [B, S], tgt [B, T]), teacher forcing, label smoothing.

    ``loss(logits [B, T, V], targets [B, T], smoothing) -> 0-d tensor`` (default: ``label_smoothed_cross_entropy``;
    Exercise 5.2 passes the student's)."""
    check_hook("translation_loss", "loss", loss, "label_smoothed_cross_entropy(logits, targets, smoothing) -> loss")
    src, tgt = batch[0], batch[1]
    value = (label_smoothed_cross_entropy if loss is None else loss)(model(src, tgt), tgt, smoothing)
    if not isinstance(value, Tensor) or value.dim() != 0:
        raise ValueError(f"translation_loss: loss(logits, targets, smoothing) must return a 0-d tensor, got "
                         f"{shape_text(value)}")
    return value


# --- decoding ---------------------------------------------------------------------------------------


def _check_decode(name: str, src: Tensor, max_len: int) -> None:
    _ids(f"{name}: src", src)
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"{name}: max_len must be a positive int, got {max_len!r}")


@torch.no_grad()
def greedy_decode(model: EncoderDecoder, src: Tensor, max_len: int) -> Tensor:
    """Tokens ``[B, L]`` (L <= max_len, ``<pad>`` after ``<eos>``): the most likely token, step after step.

    Each step runs the decoder over the whole prefix (no cache: the outputs are short). The causal
    mask makes position t's output independent of later tokens, so this is exactly one token per step.
    """
    _check_decode("greedy_decode", src, max_len)
    memory, mask = model.encode(src)
    out = torch.full((src.shape[0], 1), BOS_ID, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits, _ = model.decode(out, memory, mask)
        nxt = logits[:, -1].argmax(-1).masked_fill(done, PAD_ID)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == EOS_ID
        if bool(done.all()):
            break
    return out[:, 1:]


def beam_step(scores: Tensor, log_probs: Tensor, finished: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One step of beam search over ``B`` examples with ``K`` beams each (Exercise 5.3).

    ``scores [B, K]``: the summed log-probability of each beam so far; ``log_probs [B, K, V]``: the
    model's next-token log-probabilities per beam; ``finished [B, K]``: beams that already said ``<eos>``.
    A finished beam can only be extended by ``<pad>``, at no cost. Of the ``K * V`` extensions of an
    example, keep the ``K`` with the largest total score. Returns ``(new_scores [B, K], parent [B, K],
    token [B, K])``: the new beam ``k`` is old beam ``parent[:, k]`` followed by ``token[:, k]``.
    """
    b, k, v = log_probs.shape
    frozen = torch.full_like(log_probs, float("-inf"))
    frozen[..., PAD_ID] = 0.0
    log_probs = torch.where(finished[..., None], frozen, log_probs)
    total = (scores[..., None] + log_probs).reshape(b, k * v)
    new_scores, index = total.topk(k, dim=-1)
    return new_scores, index // v, index % v


_STEP_SIGNATURE = "(scores, log_probs, finished) -> (new_scores, parent, token)"


def _checked_step(step: BeamStepFn, scores: Tensor, log_probs: Tensor, finished: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """``step(scores, log_probs, finished)``, with a one-line error when it does not return three [B, K] tensors
    (new scores of the scores' dtype, parent and token as int64)."""
    out = step(scores, log_probs, finished)
    shape = tuple(scores.shape)
    ok = isinstance(out, (tuple, list)) and len(out) == 3 and all(
        isinstance(t, Tensor) and tuple(t.shape) == shape for t in out)
    if ok:
        ok = out[0].is_floating_point() and out[1].dtype == torch.int64 and out[2].dtype == torch.int64
    if not ok:
        got = (", ".join(f"{shape_text(t)} {t.dtype}" if isinstance(t, Tensor) else shape_text(t) for t in out)
               if isinstance(out, (tuple, list)) else shape_text(out))
        raise ValueError(f"beam_search: beam_step_fn must return (new_scores float {shape}, parent int64 {shape}, "
                         f"token int64 {shape}), got ({got})")
    return out[0], out[1], out[2]


@torch.no_grad()
def beam_search(model: EncoderDecoder, src: Tensor, max_len: int, beam_size: int = 4,
                length_penalty: float = 0.0, beam_step_fn: BeamStepFn | None = None) -> tuple[Tensor, Tensor]:
    """Beam search: tokens ``[B, L]`` of the best finished beam per example, and its normalised score ``[B]``.

    Beams are ranked by their summed log-probability while searching; at the end the beams are
    compared by ``score / length ** length_penalty`` (length counts the tokens up to and including
    ``<eos>``). ``length_penalty=0`` compares raw sums, which favour short outputs; 1 compares the mean
    log-probability per token. With ``beam_size=1`` this is ``greedy_decode``. ``beam_step_fn(scores,
    log_probs, finished) -> (new_scores, parent, token)`` is one step (default: ``beam_step``; Exercise 5.3
    passes the student's).
    """
    _check_decode("beam_search", src, max_len)
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be a positive int, got {beam_size!r}")
    check_hook("beam_search", "beam_step_fn", beam_step_fn, _STEP_SIGNATURE)
    step = beam_step if beam_step_fn is None else beam_step_fn
    b, k = src.shape[0], beam_size
    memory, mask = model.encode(src)
    memory = memory.repeat_interleave(k, dim=0)  # [B*K, S, d]: every beam reads the same source
    mask = mask.repeat_interleave(k, dim=0)
    out = torch.full((b * k, 1), BOS_ID, dtype=torch.long, device=src.device)
    scores = torch.full((b, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # one live beam at the start, or the K beams would all be the same
    finished = torch.zeros(b, k, dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits, _ = model.decode(out, memory, mask)
        log_probs = logits[:, -1].float().log_softmax(-1).view(b, k, -1)
        scores, parent, token = _checked_step(step, scores, log_probs, finished)
        rows = (parent + torch.arange(b, device=src.device)[:, None] * k).reshape(-1)
        out = torch.cat([out[rows], token.reshape(-1, 1)], dim=1)
        finished = finished.gather(1, parent) | (token == EOS_ID)
        if bool(finished.all()):
            break
    tokens = out[:, 1:].view(b, k, -1)
    lengths = (tokens != PAD_ID).sum(-1).clamp(min=1).float()
    normalised = scores / lengths**length_penalty
    # a beam cut off by max_len only wins when no beam of its example finished
    normalised = normalised.masked_fill(finished.any(1, keepdim=True) & ~finished, float("-inf"))
    best = normalised.argmax(-1)
    return tokens[torch.arange(b), best], normalised[torch.arange(b), best]


@torch.no_grad()
def exact_match(model: EncoderDecoder, src: Tensor, tgt: Tensor, batch_size: int = 500, beam_size: int = 1,
                length_penalty: float = 0.0, beam_step_fn: BeamStepFn | None = None) -> Tensor:
    """Per example, whether the decoded output equals the target up to and including ``<eos>``: bool ``[N]``.

    ``beam_size=1``: greedy decoding; larger: ``beam_search`` with ``beam_step_fn`` (default: ``beam_step``).
    """
    if src.shape[0] != tgt.shape[0]:
        raise ValueError(f"exact_match: src {shape_text(src)} and tgt {shape_text(tgt)} must have the same number of rows")
    check_hook("exact_match", "beam_step_fn", beam_step_fn, _STEP_SIGNATURE)
    hits = []
    for s, t in eval_batches(model, (src, tgt), batch_size):
        if beam_size == 1:
            pred = greedy_decode(model, s, t.shape[1])
        else:
            pred, _ = beam_search(model, s, t.shape[1], beam_size, length_penalty, beam_step_fn)
        pred = F.pad(pred, (0, t.shape[1] - pred.shape[1]), value=PAD_ID)
        hits.append((pred == t).all(dim=1).cpu())
    return torch.cat(hits)


@torch.no_grad()
def cross_attention_maps(model: EncoderDecoder, src: Tensor, tokens: Tensor) -> Tensor:
    """Cross-attention weights ``[B, layers, heads, T, S]`` while the decoder reads ``<bos>`` + ``tokens``.

    Row t is the step that *predicts* ``tokens[:, t]``: for greedily decoded tokens, these are the
    weights the model used while writing them.
    """
    was_training = model.training
    model.eval()
    try:
        memory, mask = model.encode(src)
        _, weights = model.decode(shift_right(tokens), memory, mask, need_weights=True)
    finally:
        model.train(was_training)
    assert weights is not None
    return weights
