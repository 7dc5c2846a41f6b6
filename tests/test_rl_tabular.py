"""``amla.rl.tabular``: the model of FrozenLake and CliffWalking as arrays, the exact and iterative Bellman
solutions, epsilon-greedy, and episodes simulated on the model against the real environment."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from amla.rl.episodes import env_id, evaluate
from amla.rl.gridworld import GridWorld
from amla.rl.tabular import (epsilon_greedy, exact_policy_evaluation, greedy, policy_evaluation, policy_matrix,
                             q_from_v, q_learning_update, simulate, start_distribution, transition_model,
                             value_iteration)


@pytest.fixture(scope="module")
def lake():
    env = gym.make(env_id("FrozenLake-v1"))
    return env, *transition_model(env)


def test_frozenlake_model(lake) -> None:
    env, P, R, terminal = lake
    assert P.shape == (16, 4, 16) and R.shape == (16, 4)
    assert np.flatnonzero(terminal).tolist() == [5, 7, 11, 12, 15]
    np.testing.assert_allclose(P[~terminal].sum(-1), 1.0)
    assert P[terminal].sum() == 0 and R[terminal].sum() == 0
    assert abs(R[14, 2] - 1 / 3) < 1e-12  # right from 14: the goal one time in three
    assert start_distribution(env).tolist() == [1.0] + [0.0] * 15


def test_cliffwalking_model() -> None:
    env = gym.make(env_id("CliffWalking-v1"))
    P, R, terminal = transition_model(env)
    assert np.flatnonzero(terminal).tolist() == [47]
    assert R[36, 1] == -100 and P[36, 1, 36] == 1.0  # into the cliff: back to the start
    V, pi = value_iteration(P, R, 1.0)
    assert V[36] == -13.0


def test_transition_model_rejects_other_envs() -> None:
    with pytest.raises(ValueError, match="tabular environment with a model P"):
        transition_model(gym.make("CartPole-v1"))

    class Mixed:
        class observation_space:
            n = 2

        class action_space:
            n = 1

        P = {0: {0: [(0.5, 1, 0.0, True), (0.5, 1, 0.0, False)]}, 1: {0: [(1.0, 1, 0.0, False)]}}

    with pytest.raises(ValueError, match="state 1 is entered both by terminated and by ongoing"):
        transition_model(Mixed())


def test_iteration_reaches_the_exact_solve(lake) -> None:
    _, P, R, _ = lake
    uniform = np.full((16, 4), 0.25)
    for gamma in (0.0, 0.9, 0.99, 1.0):
        exact = exact_policy_evaluation(P, R, uniform, gamma)
        np.testing.assert_allclose(policy_evaluation(P, R, uniform, gamma), exact, atol=1e-6)


def test_value_iteration_is_optimal_and_its_policy_has_those_values(lake) -> None:
    _, P, R, _ = lake
    V, pi = value_iteration(P, R, 0.99)
    np.testing.assert_allclose(exact_policy_evaluation(P, R, pi, 0.99), V, atol=1e-6)
    np.testing.assert_allclose(q_from_v(P, R, V, 0.99).max(1), V, atol=1e-8)
    assert np.array_equal(greedy(P, R, V, 0.99), pi)
    rng = np.random.default_rng(0)
    for _ in range(5):  # no random deterministic policy does better anywhere
        other = rng.integers(4, size=16)
        assert np.all(exact_policy_evaluation(P, R, other, 0.99) <= V + 1e-9)


def finite_horizon_success(P: np.ndarray, policy: np.ndarray, goal: int, steps: int) -> float:
    """P(the goal within `steps` steps from state 0) by dynamic programming: the exact target of `simulate`."""
    P_pi = P[np.arange(P.shape[0]), policy]
    reach = np.zeros(P.shape[0])
    reach[goal] = 1.0
    for _ in range(steps):
        reach = P_pi @ reach
        reach[goal] = 1.0
    return float(reach[0])


def test_simulate_matches_the_exact_success_and_the_real_environment(lake) -> None:
    env, P, R, terminal = lake
    _, pi = value_iteration(P, R, 0.99)
    final, steps, ended = simulate(P, terminal, start_distribution(env), pi, episodes=20_000, max_steps=100, seed=0)
    rate = float(np.mean(final == 15))
    exact = finite_horizon_success(P, pi, 15, 100)
    assert 0.72 <= exact <= 0.76  # the optimum of slippery FrozenLake with its 100-step limit is about 74 %
    assert abs(rate - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000)
    assert steps.max() <= 100 and np.all(ended == terminal[final])
    real = evaluate("FrozenLake-v1", lambda obs: pi[obs], episodes=300)
    assert abs(real.mean() - exact) < 4 * np.sqrt(exact * (1 - exact) / 300)


def test_epsilon_greedy() -> None:
    rng = np.random.default_rng(0)
    q = np.array([0.0, 2.0, 2.0, -1.0])
    picks = [epsilon_greedy(q, 0.0, rng) for _ in range(200)]
    assert set(picks) == {1, 2}  # ties broken at random
    uniform = np.bincount([epsilon_greedy(q, 1.0, rng) for _ in range(4000)], minlength=4) / 4000
    assert np.all(np.abs(uniform - 0.25) < 0.04)
    assert epsilon_greedy(np.array([1.0, 0.0]), 0.0, rng) == 0


def test_q_learning_update_by_hand() -> None:
    Q = np.array([[0.0, 1.0], [2.0, -1.0]])
    q_learning_update(Q, 0, 0, 1.0, 1, False, 0.5, 0.9)
    assert Q[0, 0] == pytest.approx(0.5 * (1.0 + 0.9 * 2.0))
    q_learning_update(Q, 1, 1, 3.0, 0, True, 1.0, 0.9)
    assert Q[1, 1] == 3.0 and Q[1, 0] == 2.0


def test_policy_matrix_errors() -> None:
    assert policy_matrix(np.array([1, 0]), 2, 2).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="actions in 0..1"):
        policy_matrix(np.array([0, 2]), 2, 2)
    with pytest.raises(ValueError, match=r"\[S, A\] = \[2, 2\] probabilities"):
        policy_matrix(np.ones((3, 2)), 2, 2)
    with pytest.raises(ValueError, match="expected P of shape"):
        exact_policy_evaluation(np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)), 0.5)


def test_gridworld_goes_through_the_same_code_path() -> None:
    env = GridWorld()
    P, R, terminal = transition_model(env)
    V, pi = value_iteration(P, R, 1.0)
    final, _, ended = simulate(P, terminal, start_distribution(env), pi, episodes=5000, max_steps=100, seed=1)
    assert ended.all() and np.mean(final == 3) > 0.95  # the optimal policy nearly always reaches the goal
