"""Self-checks of Hour 03 (seq2seq with attention): additive attention, the teacher-forced loss, monotonicity.

- 3.1 ``additive_attention(query, keys, W_q, W_k, v, mask) -> (context, weights)``: cases with right and left
  padding, no padding with as many sequences as positions (a missing ``unsqueeze`` then broadcasts silently), a
  batch of one, a source of one position, float64 inputs, large scores, and a row with no real position (any
  answer is accepted for that row; the other rows must be right). Values and gradients are compared.
- 3.2 ``teacher_forcing_loss(decoder, state, memory, targets)``: small random attention decoders, padded targets,
  a batch of one, targets of one token (just ``<eos>``), rows without padding, repeated tokens and ids above 9,
  logits around 1e4. Gradients reach the decoder's parameters, the initial state and the encoder states, so a
  state detached between steps fails although its loss value is right. Causality is tested by recording the
  logits of every decoder step while a later target token changes.
- 3.3 ``monotone_fraction(weights, groups) -> float``: peaked alignments, one group of non-contiguous steps, a
  single example, groups of one step, ties in the argmax (the first largest weight counts, as ``torch.argmax``),
  float64 weights, fewer input positions than output steps. Groups without any pair make the reference raise a
  ValueError, so they are not a case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.seq2seq import AttentionDecoder, Memory, additive_attention, monotone_fraction, teacher_forcing_loss
from amla.transformers.tasks import BOS_ID, EOS_ID, ISO_FIELDS, PAD_ID

__all__ = ["check_additive_attention", "check_monotone_fraction", "check_teacher_forcing"]

ATTENTION = exercise(3, "3.1", "Additive attention", "additive_attention")
FORCING = exercise(3, "3.2", "The teacher-forced loss", "teacher_forcing_loss")
MONOTONE = exercise(3, "3.3", "How monotone is an alignment?", "monotone_fraction")


# --- Exercise 3.1: additive attention ----------------------------------------------------------------


def reference_additive_attention(query: Tensor, keys: Tensor, W_q: Tensor, W_k: Tensor, v: Tensor,  # noqa: N803
                                 mask: Tensor) -> tuple[Tensor, Tensor]:
    """The course's ``additive_attention`` with the exercise's signature (the mask is not optional)."""
    return additive_attention(query, keys, W_q, W_k, v, mask)


def _attention_variant(*, softmax_dim: int = -1, tanh: bool = True, use_v: bool = True, mask: str = "before",
                       context_from: str = "keys", unsqueeze: bool = True
                       ) -> Callable[..., tuple[Tensor, Tensor]]:
    """Additive attention with one typical bug switched on (the defaults give the correct function)."""

    def attention(query, keys, W_q, W_k, v, mask_):  # noqa: ANN001, N803
        k_proj = keys @ W_k
        q_proj = query @ W_q
        hidden = (q_proj.unsqueeze(1) if unsqueeze else q_proj) + k_proj
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


_ATTENTION_MISTAKES = [
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
    Mistake("the projected query [B, A] is added to the projected keys [B, S, A] without .unsqueeze(1): "
            "broadcasting then lines the batch axis up with the source positions (it only runs when B == S, "
            "and gives nonsense there). Add query @ W_q as [B, 1, A].", _attention_variant(unsqueeze=False)),
]


def _attention_inputs(g: torch.Generator, b: int, s: int, dq: int, dk: int, a: int, real: Tensor,
                      dtype: torch.dtype = torch.float32, v_scale: float = 1.0) -> tuple[Any, ...]:
    """query [b, dq], keys [b, s, dk], W_q [dq, a], W_k [dk, a], v [a], and the mask ``real`` [b, s]."""
    query = torch.randn(b, dq, generator=g, dtype=dtype) * 1.5
    keys = torch.randn(b, s, dk, generator=g, dtype=dtype) * 1.5
    W_q = torch.randn(dq, a, generator=g, dtype=dtype) / dq**0.5 * 1.5  # noqa: N806
    W_k = torch.randn(dk, a, generator=g, dtype=dtype) / dk**0.5 * 1.5  # noqa: N806
    v = torch.randn(a, generator=g, dtype=dtype) * v_scale
    assert real.shape == (b, s) and real.dtype == torch.bool
    return query, keys, W_q, W_k, v, real


def _lengths(lengths: list[int], s: int) -> Tensor:
    return torch.arange(s)[None, :] < torch.tensor(lengths)[:, None]


def _attention_cases() -> list[Case]:
    g = torch.Generator().manual_seed(31)
    left = torch.tensor([[False, False, False, True, True, True], [True] * 6, [False, True, True, True, True, True]])
    dead = _lengths([5, 0, 3], 5)  # row 1: no real position at all
    live = torch.tensor([True, False, True])
    return [
        Case("right padding (lengths 7, 4, 2; query [3, 5], keys [3, 7, 6], A = 6)",
             _attention_inputs(g, 3, 7, 5, 6, 6, _lengths([7, 4, 2], 7))),
        Case("no padding and as many sequences as positions (B = S = 4; query [4, 5], keys [4, 4, 3], A = 7)",
             _attention_inputs(g, 4, 4, 5, 3, 7, _lengths([4, 4, 4, 4], 4))),
        Case("left padding (mask False at the start of rows 0 and 2; keys [3, 6, 4], A = 5)",
             _attention_inputs(g, 3, 6, 5, 4, 5, left)),
        Case("a batch of one (query [1, 5], keys [1, 5, 4], length 3)",
             _attention_inputs(g, 1, 5, 5, 4, 7, _lengths([3], 5))),
        Case("a source of length 1 (keys [3, 1, 4])", _attention_inputs(g, 3, 1, 5, 4, 7, _lengths([1, 1, 1], 1))),
        Case("float64 inputs (keys [2, 6, 4], lengths 6 and 3)",
             _attention_inputs(g, 2, 6, 5, 4, 7, _lengths([6, 3], 6), dtype=torch.float64)),
        Case("large scores (v scaled by 1e3, so the scores reach a few thousand; keys [3, 6, 4])",
             _attention_inputs(g, 3, 6, 5, 4, 7, _lengths([6, 5, 2], 6), v_scale=1e3),
             grad=False),  # saturated weights: float32 rounding dominates their tiny gradients
        Case("a row with no real position (row 1 of the mask is all False; any answer for that row)",
             _attention_inputs(g, 3, 5, 5, 4, 7, dead), grad=False,
             view=lambda out: (out[0][live], out[1][live])),
    ]


def _live(case: Case) -> Tensor:
    return case.args[5].any(-1)


def _attention_sums_to_one(case: Case, result: Any, rerun: Any) -> str | None:
    sums = result[1].detach().double().sum(-1)[_live(case)]
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return f"the sums over the source positions range from {sums.min().item():.4g} to {sums.max().item():.4g}"
    return None


def _padding_gets_zero(case: Case, result: Any, rerun: Any) -> str | None:
    mask = case.args[5]
    padded = ~mask & _live(case)[:, None]
    weights = result[1].detach()
    if bool(padded.any()) and bool((weights[padded] != 0).any()):
        return f"a padded position got weight {weights[padded].abs().max().item():.3g}; it must get exactly 0"
    return None


def _context_is_weighted_keys(case: Case, result: Any, rerun: Any) -> str | None:
    context, weights = result
    keys = case.args[1]
    live = _live(case)
    mixed = torch.einsum("bs,bsd->bd", weights.detach().double(), keys.double())
    if not torch.allclose(context.detach().double()[live], mixed[live], atol=1e-4, rtol=1e-4):
        return "the context is not the returned weights times the keys (context = sum_j weights_j keys_j)"
    return None


def _source_order_does_not_matter(case: Case, result: Any, rerun: Any) -> str | None:
    query, keys, W_q, W_k, v, mask = case.args  # noqa: N806
    s = keys.shape[1]
    if s < 2:
        return None
    perm = torch.randperm(s, generator=torch.Generator().manual_seed(3))
    if bool((perm == torch.arange(s)).all()):
        perm = perm.flip(0)
    context2, weights2 = rerun(query, keys[:, perm], W_q, W_k, v, mask[:, perm])
    live = _live(case)
    same_w = torch.allclose(weights2.detach()[live], result[1].detach()[:, perm][live], atol=1e-5, rtol=1e-4)
    same_c = torch.allclose(context2.detach()[live], result[0].detach()[live], atol=1e-4, rtol=1e-4)
    if not (same_w and same_c):
        return ("listing the source positions in another order (keys and mask together) should permute the weights "
                "the same way and leave the context unchanged")
    return None


_ATTENTION_PROPERTIES = [
    Property("'the weights sum to 1 over the real positions'", _attention_sums_to_one),
    Property("'padding gets weight exactly 0'", _padding_gets_zero),
    Property("'context = weights times keys'", _context_is_weighted_keys),
    Property("'the order of the source positions does not matter'", _source_order_does_not_matter),
]

_ATTENTION_SPEC = Spec(reference=reference_additive_attention, cases=_attention_cases, mistakes=_ATTENTION_MISTAKES,
                       properties=_ATTENTION_PROPERTIES, differentiable=True, items=("context", "weights"),
                       arg_names=("query", "keys", "W_q", "W_k", "v", "mask"))


def check_additive_attention(additive_attention_fn: Callable[..., tuple[Tensor, Tensor]]
                             ) -> Callable[..., tuple[Tensor, Tensor]]:
    """Exercise 3.1: ``additive_attention(query, keys, W_q, W_k, v, mask) -> (context, weights)``; returns the
    attention the rest of the hour uses (yours once it passes)."""
    return check(ATTENTION, _ATTENTION_SPEC, (additive_attention_fn,), (reference_additive_attention,),
                 f"context, weights and gradients match on {len(_attention_cases())} cases (right and left padding, "
                 "B = S, a batch of one, one source position, float64, large scores, a row with no real position)")


# --- Exercise 3.2: the teacher-forced loss -------------------------------------------------------------


def _forcing_variant(*, feed: str = "truth", shift: str = "right", pad: bool = False, reduce: str = "mean",
                     carry_state: bool = True, detach_state: bool = False, first: int = BOS_ID,
                     loss: str = "cross_entropy") -> Callable[..., Tensor]:
    """The teacher-forced loss with one typical bug switched on (the defaults give the correct loss)."""

    def loss_fn(decoder, state, memory, targets):  # noqa: ANN001
        b = targets.shape[0]
        if shift == "drop_first":  # targets treated as if they began with <bos>
            inputs, labels = targets[:, :-1], targets[:, 1:]
        else:
            start_tok = torch.full((b, 1), first, dtype=torch.long)
            inputs = targets if shift == "none" else torch.cat([start_tok, targets[:, :-1]], dim=1)
            labels = targets
        start, logits = state, []
        prev = inputs[:, 0]
        for t in range(inputs.shape[1]):
            step_logits, new_state, _ = decoder.step(prev, state if carry_state else start, memory)
            state = new_state.detach() if detach_state else new_state
            logits.append(step_logits)
            if t + 1 < inputs.shape[1]:
                prev = step_logits.argmax(-1) if feed == "own" else inputs[:, t + 1]
        logits = torch.stack(logits, dim=1)
        if shift == "next":
            logits, labels = logits[:, :-1], labels[:, 1:]
        ignore = -100 if pad else PAD_ID  # -100: nothing is ignored, padding counts
        flat, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
        if loss == "nll_on_logits":
            return F.nll_loss(flat, flat_labels, ignore_index=ignore)
        if reduce == "sum_steps":
            return sum(F.cross_entropy(logits[:, t], labels[:, t], ignore_index=ignore) for t in range(labels.shape[1]))
        terms = F.cross_entropy(flat, flat_labels, ignore_index=ignore, reduction="none").view(labels.shape)
        real = (labels != ignore).float()
        if reduce == "all_positions":
            return terms.sum() / labels.numel()
        if reduce == "per_sequence":
            return ((terms * real).sum(1) / real.sum(1)).mean()
        return terms.sum() / real.sum()

    return loss_fn


_FORCING_MISTAKES = [
    Mistake("each step is fed the model's own prediction (argmax of the previous logits) instead of the true "
            "previous token: that is greedy decoding; teacher forcing feeds targets[:, t - 1].",
            _forcing_variant(feed="own")),
    Mistake("the inputs are not shifted: step t is fed targets[:, t], the very token it must predict, so the "
            "model learns to copy its input; feed <bos> first, then targets[:, t - 1].",
            _forcing_variant(shift="none")),
    Mistake("the targets are shifted as if they began with <bos> (inputs targets[:, :-1], labels "
            "targets[:, 1:]): here they do not, so <bos> is never fed and the first token never predicted.",
            _forcing_variant(shift="drop_first")),
    Mistake("step t's logits are compared with the next token targets[:, t + 1] instead of targets[:, t] "
            "(an off-by-one between predictions and labels).", _forcing_variant(shift="next")),
    Mistake("step 0 is fed id 0 (<pad>, e.g. from torch.zeros) instead of BOS_ID = 1.", _forcing_variant(first=PAD_ID)),
    Mistake("the decoder state is not carried from step to step: pass the state returned by each step to "
            "the next one.", _forcing_variant(carry_state=False)),
    Mistake("the state is detached between steps (state.detach(), or a state rebuilt from numbers): the loss is "
            "right, but no gradient flows back through the earlier steps, so the decoder cannot learn what to "
            "remember. Pass the state returned by decoder.step on as it is.", _forcing_variant(detach_state=True)),
    Mistake("padding is counted in the loss; use ignore_index=PAD_ID so only real target tokens count.",
            _forcing_variant(pad=True)),
    Mistake("the loss is a sum over time steps instead of the mean over all target tokens.",
            _forcing_variant(reduce="sum_steps")),
    Mistake("the loss is averaged within each sequence, then over the sequences: that weighs the tokens of short "
            "targets more. Take the mean over all real target tokens of the batch.",
            _forcing_variant(reduce="per_sequence")),
    Mistake("the sum over the real target tokens is divided by the number of all positions, padding included "
            "(targets.numel()); divide by the number of real tokens, or use F.cross_entropy(..., ignore_index=PAD_ID).",
            _forcing_variant(reduce="all_positions")),
    Mistake("F.nll_loss is applied to the raw logits: it expects log-probabilities. Use F.cross_entropy on the "
            "logits (it applies log_softmax itself), or F.log_softmax first.", _forcing_variant(loss="nll_on_logits")),
]


def _forcing_case(label: str, seed: int, *, lengths: list[int], t: int, s: int = 6, vocab: int = 11,
                  src_lengths: list[int] | None = None, repeat: bool = False, logit_scale: float = 1.0,
                  **extra: Any) -> Case:
    """A small random attention decoder, its start state and memory, and targets with ``<eos>`` after
    ``lengths[i]`` real tokens, then padding."""
    b = len(lengths)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # building a check's inputs must not move the notebook's random state
        torch.manual_seed(seed)
        decoder = AttentionDecoder(vocab, emb_dim=5, hidden=8, enc_dim=6, attn_dim=7)
    if logit_scale != 1.0:
        with torch.no_grad():
            decoder.out.weight.mul_(logit_scale)
            decoder.out.bias.mul_(logit_scale)
    mask = _lengths(src_lengths or [s] * b, s)
    values = torch.randn(b, s, 6, generator=g) * mask[..., None]
    with torch.no_grad():
        state, memory = decoder.start(values, mask, torch.randn(b, 6, generator=g))
    if repeat:  # a few ids, each repeated, some of them above 9
        pool = torch.tensor([3, 13, 27, vocab - 1])
        targets = pool[torch.randint(0, len(pool), (b, t), generator=g)]
    else:
        targets = torch.randint(3, vocab, (b, t), generator=g)
    for i, n in enumerate(lengths):
        targets[i, n] = EOS_ID
        targets[i, n + 1:] = PAD_ID
    memory = Memory(memory.values, memory.mask, memory.final, memory.keys)
    return Case(label, (decoder, state, memory, targets), **extra)


def _forcing_cases() -> list[Case]:
    return [
        _forcing_case("4 padded targets (<eos> after 5, 3, 4 and 2 tokens, T = 6) and sources of lengths 6, 5, 3, 4",
                      1, lengths=[5, 3, 4, 2], t=6, src_lengths=[6, 5, 3, 4]),
        _forcing_case("a batch of one (T = 5, no padding)", 2, lengths=[4], t=5),
        _forcing_case("targets of length 1 (just <eos>, T = 1)", 3, lengths=[0, 0, 0], t=1, src_lengths=[6, 2, 4]),
        _forcing_case("no padding in any row (every <eos> at the last position, T = 5)", 4, lengths=[4, 4, 4], t=5),
        _forcing_case("repeated tokens and ids above 9 (vocabulary of 30, T = 8)", 5, lengths=[7, 5, 6], t=8,
                      vocab=30, repeat=True),
        _forcing_case("logits around 1e4 (the output layer scaled by 1e4, T = 4)", 6, lengths=[3, 1], t=4,
                      logit_scale=1e4),
    ]


class _StepLog(list):
    """Logits recorded by ``_Recording``; shared by the deep copies the engine makes of its inputs."""

    def __deepcopy__(self, memo: dict[int, Any]) -> "_StepLog":
        return self


class _Recording(nn.Module):
    """A decoder that records the logits of every step it is asked for (to test causality from outside)."""

    def __init__(self, decoder: nn.Module, log: _StepLog):
        super().__init__()
        self.decoder, self.log = decoder, log

    def start(self, values: Tensor, mask: Tensor, final: Tensor) -> tuple[Tensor, Memory]:
        return self.decoder.start(values, mask, final)

    def step(self, prev: Tensor, state: Tensor, memory: Memory) -> tuple[Tensor, Tensor, Any]:
        logits, state, weights = self.decoder.step(prev, state, memory)
        self.log.append(logits.detach().clone())
        return logits, state, weights


def _as_float(value: Any) -> float:
    return float(value.detach()) if isinstance(value, Tensor) else float(value)


def _loss_nonnegative(case: Case, result: Any, rerun: Any) -> str | None:
    loss = _as_float(result)
    if not loss == loss or loss in (float("inf"), float("-inf")) or loss < 0:
        return f"the loss is {loss:.6g}; a cross-entropy is finite and >= 0"
    return None


def _padding_does_not_count(case: Case, result: Any, rerun: Any) -> str | None:
    decoder, state, memory, targets = case.args
    longer = F.pad(targets, (0, 2), value=PAD_ID)
    again = _as_float(rerun(decoder, state, memory, longer))
    if not abs(again - _as_float(result)) <= 1e-5 + 1e-4 * abs(_as_float(result)):  # nan counts as a change
        return (f"two more columns of <pad> at the end of the targets changed the loss from {_as_float(result):.6g} "
                f"to {again:.6g}; padded positions must not count, in the sum nor in the number of tokens")
    return None


def _causal(case: Case, result: Any, rerun: Any) -> str | None:
    decoder, state, memory, targets = case.args
    t = targets.shape[1]
    if t < 2:
        return None
    vocab = decoder.out.out_features
    logs = []
    for k in (t - 1, t // 2):
        changed = targets.clone()
        changed[:, k:] = (targets[:, k:] - 3 + 1) % (vocab - 3) + 3  # another real token at every position >= k
        pair = []
        for tgt in (targets, changed):
            log = _StepLog()
            rerun(_Recording(decoder, log), state, memory, tgt)
            pair.append(log)
        logs.append((k, pair))
    for k, (a, b) in logs:
        if len(a) < k + 1 or len(b) < k + 1:
            return None
        for step in range(k + 1):
            if a[step].shape != b[step].shape or not torch.allclose(a[step], b[step], atol=1e-6, rtol=1e-5):
                return (f"changing targets[:, {k}:] changed the logits of step {step}, which may see only <bos> and "
                        f"targets[:, :{step}] (step t predicts targets[:, t] and must not be fed it)")
    return None


_FORCING_PROPERTIES = [
    Property("'the loss is finite and >= 0'", _loss_nonnegative),
    Property("'padding does not count'", _padding_does_not_count),
    Property("'step t sees only the tokens before position t'", _causal),
]

_FORCING_SPEC = Spec(reference=teacher_forcing_loss, cases=_forcing_cases, mistakes=_FORCING_MISTAKES,
                     properties=_FORCING_PROPERTIES, differentiable=True, part="loss",
                     arg_names=("decoder", "state", "memory", "targets"))


def check_teacher_forcing(teacher_forcing_loss_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 3.2: ``teacher_forcing_loss(decoder, state, memory, targets)``; returns the loss the rest of the
    hour trains with (yours once it passes)."""
    return check(FORCING, _FORCING_SPEC, (teacher_forcing_loss_fn,), (teacher_forcing_loss,),
                 f"loss and gradients (decoder, initial state, encoder states) match on {len(_forcing_cases())} cases "
                 "(padding, a batch of one, just <eos>, no padding, repeated ids above 9, logits around 1e4)")


