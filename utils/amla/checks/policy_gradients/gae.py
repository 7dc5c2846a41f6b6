"""The self-check of Exercise 17.2: generalized advantage estimation with terminated and truncated episode ends
(what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.rl.ppo import gae

GAE = exercise(17, "17.2", "Generalized advantage estimation", "gae")

GaeFn = Callable[..., tuple[Tensor, Tensor]]


def reference_gae(rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor,
                  gamma: float = 0.99, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """The course's ``gae`` with the exercise's signature."""
    return gae(rewards, values, next_values, terminated, truncated, gamma, lam)


def _gae_variant(kind: str) -> GaeFn:
    """``gae`` with one typical bug switched on (kind)."""

    def fn(rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor,
           gamma: float = 0.99, lam: float = 0.95) -> tuple[Tensor, Tensor]:
        term, trunc = terminated.bool(), truncated.bool()
        if kind == "trunc_as_term":
            term = term | trunc
        alive = (~term).to(values.dtype)
        if kind == "bootstrap_always":
            alive = torch.ones_like(values)
        done = term | trunc
        if kind == "cut_at_term_only":
            done = terminated.bool()
        cont = (~done).to(values.dtype)
        if kind == "never_cut":
            cont = torch.ones_like(values)
        nv = next_values
        if kind == "values_shifted":  # V(s_{t+1}) read from values[t + 1]: the next episode's first state
            nv = torch.cat([values[1:], next_values[-1:]])
        delta = rewards.to(values.dtype) + gamma * alive * nv - values
        decay = {"no_lam": gamma, "no_gamma": lam}.get(kind, gamma * lam)
        T = rewards.shape[0]
        adv = torch.zeros_like(values)
        running = torch.zeros_like(values[0])
        steps = range(T) if kind == "forward" else range(T - 1, -1, -1)
        for t in steps:
            if kind == "cut_late":  # the done flag of the step after t
                c = cont[t + 1] if t + 1 < T else torch.ones_like(running)
            else:
                c = cont[t]
            running = delta[t] + decay * c * running
            adv[t] = running
        return adv, (adv.clone() if kind == "returns_are_adv" else adv + values)

    return fn


_GAE_MISTAKES = [
    Mistake("a truncated episode is treated as terminated (no bootstrap): a time limit does not end the task, so "
            "the TD error of a truncated step still adds gamma * next_values (V of the final observation); only "
            "`terminated` zeroes it.", _gae_variant("trunc_as_term")),
    Mistake("a terminated step still bootstraps: after termination the future is worth 0, so delta = r - V(s) "
            "there (multiply gamma * next_values by 1 - terminated).", _gae_variant("bootstrap_always")),
    Mistake("the recursion runs on across a truncation: after *any* episode end (terminated or truncated) step t + 1 "
            "belongs to the next episode, so A_t = delta_t there, nothing carried back.",
            _gae_variant("cut_at_term_only")),
    Mistake("the recursion runs on across episode ends: A_t = delta_t + gamma lam (1 - done_t) A_{t+1}, with "
            "done = terminated or truncated.", _gae_variant("never_cut")),
    Mistake("V(s_{t+1}) is read from values[t + 1]: where an episode ended that is the next episode's first state; "
            "use next_values[t] (V of the state step t really led to).", _gae_variant("values_shifted")),
    Mistake("the episode end is read one step late (done[t + 1] instead of done[t]): the flags of step t say "
            "whether s_{t+1} still belongs to this episode.", _gae_variant("cut_late")),
    Mistake("lam is missing from the recursion: A_t = delta_t + gamma * lam * A_{t+1}.", _gae_variant("no_lam")),
    Mistake("gamma is missing from the recursion: A_t = delta_t + gamma * lam * A_{t+1}.", _gae_variant("no_gamma")),
    Mistake("the loop runs forwards: A_t depends on A_{t+1}, so go from the last step back to the first.",
            _gae_variant("forward")),
    Mistake("the returns equal the advantages: the value target is returns = advantages + values.",
            _gae_variant("returns_are_adv")),
]


def _rollout(T: int, N: int, seed: int, dtype: torch.dtype = torch.float32,
             term: list[tuple[int, int]] = (), trunc: list[tuple[int, int]] = ()) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    rewards = torch.rand(T, N, generator=g, dtype=dtype) * 2 - 0.5
    values = torch.randn(T, N, generator=g, dtype=dtype) * 2
    next_values = torch.cat([values[1:], torch.randn(1, N, generator=g, dtype=dtype) * 2])
    terminated, truncated = torch.zeros(T, N, dtype=torch.bool), torch.zeros(T, N, dtype=torch.bool)
    for t, n in term:
        terminated[t, n] = True
    for t, n in trunc:
        truncated[t, n] = True
    ended = terminated | truncated
    # where an episode ended, next_values is V(final obs), not the next episode's first state values[t + 1]
    next_values = torch.where(ended, torch.randn(T, N, generator=g, dtype=dtype) * 2 + 3, next_values)
    return rewards, values, next_values, terminated, truncated


def _gae_cases() -> list[Case]:
    mixed = dict(term=[(2, 0), (5, 2)], trunc=[(3, 1), (1, 2)])
    return [
        Case("6 steps of 3 environments, terminated and truncated episode ends, gamma 0.9, lam 0.8",
             (*_rollout(6, 3, 0, **mixed), 0.9, 0.8)),
        Case("no episode end in 5 steps of 2 environments, gamma 0.9, lam 0.8", (*_rollout(5, 2, 1), 0.9, 0.8)),
        Case("lam = 0 (one-step TD errors)", (*_rollout(6, 3, 2, **mixed), 0.9, 0.0)),
        Case("lam = 1 (discounted return minus V)", (*_rollout(6, 3, 3, **mixed), 0.9, 1.0)),
        Case("one step of one environment (T = 1, N = 1)", (*_rollout(1, 1, 4), 0.9, 0.8)),
        Case("one step of one environment that terminates", (*_rollout(1, 1, 5, term=[(0, 0)]), 0.9, 0.8)),
        Case("one step of one environment that is truncated", (*_rollout(1, 1, 6, trunc=[(0, 0)]), 0.9, 0.8)),
        Case("episode ends at the first step (terminated in env 0, truncated in env 1)",
             (*_rollout(4, 3, 7, term=[(0, 0)], trunc=[(0, 1)]), 0.9, 0.8)),
        Case("episode ends at the last step (terminated in env 0, truncated in env 1)",
             (*_rollout(4, 3, 8, term=[(3, 0)], trunc=[(3, 1)]), 0.9, 0.8)),
        Case("both flags set on one step (terminated wins: no bootstrap)",
             (*_rollout(5, 2, 9, term=[(2, 0), (1, 1)], trunc=[(2, 0), (3, 1)]), 0.9, 0.8)),
        Case("two episode ends in a row in one environment", (*_rollout(5, 1, 10, term=[(1, 0)], trunc=[(2, 0)]),
                                                               0.9, 0.8)),
        Case("gamma and lam left out (their defaults 0.99 and 0.95)", _rollout(5, 2, 11, **dict(term=[(1, 0)],
                                                                                                  trunc=[(3, 1)]))),
        Case("float64 rewards and values (the results stay float64)",
             (*_rollout(5, 3, 12, torch.float64, term=[(1, 0)], trunc=[(2, 1)]), 0.9, 0.8)),
    ]


def _gl(case: Case) -> tuple[float, float]:
    return (case.args[5], case.args[6]) if len(case.args) > 5 else (0.99, 0.95)


def _sum(case: Case, out: Any, rerun: Any) -> str | None:
    adv, ret = out
    if not torch.allclose(ret, adv + case.args[1].to(adv.dtype), atol=1e-5, rtol=1e-4):
        return "returns should equal advantages + values"
    return None


def _own_delta_at_ends(case: Case, out: Any, rerun: Any) -> str | None:
    rewards, values, next_values, terminated, truncated = case.args[:5]
    gamma, _ = _gl(case)
    adv = out[0]
    delta = rewards + gamma * (~terminated).to(values.dtype) * next_values - values
    ended = terminated | truncated
    last = torch.zeros_like(ended)
    last[-1] = True
    where = ended | last  # nothing comes after these steps within the rollout's episode
    if not torch.allclose(adv[where], delta[where].to(adv.dtype), atol=1e-5, rtol=1e-4):
        t, n = divmod(int(((adv - delta).abs() * where).flatten().argmax()), adv.shape[1])
        return (f"at a step where the episode ended (or the rollout's last step) the advantage is that step's own TD "
                f"error r + gamma (1 - terminated) next_value - value; step {t}, env {n}: "
                f"{adv[t, n].item():.4g} instead of {delta[t, n].item():.4g}")
    return None


def _no_leak(case: Case, out: Any, rerun: Any) -> str | None:
    rewards, values, next_values, terminated, truncated = case.args[:5]
    ended = terminated | truncated
    for n in range(rewards.shape[1]):
        ends = ended[:, n].nonzero().flatten().tolist()
        if not ends or ends[0] + 1 >= rewards.shape[0]:
            continue
        t = ends[0]
        changed = rewards.clone()
        changed[t + 1:, n] += 10.0
        adv = rerun(changed, values, next_values, terminated, truncated, *case.args[5:])[0]
        if not torch.allclose(adv[: t + 1, n], out[0][: t + 1, n], atol=1e-5, rtol=1e-4):
            return (f"changing the rewards after the episode end at step {t} of env {n} (the next episode) changed "
                    "the advantages of the episode before it")
    return None


_GAE_PROPERTIES = [
    Property("'returns = advantages + values'", _sum),
    Property("'the next episode's rewards do not reach back across an episode end'", _no_leak),
    Property("'the advantage at an episode's last step is its own TD error'", _own_delta_at_ends),
]

_GAE_SPEC = Spec(reference=reference_gae, cases=_gae_cases, mistakes=_GAE_MISTAKES, properties=_GAE_PROPERTIES,
                 items=("advantages", "returns"),
                 arg_names=("rewards", "values", "next_values", "terminated", "truncated", "gamma", "lam"))


def check_gae(gae_fn: GaeFn) -> GaeFn:
    """Exercise 17.2: ``gae(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95) ->
    (advantages, returns)``, all ``[T, N]``; returns the function the rest of the hour uses (yours once it
    passes)."""
    return check(GAE, _GAE_SPEC, (gae_fn,), (reference_gae,),
                 "advantages and returns match on {cases} rollouts (terminated and truncated ends, at the first and "
                 "the last step, both flags, lam 0 and 1, T = N = 1, defaults left out, float64)")
