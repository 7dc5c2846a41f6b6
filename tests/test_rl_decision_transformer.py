"""amla.rl.decision_transformer: the token sequence, the model built from Hour 06's Block, the batched
return-conditioned rollout and the behaviour-cloning baseline (Hour 18)."""

import numpy as np
import pytest
import torch

from amla.rl.decision_transformer import DecisionTransformer, MLPPolicy, dt_rollout, interleave_tokens, train_bc
from amla.rl.episodes import evaluate, torch_policy
from amla.rl.trajectories import collect, epsilon_greedy, pd_controller
from amla.transformers.gpt import Block


def _model(**kw):
    torch.manual_seed(0)
    kw = dict(context=4, n_layer=2, n_head=2, n_embd=16, dropout=0.0) | kw
    return DecisionTransformer(4, 2, **kw)


def _inputs(B=2, T=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, T, 1, generator=g), torch.randn(B, T, 4, generator=g),
            torch.randint(2, (B, T), generator=g), torch.arange(T).expand(B, T).clone())


def test_interleave_tokens_order():
    r, s, a = (torch.full((1, 2, 1), float(k)) + torch.arange(2).view(1, 2, 1) * 10 for k in (1, 2, 3))
    assert interleave_tokens(r, s, a).flatten().tolist() == [1, 2, 3, 11, 12, 13]
    with pytest.raises(ValueError, match=r"three \[B, T, C\] tensors of one shape"):
        interleave_tokens(r, s, a[:, :1])


def test_model_is_built_from_the_gpt_block_and_shapes():
    m = _model()
    assert all(isinstance(b, Block) for b in m.blocks) and len(m.blocks) == 2
    assert m.config.block_size == 12
    logits = m(*_inputs())
    assert logits.shape == (2, 4, 2)
    logits, w = m.forward_with_attention(*_inputs())
    assert w.shape == (2, 2, 2, 12, 12)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 2, 12))
    assert (w.triu(1) == 0).all()  # causal
    torch.testing.assert_close(logits, m(*_inputs()))


def test_the_action_at_t_is_read_before_a_t_and_nothing_from_the_future_leaks():
    m = _model().eval()
    r, s, a, t = _inputs()
    base = m(r, s, a, t)
    a2 = a.clone()
    a2[:, 2] = 1 - a2[:, 2]  # a_2 may only change the logits of steps 3..
    changed = m(r, s, a2, t)
    torch.testing.assert_close(changed[:, :3], base[:, :3])
    assert not torch.allclose(changed[:, 3], base[:, 3])
    s2 = s.clone()
    s2[:, 1] += 1.0  # s_1 changes the logits of steps 1..
    changed = m(r, s2, a, t)
    torch.testing.assert_close(changed[:, :1], base[:, :1])
    assert not torch.allclose(changed[:, 1], base[:, 1])
    r2 = r.clone()
    r2[:, 0] += 1.0  # the return-to-go matters
    assert not torch.allclose(m(r2, s, a, t)[:, 0], base[:, 0])


def test_the_interleave_hook_builds_the_sequence():
    calls = []

    def mine(r, s, a):
        calls.append(r.shape)
        return interleave_tokens(r, s, a)

    m = _model(interleave=mine)
    m(*_inputs())
    assert calls == [torch.Size([2, 4, 16])]
    with pytest.raises(TypeError, match="interleave must be a function"):
        _model(interleave=3)
    bad = _model(interleave=lambda r, s, a: torch.cat((r, s, a), dim=-1))
    with pytest.raises(ValueError, match=r"interleave returned shape \(2, 4, 48\), expected \(2, 12, 16\)"):
        bad(*_inputs())


def test_model_rejects_bad_inputs():
    m = _model()
    r, s, a, t = _inputs(T=5)
    with pytest.raises(ValueError, match="5 steps exceed the context of 4"):
        m(r, s, a, t)
    r, s, a, t = _inputs()
    with pytest.raises(ValueError, match=r"states must be \[B, T, 4\]"):
        m(r, s[..., :3], a, t)
    with pytest.raises(ValueError, match=r"returns must have shape \(2, 4, 1\)"):
        m(r[..., 0], s, a, t)


