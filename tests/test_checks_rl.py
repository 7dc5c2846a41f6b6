"""The self-checks of Hour 15 (``amla.checks.rl``): correct answers written differently pass and are returned, an
unfinished one gets the reference, every known mistake is named, and one wrong answer of each other class (a
changed input, a wrong type or dtype, a bug on an edge input only, a bug only a property catches) is caught."""

from __future__ import annotations

import re

import numpy as np
import pytest

from amla.checks.rl import check_policy_evaluation, check_q_learning_update, check_value_iteration
from amla.checks.rl import policy_evaluation as pe_module
from amla.checks.rl import q_learning as ql_module
from amla.checks.rl import value_iteration as vi_module
from tests.checks_support import fails, not_done, passes, raise_not_done

# --- 15.1 policy evaluation ---------------------------------------------------------------------------------------


def pe_sweeps(P, R, policy, gamma, theta=1e-10):
    r_pi = (policy * R).sum(axis=1)
    P_pi = np.einsum("sa,sat->st", policy, P)
    V = np.zeros(len(r_pi))
    while True:
        V_new = r_pi + gamma * P_pi @ V
        if np.max(np.abs(V_new - V)) < theta:
            return V_new
        V = V_new


def pe_loops(P, R, policy, gamma, theta=1e-10):
    """Gauss-Seidel (in place, state by state), with explicit loops."""
    n_s, n_a = R.shape
    V = [0.0] * n_s
    while True:
        delta = 0.0
        for s in range(n_s):
            v = sum(policy[s, a] * (R[s, a] + gamma * sum(P[s, a, t] * V[t] for t in range(n_s))) for a in range(n_a))
            delta = max(delta, abs(v - V[s]))
            V[s] = v
        if delta < theta:
            return np.array(V)


def pe_q_form(P, R, policy, gamma, theta=1e-10):
    """Through Q: V = sum_a pi (R + gamma P V), with a tighter own tolerance and float32 kept."""
    V = np.zeros(P.shape[0], dtype=np.result_type(P.dtype, np.float32))
    for _ in range(100_000):
        V_new = (policy * (R + gamma * P @ V)).sum(1)
        if np.abs(V_new - V).max() <= theta * 1e-2:
            return V_new
        V = V_new
    return V


@pytest.mark.parametrize("fn", [pe_sweeps, pe_loops, pe_q_form])
def test_policy_evaluation_correct_answers_pass(fn) -> None:
    passes(check_policy_evaluation, fn)


def test_policy_evaluation_not_done_returns_the_exact_solve(capsys) -> None:
    ref = not_done(check_policy_evaluation, raise_not_done, capsys=capsys)
    P = np.full((2, 1, 2), 0.5)
    V = ref(P, np.ones((2, 1)), np.ones((2, 1)), 0.5)
    np.testing.assert_allclose(V, [2.0, 2.0])


@pytest.mark.parametrize("mistake", pe_module._MISTAKES, ids=lambda m: m.description[:40])
def test_policy_evaluation_mistakes_are_named(mistake) -> None:
    fails(check_policy_evaluation, mistake.fn, match=re.escape(mistake.description[:60]))


def test_policy_evaluation_changed_input() -> None:
    def normalises_in_place(P, R, policy, gamma, theta=1e-10):
        policy /= policy.sum(1, keepdims=True)
        return pe_sweeps(P, R, policy, gamma, theta)

    fails(check_policy_evaluation, normalises_in_place, match="changed its argument `policy` in place")


def test_policy_evaluation_wrong_type_and_dtype() -> None:
    fails(check_policy_evaluation, lambda *a: pe_sweeps(*a).tolist(), match="V must be a numpy array.*got list")
    fails(check_policy_evaluation, lambda *a: np.round(pe_sweeps(*a)).astype(np.int64),
          match="dtype torch.int64, expected torch.float64")


def test_policy_evaluation_edge_only_bug() -> None:
    def squeezes(P, R, policy, gamma, theta=1e-10):  # breaks with one state: the result is 0-d
        return pe_sweeps(P, R, policy, gamma, theta).squeeze()

    fails(check_policy_evaluation, squeezes, match="one state and one action.*shape \\(\\), expected \\(1,\\)")


