"""Reinforcement learning, Hours 15-18: from the Bellman equations to PPO, and a Decision Transformer.

Built on gymnasium (the ``rl`` extra, with its classic-control extra for rendering). Each algorithm's loop is
written out in its notebook; this package holds the pieces a later cell or hour reuses.

- ``episodes``: environments by id, one rendered episode (``Episode``, ``run_episode``) for the episode player,
  and the batched greedy evaluation every deep-RL hour reports (Hours 15-18)
- ``gridworld``: the course gridworld, a ``gymnasium.Env`` with FrozenLake's tabular model ``P`` (Hour 15)
- ``tabular``: an MDP as arrays (``transition_model``), the Bellman equations solved, the exercises' references,
  epsilon-greedy and vectorised episodes on the model (Hour 15)
- ``dqn``: the replay buffer, the Q-network, the linear epsilon schedule, the TD target (terminated versus truncated,
  Double DQN) and the DQN loop with best-snapshot evaluation (Hour 16)
- ``policy_gradient``: the REINFORCE reward-to-go, the actor-critic networks, whole episodes from a vector
  environment, the REINFORCE gradient estimate (with or without a baseline) and the REINFORCE loop (Hour 17)
- ``ppo``: GAE with terminated and truncated ends, the clipped objective, ``gymnasium.vector`` with SAME_STEP
  autoreset, the rollout, the PPO update and loop (Hour 17)
- ``trajectories``: an offline log (CartPole's PD controller and worse behaviour policies, episodes played side by
  side), returns-to-go, the (return-to-go, state, action) training windows (Hour 18)
- ``decision_transformer``: the interleaved token sequence, a Decision Transformer built from Hour 06's GPT block,
  its batched return-conditioned rollout, and the behaviour-cloning baselines (Hour 18)
"""

from amla._lazy import lazy_submodules

__getattr__ = lazy_submodules(
    __name__,
    ("decision_transformer", "dqn", "episodes", "gridworld", "policy_gradient", "ppo", "tabular", "trajectories"),
)
