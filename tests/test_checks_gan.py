"""The self-checks of Hour 10: Exercise 10.1 (discriminator loss), 10.2 (non-saturating generator loss) and 10.3
(the mode-coverage metric)."""

import pytest
import torch
import torch.nn.functional as F

from amla.checks import gan as C
from amla.checks.gan.d_loss import _d_loss_variant
from amla.checks.gan.g_loss import _g_loss_variant
from amla.checks.gan.mode_coverage import _coverage_variant
from amla.gan.losses import d_loss, g_loss_nonsaturating
from amla.gan.toy import mode_coverage
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 10.1 -----------------------------------------------------------------------------------------


def _d_softplus(real_logits, fake_logits):
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def _d_bce(real_logits, fake_logits):
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def _d_logsigmoid(real_logits, fake_logits):
    return -(F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean())


def _d_stable_by_hand(real_logits, fake_logits):  # log(1 + e^-|x|) + max(-x, 0), the textbook stable form
    def bce(x, y):
        return (x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs()))).mean()

    return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


@pytest.mark.parametrize("fn", [_d_softplus, _d_bce, _d_logsigmoid, _d_stable_by_hand], ids=lambda f: f.__name__)
def test_d_loss_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_d_loss, fn)
    assert "the rest of this hour uses your `d_loss`" in capsys.readouterr().out.lower()


def test_d_loss_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_d_loss, raise_not_done, capsys=capsys)
    real, fake = torch.randn(5), torch.randn(3)
    assert torch.equal(reference(real, fake), d_loss(real, fake))


@pytest.mark.parametrize("kind, phrase", [
    ("swapped", "labels are swapped"),
    ("generator_labels", "fake points are labelled real"),
    ("real_only", "only the real half"),
    ("fake_only", "only the fake half"),
    ("half", "two halves are averaged"),
    ("concat", "concatenated and averaged together"),
    ("sum", "summed over the batch"),
    ("naive", r"log\(sigmoid\(\.\)\) is computed in two steps"),
    ("eps", "small epsilon inside the log"),
    ("probabilities", "expects probabilities"),
    ("value", "sign is flipped"),
])
def test_d_loss_names_the_known_mistakes(kind, phrase):
    fails(C.check_d_loss, _d_loss_variant(kind), match=phrase)


def test_d_loss_notices_a_changed_input():
    def in_place(real_logits, fake_logits):
        real_logits.neg_()
        return F.softplus(real_logits).mean() + F.softplus(fake_logits).mean()

    fails(C.check_d_loss, in_place, match=r"changed its argument `real_logits` in place")


def test_d_loss_refuses_the_wrong_type_and_dtype():
    fails(C.check_d_loss, lambda r, f: _d_softplus(r, f).item(), match=r"should be a tensor")
    fails(C.check_d_loss, lambda r, f: _d_softplus(r.double(), f.double()), match=r"dtype torch\.float64")
    fails(C.check_d_loss, lambda r, f: None, match=r"returned None")


def test_d_loss_catches_a_bug_on_an_edge_input_only():
    def float32_only(real_logits, fake_logits):
        return _d_softplus(real_logits.float(), fake_logits.float())

    fails(C.check_d_loss, float32_only, match=r"with float64 logits.*dtype torch\.float32, expected torch\.float64")

    def flattens_wrongly(real_logits, fake_logits):  # squeeze() also drops the batch axis of a batch of one,
        r, f = real_logits.squeeze(), fake_logits.squeeze()  # and the "0-d means a single logit" branch is off
        return F.softplus(-r).mean(0) + F.softplus(f).mean(0) if r.dim() else F.softplus(-r) + F.softplus(f) + 1e-3

    fails(C.check_d_loss, flattens_wrongly, match=r"with a batch of one")


def test_d_loss_catches_a_wrong_gradient():
    fails(C.check_d_loss, lambda r, f: _d_softplus(r, f).detach(), match=r"values are right but the loss is detached")

    def frozen_fake(real_logits, fake_logits):  # the fake half does not train D
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean().detach()

    fails(C.check_d_loss, frozen_fake, match=r"values are right but .*`fake_logits`")