def test_policy_evaluation_property_only_bug() -> None:
    def stops_early(P, R, policy, gamma, theta=1e-10):  # theta ignored: a loose tolerance of its own
        return pe_sweeps(P, R, policy, gamma, 1e-2)

    message = fails(check_policy_evaluation, stops_early, match="fixed point of the Bellman expectation equation")
    assert "it looks like" not in message


# --- 15.2 value iteration -----------------------------------------------------------------------------------------


def vi_plain(P, R, gamma, theta=1e-10):
    V = np.zeros(P.shape[0])
    while True:
        V_new = (R + gamma * P @ V).max(axis=1)
        if np.max(np.abs(V_new - V)) < theta:
            return V_new, (R + gamma * P @ V_new).argmax(axis=1)
        V = V_new


def vi_einsum_last_ties(P, R, gamma, theta=1e-10):
    """einsum, and ties broken towards the LAST best action (a different but equally optimal policy)."""
    V = np.zeros(P.shape[0])
    while True:
        Q = R + gamma * np.einsum("sat,t->sa", P, V)
        V_new = Q.max(1)
        done = np.abs(V_new - V).max() < theta
        V = V_new
        if done:
            break
    Q = R + gamma * np.einsum("sat,t->sa", P, V)
    flipped = Q[:, ::-1]
    return V, (Q.shape[1] - 1 - flipped.argmax(1)).astype(np.int32)


def vi_via_policy_iteration(P, R, gamma, theta=1e-10):
    """Policy iteration with exact solves: the same V* and an optimal policy (a list-free, different route)."""
    n_s, n_a = R.shape
    pi = np.zeros(n_s, dtype=np.int64)
    for _ in range(1000):
        P_pi, r_pi = P[np.arange(n_s), pi], R[np.arange(n_s), pi]
        V = np.linalg.lstsq(np.eye(n_s) - gamma * P_pi, r_pi, rcond=None)[0]
        Q = R + gamma * P @ V
        if np.all(Q[np.arange(n_s), pi] >= Q.max(1) - 1e-12):
            return V, pi
        pi = Q.argmax(1)
    return V, pi


@pytest.mark.parametrize("fn", [vi_plain, vi_einsum_last_ties])
def test_value_iteration_correct_answers_pass(fn) -> None:
    passes(check_value_iteration, fn)


def test_value_iteration_not_done_returns_the_reference(capsys) -> None:
    ref = not_done(check_value_iteration, raise_not_done, capsys=capsys)
    V, pi = ref(np.ones((1, 2, 1)), np.array([[1.0, 2.0]]), 0.5)
    np.testing.assert_allclose(V, [4.0], atol=1e-8)
    assert pi.tolist() == [1]


@pytest.mark.parametrize("mistake", vi_module._MISTAKES, ids=lambda m: m.description[:40])
def test_value_iteration_mistakes_are_named(mistake) -> None:
    fails(check_value_iteration, mistake.fn, match=re.escape(mistake.description[:60]))


def test_value_iteration_changed_input() -> None:
    def zeroes_rewards_of_ends(P, R, gamma, theta=1e-10):
        R[P.sum((1, 2)) == 0] = 0.0
        return vi_plain(P, R, gamma, theta)

    def scales_in_place(P, R, gamma, theta=1e-10):
        P *= 1.0 + 1e-3
        return vi_plain(P / (1.0 + 1e-3), R, gamma, theta)

    fails(check_value_iteration, scales_in_place, match="changed its argument `P` in place")
    passes(check_value_iteration, zeroes_rewards_of_ends)  # nothing to zero: R is already 0 there


def test_value_iteration_wrong_type_and_dtype() -> None:
    fails(check_value_iteration, lambda *a: list(vi_plain(*a)), match="must return a tuple \\(V, policy\\), got list")
    fails(check_value_iteration, lambda *a: (vi_plain(*a)[0], vi_plain(*a)[1].astype(float)),
          match="policy .*dtype torch.float64, expected torch.int64")
    fails(check_value_iteration, lambda *a: vi_plain(*a)[::-1], match="V .*dtype torch.int64, expected torch.float64")


