"""The self-checks of Hour 06's model: Exercise 6.2 (causal self-attention and the GPT block) and 6.4 (one decode
step with the KV cache). Every class is covered for both: correct answers written differently pass, the not-done
template gives the reference, each known mistake is named, changed inputs, wrong types and dtypes, bugs that show
only on an edge case, wrong gradients with right values, and a diagnosis by property where no known mistake fits.
A student's functions then run the course GPT: the model built with ``block_forward=`` and the cached generation
with ``kv_attend_fn=`` give the package's logits and tokens."""

import math

import pytest
import torch
import torch.nn.functional as F

from amla.checks import gpt as G
from amla.checks.gpt.gpt_block import _BLOCK_MISTAKES, _BLOCK_SPEC
from amla.checks.gpt.kv_attend import _KV_MISTAKES, _KV_SPEC
from amla.transformers.gpt import GPT, GPTConfig, KVCache, generate, gpt_block, kv_attend
from amla.transformers.nn import merge_heads, split_heads
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 6.2 ------------------------------------------------------------------------------------------


def _block_sdpa(block, x):  # the solution of the notebook
    B, T, C = x.shape
    q, k, v = block.attn.qkv(block.ln1(x)).split(C, dim=2)
    q, k, v = (split_heads(t, block.attn.n_head) for t in (q, k, v))
    y = merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))
    x = x + block.attn.resid_drop(block.attn.proj(y))
    return x + block.mlp(block.ln2(x))