# --- Exercise 3.3: how monotone is an alignment ----------------------------------------------------


def reference_monotone_fraction(weights: Tensor, groups: Any) -> float:
    """The course's ``monotone_fraction`` with the exercise's signature (groups are not optional)."""
    return monotone_fraction(weights, groups)


def _monotone_variant(*, axis: int = -1, strict: bool = False, across_groups: bool = False,
                      compare_weights: bool = False, wrap: bool = False, backwards: bool = False,
                      per_example: bool = False, per_group: bool = False) -> Callable[..., float]:
    def fraction(weights, groups):  # noqa: ANN001
        where = weights.max(dim=-1).values if compare_weights else weights.argmax(dim=axis)
        if per_group:
            steps = [where[:, list(g)] for g in groups if len(g) > 1]
            return torch.stack([(w[:, 1:] >= w[:, :-1]).float().mean() for w in steps]).mean().item()
        chains = [[t for g in groups for t in g]] if across_groups else [list(g) for g in groups]
        pairs = [(g[k], g[(k + 1) % len(g)]) for g in chains for k in range(len(g) - (0 if wrap else 1))
                 if len(g) > 1]
        before, after = torch.tensor(pairs).T
        moved = where[:, after] - where[:, before]
        ok = (moved > 0) if strict else (moved >= 0)
        if backwards:
            ok = ~ok
        if per_example:
            return ok.float().sum().item() / len(pairs)
        return ok.float().mean().item()

    return fraction


