"""Self-checks of Hour 03 (seq2seq with attention): additive attention, teacher forcing, monotonicity."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from amla.checks.core import Mistake, compare
from amla.transformers.seq2seq import AttentionDecoder, Memory, additive_attention, monotone_fraction, teacher_forcing_loss
from amla.transformers.tasks import BOS_ID, EOS_ID, ISO_FIELDS, PAD_ID

# --- Exercise 3.1: additive attention ----------------------------------------------------------------


def _attention_variant(*, softmax_dim: int = -1, tanh: bool = True, use_v: bool = True, mask: str = "before",
                       context_from: str = "keys") -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Additive attention with one typical bug switched on (the defaults give the correct function)."""

    def attention(query, keys, W_q, W_k, v, mask_=None):  # noqa: ANN001, N803
        k_proj = keys @ W_k
        hidden = (query @ W_q).unsqueeze(1) + k_proj
        if tanh:
            hidden = torch.tanh(hidden)
        raw = hidden @ v if use_v else hidden.sum(-1)
        scores = raw
        if mask == "before":
            scores = raw.masked_fill(~mask_, float("-inf"))
        elif mask == "zero":
            scores = raw.masked_fill(~mask_, 0.0)
        elif mask == "inverted":
            scores = raw.masked_fill(mask_, float("-inf"))
        weights = scores.softmax(dim=softmax_dim)
        if mask == "after":
            weights = weights.masked_fill(~mask_, 0.0)
        mix, values = weights, keys
        if context_from == "projected":
            values = k_proj
        elif context_from == "raw_scores":
            mix = raw
        elif context_from == "masked_scores":
            mix = scores
        return (mix.unsqueeze(1) @ values).squeeze(1), weights

    return attention


def _attention_inputs(g: torch.Generator) -> tuple[Any, ...]:
    b, s, dq, dk = 3, 7, 5, 6
    a = dk  # attention size = key size, so a context made from the projected keys has the right shape
    query = torch.randn(b, dq, generator=g) * 1.5
    keys = torch.randn(b, s, dk, generator=g) * 1.5
    W_q = torch.randn(dq, a, generator=g) / dq**0.5 * 1.5  # noqa: N806
    W_k = torch.randn(dk, a, generator=g) / dk**0.5 * 1.5  # noqa: N806
    v = torch.randn(a, generator=g)
    lengths = torch.tensor([s, 4, 2])
    mask = torch.arange(s)[None, :] < lengths[:, None]  # True at real tokens, the last rows padded
    return query, keys, W_q, W_k, v, mask


