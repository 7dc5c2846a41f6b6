"""The self-checks of Hour 17: Exercise 17.1 (the reward-to-go), 17.2 (GAE with terminated and truncated episode
ends) and 17.3 (PPO's clipped objective)."""

import numpy as np
import pytest
import torch

from amla.checks import policy_gradients as C
from amla.checks.policy_gradients.gae import _gae_variant
from amla.checks.policy_gradients.ppo_loss import _ppo_variant
from amla.checks.policy_gradients.reward_to_go import _rtg_variant
from amla.rl.policy_gradient import reward_to_go
from amla.rl.ppo import gae, ppo_loss
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 17.1 -----------------------------------------------------------------------------------------


def _rtg_loop(rewards, gamma=0.99):
    out, running = torch.zeros_like(rewards), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def _rtg_matrix(rewards, gamma=0.99):  # G = D r with D[t, k] = gamma^(k - t) for k >= t
    T = len(rewards)
    k = torch.arange(T, dtype=rewards.dtype)
    power = (k[None, :] - k[:, None]).clamp(min=0)
    discounts = torch.where(k[None, :] >= k[:, None], torch.full_like(power, gamma) ** power, torch.zeros_like(power))
    return discounts @ rewards


def _rtg_list(rewards, gamma=0.99):
    values, running = [], torch.zeros((), dtype=rewards.dtype)
    for r in rewards.flip(0):
        running = r + gamma * running
        values.append(running)
    return torch.stack(values[::-1])


def _rtg_python(rewards, gamma=0.99):
    out, g = [], 0.0
    for r in reversed(rewards.tolist()):
        g = r + gamma * g
        out.insert(0, g)
    return torch.tensor(out, dtype=rewards.dtype)


def _rtg_lfilter(rewards, gamma=0.99):  # Spinning Up's discount_cumsum
    signal = pytest.importorskip("scipy.signal")
    x = rewards.numpy()
    return torch.from_numpy(signal.lfilter([1], [1, -gamma], x[::-1], axis=0)[::-1].copy()).to(rewards.dtype)


@pytest.mark.parametrize("fn", [_rtg_loop, _rtg_matrix, _rtg_list, _rtg_python, _rtg_lfilter], ids=lambda f: f.__name__)
def test_reward_to_go_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_reward_to_go, fn)
    assert "the rest of this hour uses your `reward_to_go`" in capsys.readouterr().out.lower()


def test_reward_to_go_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_reward_to_go, raise_not_done, capsys=capsys)
    r = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(reference(r, 0.5), reward_to_go(r, 0.5))


@pytest.mark.parametrize("kind, phrase", [
    ("forward", r"rewards \*before\* t"),
    ("total", "whole episode's return"),
    ("from_start", "counted from the start of the episode"),
    ("exclusive", "r_t itself is left out"),
    ("discount_first", "r_t is discounted too"),
    ("no_discount", "gamma is ignored"),
])
def test_reward_to_go_names_the_known_mistakes(kind, phrase):
    fails(C.check_reward_to_go, _rtg_variant(kind), match=phrase)


def test_reward_to_go_notices_a_changed_input():
    def in_place(rewards, gamma=0.99):
        for t in reversed(range(len(rewards) - 1)):
            rewards[t] += gamma * rewards[t + 1]  # accumulates into the caller's rewards
        return rewards.clone()

    fails(C.check_reward_to_go, in_place, match=r"changed its argument `rewards` in place")


def test_reward_to_go_refuses_the_wrong_type_and_dtype():
    fails(C.check_reward_to_go, lambda r, gamma=0.99: _rtg_loop(r, gamma).tolist(), match=r"should be a tensor")
    fails(C.check_reward_to_go, lambda r, gamma=0.99: _rtg_loop(r, gamma).numpy(), match=r"should be a tensor")
    fails(C.check_reward_to_go, lambda r, gamma=0.99: None, match=r"returned None")


