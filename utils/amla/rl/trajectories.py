"""A log of trajectories for offline RL (Hour 18): behaviour policies of several qualities, the episodes they play,
returns-to-go, and the (return-to-go, state, action) windows a Decision Transformer trains on.

- ``pd_controller(k_angle, k_velocity)``: CartPole's scripted controller, push towards the pole's lean
  (``k_angle * angle + k_velocity * angular_velocity > 0``: right); ``k_velocity=0`` is the myopic bang-bang
  controller that only looks at the angle. ``epsilon_greedy(policy, epsilon, rng)`` replaces its action by a
  random one with probability ``epsilon``. All policies are batched: ``obs [n, 4] -> actions [n]``.
- ``collect(env_id, policy, episodes, seed=...)``: that many episodes played side by side, one environment per
  episode seeded ``seed + i``; a list of ``Trajectory`` (observations, actions, rewards, the policy's label).
- ``returns_to_go(rewards, gamma=1.0)``: ``R_t = r_t + gamma R_{t+1}`` for one trajectory (Exercise 18.1's
  reference).
- ``WindowSampler(trajectories, context, returns_fn=...)``: random windows of ``context`` consecutive steps, the
  tensors a Decision Transformer takes (returns-to-go, states, actions, timesteps, and a mask for windows that run
  past the end of their episode); ``top_fraction(trajectories, 0.1)``: the best 10 % by return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from amla.rl.episodes import make_env
from amla.rl.policy_gradient import reward_to_go

__all__ = ["Trajectory", "WindowSampler", "collect", "epsilon_greedy", "pd_controller", "random_policy",
           "returns_to_go", "summarize", "top_fraction"]

BatchPolicy = Callable[[np.ndarray], np.ndarray]
ReturnsFn = Callable[..., Tensor]


@dataclass
class Trajectory:
    """One logged episode: ``observations [T, obs_dim]`` (float32), ``actions [T]`` (int64), ``rewards [T]``
    (float32), and the label of the behaviour policy that played it."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    policy: str = ""

    @property
    def ret(self) -> float:
        """The undiscounted return."""
        return float(self.rewards.sum())

    def __len__(self) -> int:
        return len(self.rewards)

    def __repr__(self) -> str:
        return f"<Trajectory {self.policy + ' ' if self.policy else ''}{len(self)} steps, return {self.ret:g}>"


# --- behaviour policies --------------------------------------------------------------------------------------


def pd_controller(k_angle: float = 1.0, k_velocity: float = 0.5) -> BatchPolicy:
    """CartPole's scripted controller: push right (1) when ``k_angle * angle + k_velocity * angular_velocity > 0``
    (a proportional-derivative rule on the pole; the defaults keep it up for the 500 steps of CartPole-v1)."""

    def act(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.ndim != 2 or obs.shape[1] < 4:
            raise ValueError(f"pd_controller: expected CartPole observations [n, 4], got shape {obs.shape}")
        return (k_angle * obs[:, 2] + k_velocity * obs[:, 3] > 0).astype(np.int64)

    return act


def random_policy(n_actions: int, rng: np.random.Generator) -> BatchPolicy:
    """Uniformly random actions in ``0..n_actions - 1``."""
    return lambda obs: rng.integers(n_actions, size=len(obs))


def epsilon_greedy(policy: BatchPolicy, epsilon: float, rng: np.random.Generator, n_actions: int = 2) -> BatchPolicy:
    """``policy``'s action, replaced by a uniformly random one with probability ``epsilon``."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon_greedy: epsilon must be in [0, 1], got {epsilon}")

    def act(obs: np.ndarray) -> np.ndarray:
        actions = np.asarray(policy(obs)).copy()
        explore = rng.random(len(actions)) < epsilon
        actions[explore] = rng.integers(n_actions, size=int(explore.sum()))
        return actions

    return act


def collect(env_id: str, policy: BatchPolicy, episodes: int, *, seed: int = 0, label: str = "",
            max_episode_steps: int | None = None) -> list[Trajectory]:
    """Play ``episodes`` episodes side by side (environment ``i`` reset with ``seed + i``), ``policy`` called once per
    step on the observations of the episodes still running; one ``Trajectory`` per episode, in seed order."""
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"collect: episodes must be a positive int, got {episodes!r}")
    envs = [make_env(env_id, max_episode_steps=max_episode_steps) for _ in range(episodes)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    logs: list[tuple[list, list, list]] = [([], [], []) for _ in range(episodes)]
    running = list(range(episodes))
    while running:
        actions = np.asarray(policy(np.stack([np.asarray(obs[i]) for i in running])))
        if actions.shape != (len(running),):
            raise ValueError(f"collect: the policy returned actions of shape {actions.shape} for {len(running)} "
                             f"observations; expected ({len(running)},)")
        still = []
        for i, action in zip(running, actions):
            logs[i][0].append(np.asarray(obs[i], dtype=np.float32))
            logs[i][1].append(int(action))
            obs[i], reward, terminated, truncated, _ = envs[i].step(int(action))
            logs[i][2].append(float(reward))
            if not (terminated or truncated):
                still.append(i)
        running = still
    for env in envs:
        env.close()
    return [Trajectory(np.stack(o), np.asarray(a, dtype=np.int64), np.asarray(r, dtype=np.float32), label)
            for o, a, r in logs]


def top_fraction(trajectories: Sequence[Trajectory], fraction: float) -> list[Trajectory]:
    """The best ``fraction`` of the trajectories by return (at least one; ties broken by their order)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"top_fraction: fraction must be in (0, 1], got {fraction}")
    if not trajectories:
        raise ValueError("top_fraction: no trajectories")
    k = max(1, round(fraction * len(trajectories)))
    order = sorted(range(len(trajectories)), key=lambda i: -trajectories[i].ret)
    return [trajectories[i] for i in sorted(order[:k])]


