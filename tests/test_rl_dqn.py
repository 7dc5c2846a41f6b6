"""amla.rl.dqn (Hour 16): the replay buffer, the Q-network, the epsilon schedule, the TD target against a direct
computation, and a short run of the training loop (no training to the target here)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from amla.rl.dqn import DQNConfig, QNetwork, ReplayBuffer, linear_epsilon, td_target, train_dqn


def test_q_network_shapes_and_bad_input():
    q = QNetwork(4, 2, (8, 8))
    assert q(torch.zeros(5, 4)).shape == (5, 2)
    with pytest.raises(ValueError, match=r"expects observations \[B, 4\]"):
        q(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="obs_dim >= 1"):
        QNetwork(0, 2)


def test_replay_buffer_wraps_around_and_keeps_the_true_next_observation():
    buf = ReplayBuffer(3, (2,), seed=0)
    for i in range(5):
        buf.add([i, i], i % 2, float(i), [i + 0.5, i + 0.5], terminated=i == 3, truncated=i == 4)
    assert len(buf) == 3
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0]  # the two oldest were overwritten
    b = buf.sample(64)
    assert b.obs.dtype == torch.float32 and b.actions.dtype == torch.long and b.terminated.dtype == torch.bool
    assert set(b.rewards.tolist()) <= {2.0, 3.0, 4.0}
    assert torch.equal(b.next_obs, b.obs + 0.5)
    assert torch.equal(b.terminated, b.rewards == 3.0) and torch.equal(b.truncated, b.rewards == 4.0)
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        buf.add([0, 0, 0], 0, 0.0, [0, 0], False, False)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, (2,)).sample(1)


def test_replay_buffer_samples_are_reproducible():
    def filled(seed):
        buf = ReplayBuffer(50, (1,), seed=seed)
        for i in range(50):
            buf.add([i], 0, float(i), [i], False, False)
        return buf.sample(10).rewards

    assert torch.equal(filled(1), filled(1)) and not torch.equal(filled(1), filled(2))


def test_linear_epsilon_endpoints():
    assert linear_epsilon(0, 100) == 1.0 and linear_epsilon(100, 100) == pytest.approx(0.05)
    assert linear_epsilon(10**6, 100) == pytest.approx(0.05)
    assert linear_epsilon(50, 100, 1.0, 0.0) == pytest.approx(0.5)
    assert linear_epsilon(0, 0, 1.0, 0.2) == 0.2


def test_td_target_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    r, qt, qo = torch.randn(32, generator=g), torch.randn(32, 3, generator=g), torch.randn(32, 3, generator=g)
    term, trunc = torch.rand(32, generator=g) < 0.3, torch.rand(32, generator=g) < 0.3
    expected = [r[i] + (0.0 if term[i] else 0.9 * qt[i].max()) for i in range(32)]
    assert torch.allclose(td_target(r, qt, term, trunc, 0.9), torch.stack([torch.as_tensor(e) for e in expected]))
    double = [r[i] + (0.0 if term[i] else 0.9 * qt[i, qo[i].argmax()]) for i in range(32)]
    assert torch.allclose(td_target(r, qt, term, trunc, 0.9, next_q_online=qo),
                          torch.stack([torch.as_tensor(e) for e in double]))
    # truncation changes nothing; the Huber loss of the loop is torch's smooth L1
    assert torch.equal(td_target(r, qt, term, ~trunc, 0.9), td_target(r, qt, term, trunc, 0.9))
    err = torch.linspace(-3, 3, 13)
    huber = torch.where(err.abs() < 1, 0.5 * err ** 2, err.abs() - 0.5)
    assert torch.allclose(F.smooth_l1_loss(err, torch.zeros(13), reduction="none"), huber)


def _tiny(**kw):
    base = dict(total_steps=400, learning_starts=100, train_freq=50, gradient_steps=4, hidden=(16,), eval_every=200,
                eval_episodes=2, batch_size=16)
    return DQNConfig(**{**base, **kw})


def test_train_dqn_runs_uses_the_given_functions_and_is_deterministic():
    calls = {"target": 0, "eps": 0}

    def my_target(*args, **kwargs):
        calls["target"] += 1
        return td_target(*args, **kwargs)

    def my_eps(*args):
        calls["eps"] += 1
        return linear_epsilon(*args)

    torch.manual_seed(123)
    a = train_dqn(_tiny(), seed=3, td_target_fn=my_target, epsilon_fn=my_eps)
    b = train_dqn(_tiny(), seed=3)
    assert calls["target"] == a.updates == 6 * 4 and calls["eps"] == a.steps == 400
    assert [s for s, _ in a.evals] == [200, 400] and a.best_eval == max(m for _, m in a.evals)
    assert a.evals == b.evals and all(torch.equal(x, y) for x, y in zip(a.q.state_dict().values(),
                                                                          b.q.state_dict().values()))
    assert a.seconds > 0 and a.steps_per_s > 0


def test_train_dqn_truncation_as_termination_stores_terminated():
    seen = []

    def spy(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
        seen.append((terminated.clone(), truncated.clone()))
        return td_target(reward, next_q_target, terminated, truncated, gamma, next_q_online=next_q_online)

    random_start = dict(max_episode_steps=20, learning_starts=350, gradient_steps=16, eval_every=10_000)  # random actions
    train_dqn(_tiny(**random_start, truncation_as_termination=True), seed=0, td_target_fn=spy)
    assert not any(bool(tr.any()) for _, tr in seen)  # every truncation was stored as a termination
    seen.clear()
    train_dqn(_tiny(**random_start), seed=0, td_target_fn=spy)
    assert any(bool(tr.any()) for _, tr in seen)  # with a 20-step limit some sampled transitions are truncations


def test_train_dqn_stops_early_at_the_maximum(monkeypatch):
    import amla.rl.dqn as dqn

    monkeypatch.setattr(dqn, "evaluate", lambda *a, **k: np.full(2, 500.0))
    run = train_dqn(_tiny(total_steps=1000), seed=0)
    assert run.steps == 200 and run.best_step == 200 and run.best_eval == 500.0


def test_train_dqn_bad_config():
    with pytest.raises(ValueError, match="total_steps"):
        train_dqn(_tiny(total_steps=0))


def test_cartpole_is_registered():
    assert "CartPole-v1" in gym.registry
