"""amla.rl.episodes: ids across gymnasium versions, one recorded episode, the batched evaluation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from amla.rl.episodes import EVAL_SEED, Episode, env_id, evaluate, make_env, run_episode, seed_env, torch_policy


def balance(obs: np.ndarray) -> int:
    """A scripted CartPole controller: push toward where the pole leans (and is falling)."""
    return int(obs[2] + 0.5 * obs[3] > 0)


def test_env_id_resolves_renamed_versions_and_names_close_ids() -> None:
    assert env_id("CartPole-v1") == "CartPole-v1"
    cliff = env_id("CliffWalking-v0")
    assert cliff.startswith("CliffWalking-v") and cliff in gym.registry
    assert env_id("CliffWalking-v1") == cliff
    with pytest.raises(ValueError, match="no environment 'CartPol-v1'.*CartPole-v1"):
        env_id("CartPol-v1")


def test_make_env_bad_max_episode_steps() -> None:
    with pytest.raises(ValueError, match="max_episode_steps must be a positive int"):
        make_env("CartPole-v1", max_episode_steps=0)
    assert make_env("CliffWalking-v1", max_episode_steps=7).spec.max_episode_steps == 7


def test_run_episode_records_frames_rewards_and_values() -> None:
    env = make_env("CartPole-v1", render=True, max_episode_steps=60)
    ep = run_episode(env, balance, seed=3, value_fn=lambda o: float(o[0]), frame_every=10, label="scripted")
    assert isinstance(ep, Episode) and len(ep) == 60 and ep.truncated and not ep.terminated
    assert ep.ret == 60.0 and ep.rewards.dtype == np.float64
    assert ep.observations.shape == (60, 4) and ep.actions.shape == (60,)
    assert ep.frame_steps == [0, 10, 20, 30, 40, 50, 60]
    assert len(ep.frames) == 7 and ep.frames[0].dtype == np.uint8 and ep.frames[0].shape[2] == 3
    np.testing.assert_allclose(ep.values, ep.observations[:, 0])
    assert "scripted 60 steps, return 60, truncated" in repr(ep)


def test_run_episode_is_reproducible_and_cut_by_max_steps() -> None:
    env = make_env("CartPole-v1")
    a = run_episode(env, lambda o: env.action_space.sample(), seed=5, render=False)
    b = run_episode(env, lambda o: env.action_space.sample(), seed=5, render=False)
    assert np.array_equal(a.observations, b.observations) and np.array_equal(a.actions, b.actions)
    cut = run_episode(env, balance, seed=5, render=False, max_steps=4)
    assert len(cut) == 4 and not (cut.terminated or cut.truncated) and cut.values is None and cut.frames == []


def test_run_episode_render_needs_rgb_array() -> None:
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        run_episode(make_env("CartPole-v1"), balance)
    with pytest.raises(ValueError, match="frame_every must be a positive int"):
        run_episode(make_env("CartPole-v1", render=True), balance, frame_every=0)


def test_evaluate_equals_one_episode_at_a_time() -> None:
    returns = evaluate("CartPole-v1", lambda obs: (obs[:, 1] < 0).astype(np.int64), episodes=6,
                       max_episode_steps=200)
    assert returns.shape == (6,) and returns.dtype == np.float64
    one_by_one = []
    for i in range(6):
        env = make_env("CartPole-v1", max_episode_steps=200)
        one_by_one.append(run_episode(env, lambda o: int(o[1] < 0), seed=EVAL_SEED + i,
                                      render=False).ret)
    assert returns.tolist() == one_by_one
    assert len(set(one_by_one)) > 1  # the seeds differ, so the episodes do


def test_evaluate_rejects_bad_policies_and_counts() -> None:
    with pytest.raises(ValueError, match="episodes must be a positive int"):
        evaluate("CartPole-v1", lambda obs: obs, episodes=0)
    with pytest.raises(ValueError, match="one action per observation"):
        evaluate("CartPole-v1", lambda obs: np.zeros(1, dtype=np.int64), episodes=3)


def test_torch_policy_greedy_and_sampled() -> None:
    net = torch.nn.Linear(4, 2)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0.0, 5.0]))
    greedy = torch_policy(net)
    assert greedy(np.zeros(4, dtype=np.float32)) == 1
    assert greedy(np.zeros((3, 4))).tolist() == [1, 1, 1]
    sampled = torch_policy(net, greedy=False, generator=torch.Generator().manual_seed(0))
    picks = sampled(np.zeros((2000, 4)))
    assert 0.98 < picks.mean() < 1.0  # softmax([0, 5]) puts 99.3 % on action 1
    with pytest.raises(ValueError, match=r"expected \[batch, actions\]"):
        torch_policy(torch.nn.Flatten(0))(np.zeros((2, 4)))


def test_seed_env_returns_the_first_observation() -> None:
    env = make_env("CartPole-v1")
    assert np.array_equal(seed_env(env, 7), env.reset(seed=7)[0])
