"""The self-checks of Hour 18: Exercise 18.1 (returns-to-go) and 18.2 (interleaving the tokens)."""

import pytest
import torch

from amla.checks import decision_transformer as C
from amla.checks.decision_transformer.interleave import _interleave_variant
from amla.checks.decision_transformer.returns_to_go import _returns_variant
from amla.rl.decision_transformer import interleave_tokens
from amla.rl.trajectories import returns_to_go
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 18.1 -----------------------------------------------------------------------------------------


def _rtg_loop(rewards, gamma=1.0):
    out = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def _rtg_matrix(rewards, gamma=1.0):
    T = len(rewards)
    t = torch.arange(T)
    power = (t[None] - t[:, None]).clamp(min=0).to(rewards.dtype)
    weights = torch.where(t[None] >= t[:, None], torch.as_tensor(gamma, dtype=rewards.dtype) ** power,
                          torch.zeros((), dtype=rewards.dtype))
    return weights @ rewards


def _rtg_list(rewards, gamma=1.0):
    values, running = [], 0.0
    for r in rewards.tolist()[::-1]:
        running = r + gamma * running
        values.append(running)
    return torch.tensor(values[::-1], dtype=rewards.dtype)


def _rtg_cumsum_trick(rewards, gamma=1.0):  # discount to the start, reverse cumsum, undo the discount
    if gamma == 0:
        return rewards.clone()
    k = torch.arange(len(rewards), dtype=torch.float64)
    scale = gamma ** k
    return ((rewards.double() * scale).flip(0).cumsum(0).flip(0) / scale).to(rewards.dtype)


@pytest.mark.parametrize("fn", [_rtg_loop, _rtg_matrix, _rtg_list, _rtg_cumsum_trick], ids=lambda f: f.__name__)
def test_returns_to_go_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_returns_to_go, fn)
    assert "the rest of this hour uses your `returns_to_go`" in capsys.readouterr().out.lower()


def test_returns_to_go_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_returns_to_go, raise_not_done, capsys=capsys)
    r = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(reference(r, 0.5), returns_to_go(r, 0.5))
    assert reference(torch.ones(4)).tolist() == [4.0, 3.0, 2.0, 1.0]


@pytest.mark.parametrize("kind, phrase", [
    ("forward", r"sums the rewards \*so far\*"),
    ("flip_not_back", "reversed order"),
    ("exclusive", "leaves out r_t"),
    ("total", "return of the whole episode"),
    ("from_start", "counts from the start of the episode"),
    ("one_more", r"r_t itself is discounted"),
    ("no_gamma", "gamma is ignored"),
])
def test_returns_to_go_names_the_known_mistakes(kind, phrase):
    fails(C.check_returns_to_go, _returns_variant(kind), match=phrase)


def test_returns_to_go_notices_a_changed_input():
    def in_place(rewards, gamma=1.0):
        for t in reversed(range(len(rewards) - 1)):
            rewards[t] += gamma * rewards[t + 1]  # accumulates into the caller's rewards
        return rewards.clone()

    fails(C.check_returns_to_go, in_place, match=r"changed its argument `rewards` in place")


def test_returns_to_go_refuses_the_wrong_type_and_dtype():
    fails(C.check_returns_to_go, lambda r, gamma=1.0: _rtg_loop(r, gamma).tolist(), match=r"should be a tensor")
    fails(C.check_returns_to_go, lambda r, gamma=1.0: _rtg_loop(r.double(), gamma),
          match=r"dtype torch\.float64, expected torch\.float32")
    fails(C.check_returns_to_go, lambda r, gamma=1.0: None, match=r"returned None")


def test_returns_to_go_catches_a_bug_on_an_edge_input_only():
    def float32_out(rewards, gamma=1.0):  # torch.zeros(T) without dtype: float32 always
        out = torch.zeros(len(rewards))
        running = 0.0
        for t in reversed(range(len(rewards))):
            running = float(rewards[t]) + gamma * running
            out[t] = running
        return out

    fails(C.check_returns_to_go, float32_out,
          match=r"with float64 rewards.*dtype torch\.float32, expected torch\.float64")

    def no_default(rewards, gamma):  # the default gamma=1.0 left out of the signature
        return _rtg_loop(rewards, gamma)

    fails(C.check_returns_to_go, no_default, match=r"gamma left out.*TypeError")

    def skips_length_one(rewards, gamma=1.0):  # starts the loop at T - 2 and sets the last entry by hand, badly
        out = rewards.clone()
        if len(rewards) == 1:
            return out * gamma
        return _rtg_loop(rewards, gamma)

    fails(C.check_returns_to_go, skips_length_one, match=r"with a single step")


