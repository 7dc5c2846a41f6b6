import math

import pytest
import torch
import torch.nn.functional as F

from amla.transformers.gpt import GPT, GPTConfig, KVCache, flops_per_token, generate, sample_next, top_p_probs


def _model(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16, **kw)).eval()


def test_shapes_weight_tying_and_param_count():
    m = _model()
    x = torch.randint(0, 11, (3, 16))
    assert m(x).shape == (3, 16, 11)
    assert m.lm_head.weight is m.tok_emb.weight
    assert m.num_params() == sum(p.numel() for p in m.parameters())
    assert m.num_params(embeddings=False) == m.num_params() - 16 * 16
    with pytest.raises(ValueError, match="exceed block_size=16"):
        m(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids of shape \[B, T\]"):
        m(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(vocab_size=5, n_embd=10, n_head=4)


def test_model_is_causal():
    m = _model()
    x = torch.randint(0, 11, (2, 12))
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 1) % 11  # change the future only
    torch.testing.assert_close(m(x)[:, :7], m(y)[:, :7])


def test_explicit_attention_path_equals_fused_and_rows_sum_to_one():
    m = _model()
    x = torch.randint(0, 11, (2, 10))
    logits, weights = m.forward_with_attention(x)
    torch.testing.assert_close(logits, m(x), atol=1e-5, rtol=1e-4)
    assert weights.shape == (2, 2, 2, 10, 10)  # [layers, B, heads, T, T]
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 2, 10))
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_attention_matches_torch_multihead_attention():
    m = _model()
    attn, C = m.blocks[0].attn, 16
    mha = torch.nn.MultiheadAttention(C, 2, bias=False, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight)
        mha.out_proj.weight.copy_(attn.proj.weight)
    x = torch.randn(2, 9, C)
    mask = torch.ones(9, 9, dtype=torch.bool).triu(1)
    expected, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
    torch.testing.assert_close(attn(x)[0], expected, atol=1e-5, rtol=1e-4)


def test_kv_cache_logits_equal_full_forward_including_chunked_prefill():
    m = _model()
    x = torch.randint(0, 11, (2, 14))
    full = m(x)
    cache = KVCache.for_model(m, 2)
    parts = [m(x[:, :5], cache), m(x[:, 5:9], cache)] + [m(x[:, t:t + 1], cache) for t in range(9, 14)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-4)
    assert cache.length == 14
    with pytest.raises(ValueError, match="exceed block_size"):
        m(x[:, :3], cache)


def test_generation_with_cache_equals_without():
    m = _model()
    prompt = torch.randint(0, 11, (3, 4))
    new = 16 - 4 + 1  # the longest run whose context still fits in block_size
    fast = generate(m, prompt, new, temperature=0.0, use_cache=True)
    slow = generate(m, prompt, new, temperature=0.0, use_cache=False)
    assert fast.shape == (3, 4 + new) and torch.equal(fast, slow)
    sampled = [generate(m, prompt, new, top_k=5, top_p=0.9, use_cache=c, generator=torch.Generator().manual_seed(1))
               for c in (True, False)]
    assert torch.equal(*sampled)
    longer = generate(m, prompt, 40, temperature=0.0)  # past block_size the cache restarts from half a block
    assert longer.shape == (3, 44) and torch.equal(longer[:, :4 + new], fast)


def test_generate_restores_training_mode_and_dropout_is_off_in_eval():
    m = _model(dropout=0.5).train()
    out = generate(m, torch.zeros(1, 1, dtype=torch.long), 3, temperature=0.0)
    assert m.training and out.shape == (1, 4)
    m.eval()
    x = torch.randint(0, 11, (1, 8))
    torch.testing.assert_close(m(x), m(x))


def test_generated_tokens_can_be_trained_on():
    """generate runs under inference_mode; what it returns must still be an ordinary tensor for autograd."""
    m = _model().train()
    out = generate(m, torch.zeros(2, 1, dtype=torch.long), 5)
    assert not out.is_inference()
    F.cross_entropy(m(out[:, :-1]).flatten(0, 1), out[:, 1:].flatten()).backward()
    assert m.tok_emb.weight.grad is not None


