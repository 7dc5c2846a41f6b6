"""The self-check of Exercise 4.1: multi-head attention, the heads split and merged inside it (what it checks: the package docstring)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.transformer._common import _seeded
from amla.toolkit.errors import shape_text
from amla.transformers.attention import causal_mask, padding_mask
from amla.transformers.nn import MultiHeadAttention, merge_heads, mha_forward, split_heads

MHA = exercise(4, "4.1", "Multi-head attention", "mha_forward")


def _split_variant(kind: str = "right") -> Callable[[Tensor, int], Tensor]:
    def split(x: Tensor, n_heads: int) -> Tensor:
        b, t, d = x.shape
        dh = d // n_heads
        if kind == "view_bhtd":  # reshape straight to [B, H, T, d_head]
            return x.reshape(b, n_heads, t, dh)
        if kind == "no_transpose":
            return x.reshape(b, t, n_heads, dh)
        if kind == "interleaved":  # head h gets features h, h + H, h + 2H, ...
            return x.reshape(b, t, dh, n_heads).permute(0, 3, 1, 2)
        if kind == "heads_is_dhead":  # n_heads used as the size of a head
            return x.reshape(b, t, d // n_heads, n_heads).transpose(1, 2)
        return x.reshape(b, t, n_heads, dh).transpose(1, 2)

    return split


def _mha_variant(*, split: str = "right", merge: str = "right", scale: str = "d_head", out_proj: bool = True,
                 keys_from: str = "kv", v_proj: str = "v", mask: str = "scores",
                 axis: int = -1) -> Callable[..., tuple[Tensor, Tensor]]:
    """The multi-head attention forward pass with one typical bug switched on (the defaults are correct)."""

    def forward(mha: MultiHeadAttention, x: Tensor, kv: Tensor | None = None,
                mask_: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kv = x if kv is None else kv
        h, d = mha.n_heads, mha.d_model
        src = x if keys_from == "x" else kv
        q = _split_variant(split)(mha.q_proj(x), h)
        k = _split_variant(split)(mha.k_proj(src), h)
        v = _split_variant(split)((mha.k_proj if v_proj == "k" else mha.v_proj)(src), h)
        factor = {"d_head": 1 / math.sqrt(d // h), "d_model": 1 / math.sqrt(d), "none": 1.0,
                  "d_head_no_sqrt": 1 / (d // h)}[scale]
        scores = q @ k.transpose(-2, -1) * factor
        if mask_ is not None and mask == "scores":
            scores = scores.masked_fill(~mask_, -math.inf)
        elif mask_ is not None and mask == "inverted":
            scores = scores.masked_fill(mask_, -math.inf)
        weights = scores.softmax(dim=axis)
        heads = weights @ v
        b, _, t, _ = heads.shape
        merged = heads.reshape(b, t, d) if merge == "no_transpose" else merge_heads(heads)
        return (mha.out_proj(merged) if out_proj else merged), weights

    return forward


_MHA_MISTAKES = [
    Mistake("the heads are split by reshaping straight to [B, H, T, d_head] (wrong reshape/transpose order): "
            "view as [B, T, H, d_head], then .transpose(1, 2).", _mha_variant(split="view_bhtd")),
    Mistake("the heads are split as (d_head, H) instead of (H, d_head): each head must own a contiguous block "
            "of d_head features.", _mha_variant(split="interleaved")),
    Mistake("the heads are merged by reshaping [B, H, T, d_head] straight to [B, T, d_model]: move the head "
            "axis back first, heads.transpose(1, 2).reshape(B, T, d_model) (merge_heads).",
            _mha_variant(merge="no_transpose")),
    Mistake("the output projection is missing: the merged heads must go through mha.out_proj, which mixes "
            "what the heads found.", _mha_variant(out_proj=False)),
    Mistake("the scores are scaled by 1/sqrt(d_model) instead of 1/sqrt(d_head): each head's dot products "
            "run over d_head = d_model / H features.", _mha_variant(scale="d_model")),
    Mistake("the scores are divided by d_head instead of sqrt(d_head).", _mha_variant(scale="d_head_no_sqrt")),
    Mistake("the scores are not scaled: multiply q k^T by 1/sqrt(d_head).", _mha_variant(scale="none")),
    Mistake("the keys and values are computed from x instead of kv: in cross-attention the queries come from "
            "x and the keys and values from kv (kv = x only when kv is None).", _mha_variant(keys_from="x")),
    Mistake("the values are computed with k_proj: use mha.v_proj for the values.", _mha_variant(v_proj="k")),
    Mistake("the mask is ignored: fill the scores with -inf where the mask is False, before the softmax.",
            _mha_variant(mask="ignored")),
    Mistake("the mask is used the wrong way round: True means 'may attend', so fill the scores where the mask is "
            "False: scores.masked_fill(~mask, float('-inf')).", _mha_variant(mask="inverted")),
    Mistake("the softmax is taken over the queries (dim=-2) instead of over the keys (dim=-1): each query's "
            "weights must sum to 1 over the keys.", _mha_variant(axis=-2)),
]


def _mha(d_model: int, n_heads: int, seed: int, dtype: torch.dtype = torch.float32) -> MultiHeadAttention:
    return _seeded(seed, lambda: MultiHeadAttention(d_model, n_heads).eval().to(dtype))


def _mha_cases() -> list[Case]:
    """Self- and cross-attention with d_model = 12, H = 3 (d_head = 4), masks [B, 1, 1, Tk] or [Tq, Tk]."""
    g = torch.Generator().manual_seed(42)

    def x(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    empty = causal_mask(4).clone()
    empty[2] = False  # query 2 may attend to no key
    live = torch.tensor([True, True, False, True])
    rows: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("self-attention and a padding mask (lengths 5 and 3)",
         (_mha(12, 3, 1), x(2, 5, 12), None, padding_mask([5, 3], 5)[:, None]), {}),
        ("cross-attention, Tq = 5 and Tk = 7, and a padding mask (lengths 7 and 4)",
         (_mha(12, 3, 2), x(2, 5, 12), x(2, 7, 12), padding_mask([7, 4], 7)[:, None]), {}),
        ("cross-attention, Tq = Tk = 5, mask=None",
         (_mha(12, 3, 3), x(2, 5, 12), x(2, 5, 12), None), {}),
        ("self-attention and a causal mask",
         (_mha(12, 3, 4), x(2, 5, 12), None, causal_mask(5)), {}),
        ("a single query (Tq = 1), cross-attention to Tk = 6 keys with a padding mask (lengths 6 and 2)",
         (_mha(12, 3, 5), x(2, 1, 12), x(2, 6, 12), padding_mask([6, 2], 6)[:, None]), {}),
        ("a single key (Tk = 1), cross-attention from Tq = 4 queries, mask=None",
         (_mha(12, 3, 6), x(2, 4, 12), x(2, 1, 12), None), {}),
        ("a batch of one, self-attention, d_model = 8 and 4 heads (d_head = 2), and a causal mask",
         (_mha(8, 4, 7), x(1, 6, 8), None, causal_mask(6)), {}),
        ("a mask where query 2 may attend to no key (self-attention)",
         (_mha(12, 3, 8), x(2, 4, 12), None, empty),
         dict(grad=False, view=lambda r: (r[0][:, live], r[1][:, :, live]))),
        ("one head (H = 1, d_head = d_model = 8), self-attention and a causal mask",
         (_mha(8, 1, 11), x(2, 5, 8), None, causal_mask(5)), {}),
        ("heads of size 1 (d_model = H = 6), self-attention, mask=None",
         (_mha(6, 6, 12), x(2, 5, 6), None, None), {}),
        ("a float64 module and inputs, self-attention and a causal mask",
         (_mha(12, 3, 9, torch.float64), x(2, 5, 12, dtype=torch.float64), None, causal_mask(5)), {}),
    ]
    cases = []
    for label, args, extra in rows:
        shapes = f"x {shape_text(args[1])}" + (f", kv {shape_text(args[2])}" if args[2] is not None else "") + \
                 (f", mask {shape_text(args[3])}" if args[3] is not None else "")
        cases.append(Case(f"{label} ({shapes})", args, **extra))
    args = (_mha(12, 3, 10), x(2, 5, 12))
    cases.append(Case(f"no kv and no mask argument at all: mha_forward(mha, x) (x {shape_text(args[1])})", args))
    return cases


def _mha_parts(case: Case) -> tuple[MultiHeadAttention, Tensor, Tensor | None, Tensor | None]:
    mha, x = case.args[:2]
    kv = case.args[2] if len(case.args) > 2 else None
    mask = case.args[3] if len(case.args) > 3 else None
    return mha, x, kv, mask


def _allowed(case: Case) -> Tensor:
    """The mask of a case as bool [B, H, Tq, Tk] (all True without a mask)."""
    mha, x, kv, mask = _mha_parts(case)
    shape = (x.shape[0], mha.n_heads, x.shape[1], (x if kv is None else kv).shape[1])
    return torch.ones(shape, dtype=torch.bool) if mask is None else mask.expand(shape)


def _mha_weights_sum_to_one(case: Case, result: Any, rerun: Any) -> str | None:
    allowed = _allowed(case)
    sums = result[1].detach().double().sum(-1)[allowed.any(-1)]
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        return f"the row sums range from {sums.min().item():.4g} to {sums.max().item():.4g}"
    return None


def _mha_masked_keys_get_zero(case: Case, result: Any, rerun: Any) -> str | None:
    allowed = _allowed(case)
    blocked = ~allowed & allowed.any(-1, keepdim=True)
    weights = result[1].detach()
    if bool(blocked.any()) and bool((weights[blocked] != 0).any()):
        return f"a blocked key got weight {weights[blocked].abs().max().item():.3g}; it must get exactly 0"
    return None


def _mha_out_from_weights(case: Case, result: Any, rerun: Any) -> str | None:
    mha, x, kv, _ = _mha_parts(case)
    out, weights = result
    with torch.no_grad():
        v = split_heads(mha.v_proj(x if kv is None else kv), mha.n_heads)
        expected = mha.out_proj(merge_heads(weights.detach() @ v))
    live = _allowed(case).any(-1).all(1)  # [B, Tq]: queries with a key in every head
    if not torch.allclose(out.detach()[live].double(), expected[live].double(), atol=1e-4):
        return "the output is not out_proj(merge_heads(weights @ v)) for the weights returned"
    return None


def _mha_permutation_equivariant(case: Case, result: Any, rerun: Any) -> str | None:
    mha, x, kv, _ = _mha_parts(case)
    allowed = _allowed(case)
    if kv is not None or not bool(allowed.any(-1).all()) or x.shape[1] < 2:
        return None  # self-attention where every query sees a key
    perm = torch.arange(x.shape[1]).flip(0)
    out2, w2 = rerun(mha, x[:, perm], None, allowed[:, :, perm][..., perm].contiguous())
    out, w = result
    if not (torch.allclose(out2.detach(), out.detach()[:, perm], atol=1e-4)
            and torch.allclose(w2.detach(), w.detach()[:, :, perm][..., perm], atol=1e-4)):
        return ("listing the positions of x in reverse order (and the mask's rows and columns with them) did not "
                "simply reverse the output: self-attention must not depend on where a token sits")
    return None


def _mha_causal(case: Case, result: Any, rerun: Any) -> str | None:
    mha, x, kv, mask = _mha_parts(case)
    allowed = _allowed(case)
    t = x.shape[1]
    if kv is not None or mask is None or t < 2 or bool((allowed & ~torch.ones(t, t, dtype=torch.bool).tril()).any()):
        return None  # self-attention with a causal mask only
    changed = x.clone()
    changed[:, -1] += 3.0
    out2 = rerun(mha, changed, None, mask)[0]
    live = allowed.any(-1).all(1)[:, :-1]
    if not torch.allclose(out2.detach()[:, :-1][live], result[0].detach()[:, :-1][live], atol=1e-4):
        return "changing the last position of x changed the outputs of earlier positions, which the mask hides it from"
    return None


_MHA_PROPERTIES = [
    Property("'each query's weights sum to 1 over the keys'", _mha_weights_sum_to_one),
    Property("'a blocked key gets weight exactly 0'", _mha_masked_keys_get_zero),
    Property("'out = out_proj(merge_heads(weights @ v))'", _mha_out_from_weights),
    Property("'self-attention is permutation-equivariant'", _mha_permutation_equivariant),
    Property("'with a causal mask, a later position does not change earlier outputs'", _mha_causal),
]


def _mha_own_projections(source: str) -> str | None:
    if re.search(r"\bmha\s*\(|\bmha\.forward\s*\(|MultiheadAttention|multi_head_attention_forward", source):
        return ("compute it yourself with mha.q_proj, mha.k_proj, mha.v_proj and mha.out_proj: calling the module "
                "(mha(...)) or a library multi-head attention runs the course's code, not yours.")
    return None


_MHA_SPEC = Spec(reference=mha_forward, cases=_mha_cases, mistakes=_MHA_MISTAKES, properties=_MHA_PROPERTIES,
                 differentiable=True, items=("out", "weights"), arg_names=("mha", "x", "kv", "mask"),
                 source_rules=[_mha_own_projections])


def check_mha_forward(mha_forward_fn: Callable[..., tuple[Tensor, Tensor]]) -> Callable[..., tuple[Tensor, Tensor]]:
    """Exercise 4.1: ``mha_forward(mha, x, kv=None, mask=None) -> (out [B, Tq, d_model], weights [B, H, Tq, Tk])``;
    returns the function the rest of the hour uses (yours once it passes)."""
    return check(MHA, _MHA_SPEC, (mha_forward_fn,), (mha_forward,),
                 "out, weights and gradients (x, kv, the four projections) match on {cases} cases (self- and "
                 "cross-attention, padding and causal masks, one query, one key, a batch of one, one head, heads of "
                 "size 1, a query with no key, float64, no mask argument)")
