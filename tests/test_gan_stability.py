"""The package part of Hour 12: amla.gan.stable (losses, gradient penalty, spectral norm), amla.gan.fid and
amla.gan.style."""

import copy

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from amla.gan import fid as FID
from amla.gan import stable, style


# --- losses and the gradient penalty ------------------------------------------------------------------------

def test_wgan_and_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([[-1.5], [0.5]])
    assert torch.isclose(stable.wgan_critic_loss(real, fake), torch.tensor(-0.5 - 1.25))
    assert torch.isclose(stable.wgan_generator_loss(fake), torch.tensor(0.5))
    # relu(1 - 2) + relu(1 - 0.5) = 0.5 -> 0.25; relu(1 - 1.5) + relu(1 + 0.5) = 1.5 -> 0.75
    assert torch.isclose(stable.hinge_d_loss(real, fake), torch.tensor(1.0))
    assert torch.isclose(stable.hinge_g_loss(fake), torch.tensor(0.5))
    with pytest.raises(ValueError, match=r"shape \[B\] or \[B, 1\]"):
        stable.wgan_critic_loss(torch.zeros(2, 3), torch.zeros(2))


def test_gradient_penalty_of_a_linear_critic_is_closed_form_and_trains():
    critic = nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]]))  # ||w|| = 3: penalty (3 - 1)^2 = 4 for any x_hat
    gp = stable.gradient_penalty(critic, torch.randn(5, 3), torch.randn(5, 3))
    assert torch.isclose(gp, torch.tensor(4.0))
    gp.backward()  # create_graph=True: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(critic.weight.grad, 2 * 2 * torch.tensor([[1.0, 2.0, 2.0]]) / 3)


def test_gradient_penalty_on_images_and_bad_input():
    critic = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 1))
    gp = stable.gradient_penalty(critic, torch.randn(3, 1, 6, 6), torch.randn(3, 1, 6, 6))
    assert gp.shape == () and gp.requires_grad
    with pytest.raises(ValueError, match="same shape"):
        stable.gradient_penalty(critic, torch.randn(3, 1, 6, 6), torch.randn(2, 1, 6, 6))
    with pytest.raises(ValueError, match=r"t should have shape \[B\]"):
        stable.gradient_penalty(critic, torch.randn(3, 1, 6, 6), torch.randn(3, 1, 6, 6), torch.rand(3, 1))


# --- spectral norm ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: nn.Linear(7, 5), lambda: nn.Conv2d(3, 4, 3)], ids=["linear", "conv"])
def test_spectral_norm_matches_torch_parametrization(make):
    """Torch carries v and updates u first; Miyato et al.'s Algorithm 1 (the course's) carries u. One step apart,
    both reach the same normalised weight, output and gradient once the iteration has converged."""
    torch.manual_seed(0)
    ours = make()
    theirs = copy.deepcopy(ours)
    torch.nn.utils.parametrizations.spectral_norm(theirs)
    stable.spectral_norm(ours)
    x = torch.randn(2, 7) if isinstance(ours, nn.Linear) else torch.randn(2, 3, 6, 6)
    for _ in range(40):  # one power-iteration step per training forward, as in torch
        ours(x), theirs(x)
    assert torch.allclose(ours.weight, theirs.weight, atol=1e-5)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert abs(float(torch.linalg.matrix_norm(ours.weight.detach().flatten(1), 2)) - 1) < 1e-4
    (ours(x).square().sum()).backward()
    (theirs(x).square().sum()).backward()
    assert torch.allclose(ours.parametrizations.weight.original.grad, theirs.parametrizations.weight.original.grad,
                          atol=1e-4)
    ours.eval()  # eval mode: u is no longer updated
    u = ours.parametrizations.weight[0].u.clone()
    ours(x)
    assert torch.equal(u, ours.parametrizations.weight[0].u)


def test_spectral_norm_converges_to_one_and_estimate_to_matrix_norm():
    torch.manual_seed(1)
    layer = stable.spectral_norm(nn.Linear(6, 9))
    for _ in range(50):
        layer(torch.randn(1, 6))
    assert abs(float(torch.linalg.matrix_norm(layer.weight.detach(), 2)) - 1) < 1e-4
    w = torch.randn(8, 3, dtype=torch.float64)
    sigma, u = stable.spectral_norm_estimate(w, torch.nn.functional.normalize(torch.randn(8, dtype=torch.float64), dim=0),
                                             300)
    assert sigma.dtype == torch.float64 and torch.isclose(u.norm(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.isclose(sigma, torch.linalg.matrix_norm(w, 2))


def test_spectral_norm_uses_the_estimate_it_is_given_and_rejects_bad_input():
    calls = []

    def estimate(weight, u, n_iters=1):
        calls.append(n_iters)
        return stable.spectral_norm_estimate(weight, u, n_iters)

    model = stable.apply_spectral_norm(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)), estimate)
    calls.clear()
    model(torch.randn(3, 2))
    assert calls == [1, 1]
    with pytest.raises(ValueError, match="transposed convolution"):
        stable.spectral_norm(nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(ValueError, match=r"u should have shape \[out\]"):
        stable.spectral_norm_estimate(torch.randn(3, 4), torch.randn(4), 1)
    with pytest.raises(ValueError, match="n_iters should be at least 1"):
        stable.spectral_norm_estimate(torch.randn(3, 4), torch.randn(3), 0)


def test_ttur_gives_two_rates():
    g, d = nn.Linear(2, 2), nn.Linear(2, 1)
    opt_g, opt_d = stable.ttur(g.parameters(), d.parameters())
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_d.param_groups[0]["lr"] == 4e-4
    with pytest.raises(ValueError, match="positive"):
        stable.ttur(g.parameters(), d.parameters(), g_lr=0)


# --- FID ----------------------------------------------------------------------------------------------------

def test_sqrtm_matches_scipy_and_survives_singular_matrices():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 9, generator=g, dtype=torch.float64)
    s = a @ a.T
    root = FID.sqrtm_psd(s)
    assert np.allclose(root.numpy(), scipy.linalg.sqrtm(s.numpy()).real, atol=1e-8)
    low = a[:, :2] @ a[:, :2].T  # rank 2 of 6: eigenvalues at (or just below) 0
    root = FID.sqrtm_psd(low)
    assert torch.isfinite(root).all() and torch.allclose(root @ root, low, atol=1e-8)