def test_a_gradient_reaches_every_embedding():
    m = _model()
    m(*_inputs()).sum().backward()
    for name in ("embed_return", "embed_state", "embed_action", "embed_timestep"):
        assert getattr(m, name).weight.grad.abs().sum() > 0, name


def test_dt_rollout_batched_and_rendered():
    m = _model()
    returns = dt_rollout(m, "CartPole-v1", [10, 20, 30], max_episode_steps=12)
    assert returns.shape == (3,) and (returns >= 1).all() and (returns <= 12).all()
    again = dt_rollout(m, "CartPole-v1", [10, 20, 30], max_episode_steps=12)
    np.testing.assert_array_equal(returns, again)
    sampled = dt_rollout(m, "CartPole-v1", [10, 20], max_episode_steps=12, greedy=False)
    assert sampled.shape == (2,)
    returns, episodes = dt_rollout(m, "CartPole-v1", [7.0, 50.0], max_episode_steps=6, render=True)
    for ep, target, ret in zip(episodes, (7.0, 50.0), returns):
        T = len(ep)
        assert ep.ret == ret and len(ep.frames) == T + 1 and ep.frames[0].ndim == 3
        assert ep.frame_steps == list(range(T + 1))
        assert ep.values[0] == target
        np.testing.assert_allclose(ep.values, target - np.concatenate([[0], np.cumsum(ep.rewards)[:-1]]))
        assert ep.observations.shape == (T, 4) and ep.actions.shape == (T,)
        assert ep.terminated or ep.truncated
    _, (ep,) = dt_rollout(m, "CartPole-v1", [7.0], max_episode_steps=7, render=True, frame_every=3)
    assert ep.frame_steps == [0, 3, 6, 7] and len(ep.frames) == 4
    with pytest.raises(ValueError, match="frame_every must be a positive int"):
        dt_rollout(m, "CartPole-v1", [7.0], render=True, frame_every=0)
    with pytest.raises(ValueError, match="at least one target"):
        dt_rollout(m, "CartPole-v1", [])


def test_dt_rollout_matches_a_step_by_step_replay():
    """The batched rollout feeds each episode what a one-episode loop would: the last `context` steps."""
    m = _model().eval()
    ret, (ep,) = dt_rollout(m, "CartPole-v1", [40.0], max_episode_steps=10, render=True, seed=3)
    S = torch.as_tensor(ep.observations)
    for t in range(len(ep)):
        lo = max(0, t + 1 - m.context)
        states = (S[lo:t + 1] - m.state_mean) / m.state_std
        rtg = torch.as_tensor(ep.values[lo:t + 1], dtype=torch.float32).view(1, -1, 1) / m.return_scale
        acts = torch.as_tensor(ep.actions[lo:t + 1]).view(1, -1).clone()
        acts[0, -1] = 0  # the placeholder of the current action
        steps = torch.arange(lo, t + 1).view(1, -1)
        with torch.no_grad():
            assert int(m(rtg, states[None], acts, steps)[0, -1].argmax()) == int(ep.actions[t])


def test_behaviour_cloning_copies_the_controller():
    rng = np.random.default_rng(0)
    log = collect("CartPole-v1", epsilon_greedy(pd_controller(), 0.2, rng), 4, seed=0, max_episode_steps=150)
    bc = train_bc(log, steps=300, seed=0)
    assert isinstance(bc, MLPPolicy) and not bc.training
    obs = np.concatenate([t.observations for t in log])
    agree = (torch_policy(bc)(obs) == pd_controller()(obs)).mean()
    assert agree > 0.9
    returns = evaluate("CartPole-v1", torch_policy(bc), episodes=3, max_episode_steps=100)
    assert returns.shape == (3,)
    with pytest.raises(ValueError, match="no trajectories"):
        train_bc([])
    with pytest.raises(ValueError, match=r"expected 0..0"):
        train_bc(log, n_actions=1, steps=1)