def test_sampling():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    assert sample_next(logits, temperature=0.0).item() == 1
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_next(logits.expand(500, 4), top_k=2, generator=g) for _ in range(2)])
    assert set(draws.flatten().tolist()) == {1, 3}
    probs = top_p_probs(logits, 0.5)
    assert probs[0, 0] == 0 and probs[0, 2] == 0 and probs[0, 1] == 1.0  # token 1 alone has 66 % > 0.5
    probs = top_p_probs(logits, 0.9)
    full = logits.softmax(-1)
    torch.testing.assert_close(probs, torch.where(torch.tensor([False, True, True, True]), full, 0) / full[0, 1:].sum())
    with pytest.raises(ValueError, match="top_p must be in"):
        top_p_probs(logits, 0.0)


def test_training_lowers_the_loss_on_a_repeating_pattern():
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2, n_embd=16))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    x = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]]).repeat(4, 1)
    for _ in range(40):
        loss = F.cross_entropy(m(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 < math.log(5)


def test_flops_per_token():
    c = GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384)
    assert flops_per_token(c, 10_000_000) == 6e7 + 12 * 6 * 256 * 384


# --- the hook: sample_next and generate draw from the nucleus that top_p_fn computes -------------------------


def _student_top_p(logits, p, temperature=1.0):  # written differently: mask the logits, softmax again
    logits = logits / temperature
    s, order = logits.sort(dim=-1, descending=True)
    sorted_probs = s.softmax(-1)
    drop = sorted_probs.cumsum(-1) - sorted_probs >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf")).softmax(-1)


def test_sample_next_with_the_package_top_p_through_the_hook_draws_the_same_tokens():
    logits = torch.randn(64, 11, generator=torch.Generator().manual_seed(0)) * 2
    for kwargs in [dict(top_p=0.9), dict(top_p=0.5, temperature=0.7), dict(top_p=0.8, top_k=4), dict(top_p=1.0)]:
        draws = [sample_next(logits, generator=torch.Generator().manual_seed(1), top_p_fn=fn, **kwargs)
                 for fn in (None, top_p_probs, _student_top_p)]
        assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2]), kwargs


def test_generate_with_the_package_top_p_through_the_hook_gives_the_same_tokens():
    m = _model()
    prompt = torch.randint(0, 11, (2, 3), generator=torch.Generator().manual_seed(2))
    outs = [generate(m, prompt, 10, temperature=0.8, top_p=0.9, generator=torch.Generator().manual_seed(3),
                     use_cache=cache, top_p_fn=fn)
            for cache in (True, False) for fn in (None, top_p_probs, _student_top_p)]
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_the_top_p_hook_is_used_only_for_top_p_and_gets_tempered_logits():
    seen = []

    def spy(logits, p, temperature=1.0):
        seen.append((logits.clone(), p, temperature))
        return top_p_probs(logits, p, temperature)

    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    sample_next(logits, temperature=0.5, top_p_fn=spy)  # no top_p: a plain softmax
    sample_next(logits, temperature=0.0, top_p=0.9, top_p_fn=spy)  # greedy
    assert seen == []
    sample_next(logits, temperature=0.5, top_p=0.9, top_p_fn=spy)
    (got, p, temperature), = seen
    assert torch.equal(got, logits / 0.5) and p == 0.9 and temperature == 1.0
    generate(_model(), torch.zeros(1, 1, dtype=torch.long), 4, top_p=0.9, top_p_fn=spy)
    assert len(seen) == 1 + 4


def test_the_top_p_hook_bad_input_gives_one_line_errors():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    with pytest.raises(TypeError, match=r"^sample_next: top_p_fn must be a function like top_p_probs\(logits, p, "
                                        r"temperature\) -> probs or None, got float$"):
        sample_next(logits, top_p=0.9, top_p_fn=0.9)
    with pytest.raises(TypeError, match=r"^generate: top_p_fn must be a function"):
        generate(_model(), torch.zeros(1, 1, dtype=torch.long), 2, top_p=0.9, top_p_fn="top_p_probs")
    with pytest.raises(ValueError, match=r"^top_p must be in \(0, 1\], got 1.5$"):
        sample_next(logits, top_p=1.5, top_p_fn=_student_top_p)
    with pytest.raises(ValueError, match=r"^sample_next: top_p_fn must return probabilities of shape \(1, 4\), got "
                                         r"shape \(4,\)$"):
        sample_next(logits, top_p=0.9, top_p_fn=lambda logits, p, t=1.0: top_p_probs(logits, p, t)[0])
    with pytest.raises(ValueError, match=r"^sample_next: top_p_fn must return probabilities of shape \(1, 4\), got list$"):
        sample_next(logits, top_p=0.9, top_p_fn=lambda logits, p, t=1.0: top_p_probs(logits, p, t).tolist())
