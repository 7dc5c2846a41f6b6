"""Environments by id, one recorded episode, and the batched evaluation every RL hour reports.

- ``make_env(env_id, render=..., max_episode_steps=...)``: ``gymnasium.make`` with ``render_mode="rgb_array"``
  when frames are wanted, and a one-line error that lists the registered ids closest to a wrong one (gymnasium
  1.2 renamed ``CliffWalking-v0`` to ``-v1``; ``env_id`` resolves either name to what the installed gymnasium has).
- ``run_episode(env, policy, ...) -> Episode``: one episode, step by step, with its frames, rewards and (when a
  ``value_fn`` is given) the agent's value estimate per step: what ``amla.views.EpisodePlayer`` plays.
- ``evaluate(env_id, policy, episodes=100)``: the returns of ``episodes`` episodes played side by side, one
  environment per episode seeded ``seed + i``, the policy called once per step on the batch of observations
  still running. Evaluation seeds start at 10,000, so they never meet the seeds 0..9,999 of training.
- ``torch_policy(module)``: a batched numpy policy from a network that outputs one score per action (Q-values or
  logits): greedy (argmax) or sampled from the softmax.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

__all__ = ["EVAL_SEED", "Episode", "env_id", "evaluate", "make_env", "run_episode", "seed_env", "torch_policy"]

EVAL_SEED = 10_000
"""First seed of evaluation episodes (training uses seeds below it)."""

Policy = Callable[[np.ndarray], Any]

def env_id(name: str) -> str:
    """The registered id for ``name`` in the installed gymnasium: ``CliffWalking-v0`` and ``-v1`` both resolve to
    the one that exists (gymnasium >= 1.2 registers only ``-v1``, older releases only ``-v0``)."""
    if name in gym.registry:
        return name
    base, _, _ = name.rpartition("-v")
    candidates = sorted((key for key in gym.registry if key.rpartition("-v")[0] == base and "/" not in key),
                        key=lambda key: int(key.rpartition("-v")[2]) if key.rpartition("-v")[2].isdigit() else -1)
    if base and candidates:
        return candidates[-1]
    close = difflib.get_close_matches(name, list(gym.registry), n=4, cutoff=0.5)
    hint = f"; registered ids close to it: {', '.join(close)}" if close else ""
    raise ValueError(f"gymnasium {gym.__version__} has no environment {name!r}{hint}")


def make_env(name: str, *, render: bool = False, max_episode_steps: int | None = None,
             **kwargs: Any) -> gym.Env:
    """``gymnasium.make(env_id(name), ...)``; ``render=True`` asks for ``rgb_array`` frames (needs pygame: the
    ``gymnasium[classic-control]`` extra)."""
    if render:
        kwargs.setdefault("render_mode", "rgb_array")
    if kwargs.get("render_mode") == "rgb_array":
        # Frames are drawn off-screen: SDL's dummy video driver needs no display (and prints no
        # "XDG_RUNTIME_DIR is invalid" on a headless machine). A window (render_mode="human") is left alone.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if max_episode_steps is not None:
        if not isinstance(max_episode_steps, int) or isinstance(max_episode_steps, bool) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int or None, got {max_episode_steps!r}")
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make(env_id(name), **kwargs)


def seed_env(env: gym.Env, seed: int) -> Any:
    """Seed the environment's and its action space's generators; returns the first observation."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    return obs


