"""amla.rl.policy_gradient: the reward-to-go, the networks, whole episodes, the REINFORCE gradient, the loop."""

import numpy as np
import pytest
import torch

from amla.rl.episodes import evaluate, torch_policy
from amla.rl.policy_gradient import (ActorCritic, EpisodeBatch, policy_gradient, reward_to_go, sample_episodes,
                                     train_reinforce)
from amla.rl.ppo import make_vec_env

torch.set_num_threads(1)


def test_reward_to_go_is_the_discounted_sum_of_the_remaining_rewards():
    r = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    got = reward_to_go(r, 0.9)
    want = [sum(0.9 ** (k - t) * r[k].item() for k in range(t, 4)) for t in range(4)]
    assert got.dtype == torch.float64 and got.tolist() == pytest.approx(want)
    assert reward_to_go(torch.tensor([2.0]), 0.5).tolist() == [2.0]
    with pytest.raises(ValueError, match=r"rewards must be 1-D \[T\]"):
        reward_to_go(torch.ones(2, 3))


def test_actor_critic_shapes_and_greedy_policy():
    torch.manual_seed(0)
    agent = ActorCritic(4, 2, hidden=16)
    x = torch.randn(5, 4)
    assert agent(x).shape == (5, 2) and agent.value(x).shape == (5,)
    assert torch.allclose(agent.dist(x).logits.exp().sum(-1), torch.ones(5))
    actions = torch_policy(agent)(x.numpy())
    assert actions.shape == (5,) and set(actions.tolist()) <= {0, 1}
    # the small output gain of the actor: an initial policy close to uniform
    assert (agent.dist(x).probs - 0.5).abs().max() < 0.05
    with pytest.raises(ValueError, match="n_actions >= 2"):
        ActorCritic(4, 1)


def test_sample_episodes_returns_whole_episodes():
    torch.manual_seed(0)
    envs = make_vec_env("CartPole-v1", 4, seed=0)
    batch = sample_episodes(envs, ActorCritic(4, 2))
    envs.close()
    assert len(batch.rewards) == 4 and batch.steps == sum(len(r) for r in batch.rewards)
    for obs, actions, rewards in zip(batch.obs, batch.actions, batch.rewards):
        assert obs.shape == (len(rewards), 4) and actions.shape == (len(rewards),)
        assert (rewards == 1).all()
        assert np.abs(obs[0].numpy()).max() <= 0.05  # each starts from a reset state
    assert batch.returns.tolist() == [float(len(r)) for r in batch.rewards]
    assert batch.truncated == [False] * 4  # a random policy drops the pole well before 500 steps


def test_policy_gradient_is_the_gradient_of_the_reinforce_loss():
    torch.manual_seed(0)
    envs = make_vec_env("CartPole-v1", 3, seed=1)
    agent = ActorCritic(4, 2, hidden=8)
    batch = sample_episodes(envs, agent)
    envs.close()
    got = policy_gradient(agent, batch, 0.99)
    loss = sum((agent.dist(o).log_prob(a) * reward_to_go(r, 0.99)).sum()
               for o, a, r in zip(batch.obs, batch.actions, batch.rewards)) / 3
    loss.backward()
    want = torch.cat([p.grad.reshape(-1) for p in agent.actor.parameters()])
    assert torch.allclose(got, want, atol=1e-5)
    # with a critic that says 0 everywhere, the baseline changes nothing
    for p in agent.critic.parameters():
        torch.nn.init.zeros_(p)
    assert torch.allclose(policy_gradient(agent, batch, 0.99, baseline=True), got, atol=1e-6)
    assert all(p.grad is None for p in agent.critic.parameters())


def test_policy_gradient_uses_the_reward_to_go_it_is_given():
    agent = ActorCritic(4, 2, hidden=8)
    batch = EpisodeBatch([torch.zeros(2, 4)], [torch.tensor([0, 1])], [torch.ones(2)], [False])
    zero = policy_gradient(agent, batch, 0.99, rtg_fn=lambda r, g: torch.zeros_like(r))
    assert torch.equal(zero, torch.zeros_like(zero))


def test_train_reinforce_runs_and_learns_a_little():
    res = train_reinforce("CartPole-v1", seed=0, updates=4)
    assert len(res.returns) == 4 and res.steps > 0 and res.steps_per_s > 0
    assert evaluate("CartPole-v1", torch_policy(res.agent), episodes=3).shape == (3,)
