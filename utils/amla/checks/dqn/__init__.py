"""Self-checks of Hour 16 (Deep Q-Networks): the TD target with termination and truncation, and the linear epsilon
schedule.

Each check runs on the engine (``amla.checks.engine``): ordinary inputs on which every known mistake gives a
different answer, then the edge inputs of the exercise.

- 16.1 ``td_target(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None) -> [B]`` (the
  reference is ``amla.rl.dqn.td_target``): a mixed batch of 6 transitions and 3 actions (terminated, truncated,
  both, neither) with ``next_q_online`` left out, every transition terminated, every one truncated, both flags on
  every one, gamma 0, a batch of one, float64 rewards and Q-values (the target stays float64), Double DQN on a
  mixed batch (the online argmax differs from the target's everywhere), on a batch of one and with every
  transition terminated. Mistakes: truncation stops the bootstrap (``done = terminated | truncated``), the bootstrap
  kept on termination, the mask inverted, truncation winning when both flags are set, ``next_q_online`` ignored,
  Double DQN's value from the online network, the roles swapped, the reward discounted, the mean over actions.
  Properties: a terminated transition's target is its reward; flipping ``truncated`` changes nothing; adding 1 to
  the rewards adds 1 to the targets.
- 16.2 ``linear_epsilon(step, decay_steps, start=1.0, end=0.05) -> float``, compared as the list of epsilons at a
  case's steps: the defaults left out, other endpoints, ``decay_steps`` 1 and 0, ``end`` 0, ``start == end``, steps
  far past ``decay_steps``. Mistakes: no clamp after decay_steps, a decay to 0, the schedule reversed, an integer
  division, one step ahead, an exponential decay, a division by zero at ``decay_steps=0``. Properties: epsilon
  never rises; ``start`` at step 0 and ``end`` at decay_steps; halfway through, halfway between.
"""

from amla.checks.dqn.epsilon import check_linear_epsilon
from amla.checks.dqn.td_target import check_td_target

__all__ = ["check_linear_epsilon", "check_td_target"]
