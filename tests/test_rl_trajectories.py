"""amla.rl.trajectories: behaviour policies, the logged episodes, returns-to-go and the training windows (Hour 18)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from amla.rl.trajectories import (Trajectory, WindowSampler, collect, epsilon_greedy, pd_controller, random_policy,
                                  returns_to_go, summarize, top_fraction)


def test_pd_controller_balances_cartpole_and_the_angle_only_one_does_not():
    good = collect("CartPole-v1", pd_controller(), 2, seed=0)
    myopic = collect("CartPole-v1", pd_controller(1.0, 0.0), 2, seed=0)
    assert [t.ret for t in good] == [500.0, 500.0]
    assert all(t.ret < 100 for t in myopic)


def test_pd_controller_pushes_towards_the_lean():
    obs = np.array([[0, 0, 0.1, 0], [0, 0, -0.1, 0], [0, 0, 0.05, -0.2]], dtype=np.float32)
    assert pd_controller()(obs).tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        pd_controller()(np.zeros(4))


def test_epsilon_greedy():
    rng = np.random.default_rng(0)
    obs = np.tile(np.array([[0, 0, 0.1, 0]], dtype=np.float32), (2000, 1))
    assert (epsilon_greedy(pd_controller(), 0.0, rng)(obs) == 1).all()
    share = (epsilon_greedy(pd_controller(), 1.0, rng)(obs) == 1).mean()
    assert 0.45 < share < 0.55
    share = (epsilon_greedy(pd_controller(), 0.4, rng)(obs) == 1).mean()  # 0.6 + 0.4 / 2
    assert 0.76 < share < 0.84
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
        epsilon_greedy(pd_controller(), 1.5, rng)


def test_collect_matches_gymnasium_and_is_reproducible():
    trajs = collect("CartPole-v1", random_policy(2, np.random.default_rng(1)), 3, seed=7, label="random")
    again = collect("CartPole-v1", random_policy(2, np.random.default_rng(1)), 3, seed=7, label="random")
    for i, t in enumerate(trajs):
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=7 + i)
        np.testing.assert_allclose(t.observations[0], obs)
        for k, a in enumerate(t.actions):  # replaying the actions gives the logged observations and rewards
            np.testing.assert_allclose(t.observations[k], obs, rtol=1e-6)
            obs, r, terminated, truncated, _ = env.step(int(a))
            assert r == t.rewards[k]
        assert terminated or truncated
        assert t.observations.dtype == np.float32 and t.actions.dtype == np.int64 and t.policy == "random"
        assert t.observations.shape == (len(t), 4) and t.actions.shape == t.rewards.shape == (len(t),)
    assert [len(t) for t in trajs] == [len(t) for t in again]
    assert all(np.array_equal(a.actions, b.actions) for a, b in zip(trajs, again))
    with pytest.raises(ValueError, match="positive int"):
        collect("CartPole-v1", pd_controller(), 0)


def test_collect_checks_what_the_policy_returns():
    with pytest.raises(ValueError, match=r"shape \(1,\) for 2 observations"):
        collect("CartPole-v1", lambda obs: np.zeros(1, dtype=np.int64), 2)


def test_collect_max_episode_steps():
    trajs = collect("CartPole-v1", pd_controller(), 2, max_episode_steps=30)
    assert [len(t) for t in trajs] == [30, 30]


def _traj(rewards, policy="", offset=0.0):
    T = len(rewards)
    return Trajectory(np.arange(T * 4, dtype=np.float32).reshape(T, 4) + offset, np.arange(T) % 2,
                      np.asarray(rewards, dtype=np.float32), policy)


def test_returns_to_go_against_the_definition():
    r = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    for gamma in (1.0, 0.9, 0.0):
        want = torch.tensor([sum(gamma ** (k - t) * r[k] for k in range(t, 4)) for t in range(4)],
                            dtype=torch.float64)
        got = returns_to_go(r, gamma)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want)
    assert returns_to_go(torch.ones(3)).tolist() == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match=r"1-d tensor \[T\]"):
        returns_to_go(torch.ones(2, 3))
    with pytest.raises(ValueError, match="1-d tensor"):
        returns_to_go([1.0, 2.0])


def test_top_fraction_and_summarize():
    trajs = [_traj([1.0] * n, "a" if n < 5 else "b") for n in (3, 9, 1, 7, 5, 2, 4, 8, 6, 10)]
    best = top_fraction(trajs, 0.2)
    assert [t.ret for t in best] == [9.0, 10.0]  # in log order
    assert len(top_fraction(trajs, 0.01)) == 1
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        top_fraction(trajs, 0.0)
    table = summarize(trajs)
    assert table["a"] == dict(episodes=4, steps=10, mean=2.5, min=1.0, max=4.0)
    assert table["b"]["episodes"] == 6


def test_window_sampler_windows():
    trajs = [_traj([1.0] * 5), _traj([1.0, 2.0, 3.0], offset=100.0)]
    sampler = WindowSampler(trajs, context=4, return_scale=10.0)
    assert sampler.steps == 8
    b = sampler.sample(64, torch.Generator().manual_seed(0))
    assert b["returns"].shape == (64, 4, 1) and b["states"].shape == (64, 4, 4)
    assert b["actions"].dtype == torch.long and b["timesteps"].dtype == torch.long and b["mask"].dtype == torch.bool
    assert b["mask"][:, 0].all()  # a window starts at a logged step
    states = np.concatenate([t.observations for t in trajs])
    torch.testing.assert_close(sampler.state_mean, torch.from_numpy(states.mean(0)))
    for i in range(64):
        T = int(b["mask"][i].sum())
        t0 = int(b["timesteps"][i, 0])
        ts = b["timesteps"][i, :T]
        assert ts.tolist() == list(range(t0, t0 + T))
        raw = b["states"][i, :T] * sampler.state_std + sampler.state_mean
        ep = int(raw[0, 0] > 50)  # the second trajectory's observations are offset by 100
        assert T == min(4, len(trajs[ep]) - t0)
        rtg = returns_to_go(torch.from_numpy(trajs[ep].rewards)) / 10.0
        torch.testing.assert_close(b["returns"][i, :T, 0], rtg[t0:t0 + T])
        torch.testing.assert_close(raw, torch.from_numpy(trajs[ep].observations[t0:t0 + T]), atol=1e-4, rtol=1e-4)
        assert (b["returns"][i, T:] == 0).all() and not b["mask"][i, T:].any()


def test_window_sampler_uses_the_returns_fn_it_is_given():
    seen = []

    def doubled(rewards):
        seen.append(len(rewards))
        return 2 * returns_to_go(rewards)

    sampler = WindowSampler([_traj([1.0] * 3)], context=3, returns_fn=doubled, return_scale=1.0)
    assert seen == [3]
    assert sampler.returns[0, :3].tolist() == [6.0, 4.0, 2.0]
    with pytest.raises(ValueError, match=r"returns_fn must return a tensor of shape \(3,\)"):
        WindowSampler([_traj([1.0] * 3)], context=3, returns_fn=lambda r: r[:2])
    with pytest.raises(ValueError, match="no trajectories"):
        WindowSampler([], context=3)
    with pytest.raises(ValueError, match="context must be a positive int"):
        WindowSampler([_traj([1.0])], context=0)
