"""Policy gradients (Hour 17): the REINFORCE reward-to-go, the networks, whole episodes from a vector
environment, and the gradient estimate whose variance a baseline reduces.

- ``reward_to_go(rewards, gamma)``: ``G_t = sum_{k >= t} gamma^(k-t) r_k`` of one episode (Exercise 17.1);
- ``mlp``, ``ActorCritic``: a policy network (logits) and a value network, two separate MLPs as in CleanRL and
  Stable-Baselines3 (tanh, orthogonal initialisation); ``forward`` returns the logits, so
  ``amla.rl.episodes.torch_policy`` acts greedily with it;
- ``EpisodeBatch``, ``sample_episodes``: ``n`` whole episodes stepped side by side;
- ``train_reinforce(...)``: the hour's REINFORCE-with-baseline loop (the notebook writes it out), for more seeds;
- ``policy_gradient(...)``: the REINFORCE estimate of the gradient for one batch of episodes, with or without a
  baseline, as a flat vector (to measure its variance).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ActorCritic", "EpisodeBatch", "ReinforceResult", "mlp", "policy_gradient", "reward_to_go",
           "sample_episodes", "train_reinforce"]


def reward_to_go(rewards: Tensor, gamma: float = 0.99) -> Tensor:
    """``G_t = r_t + gamma G_{t+1}`` (``G_T = 0``) for the rewards ``[T]`` of one episode; same shape and dtype."""
    if rewards.dim() != 1:
        raise ValueError(f"reward_to_go: rewards must be 1-D [T] (one episode), got shape {tuple(rewards.shape)}")
    out = torch.zeros_like(rewards)
    running = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def mlp(sizes: list[int], out_gain: float = 1.0) -> nn.Sequential:
    """Linear layers with tanh between them, orthogonal weights (gain sqrt 2, the last ``out_gain``), zero bias."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, out_gain if last else math.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers += [lin] if last else [lin, nn.Tanh()]
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """``actor``: observation -> action logits; ``critic``: observation -> ``V(s)``; two MLPs of two hidden layers."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        if obs_dim < 1 or n_actions < 2:
            raise ValueError(f"ActorCritic: obs_dim >= 1 and n_actions >= 2 expected, got {obs_dim}, {n_actions}")
        self.actor = mlp([obs_dim, hidden, hidden, n_actions], out_gain=0.01)
        self.critic = mlp([obs_dim, hidden, hidden, 1], out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.actor(obs)

    def dist(self, obs: Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.actor(obs))

    def value(self, obs: Tensor) -> Tensor:
        return self.critic(obs).squeeze(-1)


@dataclass
class EpisodeBatch:
    """``n`` whole episodes: per episode the observations ``[T_i, obs_dim]``, actions and rewards ``[T_i]``."""

    obs: list[Tensor]
    actions: list[Tensor]
    rewards: list[Tensor]
    truncated: list[bool]

    @property
    def returns(self) -> np.ndarray:
        return np.array([float(r.sum()) for r in self.rewards])

    @property
    def steps(self) -> int:
        return sum(len(r) for r in self.rewards)


@torch.no_grad()
def sample_episodes(envs: gym.vector.VectorEnv, agent: ActorCritic, seed: int | None = None) -> EpisodeBatch:
    """One whole episode per environment of ``envs``, actions sampled from ``agent``, all stepped side by side
    (an environment whose episode has ended keeps stepping until the last one ends; those steps are dropped)."""
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    store: list[list[tuple[np.ndarray, int, float]]] = [[] for _ in range(n)]
    running, truncated = np.ones(n, dtype=bool), [False] * n
    while running.any():
        actions = agent.dist(torch.as_tensor(obs, dtype=torch.float32)).sample().numpy()
        next_obs, reward, term, trunc, _ = envs.step(actions)
        for i in np.flatnonzero(running):
            store[i].append((obs[i], int(actions[i]), float(reward[i])))
            if term[i] or trunc[i]:
                running[i], truncated[i] = False, bool(trunc[i] and not term[i])
        obs = next_obs
    return EpisodeBatch(
        obs=[torch.as_tensor(np.stack([s[0] for s in ep]), dtype=torch.float32) for ep in store],
        actions=[torch.tensor([s[1] for s in ep]) for ep in store],
        rewards=[torch.tensor([s[2] for s in ep], dtype=torch.float32) for ep in store],
        truncated=truncated)


def policy_gradient(agent: ActorCritic, batch: EpisodeBatch, gamma: float,
                    rtg_fn: Callable[[Tensor, float], Tensor] = reward_to_go, baseline: bool = False) -> Tensor:
    """The REINFORCE estimate of the gradient of the expected return with respect to the actor's parameters,
    ``mean over episodes of sum_t grad log pi(a_t|s_t) (G_t - b(s_t))``, as one flat vector; ``b = V(s)`` of the
    agent's critic when ``baseline`` (else 0). ``.grad`` of the parameters is left untouched."""
    params = list(agent.actor.parameters())
    loss = torch.zeros(())
    for obs, actions, rewards in zip(batch.obs, batch.actions, batch.rewards):
        g = rtg_fn(rewards, gamma)
        if baseline:
            with torch.no_grad():
                g = g - agent.value(obs)
        loss = loss + (agent.dist(obs).log_prob(actions) * g).sum()
    grads = torch.autograd.grad(loss / len(batch.rewards), params)
    return torch.cat([g.reshape(-1) for g in grads])


@dataclass
class ReinforceResult:
    agent: ActorCritic
    returns: list[float]  # mean sampled return of each update's batch
    steps: int
    seconds: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


def train_reinforce(env_id: str, rtg_fn: Callable[[Tensor, float], Tensor] = reward_to_go, *, seed: int = 0,
                    updates: int = 50, num_envs: int = 8, gamma: float = 0.99, lr_actor: float = 3e-3,
                    lr_critic: float = 1e-2, hidden: int = 64) -> ReinforceResult:
    """REINFORCE with a learned baseline, as the notebook writes it out: each update samples ``num_envs`` whole
    episodes, steps the actor on ``-sum_t log pi(a_t|s_t) (G_t - V(s_t))`` (averaged over the episodes) and the
    critic on ``(V(s_t) - G_t)^2``; ``rtg_fn`` is the student's reward-to-go."""
    import time

    from amla.rl.ppo import make_vec_env

    torch.manual_seed(seed)
    envs = make_vec_env(env_id, num_envs, seed=seed)
    agent = ActorCritic(int(np.prod(envs.single_observation_space.shape)), int(envs.single_action_space.n), hidden)
    opt_actor = torch.optim.Adam(agent.actor.parameters(), lr=lr_actor)
    opt_critic = torch.optim.Adam(agent.critic.parameters(), lr=lr_critic)
    returns, steps, start = [], 0, time.perf_counter()
    for _ in range(updates):
        batch = sample_episodes(envs, agent)
        steps += batch.steps
        returns.append(float(batch.returns.mean()))
        obs, actions = torch.cat(batch.obs), torch.cat(batch.actions)
        g = torch.cat([rtg_fn(r, gamma) for r in batch.rewards])
        v = agent.value(obs)
        actor_loss = -(agent.dist(obs).log_prob(actions) * (g - v).detach()).sum() / len(batch.rewards)
        opt_actor.zero_grad(set_to_none=True)
        actor_loss.backward()
        opt_actor.step()
        critic_loss = 0.5 * (v - g).pow(2).mean()
        opt_critic.zero_grad(set_to_none=True)
        critic_loss.backward()
        opt_critic.step()
    envs.close()
    return ReinforceResult(agent, returns, steps, time.perf_counter() - start)
