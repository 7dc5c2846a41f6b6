"""The self-checks of Hour 12: Exercise 12.1 (gradient penalty), 12.2 (spectral norm by power iteration) and
12.3 (Frechet distance)."""

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from amla.checks import gan_stability as C
from amla.checks.gan_stability.frechet import _variant as frechet_variant
from amla.checks.gan_stability.penalty import _variant as penalty_variant
from amla.checks.gan_stability.spectral import _variant as spectral_variant
from amla.gan.fid import frechet_distance
from amla.gan.stable import gradient_penalty, spectral_norm_estimate
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 12.1: gradient penalty --------------------------------------------------------------------------


def _gp(critic, real, fake, t=None):
    b = real.shape[0]
    if t is None:
        t = torch.rand(b, 1, dtype=real.dtype)
    t = t.reshape(b, *([1] * (real.dim() - 1)))
    x = (t * real + (1 - t) * fake).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def _gp_other_side(critic, real, fake, t=None):  # fake + t (real - fake), grad_outputs, sqrt of sum of squares
    b = real.shape[0]
    if t is None:
        t = torch.rand(b, device=real.device).to(real.dtype)
    shape = (b,) + (1,) * (real.dim() - 1)
    x = fake.detach() + t.view(shape) * (real.detach() - fake.detach())
    x.requires_grad_()
    out = critic(x)
    (g,) = torch.autograd.grad(outputs=out, inputs=x, grad_outputs=torch.ones_like(out), create_graph=True,
                               retain_graph=True)
    norm = torch.sqrt(g.reshape(b, -1).pow(2).sum(dim=1))
    return torch.mean((norm - 1.0) ** 2)


def _gp_reversed_convention_when_drawing(critic, real, fake, t=None):
    # with t drawn here, (1 - t) real + t fake is just as uniform: a correct answer too
    b = real.shape[0]
    if t is None:
        s = torch.rand(b, dtype=real.dtype).view(b, *([1] * (real.dim() - 1)))
        x = (1 - s) * real + s * fake
    else:
        s = t.view(b, *([1] * (real.dim() - 1)))
        x = s * real + (1 - s) * fake
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), [x], create_graph=True)
    return (g.view(b, -1).norm(dim=-1).sub(1).square()).sum() / b


@pytest.mark.parametrize("fn", [_gp, _gp_other_side, _gp_reversed_convention_when_drawing], ids=lambda f: f.__name__)
def test_penalty_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_gradient_penalty, fn)
    assert "uses your `gradient_penalty`" in capsys.readouterr().out


def test_penalty_not_done_returns_the_reference(capsys):
    assert not_done(C.check_gradient_penalty, raise_not_done, capsys=capsys) is gradient_penalty


@pytest.mark.parametrize("kwargs, phrase", [
    (dict(graph=False), "without create_graph=True"),
    (dict(t_kind="element"), "drawn for every element"),
    (dict(norm="squared"), r"squared gradient norm \|\|g\|\|\^2"),
    (dict(norm="squared_minus_one"), r"\(\|\|g\|\|\^2 - 1\)\^2"),
    (dict(norm="batch"), "over the whole batch"),
    (dict(norm="last"), "last dimension only"),
    (dict(reduce="none"), "not averaged"),
    (dict(reduce="sum"), "summed"),
    (dict(at="real"), "real samples only"),
    (dict(at="fake"), "fake samples only"),
    (dict(one_sided=True), "one-sided"),
])
def test_penalty_names_the_known_mistakes(kwargs, phrase):
    fails(C.check_gradient_penalty, penalty_variant(**kwargs), match=phrase)


def test_penalty_notices_a_changed_input():
    def in_place(critic, real, fake, t=None):
        out = _gp(critic, real, fake, t)
        fake.mul_(0)
        return out

    fails(C.check_gradient_penalty, in_place, match=r"changed its argument `fake` in place")


def test_penalty_refuses_a_float_and_the_wrong_dtype():
    fails(C.check_gradient_penalty, lambda c, r, f, t=None: _gp(c, r, f, t).item(), match=r"should be a tensor")
    fails(C.check_gradient_penalty, lambda c, r, f, t=None: _gp(c, r, f, t).double() if r.dtype == torch.float32
          else _gp(c, r, f, t), match=r"dtype torch\.float64, expected torch\.float32")


def test_penalty_edge_bug_batch_of_one():
    def breaks_on_one(critic, real, fake, t=None):
        if real.shape[0] == 1:
            return _gp(critic, real, fake, t) * 0
        return _gp(critic, real, fake, t)

    fails(C.check_gradient_penalty, breaks_on_one, match=r"a batch of one")


def test_penalty_right_value_wrong_gradient():
    def half_detached(critic, real, fake, t=None):  # the right number, but only half of it trains the critic
        p = _gp(critic, real, fake, t)
        return 0.5 * p + 0.5 * p.detach()

    fails(C.check_gradient_penalty, half_detached, match=r"gradient of the penalty with respect to the critic's weights")


