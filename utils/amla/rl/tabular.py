"""Tabular RL (Hour 15): the model of a small MDP as arrays, the Bellman equations solved, and one-step TD updates.

- ``transition_model(env) -> (P [S, A, S], R [S, A], terminal [S])`` from ``env.unwrapped.P`` (gymnasium's
  FrozenLake and CliffWalking, and the course ``GridWorld``, all expose it). ``P[s, a, s']`` is the probability of
  moving on to ``s'``; ``R[s, a]`` the expected reward of the step. A terminal state (one that a terminated
  transition enters) gets an all-zero row of ``P`` and zero reward: nothing follows the end of an episode, so its
  value is 0 for every ``gamma``, 1 included.
- ``exact_policy_evaluation``: $V^\\pi = (I - \\gamma P_\\pi)^{-1} r_\\pi$ by one linear solve (what Exercise 15.1's
  iteration must reach); ``q_from_v`` and ``greedy`` (a one-step look-ahead, the improvement step).
- The references of the exercises: ``policy_evaluation`` (15.1, iterative), ``value_iteration`` (15.2),
  ``q_learning_update`` (15.3, in place on the table).
- ``epsilon_greedy`` (random tie-breaking), ``simulate``: many episodes of a policy on the model at once
  (vectorised; FrozenLake's 10,000 evaluation episodes take milliseconds), ``start_distribution``.

Everything is numpy, float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["epsilon_greedy", "exact_policy_evaluation", "greedy", "policy_evaluation", "policy_matrix", "q_from_v",
           "q_learning_update", "simulate", "start_distribution", "transition_model", "value_iteration"]

MAX_SWEEPS = 100_000


def transition_model(env: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P [S, A, S], R [S, A], terminal [S] bool)`` of a tabular gymnasium environment (see the module doc)."""
    base = getattr(env, "unwrapped", env)
    model = getattr(base, "P", None)
    if not isinstance(model, dict) or not model:
        raise ValueError(f"transition_model expected a tabular environment with a model P[s][a] = [(prob, next, "
                         f"reward, terminated), ...] (FrozenLake, CliffWalking, amla's GridWorld), got "
                         f"{type(base).__name__}")
    n_s, n_a = int(base.observation_space.n), int(base.action_space.n)
    P, R = np.zeros((n_s, n_a, n_s)), np.zeros((n_s, n_a))
    ends, goes_on = np.zeros(n_s, dtype=bool), np.zeros(n_s, dtype=bool)
    for s in range(n_s):
        for a in range(n_a):
            for prob, s2, reward, terminated in model[s][a]:
                P[s, a, int(s2)] += prob
                R[s, a] += prob * reward
                (ends if terminated else goes_on)[int(s2)] |= prob > 0
    mixed = np.flatnonzero(ends & goes_on)
    if mixed.size:
        raise ValueError(f"transition_model: state {int(mixed[0])} is entered both by terminated and by ongoing "
                         "transitions; expected termination to depend on the next state only")
    P[ends], R[ends] = 0.0, 0.0
    return P, R, ends


def start_distribution(env: Any) -> np.ndarray:
    """The distribution of the first state (``initial_state_distrib`` of the toy-text environments)."""
    base = getattr(env, "unwrapped", env)
    if not hasattr(base, "initial_state_distrib"):
        raise ValueError(f"start_distribution: {type(base).__name__} has no initial_state_distrib")
    return np.asarray(base.initial_state_distrib, dtype=np.float64)


def _check_model(P: np.ndarray, R: np.ndarray, who: str) -> None:
    if P.ndim != 3 or P.shape[0] != P.shape[2] or R.shape != P.shape[:2]:
        raise ValueError(f"{who}: expected P of shape [S, A, S] and R of shape [S, A], got P {P.shape} and R "
                         f"{R.shape}")


def policy_matrix(policy: Any, n_states: int, n_actions: int) -> np.ndarray:
    """``pi [S, A]`` from action probabilities ``[S, A]`` or one action per state ``[S]`` (ints)."""
    pi = np.asarray(policy)
    if pi.shape == (n_states,) and np.issubdtype(pi.dtype, np.integer):
        if pi.min(initial=0) < 0 or pi.max(initial=0) >= n_actions:
            raise ValueError(f"a deterministic policy holds actions in 0..{n_actions - 1}, got {pi.min()}..{pi.max()}")
        return np.eye(n_actions)[pi]
    if pi.shape != (n_states, n_actions):
        raise ValueError(f"a policy is [S, A] = [{n_states}, {n_actions}] probabilities or [S] = [{n_states}] "
                         f"actions, got shape {pi.shape} ({pi.dtype})")
    return pi.astype(np.float64)