def test_frechet_distance_against_scipy_formula():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    s1, s2 = a @ a.T / 7, b @ b.T / 7
    m1, m2 = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    want = float(((m1 - m2) ** 2).sum() + s1.trace() + s2.trace() - 2 * np.trace(covmean))
    got = FID.frechet_distance(m1, s1, m2, s2)
    assert type(got) is float and abs(got - want) < 1e-8
    assert FID.frechet_distance(m1.float(), s1.float(), m1.float(), s1.float()) < 1e-4
    with pytest.raises(ValueError, match=r"mu \[d\] and sigma \[d, d\]"):
        FID.frechet_distance(m1, s1, m2[:3], s2)


class _PixelFeatures(nn.Module):
    """A stand-in for the digit classifier: features = a fixed random projection of pooled pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 12)

    def features(self, x):
        return torch.tanh(self.proj(nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)))


def test_fid_is_zero_on_identical_sets_and_rises_along_a_corruption_ladder():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0 * 2 - 1, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    clf = _PixelFeatures()
    half_a, half_b = x[0::2], x[1::2]
    assert FID.fid(half_a, half_a, clf) < 1e-6
    floor = FID.fid(half_a, half_b, clf)
    noise = [FID.fid(half_a, FID.add_noise(half_b, s), clf) for s in (0.1, 0.3, 0.6)]
    blurred = [FID.fid(half_a, FID.blur(half_b, s), clf) for s in (0.5, 1.0, 2.0)]
    dropped = [FID.fid(half_a, FID.drop_classes(half_b, y[1::2], list(range(k))), clf) for k in (2, 5, 8)]
    for ladder in (noise, blurred, dropped):
        assert floor < ladder[0] < ladder[1] < ladder[2], (floor, ladder)


def test_corruptions_keep_shape_and_range():
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    for out in (FID.add_noise(x, 0.5), FID.blur(x, 1.0)):
        assert out.shape == x.shape and out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    assert torch.equal(FID.blur(x, 0), x)
    with pytest.raises(ValueError, match="leaves no image"):
        FID.drop_classes(x, torch.zeros(4, dtype=torch.long), [0])
    with pytest.raises(ValueError, match=r"features \[N, F\] with N >= 2"):
        FID.feature_stats(torch.randn(1, 3))


# --- StyleGAN's ideas -----------------------------------------------------------------------------------------

def test_adain_sets_each_channels_statistics():
    x = torch.randn(2, 3, 5, 5) * 4 + 7
    scale, bias = torch.tensor([[1.0, 2.0, 0.5], [3.0, 1.0, 1.0]]), torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
    out = style.adain(x, scale, bias)
    assert torch.allclose(out.mean((2, 3)), bias, atol=1e-5)
    assert torch.allclose(out.std((2, 3), unbiased=False), scale, atol=1e-3)
    with pytest.raises(ValueError, match=r"scale, bias \[N, C\]"):
        style.adain(x, scale[:, :2], bias)


@pytest.mark.parametrize("size", [8, 28])
def test_style_generator_shapes_and_mixing(size):
    torch.manual_seed(0)
    gen = style.StyleGenerator(z_dim=8, w_dim=8, image_size=size, width=8)
    z_a, z_b = torch.randn(3, 8), torch.randn(3, 8)
    out = gen(z_a)
    assert out.shape == (3, 1, size, size) and out.abs().max() <= 1
    assert gen.mapping(z_a).shape == (3, 8)
    assert torch.allclose(style.mix_styles(gen, z_a, z_b, gen.n_styles), out, atol=1e-6)
    assert torch.allclose(style.mix_styles(gen, z_a, z_b, 0), gen(z_b), atol=1e-6)
    mixed = style.mix_styles(gen, z_a, z_b, 1)
    assert mixed.shape == out.shape and not torch.allclose(mixed, out)
    with pytest.raises(ValueError, match=r"z must be \[N, 8\]"):
        gen(torch.randn(3, 5))
    with pytest.raises(ValueError, match="crossover must lie in 0..3"):
        style.mix_styles(gen, z_a, z_b, 4)
    with pytest.raises(ValueError, match="multiple of 4"):
        style.StyleGenerator(image_size=10)