def test_value_iteration_edge_only_bug() -> None:
    def no_discount_at_one(P, R, gamma, theta=1e-10):  # treats gamma = 1 as "no discounting needed": 0.99
        return vi_plain(P, R, 0.99 if gamma == 1 else gamma, theta)

    message = fails(check_value_iteration, no_discount_at_one, match="course gridworld .* gamma 1")
    assert "it looks like" not in message


def test_value_iteration_property_only_bug() -> None:
    def stale_policy(P, R, gamma, theta=1e-10):  # the right V, but the policy of the values one sweep too early
        V, _ = vi_plain(P, R, gamma, theta)
        V_early = np.zeros_like(V)
        for _ in range(2):
            V_early = (R + gamma * P @ V_early).max(1)
        return V, (R + gamma * P @ V_early).argmax(1)

    message = fails(check_value_iteration, stale_policy, match="the policy is greedy with respect to the returned V")
    assert "it looks like" not in message


def test_value_iteration_policy_iteration_passes() -> None:
    passes(check_value_iteration, vi_via_policy_iteration)


# --- 15.3 the Q-learning update -----------------------------------------------------------------------------------


def q_plain(Q, s, a, r, s_next, terminated, alpha, gamma):
    target = r if terminated else r + gamma * Q[s_next].max()
    Q[s, a] += alpha * (target - Q[s, a])


def q_mask(Q, s, a, r, s_next, terminated, alpha, gamma):
    td = r + gamma * np.max(Q[s_next]) * (1 - terminated) - Q[s, a]
    Q[s, a] = Q[s, a] + alpha * td
    return Q  # returning the table as well is fine


def q_blend(Q, s, a, r, s_next, terminated, alpha, gamma):
    best = max(Q[s_next, b] for b in range(Q.shape[1]))
    Q[s][a] = (1 - alpha) * Q[s][a] + alpha * (r + (not terminated) * gamma * best)


@pytest.mark.parametrize("fn", [q_plain, q_mask, q_blend])
def test_q_update_correct_answers_pass(fn) -> None:
    passes(check_q_learning_update, fn)


def test_q_update_not_done_returns_the_reference(capsys) -> None:
    ref = not_done(check_q_learning_update, raise_not_done, capsys=capsys)
    Q = np.zeros((2, 2))
    ref(Q, 0, 1, 1.0, 1, False, 0.5, 0.9)
    assert Q.tolist() == [[0.0, 0.5], [0.0, 0.0]]


@pytest.mark.parametrize("mistake", ql_module._MISTAKES, ids=lambda m: m.description[:40])
def test_q_update_mistakes_are_named(mistake) -> None:
    fails(check_q_learning_update, mistake.fn, match=re.escape(mistake.description[:60]))


def test_q_update_changed_input_is_the_point_but_only_q() -> None:
    """Q is meant to change (``mutable``); another argument changed in place is not, but the update has none that
    can change (ints and floats), so the in-place rule is tested through Q's other entries (the property)."""
    def also_decays_next(Q, s, a, r, s_next, terminated, alpha, gamma):
        q_plain(Q, s, a, r, s_next, terminated, alpha, gamma)
        Q[s_next] *= 0.99

    fails(check_q_learning_update, also_decays_next, match="only the entry Q\\[s, a\\] changes")


def test_q_update_wrong_dtype() -> None:
    def casts(Q, s, a, r, s_next, terminated, alpha, gamma):  # rounds the new value to an int
        q_plain(Q, s, a, r, s_next, terminated, alpha, gamma)
        Q[s, a] = int(Q[s, a])

    fails(check_q_learning_update, casts, match="differs from the reference")


def test_q_update_edge_only_bug() -> None:
    def identity_check(Q, s, a, r, s_next, terminated, alpha, gamma):  # `is True` misses numpy's bool
        target = r if terminated is True else r + gamma * Q[s_next].max()
        Q[s, a] += alpha * (target - Q[s, a])

    message = fails(check_q_learning_update, identity_check, match="numpy bool terminated")
    assert "it looks like" not in message


def test_q_update_property_only_bug() -> None:
    def whole_column(Q, s, a, r, s_next, terminated, alpha, gamma):
        target = r if terminated else r + gamma * Q[s_next].max()
        Q[:, a] += alpha * (target - Q[s, a])

    message = fails(check_q_learning_update, whole_column, match="only the entry Q\\[s, a\\] changes")
    assert "it looks like" not in message