def test_d_loss_diagnoses_by_property_when_no_known_mistake_matches():
    def squared(real_logits, fake_logits):  # a least-squares loss on sigmoid outputs: positive, but not the BCE
        return ((torch.sigmoid(real_logits) - 1) ** 2).mean() + (torch.sigmoid(fake_logits) ** 2).mean()

    fails(C.check_d_loss, squared, match=r"'with all logits 0 the loss is 2 log 2' does not hold")


# --- Exercise 10.2 -----------------------------------------------------------------------------------------


def _g_softplus(fake_logits):
    return F.softplus(-fake_logits).mean()


def _g_bce(fake_logits):
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def _g_logsigmoid(fake_logits):
    return -F.logsigmoid(fake_logits).mean()


def _g_logaddexp(fake_logits):
    return torch.logaddexp(torch.zeros_like(fake_logits), -fake_logits).mean()


@pytest.mark.parametrize("fn", [_g_softplus, _g_bce, _g_logsigmoid, _g_logaddexp], ids=lambda f: f.__name__)
def test_g_loss_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_g_loss, fn)
    assert "the rest of this hour uses your `g_loss`" in capsys.readouterr().out.lower()


def test_g_loss_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_g_loss, raise_not_done, capsys=capsys)
    fake = torch.randn(6)
    assert torch.equal(reference(fake), g_loss_nonsaturating(fake))


@pytest.mark.parametrize("kind, phrase", [
    ("saturating", "saturating \\(minimax\\) loss"),
    ("fake_label", "fakes are given target 0"),
    ("sign", "sign is flipped"),
    ("sum", "summed over the batch"),
    ("naive", r"log\(sigmoid\(\.\)\) is computed in two steps"),
    ("eps", "small epsilon inside the log"),
    ("probabilities", "expects probabilities"),
    ("raw", "raw logits are averaged"),
])
def test_g_loss_names_the_known_mistakes(kind, phrase):
    fails(C.check_g_loss, _g_loss_variant(kind), match=phrase)


def test_g_loss_notices_a_changed_input():
    def in_place(fake_logits):
        fake_logits.mul_(-1)
        return F.softplus(fake_logits).mean()

    fails(C.check_g_loss, in_place, match=r"changed its argument `fake_logits` in place")


def test_g_loss_refuses_the_wrong_type_and_dtype():
    fails(C.check_g_loss, lambda f: float(_g_softplus(f)), match=r"should be a tensor")
    fails(C.check_g_loss, lambda f: _g_softplus(f).reshape(1), match=r"shape")
    fails(C.check_g_loss, lambda f: _g_softplus(f.double()), match=r"dtype torch\.float64")


def test_g_loss_catches_a_bug_on_an_edge_input_only():
    def clamped(fake_logits):  # clamping the logits "for safety" changes the loss only where |logit| > 50
        return F.softplus(-fake_logits.clamp(-50, 50)).mean()

    fails(C.check_g_loss, clamped, match=r"with logits as large as 1e4")


def test_g_loss_catches_a_wrong_gradient():
    fails(C.check_g_loss, lambda f: _g_softplus(f).detach(), match=r"values are right but the loss is detached")

    def straight_through(fake_logits):  # the value of the NS loss with the gradient of the saturating one
        ns, sat = F.softplus(-fake_logits).mean(), -F.softplus(fake_logits).mean()
        return sat + (ns - sat).detach()

    fails(C.check_g_loss, straight_through, match=r"values are right but the gradient .*`fake_logits`")


def test_g_loss_diagnoses_by_property_when_no_known_mistake_matches():
    def off_by_log2(fake_logits):  # -log(2 D): zero at D = 1/2, negative beyond
        return (F.softplus(-fake_logits) - torch.log(torch.tensor(2.0))).mean()

    fails(C.check_g_loss, off_by_log2, match=r"'the loss is >= 0' does not hold")


# --- Exercise 10.3 -----------------------------------------------------------------------------------------