def test_reward_to_go_catches_a_bug_on_an_edge_input_only():
    def float32_out(rewards, gamma=0.99):  # torch.zeros(T): float32 whatever the rewards
        out, running = torch.zeros(len(rewards)), 0.0
        for t in reversed(range(len(rewards))):
            running = rewards[t] + gamma * running
            out[t] = running
        return out

    fails(C.check_reward_to_go, float32_out,
          match=r"with float64 rewards.*dtype torch\.float32, expected torch\.float64")

    def wrong_default(rewards, gamma=0.9):
        return _rtg_loop(rewards, gamma)

    fails(C.check_reward_to_go, wrong_default, match=r"with gamma left out")


def test_reward_to_go_diagnoses_by_property_when_no_known_mistake_matches():
    def last_doubled(rewards, gamma=0.99):
        out = _rtg_loop(rewards, gamma)
        out[-1] = 2 * out[-1]
        return out

    fails(C.check_reward_to_go, last_doubled, match=r"'the last step's reward-to-go is its reward' does not hold")


# --- Exercise 17.2 -----------------------------------------------------------------------------------------


def _gae_cleanrl(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
    """CleanRL-style names, float flags, lastgaelam."""
    T = rewards.shape[0]
    advantages = torch.zeros_like(values)
    lastgaelam = 0
    for t in reversed(range(T)):
        nextnonterminal = 1.0 - terminated[t].float()
        nextnondone = 1.0 - torch.logical_or(terminated[t], truncated[t]).float()
        delta = rewards[t] + gamma * next_values[t] * nextnonterminal - values[t]
        lastgaelam = delta + gamma * lam * nextnondone * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values


def _gae_where(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
    bootstrap = torch.where(terminated, torch.zeros_like(next_values), next_values)
    deltas = rewards + gamma * bootstrap - values
    out, carry = [], torch.zeros_like(values[0])
    for t in range(len(rewards) - 1, -1, -1):
        carry = deltas[t] + gamma * lam * torch.where(terminated[t] | truncated[t], torch.zeros_like(carry), carry)
        out.append(carry)
    adv = torch.stack(out[::-1])
    return adv, adv + values


def _gae_per_env(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
    """Episode by episode in plain Python, then back to a tensor of the values' dtype."""
    T, N = rewards.shape
    adv = [[0.0] * N for _ in range(T)]
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            if terminated[t, n] or truncated[t, n]:
                running = 0.0
            boot = 0.0 if terminated[t, n] else float(next_values[t, n])
            delta = float(rewards[t, n]) + gamma * boot - float(values[t, n])
            running = delta + gamma * lam * running
            adv[t][n] = running
    a = torch.tensor(adv, dtype=values.dtype)
    return a, a + values


def _gae_explicit_sum(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
    """A_t = sum_l (gamma lam)^l delta_{t+l} up to the episode's end, written as the sum."""
    done = terminated | truncated
    deltas = rewards + gamma * (~terminated) * next_values - values
    adv = torch.zeros_like(values)
    T = rewards.shape[0]
    for t in range(T):
        for n in range(rewards.shape[1]):
            total, w = torch.zeros((), dtype=values.dtype), 1.0
            for k in range(t, T):
                total = total + w * deltas[k, n]
                if done[k, n]:
                    break
                w *= gamma * lam
            adv[t, n] = total
    return adv, adv + values


@pytest.mark.parametrize("fn", [_gae_cleanrl, _gae_where, _gae_per_env, _gae_explicit_sum], ids=lambda f: f.__name__)
def test_gae_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_gae, fn)
    assert "the rest of this hour uses your `gae`" in capsys.readouterr().out.lower()


def test_gae_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_gae, raise_not_done, capsys=capsys)
    args = (torch.ones(3, 2), torch.zeros(3, 2), torch.ones(3, 2), torch.zeros(3, 2, dtype=torch.bool),
            torch.tensor([[False, False], [True, False], [False, False]]))
    for got, want in zip(reference(*args, 0.9, 0.8), gae(*args, 0.9, 0.8)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("kind, phrase", [
    ("trunc_as_term", "truncated episode is treated as terminated"),
    ("bootstrap_always", "terminated step still bootstraps"),
    ("cut_at_term_only", "runs on across a truncation"),
    ("never_cut", "runs on across episode ends"),
    ("values_shifted", r"read from values\[t \+ 1\]"),
    ("cut_late", "read one step late"),
    ("no_lam", "lam is missing"),
    ("no_gamma", "gamma is missing"),
    ("forward", "loop runs forwards"),
    ("returns_are_adv", "returns equal the advantages"),
])
def test_gae_names_the_known_mistakes(kind, phrase):
    fails(C.check_gae, _gae_variant(kind), match=phrase)


def test_gae_notices_a_changed_input():
    def values_in_place(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
        adv, ret = gae(rewards, values, next_values, terminated, truncated, gamma, lam)
        values += adv  # "returns = advantages + values", written into the caller's values
        return adv, values.clone()

    fails(C.check_gae, values_in_place, match=r"changed its argument `values` in place")

    def flags_in_place(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
        truncated &= ~terminated  # "cleans" the flags of the caller
        return gae(rewards, values, next_values, terminated, truncated, gamma, lam)

    fails(C.check_gae, flags_in_place, match=r"changed its argument `truncated` in place")


def test_gae_refuses_the_wrong_type_and_dtype():
    fails(C.check_gae, lambda *a: gae(*a)[0], match=r"tuple|pair|2 items|should be")
    fails(C.check_gae, lambda *a: tuple(t.numpy() for t in gae(*a)), match=r"should be a tensor")
    fails(C.check_gae, lambda *a: tuple(t.double() for t in gae(*a)),
          match=r"dtype torch\.float64, expected torch\.float32")


def test_gae_catches_a_bug_on_an_edge_input_only():
    def truncated_wins(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
        # "if truncated: bootstrap, elif terminated: 0" - wrong only where both flags are set
        return gae(rewards, values, next_values, terminated & ~truncated, truncated, gamma, lam)

    fails(C.check_gae, truncated_wins, match=r"with both flags set on one step")

    def float32_out(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
        adv, ret = gae(rewards.float(), values.float(), next_values.float(), terminated, truncated, gamma, lam)
        return adv, ret

    fails(C.check_gae, float32_out, match=r"with float64 rewards and values.*dtype torch\.float32")

    def wrong_defaults(rewards, values, next_values, terminated, truncated, gamma=0.98, lam=0.8):
        return gae(rewards, values, next_values, terminated, truncated, gamma, lam)

    fails(C.check_gae, wrong_defaults, match=r"with gamma and lam left out")


def test_gae_diagnoses_by_property_when_no_known_mistake_matches():
    def returns_off(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
        adv, ret = gae(rewards, values, next_values, terminated, truncated, gamma, lam)
        return adv, ret + 0.1 * values

    fails(C.check_gae, returns_off, match=r"'returns = advantages \+ values' does not hold")

    def leaks(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95):
        adv, _ = gae(rewards, values, next_values, terminated, truncated, gamma, lam)
        nxt = torch.cat([rewards[1:], torch.zeros_like(rewards[:1])])  # a peek at the next step's reward
        adv = adv + 0.01 * nxt
        return adv, adv + values

    fails(C.check_gae, leaks, match=r"does not hold")


# --- Exercise 17.3 -----------------------------------------------------------------------------------------


def _ppo_max_of_negatives(new_logp, old_logp, advantages, clip=0.2):  # CleanRL: max(-rA, -clip(r)A)
    ratio = (new_logp - old_logp).exp()
    return torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()


def _ppo_where(new_logp, old_logp, advantages, clip=0.2):
    ratio = torch.exp(new_logp - old_logp.detach())
    clipped = torch.where(advantages >= 0, torch.minimum(ratio, torch.tensor(1 + clip, dtype=ratio.dtype)),
                          torch.maximum(ratio, torch.tensor(1 - clip, dtype=ratio.dtype)))
    return -(clipped * advantages).mean()


def _ppo_clip_fn(new_logp, old_logp, advantages, clip=0.2):
    ratio = torch.exp(new_logp - old_logp)
    surrogate = torch.stack([ratio * advantages, torch.clip(ratio, 1 - clip, 1 + clip) * advantages]).min(0).values
    return surrogate.mean().neg()


def _ppo_sum_over_len(new_logp, old_logp, advantages, clip=0.2):
    r = (new_logp - old_logp).exp()
    return -torch.min(r * advantages, r.clamp(1 - clip, 1 + clip) * advantages).sum() / advantages.numel()


@pytest.mark.parametrize("fn", [_ppo_max_of_negatives, _ppo_where, _ppo_clip_fn, _ppo_sum_over_len],
                         ids=lambda f: f.__name__)
def test_ppo_loss_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_ppo_loss, fn)
    assert "the rest of this hour uses your `ppo_loss`" in capsys.readouterr().out.lower()


def test_ppo_loss_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_ppo_loss, raise_not_done, capsys=capsys)
    new, old, adv = torch.tensor([-0.1, -2.0]), torch.tensor([-0.5, -1.0]), torch.tensor([1.0, -1.0])
    assert torch.equal(reference(new, old, adv, 0.2), ppo_loss(new, old, adv, 0.2))


@pytest.mark.parametrize("kind, phrase", [
    ("no_min", "the min is missing"),
    ("no_clip", "never clipped"),
    ("max", "max instead of min"),
    ("clip_product", "the product r A is clipped"),
    ("clip_adv", "advantages are clipped instead of the ratio"),
    ("sign", "the sign is wrong"),
    ("no_exp", "difference of the log-probabilities"),
    ("divide", "divides the log-probabilities"),
    ("inverted", "upside down"),
    ("sum", "a sum instead of a mean"),
])
def test_ppo_loss_names_the_known_mistakes(kind, phrase):
    fails(C.check_ppo_loss, _ppo_variant(kind), match=phrase)


def test_ppo_loss_notices_a_changed_input():
    def normalises_in_place(new_logp, old_logp, advantages, clip=0.2):
        loss = ppo_loss(new_logp, old_logp, advantages, clip)
        advantages -= advantages.mean()  # the caller's advantages, normalised in place
        return loss

    fails(C.check_ppo_loss, normalises_in_place, match=r"changed its argument `advantages` in place")


def test_ppo_loss_refuses_the_wrong_type_and_dtype():
    fails(C.check_ppo_loss, lambda *a: ppo_loss(*a).item(), match=r"should be a tensor|float")
    fails(C.check_ppo_loss, lambda *a: ppo_loss(*a).reshape(1), match=r"shape")
    fails(C.check_ppo_loss, lambda *a: ppo_loss(*a).double(), match=r"dtype torch\.float64, expected torch\.float32")


def test_ppo_loss_catches_a_bug_on_an_edge_input_only():
    def clip_zero_is_off(new_logp, old_logp, advantages, clip=0.2):
        if not clip:  # "no clip given": but clip = 0 means every ratio is clipped to 1
            return -(torch.exp(new_logp - old_logp) * advantages).mean()
        return ppo_loss(new_logp, old_logp, advantages, clip)

    fails(C.check_ppo_loss, clip_zero_is_off, match=r"with clip = 0")

    def wrong_default(new_logp, old_logp, advantages, clip=0.1):
        return ppo_loss(new_logp, old_logp, advantages, clip)

    fails(C.check_ppo_loss, wrong_default, match=r"with clip left out")


def test_ppo_loss_catches_a_wrong_gradient():
    fails(C.check_ppo_loss, lambda *a: ppo_loss(*a).detach(), match=r"values are right but the loss is detached")

    def clipped_term_detached(new_logp, old_logp, advantages, clip=0.2):
        ratio = torch.exp(new_logp - old_logp)
        clipped = torch.clamp(ratio.detach(), 1 - clip, 1 + clip) * advantages  # no gradient through this term
        return -torch.min(ratio * advantages, clipped).mean()

    fails(C.check_ppo_loss, clipped_term_detached,
          match=r"values are right but the gradient with respect to `new_logp`")


def test_ppo_loss_diagnoses_by_property_when_no_known_mistake_matches():
    def offset(new_logp, old_logp, advantages, clip=0.2):
        return ppo_loss(new_logp, old_logp, advantages, clip) + 0.1

    fails(C.check_ppo_loss, offset, match=r"'with ratio 1 the loss is -mean\(A\)' does not hold")


def test_the_checks_leave_numpy_alone():
    state = np.random.get_state()[1].copy()
    C.check_gae(gae)
    assert (np.random.get_state()[1] == state).all()
