"""amla.rl.ppo: GAE, the clipped loss, the SAME_STEP vector environment, the rollout, one update, the loop."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from amla.rl.policy_gradient import ActorCritic
from amla.rl.ppo import PPOConfig, collect_rollout, gae, make_vec_env, ppo_loss, ppo_update, train_ppo

torch.set_num_threads(1)


def _flags(T, N, pairs):
    f = torch.zeros(T, N, dtype=torch.bool)
    for t, n in pairs:
        f[t, n] = True
    return f


def test_gae_equals_the_explicit_sum_of_td_errors_within_each_episode():
    g = torch.Generator().manual_seed(0)
    T, N, gamma, lam = 7, 3, 0.9, 0.7
    r, v, nv = torch.rand(T, N, generator=g), torch.randn(T, N, generator=g), torch.randn(T, N, generator=g)
    term, trunc = _flags(T, N, [(2, 0), (6, 1)]), _flags(T, N, [(4, 0), (0, 2), (3, 2)])
    adv, ret = gae(r, v, nv, term, trunc, gamma, lam)
    done = term | trunc
    for n in range(N):
        for t in range(T):
            total, w = 0.0, 1.0
            for k in range(t, T):
                total += w * float(r[k, n] + gamma * (0.0 if term[k, n] else nv[k, n]) - v[k, n])
                if done[k, n]:
                    break
                w *= gamma * lam
            assert adv[t, n].item() == pytest.approx(total, abs=1e-5)
    assert torch.allclose(ret, adv + v)


def test_gae_lambda_one_is_the_bootstrapped_return_minus_v_and_lambda_zero_the_td_error():
    g = torch.Generator().manual_seed(1)
    T, gamma = 5, 0.9
    r, v = torch.rand(T, 1, generator=g), torch.randn(T, 1, generator=g)
    nv = torch.cat([v[1:], torch.randn(1, 1, generator=g)])  # one episode: V(s_{t+1}) is the next stored value
    none = torch.zeros(T, 1, dtype=torch.bool)
    adv1, ret1 = gae(r, v, nv, none, none, gamma, 1.0)
    mc = sum(gamma ** k * r[k, 0] for k in range(T)) + gamma ** T * nv[-1, 0]
    assert adv1[0, 0].item() == pytest.approx(float(mc - v[0, 0]), abs=1e-5)
    adv0, _ = gae(r, v, nv, none, none, gamma, 0.0)
    assert torch.allclose(adv0, r + gamma * nv - v)


def test_gae_bootstraps_a_truncation_but_not_a_termination():
    r, v, nv = torch.ones(1, 1), torch.zeros(1, 1), torch.full((1, 1), 10.0)
    yes, no = torch.ones(1, 1, dtype=torch.bool), torch.zeros(1, 1, dtype=torch.bool)
    assert gae(r, v, nv, no, yes, 0.5, 0.9)[0].item() == pytest.approx(6.0)
    assert gae(r, v, nv, yes, no, 0.5, 0.9)[0].item() == pytest.approx(1.0)
    assert gae(r, v, nv, yes, yes, 0.5, 0.9)[0].item() == pytest.approx(1.0)


def test_gae_keeps_float64_and_names_a_wrong_shape():
    x = torch.zeros(3, 2, dtype=torch.float64)
    f = torch.zeros(3, 2, dtype=torch.bool)
    assert gae(x, x, x, f, f)[0].dtype == torch.float64
    with pytest.raises(ValueError, match=r"next_values must have the shape of rewards \(3, 2\)"):
        gae(x, x, x[:2], f, f)


def test_ppo_loss_matches_the_formula_and_its_gradient_is_zero_where_clipped():
    new = torch.tensor([0.5, -0.5, 0.05, 0.5, -0.5], requires_grad=True)
    old = torch.zeros(5)
    adv = torch.tensor([1.0, -1.0, 2.0, -1.0, 1.0])
    loss = ppo_loss(new, old, adv, 0.2)
    r = new.detach().exp()
    want = -torch.min(r * adv, r.clamp(0.8, 1.2) * adv).mean()
    assert loss.item() == pytest.approx(want.item())
    loss.backward()
    assert new.grad[0] == 0 and new.grad[1] == 0  # past the clip on the side A favours: flat
    assert new.grad[2] != 0 and new.grad[3] != 0 and new.grad[4] != 0  # inside, or moved the wrong way


def test_make_vec_env_resets_in_the_same_step_and_keeps_the_final_observation():
    envs = make_vec_env("CartPole-v1", 2, seed=0)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    single = gym.make("CartPole-v1")
    obs, _ = envs.reset(seed=5)
    s_obs, _ = single.reset(seed=5)
    assert np.allclose(obs[0], s_obs)
    for _ in range(100):
        action = np.array([0, 1])
        obs, reward, term, trunc, info = envs.step(action)
        s_next, s_r, s_term, s_trunc, _ = single.step(0)
        if term[0] or trunc[0]:
            assert s_term == term[0] and s_trunc == trunc[0]
            assert np.allclose(info["final_obs"][0], s_next)  # the real last state, as the single env has it
            assert not np.allclose(obs[0], s_next)  # the next episode's first observation
            assert np.abs(obs[0]).max() <= 0.05  # CartPole resets uniformly in [-0.05, 0.05]
            break
        assert np.allclose(obs[0], s_next) and reward[0] == s_r
    else:
        pytest.fail("always pushing left should end a CartPole episode within 100 steps")
    envs.close()
    single.close()


def test_make_vec_env_names_bad_arguments():
    with pytest.raises(ValueError, match="num_envs must be an int >= 1"):
        make_vec_env("CartPole-v1", 0)
    with pytest.raises(Exception, match="CartPole"):
        make_vec_env("CartPol-v1", 2)


def test_collect_rollout_stores_real_transitions():
    torch.manual_seed(0)
    envs = make_vec_env("CartPole-v1", 3, seed=1)
    agent = ActorCritic(4, 2)
    obs, _ = envs.reset(seed=1)
    ep = np.zeros(3)
    ro, obs = collect_rollout(envs, agent, obs, 40, ep)
    assert ro.obs.shape == (40, 3, 4) and ro.rewards.shape == (40, 3) and ro.terminated.dtype == torch.bool
    with torch.no_grad():
        assert torch.allclose(ro.values, agent.value(ro.obs))
        assert torch.allclose(ro.logp, agent.dist(ro.obs).log_prob(ro.actions))
        cont = ~(ro.terminated | ro.truncated)[:-1]
        # inside an episode, the next state's value is the value of the next stored observation
        assert torch.allclose(ro.next_values[:-1][cont], ro.values[1:][cont])
    assert ro.terminated.any(), "a random CartPole policy ends episodes within 40 steps"
    assert ro.episode_returns and all(r >= 1 for r in ro.episode_returns)
    assert (ro.rewards == 1).all()
    envs.close()


def test_ppo_update_moves_the_policy_and_uses_the_loss_it_is_given():
    torch.manual_seed(0)
    envs = make_vec_env("CartPole-v1", 2, seed=2)
    agent = ActorCritic(4, 2)
    obs, _ = envs.reset(seed=2)
    ro, _ = collect_rollout(envs, agent, obs, 16, np.zeros(2))
    envs.close()
    adv, ret = gae(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, 0.98, 0.8)
    cfg = PPOConfig(n_epochs=2, batch_size=8)
    calls = []

    def counting_loss(new_logp, old_logp, advantages, clip):
        calls.append(len(new_logp))
        return ppo_loss(new_logp, old_logp, advantages, clip)

    before = [p.detach().clone() for p in agent.parameters()]
    opt = torch.optim.Adam(agent.parameters(), lr=1e-3)
    stats = ppo_update(agent, opt, ro, adv, ret, cfg, 0.2, counting_loss, torch.Generator().manual_seed(0))
    assert calls == [8] * 8  # 2 epochs of 32 transitions in minibatches of 8
    assert set(stats) == {"policy_loss", "value_loss", "entropy", "clip_frac"}
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.parameters()))


def test_train_ppo_runs_a_short_loop_and_keeps_the_best_snapshot():
    cfg = PPOConfig(total_steps=512, n_epochs=2)
    res = train_ppo("CartPole-v1", cfg=cfg, seed=0, eval_every=1, eval_episodes=2)
    assert res.steps == 512 and len(res.evals) == 2 and res.seconds > 0
    assert res.best_step in {s for s, _ in res.evals}
    assert max(score for _, score in res.evals) == dict(res.evals)[res.best_step]