@dataclass
class Episode:
    """One played episode. ``frames[k]`` is the picture before action ``frame_steps[k]`` (the last one, at
    ``len(episode)``, after the final step); ``values[t]`` the agent's estimate at ``observations[t]`` (None
    without a ``value_fn``)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    frames: list[np.ndarray] = field(default_factory=list)
    frame_steps: list[int] = field(default_factory=list)
    values: np.ndarray | None = None
    terminated: bool = False
    truncated: bool = False
    label: str = ""

    @property
    def ret(self) -> float:
        """The undiscounted return, the sum of the rewards."""
        return float(self.rewards.sum())

    def __len__(self) -> int:
        return len(self.rewards)

    def __repr__(self) -> str:
        end = "terminated" if self.terminated else "truncated" if self.truncated else "cut"
        return f"<Episode {self.label + ' ' if self.label else ''}{len(self)} steps, return {self.ret:g}, {end}>"


def run_episode(env: gym.Env, policy: Policy, *, seed: int | None = None, render: bool = True,
                value_fn: Callable[[np.ndarray], float] | None = None, max_steps: int | None = None,
                frame_every: int = 1, label: str = "") -> Episode:
    """Play one episode of ``env`` with ``policy(obs) -> action``; frames when ``render`` (the env must have been
    made with ``render_mode="rgb_array"``: ``make_env(..., render=True)``), one every ``frame_every`` steps and
    the last (a 500-step CartPole episode is 360 MB of frames at full rate), ``value_fn(obs) -> float`` per step.
    ``max_steps`` cuts the episode (reported as neither terminated nor truncated unless the env says so)."""
    if render and env.render_mode != "rgb_array":
        raise ValueError(f"run_episode(render=True) needs an env made with render_mode='rgb_array', got "
                         f"{env.render_mode!r}: use make_env(..., render=True), or pass render=False")
    if not isinstance(frame_every, int) or isinstance(frame_every, bool) or frame_every < 1:
        raise ValueError(f"run_episode: frame_every must be a positive int, got {frame_every!r}")
    obs, _ = env.reset(seed=seed)
    if seed is not None:
        env.action_space.seed(seed)
    observations, actions, rewards, values, frames, frame_steps = [], [], [], [], [], []
    terminated = truncated = False
    while not (terminated or truncated) and (max_steps is None or len(rewards) < max_steps):
        if render and len(rewards) % frame_every == 0:
            frames.append(np.asarray(env.render()))
            frame_steps.append(len(rewards))
        observations.append(np.asarray(obs))
        if value_fn is not None:
            values.append(float(value_fn(obs)))
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(np.asarray(action))
        rewards.append(float(reward))
    if render:
        frames.append(np.asarray(env.render()))
        frame_steps.append(len(rewards))
    return Episode(observations=np.asarray(observations), actions=np.asarray(actions),
                   rewards=np.asarray(rewards, dtype=np.float64), frames=frames, frame_steps=frame_steps,
                   values=np.asarray(values, dtype=np.float64) if value_fn is not None else None,
                   terminated=bool(terminated), truncated=bool(truncated), label=label)


def evaluate(name: str, policy: Policy, *, episodes: int = 100, seed: int = EVAL_SEED,
             max_episode_steps: int | None = None, **make_kwargs: Any) -> np.ndarray:
    """The returns of ``episodes`` episodes of ``name``, played side by side: episode ``i`` runs in its own
    environment reset with seed ``seed + i``; ``policy(obs_batch [n, ...]) -> actions [n]`` is called once per
    step on the episodes still running. Same seeds, same policy: same returns."""
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"evaluate: episodes must be a positive int, got {episodes!r}")
    envs = [make_env(name, max_episode_steps=max_episode_steps, **make_kwargs) for _ in range(episodes)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    returns = np.zeros(episodes, dtype=np.float64)
    running = list(range(episodes))
    while running:
        actions = np.asarray(policy(np.stack([np.asarray(obs[i]) for i in running])))
        if actions.shape[:1] != (len(running),):
            raise ValueError(f"evaluate: the policy returned actions of shape {actions.shape} for a batch of "
                             f"{len(running)} observations; expected one action per observation")
        still = []
        for i, action in zip(running, actions):
            obs[i], reward, terminated, truncated, _ = envs[i].step(action.item() if action.ndim == 0 else action)
            returns[i] += float(reward)
            if not (terminated or truncated):
                still.append(i)
        running = still
    for env in envs:
        env.close()
    return returns


def torch_policy(module: nn.Module, device: torch.device | str | None = None, *, greedy: bool = True,
                 generator: torch.Generator | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A batched numpy policy from ``module(obs [n, ...]) -> scores [n, actions]`` (Q-values or logits):
    ``greedy`` takes the argmax, otherwise an action is sampled from ``softmax(scores)``. Runs under
    ``torch.no_grad()`` on the module's device (or ``device``)."""
    if device is None:
        param = next(module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")

    def act(obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=device)
        single = x.dim() == 1
        with torch.no_grad():
            scores = module(x.unsqueeze(0) if single else x)
        if scores.dim() != 2:
            raise ValueError(f"torch_policy: the module returned shape {tuple(scores.shape)}; expected "
                             "[batch, actions] scores (Q-values or logits)")
        if greedy:
            actions = scores.argmax(-1)
        else:
            actions = torch.multinomial(torch.softmax(scores.float(), -1), 1, generator=generator).squeeze(-1)
        out = actions.cpu().numpy()
        return out[0] if single else out

    return act
