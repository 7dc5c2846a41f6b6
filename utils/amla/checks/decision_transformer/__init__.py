"""Self-checks of Hour 18 (a Decision Transformer): returns-to-go, and the interleaved (R, s, a) token sequence.

Each check runs on the engine (``amla.checks.engine``): ordinary inputs on which every known mistake gives a
different answer, then the edge inputs of the exercise.

- 18.1 ``returns_to_go(rewards [T], gamma=1.0) -> [T]`` (``R_t = r_t + gamma R_(t+1)``, ``R_(T-1) = r_(T-1)``):
  CartPole's ten 1s with gamma left out, random rewards with gamma=0.9, negative rewards with gamma=0.5, a single
  step, a reward at the last step only and at the first step only, gamma=0, float64 rewards (the result stays
  float64), a 500-step episode. Mistakes: a forward cumsum (the return so far), the result left reversed, r_t
  left out, the whole return at every step, the discount counted from the episode's start, r_t discounted too,
  gamma ignored. Properties: the last entry is the last reward; ``R_t = r_t + gamma R_(t+1)``.
- 18.2 ``interleave_tokens(returns, states, actions) -> [B, 3T, C]`` (``R_1, s_1, a_1, R_2, ...``): a batch of 2,
  a batch of one, a single step, one feature per token, float64, the hour's shapes; gradients with respect to all
  three. Mistakes: grouped by kind (``torch.cat(dim=1)``), the orders s-R-a, R-a-s and a-s-R, stacked on the
  feature axis or on the batch axis. Properties: token ``3t + k`` is the k-th input's step t; each window of the
  batch uses only its own embeddings.
"""

from amla.checks.decision_transformer.interleave import check_interleave_tokens
from amla.checks.decision_transformer.returns_to_go import check_returns_to_go

__all__ = ["check_interleave_tokens", "check_returns_to_go"]