def check_additive_attention(additive_attention_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Exercise 3.1: (context, weights) of ``additive_attention(query, keys, W_q, W_k, v, mask)``."""
    mistakes = [
        Mistake("the softmax runs over the batch axis (dim=0); each query's weights must sum to 1 over the "
                "source positions (dim=-1).", _attention_variant(softmax_dim=0)),
        Mistake("the tanh is missing: e_j = v . tanh(W_q s + W_k h_j). Without it the query's part of the score "
                "is the same for every position and cancels in the softmax, so the weights ignore the query.",
                _attention_variant(tanh=False)),
        Mistake("v is missing: the scores sum tanh(...) over the attention dimension instead of taking its "
                "dot product with the learned vector v.", _attention_variant(use_v=False)),
        Mistake("the padding mask is not applied, so padded positions get attention weight; set their "
                "scores to -inf before the softmax.", _attention_variant(mask="none")),
        Mistake("the mask is applied after the softmax: padding gets weight 0 but the remaining weights no "
                "longer sum to 1; mask the scores (-inf) before the softmax.", _attention_variant(mask="after")),
        Mistake("padded scores are set to 0 instead of -inf: exp(0) = 1, so padding still gets weight.",
                _attention_variant(mask="zero")),
        Mistake("the mask is inverted: it is True at real tokens (keep those) and False at padding.",
                _attention_variant(mask="inverted")),
        Mistake("the context is a weighted sum of the projected keys (keys @ W_k) instead of the encoder "
                "states themselves (keys).", _attention_variant(context_from="projected")),
        Mistake("the context is computed from the scores instead of the softmax weights.",
                _attention_variant(context_from="raw_scores")),
        Mistake("the context is computed from the scores instead of the softmax weights.",
                _attention_variant(context_from="masked_scores")),
    ]
    compare("Exercise 3.1 (additive attention)", additive_attention_fn, additive_attention, _attention_inputs,
            mistakes, what="result (context, weights)")


# --- Exercise 3.2: teacher forcing ----------------------------------------------------------------


def _teacher_forcing_variant(*, feed: str = "truth", shift: str = "right", pad: bool = False,
                             reduce: str = "mean", carry_state: bool = True) -> Callable[..., torch.Tensor]:
    """The teacher-forced loss with one typical bug switched on (the defaults give the correct loss)."""

    def loss_fn(decoder, state, memory, targets):  # noqa: ANN001
        b = targets.shape[0]
        if shift == "drop_first":  # targets treated as if they began with <bos>
            inputs, labels = targets[:, :-1], targets[:, 1:]
        else:
            first = torch.full((b, 1), BOS_ID, dtype=torch.long)
            inputs = targets if shift == "none" else torch.cat([first, targets[:, :-1]], dim=1)
            labels = targets
        start, logits = state, []
        prev = inputs[:, 0]
        for t in range(inputs.shape[1]):
            step_logits, new_state, _ = decoder.step(prev, state if carry_state else start, memory)
            state = new_state
            logits.append(step_logits)
            if t + 1 < inputs.shape[1]:
                prev = step_logits.argmax(-1) if feed == "own" else inputs[:, t + 1]
        logits = torch.stack(logits, dim=1)
        if shift == "next":
            logits, labels = logits[:, :-1], labels[:, 1:]
        ignore = -100 if pad else PAD_ID  # -100: nothing is ignored, padding counts
        if reduce == "sum_steps":
            return sum(F.cross_entropy(logits[:, t], labels[:, t], ignore_index=ignore) for t in range(labels.shape[1]))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=ignore)

    return loss_fn


def _teacher_forcing_inputs(g: torch.Generator) -> tuple[Any, ...]:
    b, s, t, vocab, enc = 4, 6, 6, 11, 6
    with torch.random.fork_rng(devices=[]):  # a check must not move the notebook's random state
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        decoder = AttentionDecoder(vocab, emb_dim=5, hidden=8, enc_dim=enc, attn_dim=7)
    values = torch.randn(b, s, enc, generator=g)
    mask = torch.arange(s)[None, :] < torch.tensor([s, 5, 3, 4])[:, None]
    state, memory = decoder.start(values * mask[..., None], mask, torch.randn(b, enc, generator=g))
    targets = torch.randint(3, vocab, (b, t), generator=g)
    lengths = torch.tensor([t - 1, t - 3, t - 2, 2])  # then <eos>, then padding
    for i, n in enumerate(lengths.tolist()):
        targets[i, n] = EOS_ID
        targets[i, n + 1 :] = PAD_ID
    return decoder, state.detach(), Memory(memory.values, memory.mask, memory.final, memory.keys.detach()), targets


def check_teacher_forcing(teacher_forcing_loss_fn: Callable[..., torch.Tensor]) -> None:
    """Exercise 3.2: the teacher-forced loss of a small random decoder on padded targets."""
    mistakes = [
        Mistake("each step is fed the model's own prediction (argmax of the previous logits) instead of the true "
                "previous token: that is greedy decoding; teacher forcing feeds targets[:, t - 1].",
                _teacher_forcing_variant(feed="own")),
        Mistake("the inputs are not shifted: step t is fed targets[:, t], the very token it must predict, so the "
                "model learns to copy its input; feed <bos> first, then targets[:, t - 1].",
                _teacher_forcing_variant(shift="none")),
        Mistake("the targets are shifted as if they began with <bos> (inputs targets[:, :-1], labels "
                "targets[:, 1:]): here they do not, so <bos> is never fed and the first token never predicted.",
                _teacher_forcing_variant(shift="drop_first")),
        Mistake("step t's logits are compared with the next token targets[:, t + 1] instead of targets[:, t] "
                "(an off-by-one between predictions and labels).", _teacher_forcing_variant(shift="next")),
        Mistake("the decoder state is not carried from step to step: pass the state returned by each step to "
                "the next one.", _teacher_forcing_variant(carry_state=False)),
        Mistake("padding is counted in the loss; use ignore_index=PAD_ID so only real target tokens count.",
                _teacher_forcing_variant(pad=True)),
        Mistake("the loss is a sum over time steps instead of the mean over all target tokens.",
                _teacher_forcing_variant(reduce="sum_steps")),
    ]
    compare("Exercise 3.2 (teacher forcing)", teacher_forcing_loss_fn, teacher_forcing_loss, _teacher_forcing_inputs,
            mistakes, what="loss")


# --- Exercise 3.3: how monotone is an alignment ----------------------------------------------------


def _monotone_variant(*, axis: int = -1, strict: bool = False, across_groups: bool = False,
                      compare_weights: bool = False) -> Callable[..., float]:
    def fraction(weights, groups=None):  # noqa: ANN001
        where = weights.max(dim=-1).values if compare_weights else weights.argmax(dim=axis)
        chains = [[t for g in groups for t in g]] if across_groups else groups
        pairs = [(g[k], g[k + 1]) for g in chains for k in range(len(g) - 1)]
        before, after = torch.tensor(pairs).T
        moved = where[:, after] - where[:, before]
        return ((moved > 0) if strict else (moved >= 0)).float().mean().item()

    return fraction


def _monotone_inputs(g: torch.Generator) -> tuple[Any, ...]:
    n, t, s = 12, 10, 12
    # Peaked alignments that mostly move forward, stay put sometimes, and jump back now and then.
    pos = torch.cumsum(torch.randint(-1, 3, (n, t), generator=g), dim=1).clamp(0, s - 1)
    logits = torch.randn(n, t, s, generator=g)
    logits.scatter_add_(2, pos.unsqueeze(-1), torch.full((n, t, 1), 6.0))
    return logits.softmax(-1), ISO_FIELDS


def check_monotone_fraction(monotone_fraction_fn: Callable[..., float]) -> None:
    """Exercise 3.3: the fraction of neighbouring steps in a group whose argmax input position does not move back."""
    mistakes = [
        Mistake("the argmax runs over the output steps (dim=1) instead of the input positions (dim=-1).",
                _monotone_variant(axis=1)),
        Mistake("staying on the same input position counts as a step back: 'does not move backwards' means "
                ">=, not >.", _monotone_variant(strict=True)),
        Mistake("the pairs between groups are counted too (e.g. from the last year digit to the first month "
                "digit); only neighbours inside the same group count.", _monotone_variant(across_groups=True)),
        Mistake("the largest weights are compared instead of the positions where they sit (argmax).",
                _monotone_variant(compare_weights=True)),
    ]
    compare("Exercise 3.3 (monotone fraction)", monotone_fraction_fn, monotone_fraction, _monotone_inputs, mistakes,
            what="fraction")
