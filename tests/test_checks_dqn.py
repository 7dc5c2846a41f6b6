"""The self-checks of Hour 16: Exercise 16.1 (the TD target) and 16.2 (the linear epsilon schedule).

16.2's arguments are ints and floats, which a function cannot change in place: the class "a changed input" is
tested for 16.1 only. Neither exercise is differentiable (a TD target is computed under no_grad)."""

import numpy as np
import pytest
import torch

from amla.checks import dqn as C
from amla.checks.dqn.epsilon import _variant as _eps_variant
from amla.checks.dqn.td_target import _variant as _td_variant
from amla.rl.dqn import linear_epsilon, td_target
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 16.1 -----------------------------------------------------------------------------------------


def _t_where(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
    if next_q_online is None:
        value = next_q_target.amax(dim=-1)
    else:
        value = torch.take_along_dim(next_q_target, next_q_online.argmax(-1, keepdim=True), dim=-1)[:, 0]
    return torch.where(terminated, reward, reward + gamma * value)


def _t_float_mask(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
    if next_q_online is not None:
        value = next_q_target[torch.arange(len(reward)), next_q_online.argmax(1)]
    else:
        value, _ = next_q_target.max(1)
    return reward + gamma * (1 - terminated.to(reward.dtype)) * value  # CleanRL's (1 - dones)


def _t_loop(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
    out = reward.clone()
    for i in range(len(reward)):
        if terminated[i]:
            continue
        a = int(next_q_online[i].argmax()) if next_q_online is not None else int(next_q_target[i].argmax())
        out[i] = reward[i] + gamma * next_q_target[i, a]
    return out


def _t_logical_not(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
    chooser = next_q_target if next_q_online is None else next_q_online
    value = next_q_target.gather(1, chooser.argmax(1).unsqueeze(1)).squeeze(1)
    return reward + gamma * terminated.logical_not() * value


@pytest.mark.parametrize("fn", [td_target, _t_where, _t_float_mask, _t_loop, _t_logical_not], ids=lambda f: f.__name__)
def test_td_target_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_td_target, fn)
    assert "the rest of this hour uses your `td_target`" in capsys.readouterr().out.lower()


def test_td_target_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_td_target, raise_not_done, capsys=capsys)
    r, q = torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    term, trunc = torch.tensor([False, True]), torch.tensor([True, False])
    assert torch.equal(reference(r, q, term, trunc, 0.5), td_target(r, q, term, trunc, 0.5))
    assert torch.allclose(reference(r, q, term, trunc, 0.5), torch.tensor([2.5, 2.0]))


@pytest.mark.parametrize("kind, phrase", [
    ("done", r"truncation stops the bootstrap \(done = terminated or truncated\)"),
    ("always", "bootstraps on every transition"),
    ("inverted", "the mask is inverted"),
    ("truncated_wins", "both terminated and truncated .* termination wins"),
    ("double_ignored", "still takes the max of the target network"),
    ("double_online_value", "takes the value from the online network"),
    ("double_swapped", "roles are swapped"),
    ("discounted_reward", "the discount also multiplies the reward"),
    ("mean", "the mean over the actions"),
])
def test_td_target_names_the_known_mistakes(kind, phrase):
    fails(C.check_td_target, _td_variant(kind), match=phrase)


def test_td_target_notices_a_changed_input():
    def in_place(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
        reward += gamma * (~terminated) * next_q_target.max(1).values  # writes into the caller's rewards
        return reward

    fails(C.check_td_target, in_place, match=r"changed its argument `reward` in place")

    def masks_in_place(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
        next_q_target[terminated] = 0.0  # zeroes the caller's Q-values
        return reward + gamma * next_q_target.max(1).values

    fails(C.check_td_target, masks_in_place, match=r"changed its argument `next_q_target` in place")


def test_td_target_refuses_the_wrong_type_and_dtype():
    fails(C.check_td_target, lambda *a, **k: td_target(*a, **k).tolist(), match=r"should be a tensor")
    fails(C.check_td_target, lambda *a, **k: td_target(*a, **k).numpy(), match=r"should be a tensor")
    fails(C.check_td_target, lambda *a, **k: td_target(*a, **k).double(),
          match=r"dtype torch\.float64, expected torch\.float32")
    fails(C.check_td_target, lambda *a, **k: td_target(*a, **k)[:, None], match=r"shape \(6, 1\), expected \(6,\)")
    fails(C.check_td_target, lambda *a, **k: None, match=r"returned None")


def test_td_target_catches_a_bug_on_an_edge_input_only():
    def gamma_or_default(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
        gamma = gamma or 0.99  # "a default for a missing gamma": 0 is falsy
        return td_target(reward, next_q_target, terminated, truncated, gamma, next_q_online=next_q_online)

    fails(C.check_td_target, gamma_or_default, match=r"with gamma = 0, the TD target differs")

    def float32_buffer(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
        out = torch.empty(len(reward))  # float32 always
        out[:] = td_target(reward, next_q_target, terminated, truncated, gamma, next_q_online=next_q_online)
        return out

    fails(C.check_td_target, float32_buffer, match=r"with float64 rewards .* dtype torch\.float32, expected torch\.float64")


def test_td_target_diagnoses_by_property_when_no_known_mistake_matches():
    def zero_at_terminal(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
        return (reward + gamma * td_target(torch.zeros_like(reward), next_q_target, terminated, truncated, 1.0,
                                           next_q_online=next_q_online)) * (~terminated)

    fails(C.check_td_target, zero_at_terminal, match=r"'a terminated transition's target is its reward' does not hold")

    def truncation_halves(reward, next_q_target, terminated, truncated, gamma, *, next_q_online=None):
        target = td_target(reward, next_q_target, terminated, truncated, gamma, next_q_online=next_q_online)
        return torch.where(truncated & ~terminated, (target + reward) / 2, target)

    fails(C.check_td_target, truncation_halves, match=r"'the target does not depend on `truncated`' does not hold")


# --- Exercise 16.2 -----------------------------------------------------------------------------------------


def _e_if(step, decay_steps, start=1.0, end=0.05):
    if step >= decay_steps:
        return end
    return start - (start - end) * step / decay_steps


def _e_numpy(step, decay_steps, start=1.0, end=0.05):
    if decay_steps == 0:
        return float(end)
    return float(np.interp(step, [0, decay_steps], [start, end]))


def _e_max(step, decay_steps, start=1.0, end=0.05):
    slope = (end - start) / max(decay_steps, 1)
    return max(end, start + slope * step) if decay_steps else end


def _e_clip(step, decay_steps, start=1.0, end=0.05):
    frac = np.clip(step / decay_steps, 0.0, 1.0) if decay_steps > 0 else 1.0
    return float((1 - frac) * start + frac * end)


@pytest.mark.parametrize("fn", [linear_epsilon, _e_if, _e_numpy, _e_max, _e_clip], ids=lambda f: f.__name__)
def test_linear_epsilon_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_linear_epsilon, fn)
    assert "the rest of this hour uses your `linear_epsilon`" in capsys.readouterr().out.lower()


def test_linear_epsilon_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_linear_epsilon, raise_not_done, capsys=capsys)
    assert [reference(s, 10, 1.0, 0.1) for s in (0, 5, 10, 20)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert reference(3, 0) == 0.05


@pytest.mark.parametrize("kind, phrase", [
    ("no_clamp", "keeps falling after decay_steps"),
    ("to_zero", "decays to 0 instead of to `end`"),
    ("reversed", "runs backwards"),
    ("integer", "integer division"),
    ("off_by_one", "one step ahead"),
    ("exponential", "the decay is exponential"),
    ("zero_division", "decay_steps = 0 divides by zero"),
])
def test_linear_epsilon_names_the_known_mistakes(kind, phrase):
    fails(C.check_linear_epsilon, _eps_variant(kind), match=phrase)


def test_linear_epsilon_refuses_the_wrong_type():
    fails(C.check_linear_epsilon, lambda *a: torch.tensor(linear_epsilon(*a)), match=r"should be a Python float")
    fails(C.check_linear_epsilon, lambda *a: str(linear_epsilon(*a)), match=r"should be a Python float")
    fails(C.check_linear_epsilon, lambda *a: None, match=r"should be a Python float, got None")


def test_linear_epsilon_catches_a_bug_on_an_edge_input_only():
    def other_default(step, decay_steps, start=1.0, end=0.0):  # the default `end` is 0.05
        return linear_epsilon(step, decay_steps, start, end)

    fails(C.check_linear_epsilon, other_default, match=r"with decay_steps=100 and start, end left out")

    def reaches_end_a_step_late(step, decay_steps, start=1.0, end=0.05):
        if decay_steps == 0:
            return start  # "no schedule: keep exploring"
        return linear_epsilon(step, decay_steps, start, end)

    fails(C.check_linear_epsilon, reaches_end_a_step_late, match=r"with decay_steps=0")


def test_linear_epsilon_diagnoses_by_property_when_no_known_mistake_matches():
    def quadratic(step, decay_steps, start=1.0, end=0.05):
        if decay_steps <= 0:
            return float(end)
        t = min(step / decay_steps, 1.0)
        return start + (end - start) * t * t

    fails(C.check_linear_epsilon, quadratic, match=r"'halfway through the decay epsilon is halfway between start and "
                                                    r"end' does not hold")

    def bumps(step, decay_steps, start=1.0, end=0.05):
        value = linear_epsilon(step, decay_steps, start, end)
        return value + 0.01 if 0 < step < decay_steps and step % 2 == 1 else value

    fails(C.check_linear_epsilon, bumps, match=r"'epsilon never rises' does not hold")
