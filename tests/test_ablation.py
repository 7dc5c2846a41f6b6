import copy

import pytest
import torch

from amla.transformers.ablation import heads_removed
from amla.transformers.gpt import GPT, GPTConfig
from amla.transformers.nn import MultiHeadAttention


def test_removing_a_head_equals_zeroing_its_columns_of_the_output_projection():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    reference = copy.deepcopy(mha)
    with torch.no_grad():
        reference.out_proj.weight[:, 4:8] = 0.0  # head 1 owns features 4..7 of the merged heads
        reference.out_proj.weight[:, 12:16] = 0.0  # head 3 owns 12..15
    with heads_removed(mha.out_proj, [1, 3], n_heads=4):
        removed, weights = mha(x)
    expected, expected_weights = reference(x)
    torch.testing.assert_close(removed, expected)
    torch.testing.assert_close(weights, expected_weights)  # where the heads read is unchanged; what they write is gone
    torch.testing.assert_close(mha(x)[0], copy.deepcopy(mha)(x)[0])  # the hook is gone after the block
    assert not torch.allclose(mha(x)[0], removed)


def test_all_heads_of_a_gpt_layer_removed_equals_a_zero_attention_output():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)).eval()
    idx = torch.randint(0, 11, (3, 8))
    silent = copy.deepcopy(model)
    with torch.no_grad():
        silent.blocks[1].attn.proj.weight.zero_()
    with heads_removed(model.blocks[1].attn.proj, range(2), n_heads=2):
        torch.testing.assert_close(model(idx), silent(idx))


def test_hook_removed_after_an_error_and_gradients_still_flow():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(1, 3, 8, requires_grad=True)
    before = mha(x)[0].detach()
    with pytest.raises(RuntimeError, match="boom"), heads_removed(mha.out_proj, [0], n_heads=2):
        raise RuntimeError("boom")
    torch.testing.assert_close(mha(x)[0].detach(), before)
    with heads_removed(mha.out_proj, [0], n_heads=2):
        mha(x)[0].sum().backward()
    assert x.grad is not None and mha.out_proj.weight.grad[:, :4].abs().sum() == 0  # head 0 wrote nothing


def test_bad_arguments_name_what_is_wrong():
    proj = torch.nn.Linear(12, 12)
    with pytest.raises(ValueError, match=r"heads must be ints in \[0, 4\), got \[4\]"):
        with heads_removed(proj, [4], n_heads=4):
            pass
    with pytest.raises(ValueError, match="must be a positive int dividing the projection's 12 input features"):
        with heads_removed(proj, [0], n_heads=5):
            pass
    with pytest.raises(TypeError, match="expected the output projection"):
        with heads_removed(torch.nn.LayerNorm(4), [0], n_heads=1):
            pass