def _cov_loops(samples, modes, std):
    captured, good = set(), 0
    for p in samples.tolist():
        d = [((p[0] - m[0]) ** 2 + (p[1] - m[1]) ** 2) ** 0.5 for m in modes.tolist()]
        k = min(range(len(d)), key=d.__getitem__)
        if d[k] <= 3 * std:
            good += 1
            captured.add(k)
    return len(captured), good / len(samples)


def _cov_broadcast(samples, modes, std):
    sq = ((samples[:, None, :] - modes[None, :, :].to(samples.dtype)) ** 2).sum(-1)
    best, which = sq.min(dim=1)
    good = best <= (3 * std) ** 2
    return int(torch.unique(which[good]).numel()), good.float().mean().item()


def _cov_bincount(samples, modes, std):
    dist = torch.cdist(samples.double(), modes.double())
    best, which = dist.min(1)
    good = best <= 3 * std
    counts = torch.bincount(which[good], minlength=modes.shape[0])
    return int((counts > 0).sum()), float(good.sum()) / samples.shape[0]


@pytest.mark.parametrize("fn", [_cov_loops, _cov_broadcast, _cov_bincount, mode_coverage], ids=lambda f: f.__name__)
def test_coverage_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_mode_coverage, fn)
    assert "the rest of this hour uses your `mode_coverage`" in capsys.readouterr().out.lower()


def test_coverage_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_mode_coverage, raise_not_done, capsys=capsys)
    modes = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert reference(torch.tensor([[0.01, 0.0], [0.5, 0.5]]), modes, 0.01) == (1, 0.5)


@pytest.mark.parametrize("kind, phrase", [
    ("any_sample", "even of a sample far from it"),
    ("any_mode_within", "another mode is nearer"),
    ("one_std", "threshold is 1 standard deviation"),
    ("squared", "squared distance is compared with 3 \\* std"),
    ("box", "each coordinate is tested on its own"),
    ("count_good", "returned as the number of captured modes"),
    ("count_fraction", "instead of their fraction"),
    ("percent", "in percent"),
])
def test_coverage_names_the_known_mistakes(kind, phrase):
    fails(C.check_mode_coverage, _coverage_variant(kind), match=phrase)


def test_coverage_notices_a_changed_input():
    def in_place(samples, modes, std):
        samples -= modes.mean(0)  # "centre the samples" first: changes the caller's tensor
        return _cov_broadcast(samples + modes.mean(0), modes, std)

    fails(C.check_mode_coverage, in_place, match=r"changed its argument `samples` in place")


def test_coverage_refuses_the_wrong_types():
    fails(C.check_mode_coverage, lambda s, m, std: (torch.tensor(_cov_broadcast(s, m, std)[0]), _cov_broadcast(s, m, std)[1]),
          match=r"number of captured modes should be a Python int")
    fails(C.check_mode_coverage, lambda s, m, std: _cov_broadcast(s, m, std)[::-1],
          match=r"number of captured modes should be an int")
    fails(C.check_mode_coverage, lambda s, m, std: _cov_broadcast(s, m, std)[0], match=r"should be a tuple of 2")


def test_coverage_catches_a_bug_on_an_edge_input_only():
    def one_when_empty(samples, modes, std):  # `or 1`-style default: right wherever some sample is high quality
        dist = torch.cdist(samples, modes.to(samples.dtype))
        best, which = dist.min(1)
        good = best <= 3 * std
        return (int(torch.unique(which[good]).numel()) if good.any() else 1), good.float().mean().item()

    fails(C.check_mode_coverage, one_when_empty, match=r"with no high-quality sample at all")


def test_coverage_diagnoses_by_property_when_no_known_mistake_matches():
    def first_half_only(samples, modes, std):  # looks at the first half of the samples only
        half = samples[: max(1, len(samples) // 2)]
        return _cov_broadcast(half, modes, std)

    fails(C.check_mode_coverage, first_half_only, match=r"'the order of the samples and of the modes does not matter'"
                                                        r" does not hold|'repeating every sample changes nothing'")
