import torch

from amla.transformers.vit import SmallCNN, ViT, attention_rollout, patchify, PatchEmbedding, position_similarity


def test_patchify_equals_strided_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    emb = PatchEmbedding(3, 4, 5)
    conv = emb.as_conv()
    ref = conv(x).flatten(2).transpose(1, 2)
    assert torch.allclose(emb(x), ref, atol=1e-5)
    assert patchify(x, 4).shape == (2, 4, 48)


def test_vit_shapes_and_grad():
    m = ViT(8, 4, 10, d_model=16, n_layers=2, n_heads=2, d_ff=32)
    logits, ws = m(torch.randn(3, 1, 8, 8), need_weights=True)
    assert logits.shape == (3, 10) and len(ws) == 2 and ws[0].shape == (3, 2, 5, 5)
    logits.sum().backward()
    assert m.embed.proj.weight.grad is not None and m.pos.grad.abs().sum() > 0
    assert position_similarity(m).shape == (4, 4)


def test_rollout_properties():
    a = torch.softmax(torch.randn(2, 3, 5, 5), -1)
    r = attention_rollout([a, a])
    assert torch.allclose(r.sum(-1), torch.ones(2, 5), atol=1e-6)
    eye = torch.eye(5).expand(2, 3, 5, 5)
    assert torch.allclose(attention_rollout([eye, eye]), torch.eye(5).expand(2, 5, 5))


def test_cnn_shapes():
    assert SmallCNN(10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_small_cnn_is_of_the_vits_order_of_size():
    cnn = SmallCNN(10, width=32)
    assert 80_000 < sum(p.numel() for p in cnn.parameters()) < 110_000


def test_random_shift_moves_whole_images_and_fills_the_border():
    from amla.transformers.vit import random_shift

    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4).repeat(64, 2, 1, 1)
    out = random_shift(x, 1, fill=-1.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out[:, 0], out[:, 1])  # channels move together
    seen = set()
    for img in out[:, 0]:
        found = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                 if torch.equal(img, _shifted(x[0, 0], dy, dx))]
        assert len(found) == 1
        seen.add(found[0])
    assert len(seen) == 9  # every offset in [-1, 1]^2 occurs in 64 draws
    assert torch.equal(random_shift(x, 0), x)


def _shifted(img, dy, dx):
    out = torch.full_like(img, -1.0)
    h, w = img.shape
    out[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = img[max(0, dy):h - max(0, -dy),
                                                                      max(0, dx):w - max(0, -dx)]
    return out


def test_image_split_digits_and_mnist(monkeypatch):
    import pytest

    from amla.toolkit import data
    from amla.transformers.vit import image_split

    d = image_split("digits8x8", test_fraction=0.25)
    assert d.x_train.shape[1:] == (1, 8, 8) and len(d.x_train) + len(d.x_test) == 1797
    assert d.x_train.min() == -1.0 and d.x_train.max() <= 1.0 and d.x_train.dtype == torch.float32
    assert set(d.y_test.tolist()) == set(range(10))
    if not data.REMOTE_FILES["mnist-test-images"].path().exists():
        pytest.skip("MNIST's test set is not in AMLA_DATA; CI sets AMLA_DATA=../shared/data")
    m = image_split("mnist", test_fraction=0.2, download=False)
    if not data.REMOTE_FILES["mnist-train-images"].path().exists():
        assert (len(m.x_train), len(m.x_test)) == (8000, 2000) and "not here" in m.note
    assert m.x_train.shape[1:] == (1, 28, 28)
    with pytest.raises(ValueError, match="source must be"):
        image_split("cifar")


def test_rollout_viewer_draws_every_mode_and_refuses_bad_input():
    import pytest

    from amla.views import RolloutViewer

    m = ViT(8, 2, 10, d_model=16, n_layers=2, n_heads=2, d_ff=32)
    x = torch.randn(3, 1, 8, 8)
    logits, ws = m(x, need_weights=True)
    view = RolloutViewer(x, [w.detach() for w in ws], logits.softmax(-1).detach(), torch.tensor([1, 2, 3]),
                         attention_rollout)
    pngs = {view.png_for(i, k, mode) for i in range(2) for k in (1, 2) for mode in ("rollout", "raw attention")}
    assert len(pngs) == 8 and view.png.startswith(b"\x89PNG")
    # one layer: the rollout is (A + I) normalised, so its class-token row differs from the raw row
    assert not (view.maps["rollout"][0] == view.maps["raw attention"][0]).all()
    with pytest.raises(ValueError, match="layers must be in"):
        view.select(layers=3)
    with pytest.raises(ValueError, match="attentions must be"):
        RolloutViewer(x, [], logits, torch.tensor([1, 2, 3]), attention_rollout)


def test_digits_read_without_sklearn_equal_load_digits():
    from sklearn.datasets import load_digits

    from amla.toolkit.data import digits8x8
    from amla.transformers.vit import stratified_split

    images, labels = digits8x8()
    bunch = load_digits()
    assert (images == bunch.images / 16.0).all() and (labels == bunch.target).all()
    train, test = stratified_split(labels, 0.25, seed=0)
    assert len(set(train) & set(test)) == 0 and len(train) + len(test) == len(labels)
    for c in range(10):  # every class split 75 / 25 (rounded)
        assert abs((labels[test] == c).sum() - 0.25 * (labels == c).sum()) <= 0.5