def test_returns_to_go_diagnoses_by_property_when_no_known_mistake_matches():
    def off_by_one_gamma(rewards, gamma=1.0):  # right recursion, a wrong last entry
        out = _rtg_loop(rewards, gamma)
        return out + gamma ** torch.arange(len(rewards) - 1, -1, -1, dtype=rewards.dtype) * 0.5

    fails(C.check_returns_to_go, off_by_one_gamma, match=r"'the last return-to-go is the last reward' does not hold")

    def jitter(rewards, gamma=1.0):  # the last entry right, the rest 1 % off
        out = _rtg_loop(rewards, gamma)
        out[:-1] = out[:-1] * 1.01 + 0.01
        return out

    fails(C.check_returns_to_go, jitter, match=r"'R_t = r_t \+ gamma R_\(t\+1\)' does not hold")


# --- Exercise 18.2 -----------------------------------------------------------------------------------------


def _il_stack(r, s, a):
    B, T, C = r.shape
    return torch.stack([r, s, a], dim=2).view(B, 3 * T, C)


def _il_empty(r, s, a):
    B, T, C = r.shape
    out = torch.empty(B, 3 * T, C, dtype=r.dtype)
    out[:, 0::3], out[:, 1::3], out[:, 2::3] = r, s, a
    return out


def _il_loop(r, s, a):
    return torch.cat([x for t in range(r.size(1)) for x in (r[:, t:t + 1], s[:, t:t + 1], a[:, t:t + 1])], dim=1)


def _il_transpose(r, s, a):
    B, T, C = r.shape
    return torch.stack((r, s, a), dim=1).transpose(1, 2).reshape(B, 3 * T, C)


def _il_einops_like(r, s, a):
    return torch.cat((r.unsqueeze(2), s.unsqueeze(2), a.unsqueeze(2)), dim=2).flatten(1, 2)


@pytest.mark.parametrize("fn", [_il_stack, _il_empty, _il_loop, _il_transpose, _il_einops_like],
                         ids=lambda f: f.__name__)
def test_interleave_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_interleave_tokens, fn)
    assert "the rest of this hour uses your `interleave_tokens`" in capsys.readouterr().out.lower()


def test_interleave_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_interleave_tokens, raise_not_done, capsys=capsys)
    x = [torch.randn(2, 3, 4) for _ in range(3)]
    assert torch.equal(reference(*x), interleave_tokens(*x))


@pytest.mark.parametrize("kind, phrase", [
    ("grouped", "grouped by kind"),
    ("s_r_a", "order inside a step is s_t, R_t, a_t"),
    ("r_a_s", "order inside a step is R_t, a_t, s_t"),
    ("a_s_r", r"order inside a step is reversed"),
    ("features", "stacked on the last axis"),
    ("batch", "stacked on the batch axis"),
])
def test_interleave_names_the_known_mistakes(kind, phrase):
    fails(C.check_interleave_tokens, _interleave_variant(kind), match=phrase)


def test_interleave_notices_a_changed_input():
    def in_place(r, s, a):
        out = _il_stack(r, s, a)
        r.zero_()  # "frees" the caller's returns embedding
        return out

    fails(C.check_interleave_tokens, in_place, match=r"changed its argument `returns` in place")


def test_interleave_refuses_the_wrong_type_and_dtype():
    fails(C.check_interleave_tokens, lambda r, s, a: _il_stack(r, s, a).tolist(), match=r"should be a tensor")
    fails(C.check_interleave_tokens, lambda r, s, a: _il_stack(r, s, a).double(),
          match=r"dtype torch\.float64, expected torch\.float32")
    fails(C.check_interleave_tokens, lambda r, s, a: torch.stack((r, s, a), dim=2),
          match=r"shape \(2, 3, 3, 4\), expected \(2, 9, 4\)")


def test_interleave_catches_a_bug_on_an_edge_input_only():
    def float32_buffer(r, s, a):  # torch.empty without dtype: float32 always
        B, T, C = r.shape
        out = torch.empty(B, 3 * T, C)
        out[:, 0::3], out[:, 1::3], out[:, 2::3] = r, s, a
        return out

    fails(C.check_interleave_tokens, float32_buffer, match=r"with float64 embeddings.*dtype torch\.float32")

    def squeezed(r, s, a):  # squeeze() drops the batch axis of a batch of one
        return _il_stack(r, s, a).squeeze()

    fails(C.check_interleave_tokens, squeezed, match=r"with a batch of one")


def test_interleave_catches_a_wrong_gradient():
    fails(C.check_interleave_tokens, lambda r, s, a: _il_stack(r, s, a).detach(),
          match=r"values are right but the token sequence is detached")
    fails(C.check_interleave_tokens, lambda r, s, a: _il_stack(r, s.detach(), a),
          match=r"values are right but no gradient reaches `states`")


def test_interleave_diagnoses_by_property_when_no_known_mistake_matches():
    def time_reversed(r, s, a):  # the steps in reverse order
        return _il_stack(r.flip(1), s.flip(1), a.flip(1))

    fails(C.check_interleave_tokens, time_reversed, match=r"'token 3t is R_t, token 3t \+ 1 is s_t")
