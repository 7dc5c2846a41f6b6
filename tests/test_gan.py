"""Hour 10's package part: the losses, the 2-D MLPs (packing, stacking), train_gans, and the GAN player (headless)."""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from amla.gan.losses import d_loss, g_loss_nonsaturating, g_loss_saturating
from amla.gan.mlp import Discriminator, Generator, StackedLinear, train_gans
from amla.gan.toy import ring
from amla.views.base import WIDGET_VIEW_MIMETYPE
from amla.views.gan_player import GanFrame, GanPlayer, record

matplotlib.use("Agg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# --- losses ------------------------------------------------------------------------------------------------


def test_losses_equal_torchs_binary_cross_entropy_with_logits() -> None:
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(40, generator=g) * 3, torch.randn(30, 1, generator=g) * 3
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(d_loss(real, fake), bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(g_loss_nonsaturating(fake), bce(fake, torch.ones_like(fake)))
    torch.testing.assert_close(g_loss_saturating(fake), -bce(fake, torch.zeros_like(fake)))


def test_losses_at_the_start_of_the_game_and_at_1e4() -> None:
    zeros = torch.zeros(8)
    assert math.isclose(d_loss(zeros, zeros).item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(g_loss_nonsaturating(zeros).item(), math.log(2), rel_tol=1e-6)
    huge = torch.tensor([-1e4, 1e4])
    for value in (d_loss(huge, huge), g_loss_nonsaturating(huge), g_loss_saturating(huge)):
        assert torch.isfinite(value) and value.dim() == 0
    assert d_loss(huge.double(), huge.double()).dtype == torch.float64


def test_saturating_loss_has_no_gradient_where_d_is_confident() -> None:
    fake = torch.full((16,), -10.0, requires_grad=True)
    (g_sat,) = torch.autograd.grad(g_loss_saturating(fake), fake)
    (g_ns,) = torch.autograd.grad(g_loss_nonsaturating(fake), fake)
    ratio = g_ns.abs().sum() / g_sat.abs().sum()
    assert math.isclose(ratio.item(), math.exp(10), rel_tol=1e-3)  # (1 - D) / D at logit -10


@pytest.mark.parametrize("bad, match", [([0.1, 0.2], "must be a tensor"), (torch.tensor([1, 2]), "float tensor"),
                                        (torch.zeros(0), "is empty")])
def test_losses_bad_input_is_one_line(bad, match) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        g_loss_nonsaturating(bad)
    with pytest.raises((TypeError, ValueError), match=match):
        d_loss(torch.zeros(3), bad)


# --- models --------------------------------------------------------------------------------------------------


def test_generator_and_discriminator_shapes_and_packing() -> None:
    torch.manual_seed(0)
    G, D, P = Generator(), Discriminator(), Discriminator(pack=4)
    x = G(torch.randn(12, 2))
    assert x.shape == (12, 2) and G.sample(5).shape == (5, 2)
    assert D(x).shape == (12,) and P(x).shape == (3,)
    assert P.net[0].in_features == 8  # four points side by side
    # packing is concatenation of consecutive points: the same as an ordinary MLP on [N / 4, 8]
    torch.testing.assert_close(P(x), P.net(x.reshape(3, 8)).squeeze(-1))


@pytest.mark.parametrize("call, match", [
    (lambda: Generator()(torch.randn(3, 5)), r"z must be \[N, 2\]"),
    (lambda: Discriminator()(torch.randn(3)), r"x must be points \[N, 2\]"),
    (lambda: Discriminator(pack=2)(torch.randn(3, 2)), "multiple of 2"),
    (lambda: Discriminator(pack=0), "pack must be a positive int"),
    (lambda: Generator(hidden=1.5), "hidden must be a positive int"),
])
def test_models_bad_input_is_one_line(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_stacked_models_equal_their_members() -> None:
    gens, discs = [], []
    for seed in (3, 4, 5):
        torch.manual_seed(seed)
        gens.append(Generator())
        discs.append(Discriminator(pack=2))
    G, D = Generator.stack(gens), Discriminator.stack(discs)
    assert isinstance(G.net[0], StackedLinear) and G.members == 3
    z = torch.randn(3, 10, 2)
    out = G(z)
    assert out.shape == (3, 10, 2) and D(out).shape == (3, 5)
    for e in range(3):
        torch.testing.assert_close(out[e], gens[e](z[e]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(D(out)[e], discs[e](out[e]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"z must be \[3, N, 2\]"):
        G(torch.randn(10, 2))


def test_stacked_loss_gives_each_member_its_own_gradient() -> None:
    """E times the loss of [E, N] logits is the sum of the members' own losses: member e's gradient is the one it
    would get alone (what train_gans relies on)."""
    discs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        discs.append(Discriminator(hidden=8))
    D = Discriminator.stack(discs)
    real, fake = torch.randn(2, 6, 2), torch.randn(2, 6, 2)
    (2 * d_loss(D(real), D(fake))).backward()
    for e in range(2):
        discs[e].zero_grad()
        d_loss(discs[e](real[e]), discs[e](fake[e])).backward()
        torch.testing.assert_close(D.net[0].weight.grad[e], discs[e].net[0].weight.grad.T, rtol=1e-5, atol=1e-7)


def test_train_gans_evaluates_and_times() -> None:
    mix = ring()
    seen = []
    run = train_gans(mix.sample, d_loss, g_loss_nonsaturating, seeds=(0, 1, 2), steps=4, batch=8, hidden=8, pack=2,
                     lr_decay=True, eval_every=2, eval_fn=lambda G, step: seen.append(step) or G.sample(3).shape)
    assert seen == [2, 4] and run.evals == [(2, (3, 3, 2)), (4, (3, 3, 2))]
    assert run.seconds > 0 and run.steps_per_s > 0
    with pytest.raises(ValueError, match="multiple of pack"):
        train_gans(mix.sample, d_loss, g_loss_nonsaturating, seeds=(0,), steps=1, batch=9, pack=2)
    with pytest.raises(ValueError, match="seeds is empty"):
        train_gans(mix.sample, d_loss, g_loss_nonsaturating, seeds=(), steps=1)


def test_train_gans_decay_can_start_late() -> None:
    mix = ring()

    def weights(**kw: object) -> torch.Tensor:
        run = train_gans(mix.sample, d_loss, g_loss_nonsaturating, seeds=(0, 1), steps=2, batch=8, hidden=8, **kw)
        return run.G.net[0].weight.detach().clone()

    constant = weights()
    # with the decay starting half way, both of the 2 steps still use the full rate; a decay from the start halves
    # the second step's rate
    torch.testing.assert_close(weights(lr_decay=True, lr_decay_start=0.5), constant)
    assert not torch.allclose(weights(lr_decay=True), constant)
    with pytest.raises(ValueError, match="lr_decay_start"):
        train_gans(mix.sample, d_loss, g_loss_nonsaturating, seeds=(0,), steps=1, lr_decay=True, lr_decay_start=1.0)


# --- the player ------------------------------------------------------------------------------------------


def _frames(n: int = 3, pack: int = 1) -> tuple[list[GanFrame], Generator, Discriminator, torch.Tensor]:
    torch.manual_seed(0)
    G, D = Generator(hidden=16), Discriminator(hidden=16, pack=pack)
    z = torch.randn(40, 2)
    opt = torch.optim.SGD(G.parameters(), lr=0.5)
    frames = []
    for step in range(n):
        frames.append(record(G, D, z, g_loss_nonsaturating, step * 10, grid=16, note=f"note {step}"))
        g_loss_nonsaturating(D(G(z))).backward()
        opt.step()
        opt.zero_grad()
    return frames, G, D, z


def test_record_snapshots_without_side_effects() -> None:
    frames, G, D, z = _frames(1, pack=2)
    D.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in [*G.parameters(), *D.parameters()]]
    state = torch.get_rng_state()
    frame = record(G, D, z, g_loss_nonsaturating, 7, grid=12)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(before, [*G.parameters(), *D.parameters()]))
    assert all(p.grad is None for p in D.parameters())
    assert frame.step == 7 and frame.fake.shape == (40, 2) and frame.d_grid.shape == (12, 12)
    assert frame.arrows.shape == (40, 2) and ((frame.d_grid >= 0) & (frame.d_grid <= 1)).all()
    # the arrows are minus the gradient of the generator's loss on the points, times n
    x = G(z).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(g_loss_nonsaturating(D(x)), x)
    np.testing.assert_allclose(frame.arrows, (-grad * 40).double().numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="lim must be"):
        record(G, D, z, g_loss_nonsaturating, 0, lim=(1.0, -1.0))


def test_player_slider_and_play_show_each_frame() -> None:
    frames, *_ = _frames(3)
    real = ring().sample(100)
    player = GanPlayer(frames, real, title="test")
    slider = player.controls["frame"]
    assert isinstance(slider, widgets.IntSlider) and isinstance(player.play, widgets.Play)
    assert (slider.min, slider.max, slider.value) == (0, 2, 2)  # starts at the last frame
    assert player.widget.children[0].children[:2] == (player.play, slider)
    assert player.link.source == (player.play, "value") and player.link.target == (slider, "value")
    pictures = {}
    for i in (0, 1, 2):
        slider.value = i
        assert player.frame is frames[i]
        assert player.png.startswith(PNG_MAGIC) and bytes(player.image.value) == player.png
        pictures[i] = player.png
    assert len(set(pictures.values())) == 3, "every frame gets its own picture"
    assert player.show(12) is frames[1] and slider.value == 1
    title = player.figure().axes[0].get_title()
    assert "step 10" in title and "note 1" in title
    bundle = player._repr_mimebundle_()
    assert "image/png" in bundle and WIDGET_VIEW_MIMETYPE in bundle
    player.close()


def test_player_bad_input_is_one_line() -> None:
    with pytest.raises(ValueError, match="non-empty list of GanFrame"):
        GanPlayer([], ring().sample(5))
    frames, *_ = _frames(1)
    with pytest.raises(ValueError, match=r"real must be points \[N, 2\]"):
        GanPlayer(frames, torch.zeros(5, 3))
