"""Self-checks of Hour 15 (RL foundations): policy evaluation, value iteration and the Q-learning update.

The exercises work on numpy arrays (``P [S, A, S]``, ``R [S, A]``, ``policy [S, A]``, ``Q [S, A]``); each case holds
tensors and the check hands the student numpy views of them (``_arrays``), so a change in place is still seen.
Float results are compared as float64 (a float32 answer passes within the case's tolerance), integer ones as int64;
a list or a torch tensor where an array is asked for is named.

- 15.1 ``policy_evaluation(P, R, policy, gamma, theta=1e-10) -> V [S]``, compared with the exact solve
  ``(I - gamma P_pi)^-1 r_pi`` to 1e-6: a random MDP with a stochastic policy and theta left out, gamma 0, an
  absorbing state (a self-loop of reward 0), a terminal state (an all-zero row of P, as ``transition_model`` makes
  it) with gamma 1, a deterministic (one-hot) policy, one state and one action, the course gridworld with the
  uniform policy, theta given, float32 inputs. Mistakes: the actions averaged uniformly instead of weighted by the
  policy, the rewards not weighted by the policy, a max over actions (value iteration), ``V @ P_pi`` (P_pi
  transposed), a single sweep. Properties: gamma 0 gives r_pi; a terminal state has value 0; V is the fixed point
  of ``V = r_pi + gamma P_pi V`` (the residual says how far: a loop that stopped too early).
- 15.2 ``value_iteration(P, R, gamma, theta=1e-10) -> (V [S], policy [S] ints)``: V compared with V*, the policy by
  the optimal action values ``Q*(s, policy[s])`` (ties may go either way): a random MDP with some impossible
  transitions and theta left out, gamma 0, the course gridworld with gamma 1, slippery FrozenLake 4x4 (every action
  ties in the holes) with gamma 0.99, an absorbing state, all-negative rewards, one state and two actions, one
  action per state, theta given, float32 inputs. Mistakes: min/argmin, the mean over actions, a policy that ignores
  the reward (argmax of P @ V), the best reachable next state instead of the expectation, values that only go up
  (np.maximum), a single sweep. Properties: the policy is greedy with respect to the returned V; V is the fixed
  point of ``V = max_a (R + gamma P V)``.
- 15.3 ``q_learning_update(Q, s, a, r, s_next, terminated, alpha, gamma)``: the table after the update (changing Q
  in place is the point: ``mutable``), an ordinary step, a terminal next state, alpha 1, gamma 0, a self-transition
  (s_next = s), a next row of negative values, numpy ints and numpy bools True and False (as gymnasium returns
  them), a float32 table (its dtype kept), a 1x1 table. Mistakes: bootstrapping from a terminal state, the reward
  masked with the next value, the max over Q[s] instead of Q[s_next], the mean or the min of the next row, gamma
  missing, alpha missing, the old value not subtracted, ``=`` instead of ``+=``, the sign reversed, the whole row
  updated, a new table returned instead of the caller's changed. Property: only the entry Q[s, a] changes.
"""

from amla.checks.rl.policy_evaluation import check_policy_evaluation
from amla.checks.rl.q_learning import check_q_learning_update
from amla.checks.rl.value_iteration import check_value_iteration

__all__ = ["check_policy_evaluation", "check_q_learning_update", "check_value_iteration"]
