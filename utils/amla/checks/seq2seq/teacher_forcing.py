"""The self-check of Exercise 3.2: the teacher-forced loss (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.seq2seq.additive_attention import _lengths
from amla.transformers.seq2seq import AttentionDecoder, Memory, teacher_forcing_loss
from amla.transformers.tasks import BOS_ID, EOS_ID, PAD_ID

FORCING = exercise(3, "3.2", "The teacher-forced loss", "teacher_forcing_loss")


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
                 "loss and gradients (decoder, initial state, encoder states) match on {cases} cases "
                 "(padding, a batch of one, just <eos>, no padding, repeated ids above 9, logits around 1e4)")
