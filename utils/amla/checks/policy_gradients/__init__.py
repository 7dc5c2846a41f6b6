"""Self-checks of Hour 17 (policy gradients): the REINFORCE reward-to-go, GAE with terminated and truncated episode
ends, and PPO's clipped objective.

Each check runs on the engine (``amla.checks.engine``): ordinary inputs on which every known mistake gives a
different answer, then the edge inputs of the exercise.

- 17.1 ``reward_to_go(rewards [T], gamma=0.99) -> [T]`` (``G_t = r_t + gamma G_{t+1}``): rewards of both signs,
  CartPole's rewards of 1, an episode of one step, gamma 0 and 1, gamma left out, 500 steps, float64. Mistakes:
  the sum over the rewards before t, the whole episode's return at every step, the discount counted from the
  start of the episode, r_t left out, r_t discounted, gamma ignored. Properties: the last step's G is its reward;
  ``G_t = r_t + gamma G_{t+1}``.
- 17.2 ``gae(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95) -> (advantages, returns)``,
  all ``[T, N]``, ``next_values[t]`` the value of the state step t led to (``V(final_obs)`` at an episode end,
  gymnasium's SAME_STEP autoreset): a rollout with terminated and truncated ends, none at all, lam 0 (TD errors)
  and lam 1 (return minus V), T = N = 1 (plain, terminated, truncated), ends at the first and the last step, both
  flags on one step, two ends in a row, gamma and lam left out, float64. Mistakes: truncation treated as
  termination, bootstrapping after termination, the recursion cut only at termination or never, V(s_{t+1}) read
  from ``values[t + 1]``, the done flag read one step late, lam or gamma missing from the recursion, a forward
  loop, returns equal to the advantages. Properties: ``returns = advantages + values``; the next episode's rewards
  do not reach back across an episode end; the advantage at an episode's last step is its own TD error.
- 17.3 ``ppo_loss(new_logp, old_logp, advantages, clip=0.2) -> 0-d tensor``
  (``-mean(min(r A, clip(r, 1 - clip, 1 + clip) A))``): ratios inside and outside the clip range with both signs
  of A, ratios far outside (e^±2.9), every ratio past the clip on its advantage's side (zero gradient), clip 0,
  clip 0.1, ratio 1, a batch of one, clip left out, float64; gradients with respect to new_logp (old_logp and the
  advantages are passed detached). Mistakes: no min, no clip, max, the product r A clipped, the advantages
  clipped, the sign, the ratio as a difference, a quotient or upside down, a sum instead of a mean. Properties:
  with ratio 1 the loss is -mean(A); doubling the advantages doubles the loss; the loss is flat past the clip.
"""

from amla.checks.policy_gradients.gae import check_gae
from amla.checks.policy_gradients.ppo_loss import check_ppo_loss
from amla.checks.policy_gradients.reward_to_go import check_reward_to_go

__all__ = ["check_gae", "check_ppo_loss", "check_reward_to_go"]
