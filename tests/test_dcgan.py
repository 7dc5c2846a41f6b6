"""Hour 11's package part: the DCGAN generator and discriminator (both sizes, conditional or not), the DCGAN
initialisation, the latent helpers, and the sample gallery without a browser."""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib
import pytest
import torch
from torch import nn

from amla.gan.dcgan import (
    Discriminator,
    Generator,
    class_latents,
    dcgan_init_,
    interpolation_path,
    lerp,
    projection_logits,
    slerp,
    truncated_normal,
)
from amla.views.base import WIDGET_VIEW_MIMETYPE
from amla.views.gallery import SampleGallery, image_grid, snapshot

matplotlib.use("Agg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("size", [28, 8])
@pytest.mark.parametrize("n_classes", [0, 10])
def test_generator_and_discriminator_shapes(size, n_classes):
    g, d = Generator(16, size, 8, n_classes), Discriminator(size, 8, n_classes)
    z = torch.randn(5, 16)
    y = torch.randint(0, 10, (5,)) if n_classes else None
    x = g(z, y)
    assert x.shape == (5, 1, size, size) and x.dtype == torch.float32
    assert float(x.detach().abs().max()) <= 1.0  # tanh
    logits = d(x, y)
    assert logits.shape == (5,)
    assert d.features(x).shape == (5, d.n_features)
    logits.sum().backward()  # gradients reach the generator through the discriminator
    assert all(p.grad is not None for p in g.parameters())


def test_critic_has_no_batchnorm_and_scores_each_sample_alone():
    critic = Discriminator(28, 8, norm="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in critic.modules())
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(critic(x)[:1], critic(x[:1]), atol=1e-6)  # no batch statistics: per-sample scores
    bn = Discriminator(28, 8, norm="batch").train()
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
    assert not torch.allclose(bn(x)[:1], bn(x[:1]), atol=1e-4)  # BatchNorm mixes the batch in training mode


def test_spectral_norm_can_wrap_the_layers():
    critic = Discriminator(8, 8, norm="none")
    for name in ("conv1", "conv2", "linear"):
        setattr(critic, name, nn.utils.parametrizations.spectral_norm(getattr(critic, name)))
    dcgan_init_(critic)
    assert critic(torch.randn(3, 1, 8, 8)).shape == (3,)


def test_conditional_discriminator_uses_the_projection_it_is_given():
    calls = []

    def projection(h, y, embed, linear):
        calls.append((h.shape, y.shape))
        return projection_logits(h, y, embed, linear)

    d = Discriminator(8, 4, n_classes=3, projection=projection).eval()
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([0, 2])
    out = d(x, y)
    assert calls == [((2, d.n_features), (2,))]
    h = d.features(x)
    assert torch.allclose(out, d.linear(h).squeeze(-1) + (d.embed(y) * h).sum(-1))
    # the class changes the logit (the projection term), the unconditional part does not depend on it
    assert not torch.allclose(d(x, torch.tensor([1, 1])), out)


def test_conditional_generator_depends_on_the_label():
    g = Generator(8, 8, 4, n_classes=10).eval()
    z = torch.randn(3, 8)
    assert not torch.allclose(g(z, torch.tensor([0, 0, 0])), g(z, torch.tensor([5, 5, 5])))


def test_label_dim_sets_the_embedding_size():
    g = Generator(16, 8, 4, n_classes=10, label_dim=10)
    assert g.embed.weight.shape == (10, 10) and g.fc.in_features == 26
    assert Generator(16, 8, 4, n_classes=10).embed.weight.shape == (10, 16)  # default: as long as z
    assert Generator(16, 8, 4).fc.in_features == 16
    assert g(torch.randn(2, 16), torch.tensor([3, 4])).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="label_dim"):
        Generator(16, 8, 4, n_classes=10, label_dim=0)


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    g, d = Generator(64, 28, 32, 10), Discriminator(28, 32)
    for module in (g, d):
        dcgan_init_(module)
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                assert abs(m.weight.mean().item()) < 0.003 and abs(m.weight.std().item() - 0.02) < 0.003
                assert m.bias is None or bool((m.bias == 0).all())
            elif isinstance(m, nn.BatchNorm2d):
                assert abs(m.weight.mean().item() - 1.0) < 0.01 and 0.005 < m.weight.std().item() < 0.04
                assert bool((m.bias == 0).all())
    assert abs(g.embed.weight.std().item() - 1.0) < 0.1  # the label embedding is left alone (N(0, 1))


@pytest.mark.parametrize("bad, match", [
    (lambda: Generator(image_size=30), "multiple of 4"),
    (lambda: Discriminator(norm="layer"), "norm must be 'batch'"),
    (lambda: Generator(8, 8, 4)(torch.randn(2, 9)), r"z must be \[N, 8\]"),
    (lambda: Generator(8, 8, 4, 10)(torch.randn(2, 8)), "pass the labels y"),
    (lambda: Generator(8, 8, 4)(torch.randn(2, 8), torch.tensor([0, 1])), "unconditional"),
    (lambda: Discriminator(8, 4, 10)(torch.randn(2, 1, 8, 8), torch.tensor([0.0, 1.0])), "long tensor"),
    (lambda: Discriminator(8, 4, 10)(torch.randn(2, 1, 8, 8), torch.tensor([0, 10])), r"0\.\.9"),
    (lambda: Discriminator(28, 4)(torch.randn(2, 1, 8, 8)), r"x must be \[N, 1, 28, 28\]"),
])
def test_bad_input_is_a_one_line_error(bad, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        bad()
    assert "\n" not in str(info.value)


def test_slerp_and_lerp():
    z0, z1 = torch.randn(4, 32), torch.randn(4, 32)
    assert torch.allclose(slerp(z0, z1, 0.0), z0, atol=1e-6) and torch.allclose(slerp(z0, z1, 1.0), z1, atol=1e-5)
    assert torch.allclose(lerp(z0, z1, torch.full((4,), 0.5)), (z0 + z1) / 2)
    u0, u1 = nn.functional.normalize(z0, dim=-1), nn.functional.normalize(z1, dim=-1)
    assert torch.allclose(slerp(u0, u1, 0.3).norm(dim=-1), torch.ones(4), atol=1e-5)
    assert bool(torch.isfinite(slerp(z0, z0.clone(), 0.5)).all())
    path = interpolation_path(z0[0], z1[0], 9)
    assert path.shape == (9, 32) and torch.allclose(path[0], z0[0], atol=1e-6)
    mid_lerp = interpolation_path(u0[0], u1[0], 3, kind="lerp")[1].norm()
    assert mid_lerp < 0.95  # linear interpolation cuts inside the sphere
    with pytest.raises(ValueError, match="steps must be >= 2"):
        interpolation_path(z0[0], z1[0], 1)


def test_truncated_normal_and_class_latents():
    g = torch.Generator().manual_seed(0)
    z = truncated_normal(500, 16, 0.5, generator=g)
    assert z.shape == (500, 16) and float(z.abs().max()) <= 0.5
    assert float(truncated_normal(2000, 8).abs().max()) > 2.5  # inf: plain normal
    with pytest.raises(ValueError, match="threshold must be > 0"):
        truncated_normal(2, 2, 0.0)
    z, y = class_latents(3, 4, 8, seed=1)
    assert z.shape == (12, 8) and y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert torch.equal(z[:3], z[3:6])  # shared: column j is one latent across classes
    assert torch.equal(class_latents(3, 4, 8, seed=1)[0], z)


# --- the gallery without a browser ------------------------------------------------------------------------


def _snapshots(epochs=(0, 1, 2), n=12, size=8):
    return {e: torch.full((n, 1, size, size), -1.0 + e) for e in epochs}  # each epoch visibly different


def test_snapshot_draws_in_eval_mode_and_restores_the_mode():
    g = Generator(8, 8, 4, 10).train()
    z, y = class_latents(2, 10, 8)
    first = snapshot(g, z, y)
    assert g.training and first.shape == (20, 1, 8, 8) and not first.requires_grad
    assert torch.equal(first, snapshot(g, z, y))  # eval mode: no batch statistics, the same picture twice


def test_gallery_slider_play_and_class_dropdown():
    y = torch.arange(3).repeat_interleave(4)
    strips = {e: torch.rand(3, 5, 1, 8, 8) * 2 - 1 for e in (0, 1, 2)}
    gallery = SampleGallery(_snapshots(), labels=y, classes=["a", "b", "c"], interpolation=strips)
    assert gallery.current_epoch == 2 and gallery.ncols == 4
    row = gallery.widget.children[0]
    assert isinstance(row.children[0], widgets.Play) and gallery.play in row.children
    last = gallery.png
    assert last.startswith(PNG_MAGIC)
    gallery.epoch.value = 0
    assert gallery.png != last and gallery.current_epoch == 0
    # the play button drives the slider in the browser (a jslink; tests/test_browser_gallery.py plays it there)
    assert isinstance(gallery._link, widgets.widgets.widget_link.Link)  # jslink's widget, not traitlets' link
    assert gallery._link.source == (gallery.play, "value") and gallery._link.target == (gallery.epoch, "value")
    gallery.epoch.value = 1
    assert gallery.png == gallery.png_for(1)
    gallery.klass.value = 2
    assert gallery.current_class == 2 and gallery.png == gallery.png_for(1, 2)
    assert gallery.png_for(1, 2) != gallery.png_for(1, None)
    assert [label for label, _ in gallery.klass.options] == ["all classes", "class a", "class b", "class c"]
    bundle = gallery._repr_mimebundle_()
    assert {"image/png", WIDGET_VIEW_MIMETYPE} <= set(bundle)


def test_gallery_accepts_pairs_unconditional_and_sparse_epochs():
    gallery = SampleGallery([(0, torch.zeros(9, 1, 28, 28)), (500, torch.ones(9, 1, 28, 28)),
                             (250, torch.zeros(9, 1, 28, 28) - 0.5)], epoch_name="step",
                            interpolation=torch.zeros(7, 1, 28, 28))
    assert gallery.epochs == [0, 250, 500] and gallery.klass is None and gallery.ncols == 3
    assert gallery.epoch.min == 0 and gallery.epoch.max == 2  # sparse steps: the slider runs over their indices
    gallery.select(epoch=250)
    assert gallery.current_epoch == 250 and "step=250" in repr(gallery)
    with pytest.raises(ValueError, match="no snapshot of step 300"):
        gallery.select(epoch=300)


@pytest.mark.parametrize("kwargs, match", [
    (dict(snapshots={}), "snapshots is empty"),
    (dict(snapshots={0: torch.zeros(4, 8, 8, 3)}), r"images \[N, 1, H, W\]"),
    (dict(snapshots={0: torch.zeros(4, 1, 8, 8), 1: torch.zeros(5, 1, 8, 8)}), "same latents"),
    (dict(snapshots={0: torch.zeros(4, 1, 8, 8)}, labels=torch.zeros(3)), r"labels must be \[N\] = \[4\]"),
    (dict(snapshots={0: torch.zeros(4, 1, 8, 8)}, classes=["a"]), "need labels"),
    (dict(snapshots={0: torch.zeros(4, 1, 8, 8), 1: torch.zeros(4, 1, 8, 8)},
          interpolation={0: torch.zeros(3, 1, 8, 8)}), r"no strip for the epochs \[1\]"),
    (dict(snapshots={0: [1, 2]}), "must be a tensor of images"),
])
def test_gallery_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SampleGallery(**kwargs)


def test_image_grid_layout():
    grid = image_grid(torch.full((5, 1, 4, 4), 1.0), ncols=3)
    assert grid.shape == (2 * 5 - 1, 3 * 5 - 1) and grid.max() == 1.0
    assert math.isclose(float(image_grid(-torch.ones(1, 1, 2, 2), 1).max()), 0.0)
