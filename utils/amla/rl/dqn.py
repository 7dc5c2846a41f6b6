"""Deep Q-Networks (Hour 16): the replay buffer, the Q-network, the epsilon schedule, the TD target and one
training function that runs the loop Hour 16 writes out in its notebook.

- ``QNetwork(obs_dim, n_actions, hidden=(256, 256))``: an MLP from an observation to one Q-value per action;
- ``ReplayBuffer(capacity, obs_shape)``: a ring buffer of transitions ``(obs, action, reward, next_obs,
  terminated, truncated)``, sampled uniformly with its own numpy generator. ``next_obs`` is the observation the
  step returned, *before* any reset: on a truncated step it is the true last state, which the TD target
  bootstraps from;
- ``linear_epsilon(step, decay_steps, start=1.0, end=0.05)``: the exploration rate, linear from ``start`` at step 0
  to ``end`` at ``decay_steps``, then constant (Exercise 16.2);
- ``td_target(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None)``: the TD target,
  ``r + gamma * (1 - terminated) * max_a Q_target(s', a)``; Double DQN when ``next_q_online`` is given (the action
  chosen by the online network, valued by the target network). Truncation never stops the bootstrap (Exercise 16.1);
- ``DQNConfig`` and ``train_dqn(config, seed=..., td_target_fn=..., epsilon_fn=...) -> DQNResult``: the loop, with a
  greedy evaluation of 10 episodes every ``eval_every`` steps, the best snapshot kept, and an early stop once a
  snapshot scores the environment's maximum on all its evaluation episodes. ``truncation_as_termination=True``
  trains with the classic bug (``done = terminated or truncated``), for the hour's measurement.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.rl.episodes import env_id, evaluate, make_env, torch_policy

__all__ = ["DQNConfig", "DQNResult", "QNetwork", "ReplayBuffer", "SNAPSHOT_SEED", "linear_epsilon", "td_target",
           "train_dqn"]

SNAPSHOT_SEED = 50_000
"""First seed of the snapshot evaluations during training (apart from training's 0..9,999 and the final
evaluation's 10,000 + i)."""

TDTargetFn = Callable[..., Tensor]
EpsilonFn = Callable[..., float]


class QNetwork(nn.Module):
    """``obs [B, obs_dim] -> Q-values [B, n_actions]``: an MLP with ReLU hidden layers."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        if obs_dim < 1 or n_actions < 1:
            raise ValueError(f"QNetwork needs obs_dim >= 1 and n_actions >= 1, got {obs_dim} and {n_actions}")
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)
        self.obs_dim, self.n_actions = obs_dim, n_actions

    def forward(self, obs: Tensor) -> Tensor:
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"QNetwork expects observations [B, {self.obs_dim}], got shape {tuple(obs.shape)}")
        return self.net(obs)


@dataclass
class Batch:
    """A sampled minibatch, as tensors: ``obs [B, ...]`` float32, ``actions [B]`` long, ``rewards [B]`` float32,
    ``next_obs [B, ...]``, ``terminated`` and ``truncated [B]`` bool."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminated: Tensor
    truncated: Tensor


class ReplayBuffer:
    """A ring buffer of the last ``capacity`` transitions, sampled uniformly (with replacement, like SB3)."""

    def __init__(self, capacity: int, obs_shape: Sequence[int], *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be a positive int, got {capacity!r}")
        self.capacity, self.obs_shape, self.device = capacity, tuple(obs_shape), torch.device(device)
        self.obs = np.zeros((capacity, *self.obs_shape), dtype=np.float32)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.truncated = np.zeros(capacity, dtype=bool)
        self.pos, self.size = 0, 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Any, action: int, reward: float, next_obs: Any, terminated: bool, truncated: bool) -> None:
        """Store one transition; ``next_obs`` is what ``env.step`` returned (before a reset)."""
        obs, next_obs = np.asarray(obs, dtype=np.float32), np.asarray(next_obs, dtype=np.float32)
        if obs.shape != self.obs_shape or next_obs.shape != self.obs_shape:
            raise ValueError(f"ReplayBuffer.add: observations must have shape {self.obs_shape}, got {obs.shape} "
                             f"and {next_obs.shape}")
        i = self.pos
        self.obs[i], self.next_obs[i] = obs, next_obs
        self.actions[i], self.rewards[i] = int(action), float(reward)
        self.terminated[i], self.truncated[i] = bool(terminated), bool(truncated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """``batch_size`` transitions drawn uniformly from what is stored."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty; add transitions first")
        idx = self.rng.integers(0, self.size, size=batch_size)

        def t(a: np.ndarray) -> Tensor:
            return torch.from_numpy(a[idx]).to(self.device)

        return Batch(t(self.obs), t(self.actions), t(self.rewards), t(self.next_obs), t(self.terminated),
                     t(self.truncated))


def linear_epsilon(step: int, decay_steps: int, start: float = 1.0, end: float = 0.05) -> float:
    """The exploration rate at ``step``: ``start`` at step 0, linearly down to ``end`` at ``decay_steps``, then
    ``end`` (``decay_steps=0``: ``end`` from the first step)."""
    if decay_steps <= 0:
        return float(end)
    fraction = min(step / decay_steps, 1.0)
    return float(start + fraction * (end - start))


def td_target(reward: Tensor, next_q_target: Tensor, terminated: Tensor, truncated: Tensor, gamma: float, *,
              next_q_online: Tensor | None = None) -> Tensor:
    """``reward [B]``, ``next_q_target [B, A]`` (the target network at ``s'``), ``terminated`` and ``truncated [B]``
    (bool), ``gamma``; ``next_q_online [B, A]`` for Double DQN. Returns the target ``[B]`` in the reward's dtype.

    Termination ends the return (no bootstrap); truncation only stops the episode, the state ``s'`` still has a
    future, so its value is bootstrapped (``truncated`` is deliberately unused)."""
    if next_q_online is None:
        next_value = next_q_target.max(dim=1).values
    else:
        best = next_q_online.argmax(dim=1, keepdim=True)
        next_value = next_q_target.gather(1, best).squeeze(1)
    return reward + gamma * (~terminated).to(reward.dtype) * next_value.to(reward.dtype)


@dataclass
class DQNConfig:
    """The hyperparameters (defaults: rl-zoo's tuned DQN for CartPole-v1, 50k steps, with Double DQN)."""

    env_id: str = "CartPole-v1"
    total_steps: int = 50_000
    lr: float = 2.3e-3
    batch_size: int = 64
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    gamma: float = 0.99
    target_update_interval: int = 10  # env steps between copies of the online network into the target network
    train_freq: int = 256  # env steps between training bursts
    gradient_steps: int = 128  # gradient steps per burst
    exploration_fraction: float = 0.16  # of total_steps, from eps_start down to eps_end
    eps_start: float = 1.0
    eps_end: float = 0.04
    hidden: tuple[int, ...] = (256, 256)
    max_grad_norm: float = 10.0
    double: bool = True
    max_episode_steps: int | None = None  # the training environment's time limit (None: the env's own)
    truncation_as_termination: bool = False  # the classic bug, on purpose: done = terminated or truncated
    eval_every: int = 2_500
    eval_episodes: int = 10
    eval_max_episode_steps: int | None = None
    stop_at: float | None = None  # stop once a snapshot's mean greedy return reaches this (None: the env's maximum)

    @property
    def decay_steps(self) -> int:
        return int(self.exploration_fraction * self.total_steps)


@dataclass
class DQNResult:
    """What ``train_dqn`` returns: the best snapshot (loaded into ``q``), where it was taken, and the run's cost."""

    q: QNetwork
    best_step: int
    best_eval: float
    steps: int  # environment steps taken (training may stop early)
    updates: int
    seconds: float
    evals: list[tuple[int, float]] = field(default_factory=list)  # (env step, mean greedy return of the snapshot)
    losses: list[tuple[int, float]] = field(default_factory=list)  # (env step, mean Huber loss of the burst)
    episode_returns: list[tuple[int, float]] = field(default_factory=list)  # (env step, training episode return)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def steps_per_s(self) -> float:
        return self.steps / max(self.seconds, 1e-9)


def train_dqn(config: DQNConfig = DQNConfig(), *, seed: int = 0, td_target_fn: TDTargetFn = td_target,
              epsilon_fn: EpsilonFn = linear_epsilon, device: torch.device | str = "cpu",
              on_log: Callable[[int, dict[str, float]], None] | None = None,
              on_eval: Callable[[int, float], None] | None = None) -> DQNResult:
    """Train a DQN agent with ``td_target_fn`` and ``epsilon_fn`` (the student's, once their checks pass): the same
    loop as Hour 16's notebook. ``on_log(step, {"loss": ..., "epsilon": ...})`` after each burst and
    ``on_eval(step, mean_return)`` after each snapshot evaluation feed a dashboard."""
    c = config
    if c.total_steps < 1 or c.train_freq < 1 or c.eval_every < 1:
        raise ValueError(f"train_dqn: total_steps, train_freq and eval_every must be >= 1, got {c.total_steps}, "
                         f"{c.train_freq}, {c.eval_every}")
    device = torch.device(device)
    env = make_env(c.env_id, max_episode_steps=c.max_episode_steps)
    eval_limit = c.eval_max_episode_steps
    cap = eval_limit or gym.spec(env_id(c.env_id)).max_episode_steps  # the evaluation's time limit
    stop_at = c.stop_at if c.stop_at is not None else (float(cap) if cap else None)
    torch.manual_seed(seed)
    obs_dim, n_actions = int(np.prod(env.observation_space.shape)), int(env.action_space.n)
    q = QNetwork(obs_dim, n_actions, c.hidden).to(device)
    q_target = copy.deepcopy(q)
    opt = torch.optim.Adam(q.parameters(), lr=c.lr)
    buffer = ReplayBuffer(c.buffer_size, env.observation_space.shape, seed=seed, device=device)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    result = DQNResult(q=q, best_step=0, best_eval=-np.inf, steps=0, updates=0, seconds=0.0, config=asdict(c))
    best_state = copy.deepcopy(q.state_dict())
    ep_return, start = 0.0, time.perf_counter()
    for step in range(1, c.total_steps + 1):
        eps = epsilon_fn(step, c.decay_steps, c.eps_start, c.eps_end)
        if step <= c.learning_starts or rng.random() < eps:
            action = int(env.action_space.sample())
        else:
            with torch.no_grad():
                action = int(q(torch.as_tensor(obs, dtype=torch.float32, device=device)[None]).argmax())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        if c.truncation_as_termination:
            terminated, truncated = terminated or truncated, False
        buffer.add(obs, action, float(reward), next_obs, terminated, truncated)
        ep_return += float(reward)
        obs = next_obs
        if terminated or truncated:
            result.episode_returns.append((step, ep_return))
            obs, _ = env.reset()
            ep_return = 0.0

        if step > c.learning_starts and step % c.train_freq == 0:
            total = 0.0
            for _ in range(c.gradient_steps):
                b = buffer.sample(c.batch_size)
                with torch.no_grad():
                    next_q_target = q_target(b.next_obs)
                    online = q(b.next_obs) if c.double else None
                    target = td_target_fn(b.rewards, next_q_target, b.terminated, b.truncated, c.gamma,
                                          next_q_online=online)
                q_taken = q(b.obs).gather(1, b.actions[:, None]).squeeze(1)
                loss = F.smooth_l1_loss(q_taken, target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(q.parameters(), c.max_grad_norm)
                opt.step()
                total += loss.item()
                result.updates += 1
            result.losses.append((step, total / c.gradient_steps))
            if on_log is not None:
                on_log(step, {"loss": total / c.gradient_steps, "epsilon": eps})
        if step % c.target_update_interval == 0:
            q_target.load_state_dict(q.state_dict())

        if step > c.learning_starts and (step % c.eval_every == 0 or step == c.total_steps):
            q.eval()
            mean = float(evaluate(c.env_id, torch_policy(q, device), episodes=c.eval_episodes, seed=SNAPSHOT_SEED,
                                  max_episode_steps=eval_limit).mean())
            q.train()
            result.evals.append((step, mean))
            if on_eval is not None:
                on_eval(step, mean)
            if mean >= result.best_eval:  # ties: the later snapshot, trained longer
                result.best_eval, result.best_step = mean, step
                best_state = copy.deepcopy(q.state_dict())
            if stop_at is not None and mean >= stop_at:
                result.steps = step
                break
        result.steps = step
    env.close()
    result.seconds = time.perf_counter() - start
    q.load_state_dict(best_state)
    return result