def exact_policy_evaluation(P: np.ndarray, R: np.ndarray, policy: Any, gamma: float) -> np.ndarray:
    """$V^\\pi$ solving $(I - \\gamma P_\\pi) V = r_\\pi$ (``np.linalg.solve``); singular when ``gamma = 1`` and
    the policy can loop for ever."""
    _check_model(P, R, "exact_policy_evaluation")
    pi = policy_matrix(policy, *R.shape)
    r_pi, P_pi = (pi * R).sum(1), np.einsum("sa,sat->st", pi, P)
    return np.linalg.solve(np.eye(len(r_pi)) - gamma * P_pi, r_pi)


def policy_evaluation(P: np.ndarray, R: np.ndarray, policy: np.ndarray, gamma: float,
                      theta: float = 1e-10) -> np.ndarray:
    """Exercise 15.1 (reference): sweep $V \\leftarrow r_\\pi + \\gamma P_\\pi V$ from $V = 0$ until no value moves
    by ``theta`` or more; ``policy`` is ``[S, A]`` action probabilities. Returns ``V [S]`` (float64)."""
    r_pi = (policy * R).sum(axis=1)
    P_pi = np.einsum("sa,sat->st", policy, P)
    V = np.zeros(P.shape[0])
    for _ in range(MAX_SWEEPS):
        V_new = r_pi + gamma * P_pi @ V
        if np.max(np.abs(V_new - V), initial=0.0) < theta:
            return V_new
        V = V_new
    raise RuntimeError(f"policy_evaluation did not converge in {MAX_SWEEPS} sweeps (gamma = 1 and a policy that "
                       "never ends?)")


def q_from_v(P: np.ndarray, R: np.ndarray, V: np.ndarray, gamma: float) -> np.ndarray:
    """$Q(s, a) = R(s, a) + \\gamma \\sum_{s'} P(s' | s, a) V(s')$, ``[S, A]``."""
    return R + gamma * P @ V


def greedy(P: np.ndarray, R: np.ndarray, V: np.ndarray, gamma: float) -> np.ndarray:
    """The greedy policy of ``V`` (one action per state, int64; ties go to the first action)."""
    return q_from_v(P, R, V, gamma).argmax(axis=1)


def value_iteration(P: np.ndarray, R: np.ndarray, gamma: float, theta: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Exercise 15.2 (reference): $V \\leftarrow \\max_a [R + \\gamma P V]$ from $V = 0$ until no value moves by
    ``theta``; returns ``(V [S] float64, policy [S] int64)``, the policy greedy with respect to that V."""
    V = np.zeros(P.shape[0])
    for _ in range(MAX_SWEEPS):
        V_new = (R + gamma * P @ V).max(axis=1)
        if np.max(np.abs(V_new - V), initial=0.0) < theta:
            V = V_new
            break
        V = V_new
    else:
        raise RuntimeError(f"value_iteration did not converge in {MAX_SWEEPS} sweeps")
    return V, (R + gamma * P @ V).argmax(axis=1)


def q_learning_update(Q: np.ndarray, s: int, a: int, r: float, s_next: int, terminated: bool, alpha: float,
                      gamma: float) -> None:
    """Exercise 15.3 (reference): $Q(s,a) \\mathrel{+}= \\alpha\\,(r + \\gamma \\max_{a'} Q(s', a') (1 -
    \\text{terminated}) - Q(s, a))$, in place on the table."""
    target = r + (0.0 if terminated else gamma * Q[s_next].max())
    Q[s, a] += alpha * (target - Q[s, a])


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """A random action with probability ``epsilon``, else a greedy one (ties broken at random)."""
    if rng.random() < epsilon:
        return int(rng.integers(len(q_row)))
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[0]) if len(best) == 1 else int(rng.choice(best))


def simulate(P: np.ndarray, terminal: np.ndarray, start: np.ndarray, policy: Any, *, episodes: int,
             max_steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``episodes`` episodes of ``policy`` (``[S]`` actions or ``[S, A]`` probabilities) on the model, all at once,
    each cut after ``max_steps`` steps (FrozenLake's time limit is 100). Returns ``(final_state, steps,
    terminated)`` per episode."""
    n_s, n_a = P.shape[:2]
    pi = policy_matrix(policy, n_s, n_a)
    rng = np.random.default_rng(seed)
    state = rng.choice(n_s, size=episodes, p=start)
    steps = np.zeros(episodes, dtype=np.int64)
    running = ~terminal[state]
    for _ in range(max_steps):
        idx = np.flatnonzero(running)
        if idx.size == 0:
            break
        s = state[idx]
        a = (rng.random((idx.size, 1)) > np.cumsum(pi[s], axis=1)).sum(1).clip(max=n_a - 1)
        s2 = (rng.random((idx.size, 1)) > np.cumsum(P[s, a], axis=1)).sum(1).clip(max=n_s - 1)
        state[idx], steps[idx] = s2, steps[idx] + 1
        running[idx] = ~terminal[s2]
    return state, steps, terminal[state]
