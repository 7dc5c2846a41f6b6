"""PPO's pieces (Hour 17): generalized advantage estimation, the clipped objective, a rollout over
``gymnasium.vector`` and one PPO update.

How episode ends are handled (the point of Exercise 17.2). A vector environment resets an episode that ended by
itself; this module asks for gymnasium's ``SAME_STEP`` autoreset: the step on which an episode ends returns the
*first* observation of the next episode, and the real last observation in ``info["final_obs"]``. So every stored
step is a real transition, and ``next_values[t]`` is the critic's value of the state that step really led to
(``V(final_obs)`` where an episode ended). Then

- ``terminated[t]``: the episode is over, its future is worth 0: no bootstrap, ``delta = r - V(s)``;
- ``truncated[t]``: cut by a time limit, the state still has a future: bootstrap with ``V(final_obs)``;
- both: the recursion ``A_t = delta_t + gamma lam A_{t+1}`` stops at the step, because ``t + 1`` belongs to the
  next episode.

(gymnasium's default, ``NEXT_STEP``, instead returns the final observation and resets on the *next* call, which
ignores its action and returns reward 0: a step that is no transition and that a buffer would have to mask.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from amla.rl.policy_gradient import ActorCritic

__all__ = ["PPOConfig", "PPOResult", "Rollout", "collect_rollout", "gae", "make_vec_env", "ppo_loss",
           "ppo_update", "train_ppo"]

GaeFn = Callable[..., tuple[Tensor, Tensor]]
LossFn = Callable[..., Tensor]


def gae(rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, truncated: Tensor,
        gamma: float = 0.99, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over a rollout of ``T`` steps of ``N`` environments.

    All arguments are ``[T, N]``: ``values[t] = V(s_t)``, ``next_values[t] = V(s_{t+1})`` of the state step ``t``
    led to (the final observation where an episode ended), ``terminated`` / ``truncated`` bool. Returns
    ``(advantages, returns)``, both ``[T, N]`` in the dtype of ``values``, ``returns = advantages + values``.
    """
    for name, t in (("values", values), ("next_values", next_values), ("terminated", terminated),
                    ("truncated", truncated)):
        if t.shape != rewards.shape:
            raise ValueError(f"gae: {name} must have the shape of rewards {tuple(rewards.shape)} ([T, N]), "
                             f"got {tuple(t.shape)}")
    alive = (~terminated.bool()).to(values.dtype)
    cont = (~(terminated.bool() | truncated.bool())).to(values.dtype)
    delta = rewards.to(values.dtype) + gamma * alive * next_values - values
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * lam * cont[t] * running
        advantages[t] = running
    return advantages, advantages + values


def ppo_loss(new_logp: Tensor, old_logp: Tensor, advantages: Tensor, clip: float = 0.2) -> Tensor:
    """PPO's clipped surrogate as a loss to minimise: ``-mean(min(r A, clip(r, 1 - clip, 1 + clip) A))`` with the
    probability ratio ``r = exp(new_logp - old_logp)``; a 0-d tensor."""
    ratio = torch.exp(new_logp - old_logp)
    return -torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip, 1 + clip) * advantages).mean()


