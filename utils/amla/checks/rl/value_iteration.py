"""The self-check of Exercise 15.2: value iteration, its values and its greedy policy (what it checks: the package
docstring)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.rl._arrays import as_tensor, from_np as _t, numpy_call, to_np
from amla.rl import tabular

VALUE_ITERATION = exercise(15, "15.2", "Value iteration", "value_iteration")

ValueIterationFn = Callable[..., tuple[np.ndarray, np.ndarray]]
_SWEEPS = 5_000


def reference_value_iteration(P: np.ndarray, R: np.ndarray, gamma: float,
                              theta: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """The course's ``value_iteration`` with the exercise's signature."""
    return tabular.value_iteration(P, R, gamma, theta)


def _variant(kind: str) -> ValueIterationFn:
    """Value iteration with one typical bug switched on (kind)."""

    def fn(P: np.ndarray, R: np.ndarray, gamma: float, theta: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
        V = np.zeros(P.shape[0])

        def backup(V: np.ndarray) -> np.ndarray:
            if kind == "max_next":
                return R + gamma * np.where(P > 0, V[None, None, :], -np.inf).max(2)
            return R + gamma * P @ V

        with np.errstate(all="ignore"):
            for _ in range(1 if kind == "one_sweep" else _SWEEPS):
                Q = backup(V)
                V_new = Q.min(1) if kind == "min" else Q.mean(1) if kind == "mean" else Q.max(1)
                if kind == "only_up":
                    V_new = np.maximum(V, V_new)
                done = np.max(np.abs(V_new - V), initial=0.0) < theta
                V = V_new
                if done:
                    break
            Q = backup(V)
        if kind == "no_reward_policy":
            return V, (P @ V).argmax(1)
        return V, (Q.argmin(1) if kind == "min" else Q.argmax(1))

    return fn


_MISTAKES = [
    Mistake("the worst action is taken (min / argmin instead of max / argmax).", _variant("min")),
    Mistake("the actions are averaged (that evaluates the uniform random policy): value iteration takes the max "
            "over actions, V[s] = max over a of (R[s, a] + gamma sum over s' of P[s, a, s'] V[s']).", _variant("mean")),
    Mistake("the policy ignores the reward: the greedy action maximises R[s, a] + gamma P[s, a] @ V, not P[s, a] @ V "
            "alone.", _variant("no_reward_policy")),
    Mistake("the next value is the best reachable next state (a max over s'): it is the expectation, sum over s' "
            "of P[s, a, s'] V[s'] (P @ V).", _variant("max_next")),
    Mistake("the values only ever go up (np.maximum(V, ...)): from V = 0 that never lets a value go negative; "
            "each sweep replaces V by the new backup.", _variant("only_up")),
    Mistake("a single sweep from V = 0 (V = max over a of R): repeat until no value moves by theta.",
            _variant("one_sweep")),
]


def _random_mdp(rng: np.random.Generator, n_s: int, n_a: int) -> tuple[np.ndarray, np.ndarray]:
    P = rng.dirichlet(np.ones(n_s), size=(n_s, n_a))
    P[P < 0.05] = 0.0  # some transitions impossible, so that "the best reachable next state" is a real mistake
    return P / P.sum(2, keepdims=True), rng.normal(size=(n_s, n_a))


@lru_cache(maxsize=1)
def _models() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import gymnasium as gym

    from amla.rl.episodes import env_id
    from amla.rl.gridworld import GridWorld

    grid = tabular.transition_model(GridWorld())[:2]
    lake = tabular.transition_model(gym.make(env_id("FrozenLake-v1")))[:2]
    return {"grid": grid, "lake": lake}


def _case(label: str, P: np.ndarray, R: np.ndarray, gamma: float, *extra: float, atol: float | None = None) -> Case:
    """A case whose policy is compared by its optimal action values Q*(s, policy[s]): ties may go either way."""
    V_star, _ = tabular.value_iteration(P.astype(np.float64), R.astype(np.float64), gamma, 1e-13)
    q_star = torch.from_numpy(tabular.q_from_v(P.astype(np.float64), R.astype(np.float64), V_star, gamma))

    def view(value: Any) -> Any:
        V, policy = value
        return V, q_star[torch.arange(len(policy)), policy]

    return Case(label, (_t(P), _t(R), gamma, *extra), view=view, atol=atol, rtol=atol)


def _cases() -> list[Case]:
    rng = np.random.default_rng(152)
    P, R = _random_mdp(rng, 5, 3)
    P0, R0 = _random_mdp(rng, 4, 3)
    Pa, Ra = _random_mdp(rng, 4, 2)
    Pa[0], Ra[0] = 0.0, 0.0
    Pa[0, :, 0] = 1.0
    Pn, Rn = _random_mdp(rng, 4, 2)
    Rn = -np.abs(Rn) - 0.5
    P1, R1 = _random_mdp(rng, 4, 1)
    P32, R32 = _random_mdp(rng, 4, 3)
    models = _models()
    return [
        _case("a random MDP of 5 states and 3 actions, gamma 0.9 (theta left out)", P, R, 0.9),
        _case("gamma 0 (the greedy action of the immediate reward)", P0, R0, 0.0),
        _case("the course gridworld (12 states, terminal states with all-zero rows) and gamma 1", *models["grid"], 1.0),
        _case("FrozenLake 4x4, slippery (16 states, holes where every action ties), gamma 0.99", *models["lake"], 0.99),
        _case("an absorbing state (state 0 loops to itself with reward 0), gamma 0.95", Pa, Ra, 0.95),
        _case("rewards that are all negative (the best value is below 0), gamma 0.9", Pn, Rn, 0.9),
        _case("one state and two actions (R = [[1, 2]], gamma 0.5: V = 4, action 1)",
              np.ones((1, 2, 1)), np.array([[1.0, 2.0]]), 0.5),
        _case("one action per state (value iteration is then policy evaluation), gamma 0.8", P1, R1, 0.8),
        _case("theta given (1e-12), gamma 0.9", P, R, 0.9, 1e-12),
        _case("float32 P and R, gamma 0.9", P32.astype(np.float32), R32.astype(np.float32), 0.9, atol=1e-5),
    ]


def _invoke(fn: ValueIterationFn, *args: Any) -> tuple[Tensor, Tensor]:
    out = numpy_call(fn, args)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"value_iteration must return a tuple (V, policy), got {type(out).__name__}"
                        + (f" of {len(out)} items" if isinstance(out, (tuple, list)) else ""))
    return (as_tensor(out[0], "V", "[S] (one value per state)"),
            as_tensor(out[1], "policy", "[S] (one action per state, ints)"))


def _model(case: Case) -> tuple[np.ndarray, np.ndarray, float]:
    return to_np(case.args[0]).astype(np.float64), to_np(case.args[1]).astype(np.float64), float(case.args[2])


def _greedy(case: Case, out: tuple[Tensor, Tensor], rerun: Any) -> str | None:
    P, R, gamma = _model(case)
    V, policy = out[0].numpy(), out[1].numpy()
    if policy.min() < 0 or policy.max() >= R.shape[1]:
        return f"the policy holds actions outside 0..{R.shape[1] - 1}"
    Q = tabular.q_from_v(P, R, V, gamma)
    gap = Q.max(1) - Q[np.arange(len(policy)), policy]
    if gap.max() > 1e-6:
        s = int(gap.argmax())
        return (f"in state {s} your policy takes action {int(policy[s])}, whose value R + gamma P V under your own V "
                f"is {Q[s, policy[s]]:.4g}, but action {int(Q[s].argmax())} has {Q[s].max():.4g}")
    return None


def _optimality(case: Case, out: tuple[Tensor, Tensor], rerun: Any) -> str | None:
    P, R, gamma = _model(case)
    V = out[0].numpy()
    residual = np.abs(tabular.q_from_v(P, R, V, gamma).max(1) - V).max()
    if not residual < 1e-5:
        return (f"max over a of (R + gamma P V) differs from your V by up to {residual:.3g} (at convergence it is 0: "
                "did the loop stop too early?)")
    return None


_PROPERTIES = [
    Property("'the policy is greedy with respect to the returned V'", _greedy),
    Property("'V is the fixed point of the Bellman optimality equation V = max_a (R + gamma P V)'", _optimality),
]

_SPEC = Spec(reference=reference_value_iteration, cases=_cases, mistakes=_MISTAKES, properties=_PROPERTIES,
             invoke=_invoke, part="result", items=("V", "policy (compared by Q*(s, policy[s]))"), atol=1e-6,
             rtol=1e-6, time_limit=20.0, arg_names=("P", "R", "gamma", "theta"))


def check_value_iteration(value_iteration: ValueIterationFn) -> ValueIterationFn:
    """Exercise 15.2: ``value_iteration(P, R, gamma, theta=1e-10) -> (V [S], policy [S])``; returns the value
    iteration the rest of the hour uses (yours once it passes)."""
    return check(VALUE_ITERATION, _SPEC, (value_iteration,), (reference_value_iteration,),
                 "V* and an optimal greedy policy on {cases} MDPs (gamma 0 and 1, the course gridworld, FrozenLake "
                 "with its ties, absorbing states, negative rewards, one state, one action, float32)")