def test_penalty_property_catches_an_unlisted_bug():
    def t_per_half(critic, real, fake, t=None):  # two draws of t per sample for images: off the segment
        if t is None and real.dim() == 4:
            b = real.shape[0]
            t = torch.rand(b, 1, 2, 1, dtype=real.dtype).repeat_interleave(3, dim=2)[:, :, :5]
            x = (t * real + (1 - t) * fake).detach().requires_grad_(True)
            (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
            return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return _gp(critic, real, fake, t)

    fails(C.check_gradient_penalty, t_per_half, match=r"x_hat lies on the segment")


# --- Exercise 12.2: spectral norm by power iteration ------------------------------------------------------------


def _sn(weight, u, n_iters=1):
    with torch.no_grad():
        for _ in range(n_iters):
            v = F.normalize(weight.t() @ u, dim=0, eps=1e-12)
            u = F.normalize(weight @ v, dim=0, eps=1e-12)
    return u @ (weight @ v), u


def _sn_norm_of_wv(weight, u, n_iters=1):  # sigma = ||W v|| (the same number and gradient, u v^T)
    with torch.no_grad():
        for _ in range(n_iters - 1):
            v = weight.T @ u
            v = v / v.norm()
            u = weight @ v
            u = u / u.norm()
        v = weight.T @ u
        v = v / v.norm()
    wv = weight @ v
    return wv.norm(), (wv / wv.norm()).detach()


def _sn_mv_detach(weight, u, n_iters=1):  # torch.mv, detached copies instead of no_grad
    w = weight.detach()
    for _ in range(n_iters):
        v = torch.mv(w.t(), u)
        v = v / (v.norm() + 1e-12)
        u = torch.mv(w, v)
        u = u / (u.norm() + 1e-12)
    return torch.dot(u, torch.mv(weight, v)), u


@pytest.mark.parametrize("fn", [_sn, _sn_norm_of_wv, _sn_mv_detach], ids=lambda f: f.__name__)
def test_spectral_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_spectral_norm, fn)
    assert "uses your `spectral_norm_estimate`" in capsys.readouterr().out


def test_spectral_not_done_returns_the_reference(capsys):
    assert not_done(C.check_spectral_norm, raise_not_done, capsys=capsys) is spectral_norm_estimate


@pytest.mark.parametrize("kind, phrase", [
    ("frobenius", "Frobenius norm"),
    ("ignores_n", "`n_iters` is ignored"),
    ("no_normalise_u", "u is not normalised"),
    ("no_normalise_v", "v is not normalised"),
    ("transposed", "W and W\\^T are swapped"),
    ("old_u", "the u you were given"),
    ("sigma_wt_u", r"\|\|W\^T u\|\|"),
    ("square", "sigma is squared"),
    ("not_updated", "updated u is not returned"),
    ("with_grad", "runs with gradients"),
])
def test_spectral_names_the_known_mistakes(kind, phrase):
    fails(C.check_spectral_norm, spectral_variant(kind), match=phrase)


def test_spectral_notices_a_changed_input():
    def in_place(weight, u, n_iters=1):
        sigma, new = _sn(weight, u, n_iters)
        u.copy_(new)
        return sigma, new

    fails(C.check_spectral_norm, in_place, match=r"changed its argument `u` in place")


def test_spectral_refuses_a_float_and_the_wrong_dtype():
    fails(C.check_spectral_norm, lambda w, u, n=1: (_sn(w, u, n)[0].item(), _sn(w, u, n)[1]), match="should be a tensor")
    fails(C.check_spectral_norm, lambda w, u, n=1: tuple(x.double() for x in _sn(w, u, n)),
          match=r"dtype torch\.float64, expected torch\.float32")


def test_spectral_edge_bug_single_row():
    def breaks_on_one_row(weight, u, n_iters=1):
        sigma, u = _sn(weight, u, n_iters)
        return (sigma * 0.5, u) if weight.shape[0] == 1 else (sigma, u)

    fails(C.check_spectral_norm, breaks_on_one_row, match=r"one row \[1, 5\]")


def test_spectral_default_argument_left_out():
    fails(C.check_spectral_norm, lambda w, u, n_iters: _sn(w, u, n_iters), match=r"n_iters left out")


def test_spectral_right_value_wrong_gradient():
    def detached(weight, u, n_iters=1):
        sigma, u = _sn(weight, u, n_iters)
        return sigma.detach(), u

    fails(C.check_spectral_norm, detached, match=r"detached")


def test_spectral_property_catches_an_unlisted_bug():
    def overshoots(weight, u, n_iters=1):  # sigma 1 % too large: no listed mistake, but above the true norm
        sigma, u = _sn(weight, u, n_iters)
        return sigma * 1.01, u

    fails(C.check_spectral_norm, overshoots, match=r"sigma <= the true spectral norm")