_MONOTONE_MISTAKES = [
    Mistake("the argmax runs over the output steps (dim=1) instead of the input positions (dim=-1).",
            _monotone_variant(axis=1)),
    Mistake("staying on the same input position counts as a step back: 'does not move backwards' means "
            ">=, not >.", _monotone_variant(strict=True)),
    Mistake("the pairs between groups are counted too (e.g. from the last year digit to the first month "
            "digit); only neighbours inside the same group count.", _monotone_variant(across_groups=True)),
    Mistake("the largest weights are compared instead of the positions where they sit (argmax).",
            _monotone_variant(compare_weights=True)),
    Mistake("the pair from the last step of a group back to its first is counted too (the neighbours wrap "
            "around, as with torch.roll); only (g[k], g[k + 1]) for k < len(g) - 1 count.", _monotone_variant(wrap=True)),
    Mistake("the fraction of pairs that move backwards is returned: the question is how often the position does "
            "*not* move backwards (>=).", _monotone_variant(backwards=True)),
    Mistake("the count is divided by the number of pairs but not by the number of examples N: the fraction is "
            "over all pairs of all examples.", _monotone_variant(per_example=True)),
    Mistake("the fractions of the groups are averaged, so the two month digits weigh as much as the four year "
            "digits; count the pairs of all groups together.", _monotone_variant(per_group=True)),
]


