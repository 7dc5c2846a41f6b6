"""The self-check of Exercise 5.3: one step of beam search (what it checks: the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.toolkit.errors import shape_text
from amla.transformers.encoder_decoder import beam_step
from amla.transformers.tasks import PAD_ID

BEAM = exercise(5, "5.3", "One step of beam search", "beam_step")


def _beam_variant(*, add_scores: bool = True, per_beam: bool = False, freeze: str = "pad", swap: bool = False,
                  smallest: bool = False, split_by: str = "v") -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """A beam step with one typical bug switched on (the defaults give the correct step)."""

    def step(scores: Tensor, log_probs: Tensor, finished: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, k, v = log_probs.shape
        if freeze == "pad":
            frozen = torch.full_like(log_probs, -math.inf)
            frozen[..., PAD_ID] = 0.0
            log_probs = torch.where(finished[..., None], frozen, log_probs)
        elif freeze == "drop":  # finished beams are thrown away
            log_probs = log_probs.masked_fill(finished[..., None], -math.inf)
        elif freeze == "pad_cost":  # forced to <pad>, but paying the model's log-probability for it
            pad_only = torch.full_like(log_probs, -math.inf)
            pad_only[..., PAD_ID] = log_probs[..., PAD_ID]
            log_probs = torch.where(finished[..., None], pad_only, log_probs)
        elif freeze == "pad_zero_only":  # 0 at <pad>, but the other tokens are left open
            log_probs = log_probs.clone()
            log_probs[..., PAD_ID] = torch.where(finished, 0.0, log_probs[..., PAD_ID])
        total = scores[..., None] + log_probs if add_scores else log_probs
        if per_beam:  # the best token of each beam, instead of the best K of all K*V
            best, token = total.max(-1)
            return best, torch.arange(k).expand(b, k), token
        best, index = total.reshape(b, k * v).topk(k, dim=-1, largest=not smallest)
        d = v if split_by == "v" else k
        if swap:
            return best, index % d, index // d
        return best, index // d, index % d

    return step


_BEAM_MISTAKES = [
    Mistake("the previous scores are not added: a beam's score is the *sum* of the log-probabilities of all its "
            "tokens, so add scores[..., None] to log_probs before choosing.", _beam_variant(add_scores=False)),
    Mistake("each beam keeps its own best token: the K survivors must be the best K of all K * V extensions "
            "(flatten to [B, K * V], then topk), so a strong beam can have several children and a weak one none.",
            _beam_variant(per_beam=True)),
    Mistake("finished beams are thrown away (-inf). A beam that said <eos> is a complete candidate: keep it, "
            "extended by <pad> at no cost (log-probability 0).", _beam_variant(freeze="drop")),
    Mistake("finished beams pay the model's log-probability of <pad>; the extension of a finished beam must cost "
            "nothing (0), or complete outputs lose to unfinished ones for no reason.", _beam_variant(freeze="pad_cost")),
    Mistake("finished beams are extended like live ones: after <eos> a beam may only be followed by <pad>.",
            _beam_variant(freeze="none")),
    Mistake("a finished beam gets 0 at <pad>, but its other tokens keep their log-probabilities: it may only be "
            "followed by <pad>, so the rest of its row must be -inf.", _beam_variant(freeze="pad_zero_only")),
    Mistake("parent and token are swapped: in the flattened [B, K * V] index, the beam is index // V and the token "
            "index % V.", _beam_variant(swap=True)),
    Mistake("the flattened index is split with K instead of V: the [B, K * V] index of beam p and token t is "
            "p * V + t, so parent = index // V and token = index % V.", _beam_variant(split_by="k")),
    Mistake("the K *worst* extensions are kept (topk(..., largest=False) or an ascending sort): the best "
            "log-probability is the largest, the one closest to 0.", _beam_variant(smallest=True)),
]


def _frozen(log_probs: Tensor, finished: Tensor) -> Tensor:
    only_pad = torch.full_like(log_probs, -math.inf)
    only_pad[..., PAD_ID] = 0.0
    return torch.where(finished[..., None], only_pad, log_probs)


def _chosen(scores: Tensor, log_probs: Tensor, finished: Tensor, parent: Tensor, token: Tensor) -> Tensor | None:
    """The score of the extension (parent, token) of each new beam, or None when an index is out of range."""
    b, k, v = log_probs.shape
    if bool(((parent < 0) | (parent >= k) | (token < 0) | (token >= v)).any()):
        return None
    total = scores[..., None] + _frozen(log_probs, finished)
    return total[torch.arange(b)[:, None], parent, token]


def _tie_view(scores: Tensor, log_probs: Tensor, finished: Tensor) -> Callable[[Any], Any]:
    """What is compared where extensions tie: the new scores, the score of the chosen (parent, token), and how many
    distinct extensions were chosen (any of the tied ones is right)."""

    def view(out: Any) -> Any:
        new_scores, parent, token = out
        chosen = _chosen(scores, log_probs, finished, parent, token)
        if chosen is None:
            chosen = torch.full_like(new_scores, math.nan)
        pairs = parent * log_probs.shape[-1] + token
        distinct = torch.tensor([len(set(row)) for row in pairs.tolist()])
        return new_scores, chosen, distinct

    return view


def _beam_cases() -> list[Case]:
    g = torch.Generator().manual_seed(53)

    def beams(b: int, k: int, v: int = 11, p_finished: float = 0.3, dtype: torch.dtype = torch.float32
              ) -> tuple[Tensor, Tensor, Tensor]:
        scores = -torch.rand(b, k, generator=g, dtype=dtype) * 4
        log_probs = (torch.randn(b, k, v, generator=g, dtype=dtype) * 2).log_softmax(-1)
        finished = torch.rand(b, k, generator=g) < p_finished
        return scores, log_probs, finished

    ordinary = beams(3, 4)
    ordinary[2][0, 0] = True  # a finished beam with the best score: it must survive, extended by <pad>
    ordinary[2][0, 1] = False
    ordinary[0][0, 0] = -0.01
    greedy = beams(2, 1, p_finished=0.0)
    greedy[2][1, 0] = True
    done = beams(2, 3, p_finished=1.1)
    live = beams(2, 3, p_finished=-0.1)
    one = beams(1, 3)
    one[2][0] = torch.tensor([False, True, False])
    one[0][0, 1] = -0.05
    first = beams(2, 3, p_finished=-0.1)
    first[0][:] = -math.inf
    first[0][:, 0] = 0.0  # the first step of beam_search: one live beam, the others at -inf
    double = beams(2, 3, dtype=torch.float64)
    double[2][0, 2] = True
    tie_scores = torch.tensor([[-1.0, -1.0, -2.0], [-0.5, -3.0, -3.0]])
    tie_lp = torch.full((2, 3, 6), math.log(1 / 6))  # every token equally likely: many extensions tie
    tie_finished = torch.tensor([[False, False, False], [False, True, False]])
    return [
        Case(f"scores {shape_text(ordinary[0])}, log_probs {shape_text(ordinary[1])}, some beams finished, one of them with "
             "the best score", ordinary),
        Case(f"a single beam (K = 1, greedy; scores {shape_text(greedy[0])}, beam 0 of example 1 finished)", greedy),
        Case(f"every beam finished (scores {shape_text(done[0])})", done),
        Case(f"no beam finished (scores {shape_text(live[0])})", live),
        Case(f"a batch of 1 (scores {shape_text(one[0])}), the finished beam 1 has the best score", one),
        Case(f"the first step: one live beam, the others at -inf (scores {first[0].tolist()})", first),
        Case(f"float64 scores {shape_text(double[0])} and log_probs {shape_text(double[1])}", double),
        Case(f"ties: every token equally likely and equal scores (scores {tie_scores.tolist()}, V = 6; any of the "
             "tied extensions is accepted)", (tie_scores, tie_lp, tie_finished),
             view=_tie_view(tie_scores, tie_lp, tie_finished)),
    ]


def _beam_sorted(case: Case, out: Any, rerun: Any) -> str | None:
    new_scores = out[0]
    bad = new_scores[:, 1:] > new_scores[:, :-1]
    if bool(bad.any()):
        b, k = (int(x) for x in bad.nonzero()[0])
        return f"in example {b}, new_scores[{k + 1}] = {float(new_scores[b, k + 1]):.4g} is larger than " \
               f"new_scores[{k}] = {float(new_scores[b, k]):.4g}: they must come best first"
    return None


def _beam_consistent(case: Case, out: Any, rerun: Any) -> str | None:
    scores, log_probs, finished = case.args
    new_scores, parent, token = out
    chosen = _chosen(scores, log_probs, finished, parent, token)
    if chosen is None:
        return f"parent must lie in 0..{scores.shape[1] - 1} and token in 0..{log_probs.shape[-1] - 1}"
    if not torch.allclose(new_scores.double(), chosen.double(), atol=1e-5, equal_nan=True):
        b, k = (int(x) for x in (~torch.isclose(new_scores.double(), chosen.double(), atol=1e-5)).nonzero()[0])
        p, t = int(parent[b, k]), int(token[b, k])
        where = " (a finished beam followed by anything but <pad> scores -inf)" if bool(finished[b, p]) else ""
        return (f"in example {b}, new beam {k} = beam {p} + token {t} should score scores[{b}, {p}] + "
                f"log_probs[{b}, {p}, {t}] = {float(chosen[b, k]):.4g}{where}, but new_scores[{b}, {k}] = "
                f"{float(new_scores[b, k]):.4g}")
    return None


def _beam_distinct(case: Case, out: Any, rerun: Any) -> str | None:
    _, log_probs, _ = case.args
    _, parent, token = out
    for b, row in enumerate((parent * log_probs.shape[-1] + token).tolist()):
        if len(set(row)) < len(row):
            return f"in example {b} the same extension (parent, token) is kept twice"
    return None


def _beam_best(case: Case, out: Any, rerun: Any) -> str | None:
    scores, log_probs, finished = case.args
    b, k, v = log_probs.shape
    best = (scores[..., None] + _frozen(log_probs, finished)).reshape(b, k * v).topk(k, dim=-1).values
    have = out[0].sort(dim=-1, descending=True).values
    if not torch.allclose(have.double(), best.double(), atol=1e-5, equal_nan=True):
        return f"the best {k} of the {k * v} extensions score {best[0].tolist()} in example 0, yours {have[0].tolist()}"
    return None


_BEAM_PROPERTIES = [
    Property("'new_scores are sorted best first in each example'", _beam_sorted),
    Property("'new_scores[b, k] = scores[b, parent] + log_probs[b, parent, token] (a finished beam: + 0, token "
             "<pad>)'", _beam_consistent),
    Property("'no extension is kept twice'", _beam_distinct),
    Property("'the K survivors are the K best of the K * V extensions'", _beam_best),
]

_BEAM_SPEC = Spec(reference=beam_step, cases=_beam_cases, mistakes=_BEAM_MISTAKES, properties=_BEAM_PROPERTIES,
                  items=("new_scores", "parent", "token"))


def check_beam_step(beam_step_fn: Callable[..., tuple[Tensor, Tensor, Tensor]]
                    ) -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """Exercise 5.3: ``beam_step(scores, log_probs, finished) -> (new_scores, parent, token)``; returns the step the
    rest of the hour's beam search uses (yours once it passes)."""
    return check(BEAM, _BEAM_SPEC, (beam_step_fn,), (beam_step,),
                 "new scores, parents and tokens match on {cases} cases (finished beams, K = 1, all or "
                 "no beam finished, a batch of 1, the first step, float64, ties)")