def summarize(trajectories: Sequence[Trajectory]) -> dict[str, dict[str, float]]:
    """Per behaviour policy: episodes, steps, mean / min / max return."""
    table: dict[str, dict[str, float]] = {}
    for label in dict.fromkeys(t.policy for t in trajectories):
        rets = np.array([t.ret for t in trajectories if t.policy == label])
        steps = sum(len(t) for t in trajectories if t.policy == label)
        table[label] = dict(episodes=len(rets), steps=steps, mean=float(rets.mean()), min=float(rets.min()),
                            max=float(rets.max()))
    return table


# --- returns-to-go and training windows ----------------------------------------------------------------------


def returns_to_go(rewards: Tensor, gamma: float = 1.0) -> Tensor:
    """``R_t = sum_{k >= t} gamma^(k - t) r_k`` for one trajectory's ``rewards [T]``, computed backwards
    (``R_{T-1} = r_{T-1}``, ``R_t = r_t + gamma R_{t+1}``); same dtype and device as ``rewards``."""
    if not isinstance(rewards, Tensor) or rewards.dim() != 1:
        what = f"shape {tuple(rewards.shape)}" if isinstance(rewards, Tensor) else type(rewards).__name__
        raise ValueError(f"returns_to_go: expected the rewards of one trajectory, a 1-d tensor [T], got {what}")
    return reward_to_go(rewards, gamma)  # Hour 17's reward-to-go: the same backward sum, gamma 1 by default here


class WindowSampler:
    """Random training windows of ``context`` consecutive steps from a list of trajectories.

    ``returns_fn(rewards [T]) -> returns-to-go [T]`` is applied to every trajectory once (Hour 18 passes the
    student's ``returns_to_go``). A window starts at a step drawn uniformly over all logged steps; a window that
    runs past the end of its episode is padded at the end (``mask`` False there, so the loss ignores it). States
    are normalised with the log's mean and std (``state_mean``, ``state_std``); returns-to-go are divided by
    ``return_scale``.

    ``sample(batch, generator)`` returns ``dict(returns [B, K, 1], states [B, K, obs_dim], actions [B, K] long,
    timesteps [B, K] long, mask [B, K] bool)``.
    """

    def __init__(self, trajectories: Sequence[Trajectory], context: int, *, returns_fn: ReturnsFn = returns_to_go,
                 return_scale: float = 500.0) -> None:
        if not trajectories:
            raise ValueError("WindowSampler: no trajectories")
        if not isinstance(context, int) or context < 1:
            raise ValueError(f"WindowSampler: context must be a positive int, got {context!r}")
        self.context, self.return_scale = context, float(return_scale)
        states = np.concatenate([t.observations for t in trajectories]).astype(np.float32)
        self.state_mean = torch.from_numpy(states.mean(0))
        self.state_std = torch.from_numpy(states.std(0) + 1e-6)
        self.obs_dim = states.shape[1]
        rtgs = []
        for t in trajectories:
            r = torch.from_numpy(t.rewards.astype(np.float32))
            g = returns_fn(r)
            if not isinstance(g, Tensor) or g.shape != r.shape:
                raise ValueError(f"WindowSampler: returns_fn must return a tensor of shape {tuple(r.shape)}, got "
                                 f"{tuple(g.shape) if isinstance(g, Tensor) else type(g).__name__}")
            rtgs.append(g.float())
        # every trajectory padded with `context` empty steps, so any window start is one slice
        k, n = context, len(trajectories)
        lengths = torch.tensor([len(t) for t in trajectories])
        width = int(lengths.max()) + k
        self.returns = torch.zeros(n, width)
        self.states = torch.zeros(n, width, self.obs_dim)
        self.actions = torch.zeros(n, width, dtype=torch.long)
        self.valid = torch.zeros(n, width, dtype=torch.bool)
        for i, (t, g) in enumerate(zip(trajectories, rtgs)):
            T = len(t)
            self.returns[i, :T] = g / self.return_scale
            obs = torch.from_numpy(t.observations.astype(np.float32))
            self.states[i, :T] = (obs - self.state_mean) / self.state_std
            self.actions[i, :T] = torch.from_numpy(t.actions)
            self.valid[i, :T] = True
        self.lengths = lengths
        self._episode = torch.repeat_interleave(torch.arange(n), lengths)  # one entry per logged step
        self._start = torch.cat([torch.arange(int(T)) for T in lengths])
        self.steps = int(lengths.sum())

    def sample(self, batch: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        pick = torch.randint(self.steps, (batch,), generator=generator)
        ep, start = self._episode[pick], self._start[pick]
        cols = start[:, None] + torch.arange(self.context)[None]  # [B, K]
        rows = ep[:, None].expand_as(cols)
        timesteps = torch.minimum(cols, (self.lengths[ep] - 1)[:, None])  # padding repeats the last timestep
        return dict(returns=self.returns[rows, cols].unsqueeze(-1), states=self.states[rows, cols],
                    actions=self.actions[rows, cols], timesteps=timesteps, mask=self.valid[rows, cols])