def _peaked(g: torch.Generator, n: int, t: int, s: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Peaked alignments that mostly move forward, stay put sometimes, and jump back now and then."""
    pos = torch.cumsum(torch.randint(-1, 3, (n, t), generator=g), dim=1).clamp(0, s - 1)
    logits = torch.randn(n, t, s, generator=g, dtype=dtype)
    logits.scatter_add_(2, pos.unsqueeze(-1), torch.full((n, t, 1), 6.0, dtype=dtype))
    return logits.softmax(-1)


def _monotone_cases() -> list[Case]:
    g = torch.Generator().manual_seed(33)
    two = torch.rand(6, 11, 8, generator=g).argsort(-1)[..., :2]  # two different positions per step
    ties = torch.zeros(6, 11, 8).scatter_(2, two, 0.5)  # two equal largest weights: the first one counts
    digits = tuple(t for field in ISO_FIELDS for t in field)
    return [
        Case("12 peaked alignments (weights [12, 11, 12]) and groups ISO_FIELDS = ((0, 1, 2, 3), (5, 6), (8, 9))",
             (_peaked(g, 12, 11, 12), ISO_FIELDS)),
        Case(f"one group of non-neighbouring steps {list(digits)} (weights [10, 11, 12])",
             (_peaked(g, 10, 11, 12), [digits])),
        Case("a single example (weights [1, 11, 12]) and ISO_FIELDS", (_peaked(g, 1, 11, 12), ISO_FIELDS)),
        Case("groups of one step next to longer ones ((0, 1, 2), (4,), (6, 7, 8), (10,))",
             (_peaked(g, 8, 11, 12), ((0, 1, 2), (4,), (6, 7, 8), (10,)))),
        Case("ties in the argmax (two equal largest weights of 0.5: the first one counts, as torch.argmax)",
             (ties, ISO_FIELDS)),
        Case("float64 weights [9, 11, 12] and ISO_FIELDS", (_peaked(g, 9, 11, 12, torch.float64), ISO_FIELDS)),
        Case("fewer input positions than output steps (weights [8, 11, 5])", (_peaked(g, 8, 11, 5), ISO_FIELDS)),
    ]


def _one_hot(case: Case, positions: Tensor) -> Tensor:
    weights = case.args[0]
    out = torch.zeros_like(weights)
    out.scatter_(2, positions.expand(weights.shape[:2]).unsqueeze(-1), 1.0)
    return out


def _in_unit_interval(case: Case, result: Any, rerun: Any) -> str | None:
    value = float(result)
    if not 0.0 <= value <= 1.0:
        return f"the result is {value:.6g}"
    return None


def _diagonal_gives_one(case: Case, result: Any, rerun: Any) -> str | None:
    weights, groups = case.args
    t, s = weights.shape[1:]
    diagonal = _one_hot(case, torch.arange(t).clamp(max=s - 1)[None, :])
    got = float(rerun(diagonal, groups))
    if not abs(got - 1.0) <= 1e-6:
        return f"an alignment that only moves forward (step t looks at position t) gave {got:.6g} instead of 1.0"
    return None


def _reversed_gives_zero(case: Case, result: Any, rerun: Any) -> str | None:
    weights, groups = case.args
    t, s = weights.shape[1:]
    if s < t:
        return None
    backwards = _one_hot(case, (t - 1 - torch.arange(t))[None, :])
    got = float(rerun(backwards, groups))
    if not abs(got) <= 1e-6:
        return f"an alignment that always moves backwards (step t looks at position T - 1 - t) gave {got:.6g} instead of 0.0"
    return None


def _only_the_argmax_matters(case: Case, result: Any, rerun: Any) -> str | None:
    weights, groups = case.args
    got = float(rerun(weights**2, groups))  # squaring keeps every row's largest weight where it is
    if not abs(got - float(result)) <= 1e-6:
        return f"squaring the weights (the largest one stays where it is) changed the result from {float(result):.6g} to {got:.6g}"
    return None


def _example_order_does_not_matter(case: Case, result: Any, rerun: Any) -> str | None:
    weights, groups = case.args
    if weights.shape[0] < 2:
        return None
    got = float(rerun(weights.flip(0), groups))
    if not abs(got - float(result)) <= 1e-6:
        return f"listing the examples in reverse order changed the result from {float(result):.6g} to {got:.6g}"
    return None


_MONOTONE_PROPERTIES = [
    Property("'the result lies in [0, 1]'", _in_unit_interval),
    Property("'an alignment that moves forward gives 1.0'", _diagonal_gives_one),
    Property("'an alignment that moves backwards gives 0.0'", _reversed_gives_zero),
    Property("'only the position of the largest weight matters'", _only_the_argmax_matters),
    Property("'the order of the examples does not matter'", _example_order_does_not_matter),
]

_MONOTONE_SPEC = Spec(reference=reference_monotone_fraction, cases=_monotone_cases, mistakes=_MONOTONE_MISTAKES,
                      properties=_MONOTONE_PROPERTIES, part="fraction", arg_names=("weights", "groups"))


def check_monotone_fraction(monotone_fraction_fn: Callable[..., float]) -> Callable[..., float]:
    """Exercise 3.3: ``monotone_fraction(weights, groups) -> float``; returns the function the analysis cells use
    (yours once it passes)."""
    return check(MONOTONE, _MONOTONE_SPEC, (monotone_fraction_fn,), (reference_monotone_fraction,),
                 f"the fraction matches on {len(_monotone_cases())} cases (ISO fields, non-neighbouring steps, one "
                 "example, groups of one step, ties in the argmax, float64, fewer inputs than outputs)")