def make_vec_env(env_id: str, num_envs: int, seed: int | None = None, **kwargs: Any) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` stepped side by side (``gymnasium.vector.SyncVectorEnv``) with the
    ``SAME_STEP`` autoreset this module relies on; reset with ``seed`` (copy ``i`` gets ``seed + i``)."""
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"make_vec_env: num_envs must be an int >= 1, got {num_envs!r}")
    mode = getattr(gym.vector, "AutoresetMode", None)
    if mode is None:
        raise RuntimeError(f"make_vec_env needs gymnasium >= 1.1 (its SAME_STEP autoreset), got {gym.__version__}")
    from amla.rl.episodes import make_env

    make_env(env_id, **kwargs).close()  # a one-line error for an unknown id
    envs = gym.vector.SyncVectorEnv([lambda: make_env(env_id, **kwargs) for _ in range(num_envs)],
                                    autoreset_mode=mode.SAME_STEP)
    if seed is not None:
        envs.reset(seed=seed)
        envs.action_space.seed(seed)
    return envs


@dataclass
class Rollout:
    """``T`` steps of ``N`` environments: everything an update needs (tensors ``[T, N, ...]``)."""

    obs: Tensor
    actions: Tensor
    logp: Tensor
    rewards: Tensor
    values: Tensor
    next_values: Tensor
    terminated: Tensor
    truncated: Tensor
    episode_returns: list[float] = field(default_factory=list)  # of the episodes that ended in this rollout


def _final_obs(next_obs: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The observation each step really led to: ``info["final_obs"]`` where an episode ended (SAME_STEP)."""
    real = next_obs.copy()
    if done.any():
        finals = info["final_obs"]
        for i in np.flatnonzero(done):
            real[i] = finals[i]
    return real


@torch.no_grad()
def collect_rollout(envs: gym.vector.VectorEnv, agent: ActorCritic, obs: np.ndarray, n_steps: int,
                    ep_returns: np.ndarray) -> tuple[Rollout, np.ndarray]:
    """Step ``envs`` ``n_steps`` times with actions sampled from ``agent``; returns the rollout and the observation
    to continue from. ``ep_returns [N]`` carries the running return of each environment's episode (updated)."""
    device = next(agent.parameters()).device
    buf: dict[str, list[Tensor]] = {k: [] for k in ("obs", "actions", "logp", "rewards", "values", "next_values",
                                                    "terminated", "truncated")}
    finished: list[float] = []
    for _ in range(n_steps):
        o = torch.as_tensor(obs, dtype=torch.float32, device=device)
        dist = agent.dist(o)
        action = dist.sample()
        next_obs, reward, term, trunc, info = envs.step(action.cpu().numpy())
        done = term | trunc
        real_next = torch.as_tensor(_final_obs(next_obs, done, info), dtype=torch.float32, device=device)
        ep_returns += reward
        finished += ep_returns[done].tolist()
        ep_returns[done] = 0.0
        for k, v in (("obs", o), ("actions", action), ("logp", dist.log_prob(action)), ("values", agent.value(o)),
                     ("next_values", agent.value(real_next)),
                     ("rewards", torch.as_tensor(reward, dtype=torch.float32, device=device)),
                     ("terminated", torch.as_tensor(term, device=device)),
                     ("truncated", torch.as_tensor(trunc, device=device))):
            buf[k].append(v)
        obs = next_obs
    stacked = {k: torch.stack(v) for k, v in buf.items()}
    return Rollout(**stacked, episode_returns=finished), obs


@dataclass
class PPOConfig:
    """rl-zoo's CartPole-v1 settings (linear decay of the learning rate and of the clip range to 0)."""

    num_envs: int = 8
    n_steps: int = 32
    batch_size: int = 256
    n_epochs: int = 20
    gamma: float = 0.98
    gae_lambda: float = 0.8
    lr: float = 1e-3
    clip: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    total_steps: int = 100_000
    hidden: int = 64


def ppo_update(agent: ActorCritic, opt: torch.optim.Optimizer, ro: Rollout, advantages: Tensor, returns: Tensor,
               cfg: PPOConfig, clip: float, loss_fn: LossFn = ppo_loss,
               generator: torch.Generator | None = None) -> dict[str, float]:
    """``cfg.n_epochs`` passes over the rollout in shuffled minibatches of ``cfg.batch_size``: the clipped policy
    loss (``loss_fn``), ``vf_coef`` times the value's squared error, minus ``ent_coef`` times the entropy; returns
    the last minibatch's numbers and the fraction of clipped ratios."""
    obs, actions = ro.obs.flatten(0, 1), ro.actions.flatten(0, 1)
    old_logp, adv, ret = ro.logp.flatten(), advantages.flatten(), returns.flatten()
    total = obs.shape[0]
    stats: dict[str, float] = {}
    for _ in range(cfg.n_epochs):
        order = torch.randperm(total, generator=generator)
        for start in range(0, total, cfg.batch_size):
            mb = order[start:start + cfg.batch_size]
            dist = agent.dist(obs[mb])
            new_logp = dist.log_prob(actions[mb])
            a = adv[mb]
            if cfg.norm_adv and len(mb) > 1:
                a = (a - a.mean()) / (a.std() + 1e-8)
            pg = loss_fn(new_logp, old_logp[mb], a, clip)
            v_loss = 0.5 * (agent.value(obs[mb]) - ret[mb]).pow(2).mean()
            entropy = dist.entropy().mean()
            loss = pg + cfg.vf_coef * v_loss - cfg.ent_coef * entropy
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            opt.step()
            with torch.no_grad():
                ratio = (new_logp - old_logp[mb]).exp()
                stats = dict(policy_loss=pg.item(), value_loss=v_loss.item(), entropy=entropy.item(),
                             clip_frac=((ratio - 1).abs() > clip).float().mean().item())
    return stats


@dataclass
class PPOResult:
    agent: ActorCritic  # the best snapshot (by its evaluation), or the last one without evaluations
    evals: list[tuple[int, float]]  # (env steps, greedy mean return) of each snapshot evaluated
    best_step: int
    steps: int
    seconds: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


def train_ppo(env_id: str, gae_fn: GaeFn = gae, loss_fn: LossFn = ppo_loss, cfg: PPOConfig | None = None,
              seed: int = 0, eval_every: int = 0, eval_episodes: int = 20, eval_seed: int = 50_000,
              log: Callable[..., None] | None = None, device: torch.device | str = "cpu") -> PPOResult:
    """The hour's PPO loop (the notebook writes the same loop out): ``gae_fn`` and ``loss_fn`` are the student's
    GAE and clipped loss. Every ``eval_every`` updates the greedy policy is evaluated on ``eval_episodes``
    episodes (seeds from ``eval_seed``, apart from training and final-evaluation seeds) and the best kept."""
    import copy

    from amla.rl.episodes import evaluate, torch_policy

    cfg = cfg or PPOConfig()
    torch.manual_seed(seed)
    envs = make_vec_env(env_id, cfg.num_envs, seed=seed)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    agent = ActorCritic(obs_dim, int(envs.single_action_space.n), cfg.hidden).to(device)
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.lr, eps=1e-5)
    gen = torch.Generator().manual_seed(seed)
    n_updates = cfg.total_steps // (cfg.num_envs * cfg.n_steps)
    obs, _ = envs.reset(seed=seed)
    ep_returns = np.zeros(cfg.num_envs)
    evals: list[tuple[int, float]] = []
    best, best_score, best_step = copy.deepcopy(agent.state_dict()), -np.inf, 0
    start = time.perf_counter()
    for update in range(n_updates):
        frac = 1.0 - update / n_updates  # linear decay to 0
        for group in opt.param_groups:
            group["lr"] = cfg.lr * frac
        ro, obs = collect_rollout(envs, agent, obs, cfg.n_steps, ep_returns)
        with torch.no_grad():
            advantages, returns = gae_fn(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated,
                                         cfg.gamma, cfg.gae_lambda)
        stats = ppo_update(agent, opt, ro, advantages, returns, cfg, cfg.clip * frac, loss_fn, gen)
        step = (update + 1) * cfg.num_envs * cfg.n_steps
        if log is not None:
            log(step, stats, ro.episode_returns)
        if eval_every and ((update + 1) % eval_every == 0 or update + 1 == n_updates):
            score = float(evaluate(env_id, torch_policy(agent, device), episodes=eval_episodes, seed=eval_seed).mean())
            evals.append((step, score))
            if score >= best_score:  # ties: the later snapshot
                best, best_score, best_step = copy.deepcopy(agent.state_dict()), score, step
    seconds = time.perf_counter() - start
    envs.close()
    if evals:
        agent.load_state_dict(best)
    else:
        best_step = n_updates * cfg.num_envs * cfg.n_steps
    return PPOResult(agent, evals, best_step, n_updates * cfg.num_envs * cfg.n_steps, seconds)