def _block_explicit(block, x):  # Hour 02's way: scores, a causal mask, softmax; heads by view and transpose
    B, T, C = x.shape
    H = block.attn.n_head
    qkv = block.attn.qkv(block.ln1(x)).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(C // H)
    future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    y = (weights @ v).transpose(1, 2).contiguous().view(B, T, C)
    h = x + F.dropout(block.attn.proj(y), block.attn.resid_drop.p, block.training)
    return h + block.mlp(block.ln2(h))


def _block_chunked(block, x):  # q, k, v by chunk, heads by einops-like reshape, the mask as a tril of ones
    B, T, C = x.shape
    H = block.attn.n_head
    q, k, v = block.attn.qkv(block.ln1(x)).chunk(3, dim=-1)
    q, k, v = (t.reshape(B, T, H, -1).permute(0, 2, 1, 3) for t in (q, k, v))
    allowed = torch.tril(torch.ones(T, T, device=x.device)).bool()
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    a = block.attn.resid_drop(block.attn.proj(y.permute(0, 2, 1, 3).reshape(B, T, C)))
    out = x + a
    out = out + block.mlp(block.ln2(out))
    return out


@pytest.mark.parametrize("fn", [_block_sdpa, _block_explicit, _block_chunked, gpt_block])
def test_gpt_block_accepts_correct_answers_written_differently(fn, capsys):
    passes(G.check_gpt_block, fn)
    out = capsys.readouterr().out
    assert "Exercise 6.2 (Causal self-attention and the GPT block) passed" in out
    assert "the rest of this hour uses your `gpt_block`" in out.lower()


def test_gpt_block_not_done_returns_the_reference(capsys):
    assert not_done(G.check_gpt_block, raise_not_done, capsys=capsys) is gpt_block


@pytest.mark.parametrize("mistake", _BLOCK_MISTAKES, ids=lambda m: m.description[:40])
def test_gpt_block_names_the_known_mistakes(mistake):
    fails(G.check_gpt_block, mistake.fn, match="it looks like " + _escaped(mistake.description))


def test_gpt_block_notices_a_changed_input_and_a_changed_block():
    def adds_in_place(block, x):
        x += block.attn.resid_drop(block.attn.proj(_attention(block, x)))
        return x + block.mlp(block.ln2(x))

    fails(G.check_gpt_block, adds_in_place, match=r"changed its argument `x` in place")

    def switches_to_eval(block, x):
        block.eval()
        return _block_sdpa(block, x)

    fails(G.check_gpt_block, switches_to_eval, match=r"changed its argument `block` in place")


def _attention(block, x):
    B, T, C = x.shape
    q, k, v = (split_heads(t, block.attn.n_head) for t in block.attn.qkv(block.ln1(x)).split(C, dim=2))
    return merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_gpt_block_refuses_the_wrong_type_and_dtype():
    fails(G.check_gpt_block, lambda block, x: (_block_sdpa(block, x), None), match=r"should be a tensor")
    fails(G.check_gpt_block, lambda block, x: _block_sdpa(block, x).double(), match=r"dtype torch.float64")
    fails(G.check_gpt_block, lambda block, x: _block_sdpa(block, x)[:, -1], match=r"shape")
    fails(G.check_gpt_block, lambda block, x: None, match=r"returned None")


def test_gpt_block_refuses_calling_the_course_block():
    fails(G.check_gpt_block, lambda block, x: block(x)[0], match=r"runs the course's code, not yours")
    fails(G.check_gpt_block, lambda block, x: x + block.attn(block.ln1(x))[0] + 0 * block.mlp(x),
          match=r"runs the course's code, not yours")


def test_gpt_block_catches_a_bug_on_an_edge_input_only():
    def breaks_on_one_position(block, x):
        if x.size(1) == 1:  # a made-up shortcut: "one position needs no attention"
            return x + block.mlp(block.ln2(x))
        return _block_sdpa(block, x)

    fails(G.check_gpt_block, breaks_on_one_position, match=r"with a single position \(T = 1\)")


def test_gpt_block_catches_a_wrong_gradient():
    def detached_mlp(block, x):
        x = x + block.attn.resid_drop(block.attn.proj(_attention(block, x)))
        return x + block.mlp(block.ln2(x)).detach()

    fails(G.check_gpt_block, detached_mlp, match=r"the values are right but the gradient with respect to `block\.")


def test_gpt_block_diagnoses_by_property_when_no_known_mistake_matches():
    def peeks_one_ahead(block, x):  # a made-up bug: the mask lets every position see the next one
        B, T, C = x.shape
        q, k, v = (split_heads(t, block.attn.n_head) for t in block.attn.qkv(block.ln1(x)).split(C, dim=2))
        allowed = torch.ones(T, T, dtype=torch.bool).tril(1)
        y = merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=allowed))
        x = x + block.attn.resid_drop(block.attn.proj(y))
        return x + block.mlp(block.ln2(x))

    fails(G.check_gpt_block, peeks_one_ahead, match=r"\(causality\) does not hold: changing the last position")

    def first_row_wrong(block, x):  # a made-up bug: the first position's attention output is doubled
        B, T, C = x.shape
        q, k, v = (split_heads(t, block.attn.n_head) for t in block.attn.qkv(block.ln1(x)).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = torch.cat([2 * y[:, :, :1], y[:, :, 1:]], dim=2)
        x = x + block.attn.resid_drop(block.attn.proj(merge_heads(y)))
        return x + block.mlp(block.ln2(x))

    fails(G.check_gpt_block, first_row_wrong, match=r"'the first position attends to itself alone' does not hold")


def test_a_students_block_runs_the_gpt_and_gives_the_packages_logits():
    config = GPTConfig(vocab_size=13, block_size=12, n_layer=2, n_head=2, n_embd=16)
    torch.manual_seed(0)
    package = GPT(config).eval()
    torch.manual_seed(0)
    students = GPT(config, block_forward=_block_explicit).eval()
    idx = torch.randint(0, 13, (3, 12))
    assert torch.allclose(students(idx), package(idx), atol=1e-5)
    loss = F.cross_entropy(students(idx).flatten(0, 1), idx.flatten())
    loss.backward()
    assert all(p.grad is not None for p in students.parameters())
    with pytest.raises(TypeError, match=r"block_forward must be a function like gpt_block\(block, x\) -> x"):
        GPT(config, block_forward=3)
    with pytest.raises(ValueError, match=r"block_forward must return x \(3, 12, 16\)"):
        GPT(config, block_forward=lambda block, x: x[:, :1])(idx)


# --- Exercise 6.4 ------------------------------------------------------------------------------------------


def _kv_explicit(q, k, v, k_cache, v_cache, pos):  # the solution of the notebook, written out
    k_cache[:, :, pos] = k[:, :, 0]
    v_cache[:, :, pos] = v[:, :, 0]
    keys, values = k_cache[:, :, : pos + 1], v_cache[:, :, : pos + 1]
    weights = (q @ keys.transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(dim=-1)
    return weights @ values


def _kv_copy(q, k, v, k_cache, v_cache, pos):  # copy_ into narrow views, einsum for the attention
    k_cache.narrow(2, pos, 1).copy_(k)
    v_cache.narrow(2, pos, 1).copy_(v)
    keys, values = k_cache.narrow(2, 0, pos + 1), v_cache.narrow(2, 0, pos + 1)
    scores = torch.einsum("bhqd,bhkd->bhqk", q, keys) * q.size(-1) ** -0.5
    return torch.einsum("bhqk,bhkd->bhqd", scores.softmax(-1), values)


@pytest.mark.parametrize("fn", [_kv_explicit, _kv_copy, kv_attend])
def test_kv_attend_accepts_correct_answers_written_differently(fn, capsys):
    passes(G.check_kv_attend, fn)
    assert "Exercise 6.4 (One decode step with the KV cache) passed" in capsys.readouterr().out


def test_kv_attend_not_done_returns_the_reference(capsys):
    assert not_done(G.check_kv_attend, raise_not_done, capsys=capsys) is kv_attend


@pytest.mark.parametrize("mistake", _KV_MISTAKES, ids=lambda m: m.description[:40])
def test_kv_attend_names_the_known_mistakes(mistake):
    fails(G.check_kv_attend, mistake.fn, match="it looks like " + _escaped(mistake.description))


def test_kv_attend_notices_a_changed_query():
    def scales_q_in_place(q, k, v, k_cache, v_cache, pos):
        q /= math.sqrt(q.size(-1))
        k_cache[:, :, pos : pos + 1] = k
        v_cache[:, :, pos : pos + 1] = v
        weights = (q @ k_cache[:, :, : pos + 1].transpose(-2, -1)).softmax(-1)
        return weights @ v_cache[:, :, : pos + 1]

    fails(G.check_kv_attend, scales_q_in_place, match=r"changed its argument `q` in place")


def test_kv_attend_refuses_the_wrong_type_and_shape():
    fails(G.check_kv_attend, lambda *a: kv_attend(*a)[:, :, 0], match=r"the output has shape")
    fails(G.check_kv_attend, lambda *a: kv_attend(*a).double(), match=r"the output has dtype torch.float64")
    fails(G.check_kv_attend, lambda *a: kv_attend(*a).tolist(), match=r"the output should be a tensor")


def test_kv_attend_catches_a_bug_on_an_edge_input_only():
    def forgets_the_last_slot(q, k, v, k_cache, v_cache, pos):  # a made-up bug: a full cache is "not written"
        if pos < k_cache.size(2) - 1:
            k_cache[:, :, pos : pos + 1] = k
            v_cache[:, :, pos : pos + 1] = v
            return F.scaled_dot_product_attention(q, k_cache[:, :, : pos + 1], v_cache[:, :, : pos + 1])
        keys, values = torch.cat([k_cache[:, :, :pos], k], 2), torch.cat([v_cache[:, :, :pos], v], 2)
        return F.scaled_dot_product_attention(q, keys, values)

    fails(G.check_kv_attend, forgets_the_last_slot, match=r"with the last free slot .*k_cache after the call")


def test_kv_attend_catches_a_wrong_gradient():
    def detached_values(q, k, v, k_cache, v_cache, pos):
        k_cache[:, :, pos : pos + 1] = k
        v_cache[:, :, pos : pos + 1] = v
        weights = (q @ k_cache[:, :, : pos + 1].transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(-1)
        return weights @ v_cache[:, :, : pos + 1].detach()

    fails(G.check_kv_attend, detached_values, match=r"the values are right but the gradient with respect to `v` is not")


def test_kv_attend_diagnoses_by_property_when_no_known_mistake_matches():
    def writes_everywhere_after(q, k, v, k_cache, v_cache, pos):  # a made-up bug: k fills every free slot
        k_cache[:, :, pos:] = k
        v_cache[:, :, pos : pos + 1] = v
        return F.scaled_dot_product_attention(q, k_cache[:, :, : pos + 1], v_cache[:, :, : pos + 1])

    fails(G.check_kv_attend, writes_everywhere_after, match=r"'only slot pos of the caches is written' does not hold")


def test_a_students_step_generates_the_packages_tokens():
    config = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16)
    torch.manual_seed(1)
    model = GPT(config)
    start = torch.randint(0, 13, (2, 3))
    want = generate(model, start, 20, temperature=0.0, use_cache=False)
    assert torch.equal(generate(model, start, 20, temperature=0.0, kv_attend_fn=_kv_copy), want)
    assert torch.equal(generate(model, start, 20, temperature=0.0, kv_attend_fn=kv_attend), want)
    with pytest.raises(TypeError, match=r"kv_attend_fn must be a function like kv_attend\(q, k, v, k_cache"):
        generate(model, start, 2, kv_attend_fn="kv")
    with pytest.raises(ValueError, match=r"attend_fn must return the attention output \(2, 2, 1, 8\)"):
        generate(model, start, 2, kv_attend_fn=lambda q, k, v, kc, vc, pos: q[..., :1])
    cache = KVCache.for_model(model, 1, kv_attend)
    cache.length = config.block_size
    with pytest.raises(ValueError, match=r"all are stored, there is no room for one more"):
        cache.attend(0, *(torch.zeros(1, 2, 1, 8) for _ in range(3)))


def test_every_property_holds_for_the_reference_on_every_case():
    for spec in (_BLOCK_SPEC, _KV_SPEC):
        invoke = spec.invoke
        for case in spec.cases():
            result = invoke(spec.reference, *case.args)

            def rerun(*args, spec=spec):
                return spec.invoke(spec.reference, *args)

            for prop in spec.properties:
                assert prop.test(case, result, rerun) is None, (prop.description, case.label)


def _escaped(text):
    import re

    return re.escape(text[:60])
