"""The self-check of Exercise 15.1: iterative policy evaluation (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.rl._arrays import as_tensor, from_np as _t, numpy_call, to_np
from amla.rl import tabular

POLICY_EVALUATION = exercise(15, "15.1", "Policy evaluation by iteration", "policy_evaluation")

PolicyEvaluationFn = Callable[..., np.ndarray]
_SWEEPS = 5_000  # the buggy variants sweep a fixed number of times (some of them never converge)


def reference_policy_evaluation(P: np.ndarray, R: np.ndarray, policy: np.ndarray, gamma: float,
                                theta: float = 1e-10) -> np.ndarray:
    """The exact solve $(I - \\gamma P_\\pi)^{-1} r_\\pi$ with the exercise's signature: what the iteration must
    reach (to 1e-6), and what the rest of the hour uses while the exercise is not done."""
    return tabular.exact_policy_evaluation(P, R, policy, gamma)


def _variant(kind: str) -> PolicyEvaluationFn:
    """Policy evaluation with one typical bug switched on (kind)."""

    def fn(P: np.ndarray, R: np.ndarray, policy: np.ndarray, gamma: float, theta: float = 1e-10) -> np.ndarray:
        n_a = R.shape[1]
        pi = np.full_like(policy, 1.0 / n_a) if kind == "uniform" else policy
        r_pi = R.sum(1) if kind == "reward_unweighted" else (pi * R).sum(1)
        P_pi = np.einsum("sa,sat->st", pi, P)
        V = np.zeros(P.shape[0])
        if kind == "one_sweep":
            return r_pi + gamma * P_pi @ V
        with np.errstate(all="ignore"):
            for _ in range(_SWEEPS):
                if kind == "max":
                    V_new = (R + gamma * P @ V).max(1)
                elif kind == "transposed":
                    V_new = r_pi + gamma * V @ P_pi
                else:
                    V_new = r_pi + gamma * P_pi @ V
                done = np.max(np.abs(V_new - V), initial=0.0) < theta
                V = V_new
                if done:
                    break
        return V

    return fn


_MISTAKES = [
    Mistake("the actions are averaged uniformly instead of weighted by the policy: r_pi[s] = sum over a of "
            "policy[s, a] R[s, a], and P_pi[s, s'] = sum over a of policy[s, a] P[s, a, s'].", _variant("uniform")),
    Mistake("the rewards are summed over the actions without the policy's weights: r_pi = (policy * R).sum(1).",
            _variant("reward_unweighted")),
    Mistake("the best action is taken (a max over a, as in value iteration): policy evaluation averages over the "
            "actions with the policy's probabilities.", _variant("max")),
    Mistake("the next states' values are gathered with V @ P_pi (P_pi transposed): the expected next value of s "
            "is sum over s' of P_pi[s, s'] V[s'], i.e. P_pi @ V.", _variant("transposed")),
    Mistake("a single sweep from V = 0 (V = r_pi): repeat the backup until no value moves by theta.",
            _variant("one_sweep")),
]


def _random_mdp(rng: np.random.Generator, n_s: int, n_a: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.dirichlet(np.ones(n_s), size=(n_s, n_a)), rng.normal(size=(n_s, n_a))


@lru_cache(maxsize=1)
def _gridworld() -> tuple[np.ndarray, np.ndarray]:
    from amla.rl.gridworld import GridWorld

    P, R, _ = tabular.transition_model(GridWorld())
    return P, R


def _cases() -> list[Case]:
    rng = np.random.default_rng(151)
    P, R = _random_mdp(rng, 4, 3)
    pi = rng.dirichlet(np.ones(3), size=4)
    P0, R0 = _random_mdp(rng, 3, 2)
    pi0 = rng.dirichlet(np.ones(2), size=3)
    Pa, Ra = _random_mdp(rng, 4, 2)  # state 3 absorbing: a self-loop of reward 0
    Pa[3], Ra[3] = 0.0, 0.0
    Pa[3, :, 3] = 1.0
    pia = rng.dirichlet(np.ones(2), size=4)
    Pt, Rt = np.zeros((4, 2, 4)), -np.ones((4, 2))  # a chain 0 -> 1 -> 2 -> 3 (terminal), with a chance to stay
    for s in range(3):
        Pt[s, 0, s + 1], Pt[s, 1, s], Pt[s, 1, s + 1] = 1.0, 0.5, 0.5
    Rt[3] = 0.0
    pit = np.array([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1], [0.5, 0.5]])
    Pd, Rd = _random_mdp(rng, 5, 3)
    pid = np.eye(3)[[2, 0, 1, 1, 0]]
    Pg, Rg = _gridworld()
    uniform = np.full((Pg.shape[0], 4), 0.25)
    P32, R32 = _random_mdp(rng, 4, 2)
    pi32 = rng.dirichlet(np.ones(2), size=4)
    return [
        Case("a random MDP of 4 states and 3 actions, a stochastic policy, gamma 0.9 (theta left out)",
             (_t(P), _t(R), _t(pi), 0.9)),
        Case("gamma 0 (the values are the expected immediate rewards)", (_t(P0), _t(R0), _t(pi0), 0.0)),
        Case("an absorbing state (state 3 loops to itself with reward 0), gamma 0.95", (_t(Pa), _t(Ra), _t(pia), 0.95)),
        Case("a terminal state (state 3: an all-zero row of P, as transition_model makes it), reward -1 per step and "
             "gamma 1", (_t(Pt), _t(Rt), _t(pit), 1.0)),
        Case("a deterministic policy (one-hot rows), 5 states, gamma 0.8", (_t(Pd), _t(Rd), _t(pid), 0.8)),
        Case("one state and one action (P = [[[1.0]]], R = [[2.0]], gamma 0.5: V = 2 / (1 - 0.5) = 4)",
             (_t(np.ones((1, 1, 1))), _t(np.full((1, 1), 2.0)), _t(np.ones((1, 1))), 0.5)),
        Case("the course gridworld (12 states) and the uniform random policy, gamma 0.9",
             (_t(Pg), _t(Rg), _t(uniform), 0.9)),
        Case("theta given (1e-12), gamma 0.9", (_t(P), _t(R), _t(pi), 0.9, 1e-12)),
        Case("float32 P, R and policy, gamma 0.9", (_t(P32.astype(np.float32)), _t(R32.astype(np.float32)),
                                                    _t(pi32.astype(np.float32)), 0.9), atol=1e-5, rtol=1e-5),
    ]


def _invoke(fn: PolicyEvaluationFn, *args: Any) -> Tensor:
    return as_tensor(numpy_call(fn, args), "V", "[S] (one value per state)")


def _parts(case: Case) -> tuple[np.ndarray, np.ndarray, float]:
    P, R, pi, gamma = (to_np(a) if i < 3 else a for i, a in enumerate(case.args[:4]))
    return (pi * R).sum(1).astype(np.float64), np.einsum("sa,sat->st", pi, P).astype(np.float64), float(gamma)


def _gamma_zero(case: Case, out: Tensor, rerun: Any) -> str | None:
    r_pi, _, gamma = _parts(case)
    V = out.numpy()
    if gamma == 0 and not np.allclose(V, r_pi, atol=1e-5):
        return f"with gamma 0 your V is {np.round(V, 4).tolist()}, but r_pi = {np.round(r_pi, 4).tolist()}"
    return None


def _terminal_zero(case: Case, out: Tensor, rerun: Any) -> str | None:
    P, R = to_np(case.args[0]), to_np(case.args[1])
    ends = np.flatnonzero((P.sum((1, 2)) == 0) & (np.abs(R).sum(1) == 0))
    V = out.numpy()
    if ends.size and np.abs(V[ends]).max() > 1e-8:
        return f"state {int(ends[0])} has no transition and no reward, yet your V there is {V[ends[0]]:.4g}"
    return None


def _fixed_point(case: Case, out: Tensor, rerun: Any) -> str | None:
    r_pi, P_pi, gamma = _parts(case)
    V = out.numpy()
    residual = np.abs(r_pi + gamma * P_pi @ V - V).max()
    if not residual < 1e-5:
        return (f"r_pi + gamma P_pi V differs from your V by up to {residual:.3g} (at convergence it is 0: did the "
                "loop stop too early, or does the backup differ from this equation?)")
    return None


_PROPERTIES = [
    Property("'with gamma = 0 the values are the expected immediate rewards r_pi'", _gamma_zero),
    Property("'a terminal state (no transition out, no reward) has value 0'", _terminal_zero),
    Property("'V is the fixed point of the Bellman expectation equation V = r_pi + gamma P_pi V'", _fixed_point),
]

_SPEC = Spec(reference=reference_policy_evaluation, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             invoke=_invoke, part="V", atol=1e-6, rtol=1e-6, time_limit=20.0,
             arg_names=("P", "R", "policy", "gamma", "theta"))


def check_policy_evaluation(policy_evaluation: PolicyEvaluationFn) -> PolicyEvaluationFn:
    """Exercise 15.1: ``policy_evaluation(P, R, policy, gamma, theta=1e-10) -> V [S]``; returns the policy
    evaluation the rest of the hour uses (yours once it passes)."""
    return check(POLICY_EVALUATION, _SPEC, (policy_evaluation,), (reference_policy_evaluation,),
                 "V equals the exact solve (I - gamma P_pi)^-1 r_pi to 1e-6 on {cases} MDPs (a stochastic policy, "
                 "gamma 0 and 1, absorbing and terminal states, one state, the course gridworld, float32)")
