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