# --- Exercise 12.3: Frechet distance ----------------------------------------------------------------------------


def _fd_scipy(mu1, sigma1, mu2, sigma2):  # the pytorch-fid way: scipy.linalg.sqrtm of the product
    m1, m2, s1, s2 = (np.asarray(x, dtype=np.float64) for x in (mu1, mu2, sigma1, sigma2))
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-10
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = covmean.real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _fd_eigvals_of_product(mu1, sigma1, mu2, sigma2):  # eigenvalues of S1 S2 are those of sqrt(S1) S2 sqrt(S1)
    m1, m2, s1, s2 = (x.double() for x in (mu1, mu2, sigma1, sigma2))
    ev = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0)
    return (torch.dot(m1 - m2, m1 - m2) + torch.trace(s1 + s2) - 2 * ev.sqrt().sum()).item()


def _fd_svd(mu1, sigma1, mu2, sigma2):  # sqrt(S1) by SVD, then the singular values of sqrt(S1) sqrt(S2)...
    m1, m2, s1, s2 = (x.double() for x in (mu1, mu2, sigma1, sigma2))

    def root(a):
        uu, ss, vh = torch.linalg.svd((a + a.T) / 2)
        return uu @ torch.diag(ss.sqrt()) @ vh

    # tr((A^1/2 B A^1/2)^1/2) = sum of the singular values of A^1/2 B^1/2 (nuclear norm)
    nuclear = torch.linalg.svdvals(root(s1) @ root(s2)).sum()
    return float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * nuclear)


@pytest.mark.parametrize("fn", [_fd_scipy, _fd_eigvals_of_product, _fd_svd], ids=lambda f: f.__name__)
def test_frechet_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_frechet_distance, fn)
    assert "uses your `frechet_distance`" in capsys.readouterr().out


def test_frechet_not_done_returns_the_reference(capsys):
    assert not_done(C.check_frechet_distance, raise_not_done, capsys=capsys) is frechet_distance


@pytest.mark.parametrize("kind, phrase", [
    ("product", "right only when S1 and S2 commute"),
    ("elementwise", "square root of each entry"),
    ("sqrt_trace", "not the square root of the trace"),
    ("no_factor_2", "missing its factor 2"),
    ("plus", "cross term is added"),
    ("mean_not_squared", "means is not squared"),
    ("sqrt", "square root of the distance is returned"),
])
def test_frechet_names_the_known_mistakes(kind, phrase):
    fails(C.check_frechet_distance, frechet_variant(kind), match=phrase)


def test_frechet_notices_a_changed_input():
    def in_place(mu1, sigma1, mu2, sigma2):
        sigma1 += 1e-6 * torch.eye(sigma1.shape[0], dtype=sigma1.dtype)  # a "regularisation" in place
        return frechet_distance(mu1, sigma1, mu2, sigma2)

    fails(C.check_frechet_distance, in_place, match=r"changed its argument `sigma1` in place")


def test_frechet_refuses_a_tensor_result():
    def tensor(mu1, sigma1, mu2, sigma2):
        return torch.tensor(frechet_distance(mu1, sigma1, mu2, sigma2))

    fails(C.check_frechet_distance, tensor, match=r"float")


def test_frechet_edge_bug_float32_precision():
    def in_float32(mu1, sigma1, mu2, sigma2):  # right in float64 arithmetic except for the float32 cast
        m1, m2, s1, s2 = (x.float() for x in (mu1, mu2, sigma1, sigma2))
        r = torch.linalg.eigh(s1)
        root = r.eigenvectors @ torch.diag(r.eigenvalues.clamp(min=0).sqrt()) @ r.eigenvectors.T
        ev = torch.linalg.eigvalsh(root @ s2 @ root).clamp(min=0)
        return float((m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * ev.sqrt().sum())

    fails(C.check_frechet_distance, in_float32, match=r"float32 is not precise enough|near-singular")


def test_frechet_property_catches_nan_on_near_singular_covariances():
    def no_clamp(mu1, sigma1, mu2, sigma2):
        m1, m2, s1, s2 = (x.double() for x in (mu1, mu2, sigma1, sigma2))
        vals, vecs = torch.linalg.eigh(s1)
        root = vecs @ torch.diag(vals.sqrt()) @ vecs.T  # sqrt of a slightly negative eigenvalue: nan
        ev = torch.linalg.eigvalsh(root @ s2 @ root)
        return float((m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * ev.sqrt().sum())

    fails(C.check_frechet_distance, no_clamp, match=r"the distance is finite")


def test_frechet_property_asymmetric_bug():
    def asymmetric(mu1, sigma1, mu2, sigma2):
        return frechet_distance(mu1, sigma1, mu2, sigma2) + 0.01 * float(sigma1.double().trace())

    fails(C.check_frechet_distance, asymmetric, match=r"the distance of a Gaussian to itself is 0|d\(A, B\) = d\(B, A\)")
