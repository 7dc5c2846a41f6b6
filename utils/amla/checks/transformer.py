"""Self-checks of Hour 04 (multi-head attention and the Transformer block), on the engine.

Splitting the heads (4.1), the multi-head attention forward pass (4.2), the sinusoidal table (4.3) and the
residual block with pre-norm and post-norm (4.4). The references are those of ``amla.transformers.nn``
(``split_heads``, ``mha_forward``, ``sinusoidal_table``, ``block_forward``), the same functions the hour's model
runs while an exercise is not done.

The cases are chosen so that the typical mistakes give different answers (``T != H != d_head``,
``d_model != d_head``, cross-attention with ``Tq != Tk``, asymmetric padding, LayerNorms with random weights),
and include the edge inputs: one position, a batch of one, one head and heads of size 1 (4.1); one query, one
key, a query that may attend to nothing (any answer is accepted for that row), float64 modules, no mask argument
(4.2); one position, one pair of features, a long table (4.3); one position, a batch of one, no mask argument,
float64 blocks (4.4).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.attention import causal_mask, padding_mask
from amla.transformers.nn import (
    MultiHeadAttention,
    TransformerBlock,
    block_forward,
    merge_heads,
    mha_forward,
    sinusoidal_table,
    split_heads,
)

__all__ = ["check_mha_forward", "check_sinusoidal", "check_split_heads", "check_transformer_block"]

SPLIT = exercise(4, "4.1", "Split the heads", "split_heads")
MHA = exercise(4, "4.2", "Multi-head attention", "mha_forward")
SINUSOIDAL = exercise(4, "4.3", "The sinusoidal table", "sinusoidal_encoding")
BLOCK = exercise(4, "4.4", "The residual block, pre-norm and post-norm", "block_forward")


def _shape(t: Tensor | None) -> str:
    return "None" if t is None else str(tuple(t.shape))


def _seeded(seed: int, make: Callable[[], Any]) -> Any:
    """``make()`` with the global generator seeded, without moving the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


# --- Exercise 4.1: splitting the heads -------------------------------------------------------------


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


_SPLIT_MISTAKES = [
    Mistake("x was reshaped straight to [B, H, T, d_head]: the shape is right but each 'head' now holds a block "
            "of whole positions. View the last axis as (H, d_head) first, x.view(B, T, H, d_head), then swap T "
            "and H with .transpose(1, 2).", _split_variant("view_bhtd")),
    Mistake("the head axis was not moved in front of the positions: x.view(B, T, H, d_head) is [B, T, H, d_head]; "
            "add .transpose(1, 2) to get [B, H, T, d_head].", _split_variant("no_transpose")),
    Mistake("the features were split as (d_head, H) instead of (H, d_head), so head h gets the strided features "
            "h, h + H, h + 2H, ...; each head must own a contiguous block of d_head features: "
            "x.view(B, T, H, d_head).", _split_variant("interleaved")),
    Mistake("the number of heads was used as the size of a head: x.view(B, T, d // H, H) gives [B, d_head, T, H] "
            "after the transpose; view the last axis as (H, d_head) = (n_heads, d // n_heads).",
            _split_variant("heads_is_dhead")),
]


def _split_cases() -> list[Case]:
    g = torch.Generator().manual_seed(41)

    def x(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    cases = [
        ("x of shape (2, 5, 12) and n_heads=3 (d_head = 4)", x(2, 5, 12), 3),
        ("x of shape (3, 6, 8) and n_heads=2 (d_head = 4)", x(3, 6, 8), 2),
        ("a single position (T = 1): x of shape (2, 1, 12) and n_heads=3", x(2, 1, 12), 3),
        ("a batch of one: x of shape (1, 5, 12) and n_heads=3", x(1, 5, 12), 3),
        ("one head: x of shape (2, 5, 6) and n_heads=1", x(2, 5, 6), 1),
        ("heads of size 1: x of shape (2, 5, 6) and n_heads=6 (d_head = 1)", x(2, 5, 6), 6),
        ("float64 x of shape (2, 5, 12) and n_heads=3", x(2, 5, 12, dtype=torch.float64), 3),
    ]
    return [Case(label, (t, h)) for label, t, h in cases]


def _merge_inverts(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, _ = case.args
    back = out.detach().transpose(1, 2).reshape(x.shape)
    if not torch.equal(back, x):
        return "merging the heads back, out.transpose(1, 2).reshape(B, T, d), does not give x"
    return None


def _heads_hold_their_features(case: Case, out: Tensor, rerun: Any) -> str | None:
    x, n_heads = case.args
    dh = x.shape[-1] // n_heads
    for h in range(n_heads):
        if not torch.equal(out[:, h].detach(), x[..., h * dh:(h + 1) * dh]):
            return f"head {h} does not hold the features {h * dh} to {(h + 1) * dh - 1} of each position"
    return None


_SPLIT_PROPERTIES = [
    Property("'merge_heads(split_heads(x)) == x'", _merge_inverts),
    Property("'head h holds the features h * d_head to (h + 1) * d_head - 1 of every position'",
             _heads_hold_their_features),
]

_SPLIT_SPEC = Spec(reference=split_heads, cases=_split_cases, mistakes=_SPLIT_MISTAKES, properties=_SPLIT_PROPERTIES,
                   differentiable=True, arg_names=("x", "n_heads"))


def check_split_heads(split_heads_fn: Callable[[Tensor, int], Tensor]) -> Callable[[Tensor, int], Tensor]:
    """Exercise 4.1: ``split_heads(x [B, T, H*d_head], n_heads) -> [B, H, T, d_head]``; returns the function the
    rest of the hour uses (yours once it passes)."""
    return check(SPLIT, _SPLIT_SPEC, (split_heads_fn,), (split_heads,),
                 f"values, shapes and gradients match on {len(_split_cases())} cases (one position, a batch of one, "
                 "one head, heads of size 1, float64)")


# --- Exercise 4.2: multi-head attention --------------------------------------------------------------


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
        ("a float64 module and inputs, self-attention and a causal mask",
         (_mha(12, 3, 9, torch.float64), x(2, 5, 12, dtype=torch.float64), None, causal_mask(5)), {}),
    ]
    cases = []
    for label, args, extra in rows:
        shapes = f"x {_shape(args[1])}" + (f", kv {_shape(args[2])}" if args[2] is not None else "") + \
                 (f", mask {_shape(args[3])}" if args[3] is not None else "")
        cases.append(Case(f"{label} ({shapes})", args, **extra))
    args = (_mha(12, 3, 10), x(2, 5, 12))
    cases.append(Case(f"no kv and no mask argument at all: mha_forward(mha, x) (x {_shape(args[1])})", args))
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
    """Exercise 4.2: ``mha_forward(mha, x, kv=None, mask=None) -> (out [B, Tq, d_model], weights [B, H, Tq, Tk])``;
    returns the function the rest of the hour uses (yours once it passes)."""
    return check(MHA, _MHA_SPEC, (mha_forward_fn,), (mha_forward,),
                 "out, weights and gradients (x, kv, the four projections) match on 10 cases (self- and "
                 "cross-attention, padding and causal masks, one query, one key, a batch of one, a query with no key, "
                 "float64, no mask argument)")


# --- Exercise 4.3: the sinusoidal table --------------------------------------------------------------


def _sinusoidal_variant(kind: str = "right") -> Callable[[int, int], Tensor]:
    def table(max_len: int, d_model: int) -> Tensor:
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]
        i = torch.arange(0, d_model, 2, dtype=torch.float64)  # 2i
        if kind == "i_not_2i":
            i = i / 2
        base = 1000.0 if kind == "base_1000" else 10000.0
        angle = pos / base ** (i / d_model) if kind != "no_d" else pos / base ** i
        if kind == "times":
            angle = pos * base ** (i / d_model)
        out = torch.zeros(max_len, d_model, dtype=torch.float64)
        first, second = (torch.cos, torch.sin) if kind == "swapped" else (torch.sin, torch.cos)
        if kind == "halves":
            out[:, : d_model // 2], out[:, d_model // 2 :] = torch.sin(angle), torch.cos(angle)
        else:
            out[:, 0::2], out[:, 1::2] = first(angle), second(angle)
        return out.float()

    return table


_SINUSOIDAL_MISTAKES = [
    Mistake("sin and cos are swapped: even features (0, 2, 4, ...) hold the sines, odd features the cosines.",
            _sinusoidal_variant("swapped")),
    Mistake("the sines fill the first half of the features and the cosines the second half; they alternate: "
            "PE[:, 0::2] = sin, PE[:, 1::2] = cos.", _sinusoidal_variant("halves")),
    Mistake("the exponent uses the pair index i instead of 2i: the frequency of pair i is 10000^(-2i/d_model) "
            "(torch.arange(0, d_model, 2) gives the 2i directly).", _sinusoidal_variant("i_not_2i")),
    Mistake("the exponent is not divided by d_model: 10000^(-2i) is 0 for all but the first pairs.",
            _sinusoidal_variant("no_d")),
    Mistake("the position is multiplied by 10000^(2i/d) instead of divided by it: the frequencies must "
            "decrease along the features.", _sinusoidal_variant("times")),
    Mistake("the base is 1000 instead of 10000.", _sinusoidal_variant("base_1000")),
]


def _sinusoidal_cases() -> list[Case]:
    return [
        Case("max_len=20, d_model=8", (20, 8)),
        Case("max_len=7, d_model=12", (7, 12)),
        Case("max_len=50, d_model=16", (50, 16)),
        Case("a single position: max_len=1, d_model=8", (1, 8)),
        Case("a single pair of features: max_len=10, d_model=2", (10, 2)),
        # float32 angles up to 511 carry rounding errors of a few 1e-5 into sin and cos
        Case("a long table: max_len=512, d_model=64", (512, 64), atol=5e-4),
    ]


def _sinusoidal_bounded(case: Case, out: Tensor, rerun: Any) -> str | None:
    if bool((out.abs() > 1 + 1e-6).any()):
        return f"a value is {out.abs().max().item():.4g} in absolute value; sines and cosines lie in [-1, 1]"
    return None


def _sinusoidal_first_row(case: Case, out: Tensor, rerun: Any) -> str | None:
    expected = torch.tensor([0.0, 1.0]).repeat(case.args[1] // 2)
    if not torch.allclose(out[0].double(), expected.double(), atol=1e-6):
        return f"PE[0] starts {[round(v, 3) for v in out[0, :6].tolist()]}: at position 0, sin(0) = 0 and cos(0) = 1"
    return None


def _sinusoidal_pairs(case: Case, out: Tensor, rerun: Any) -> str | None:
    norms = out[:, 0::2].double() ** 2 + out[:, 1::2].double() ** 2
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        return ("PE[p, 2i]^2 + PE[p, 2i + 1]^2 ranges from "
                f"{norms.min().item():.4g} to {norms.max().item():.4g}: feature 2i must be the sine and 2i + 1 the "
                "cosine of the same angle")
    return None


def _sinusoidal_prefix(case: Case, out: Tensor, rerun: Any) -> str | None:
    max_len, d_model = case.args
    longer = rerun(max_len + 7, d_model)
    if not torch.allclose(longer[:max_len].double(), out.double(), atol=1e-4):
        return (f"the first {max_len} rows of sinusoidal_encoding({max_len + 7}, {d_model}) differ from "
                f"sinusoidal_encoding({max_len}, {d_model}): a position's code must not depend on max_len")
    return None


_SINUSOIDAL_PROPERTIES = [
    Property("'every value lies in [-1, 1]'", _sinusoidal_bounded),
    Property("'PE[0] = (0, 1, 0, 1, ...)'", _sinusoidal_first_row),
    Property("'sin^2 + cos^2 = 1 for each pair of features (2i, 2i + 1)'", _sinusoidal_pairs),
    Property("'the rows of a shorter table are the first rows of a longer one'", _sinusoidal_prefix),
]


# No tensor goes in (two ints): an input changed in place and a wrong gradient cannot occur.
_SINUSOIDAL_SPEC = Spec(reference=sinusoidal_table, cases=_sinusoidal_cases, mistakes=_SINUSOIDAL_MISTAKES,
                        properties=_SINUSOIDAL_PROPERTIES, part="table", arg_names=("max_len", "d_model"))


def check_sinusoidal(sinusoidal_fn: Callable[[int, int], Tensor]) -> Callable[[int, int], Tensor]:
    """Exercise 4.3: ``sinusoidal_encoding(max_len, d_model) -> [max_len, d_model]`` (float32); returns the function
    the rest of the hour uses (yours once it passes)."""
    return check(SINUSOIDAL, _SINUSOIDAL_SPEC, (sinusoidal_fn,), (sinusoidal_table,),
                 f"float32 tables match on {len(_sinusoidal_cases())} cases (one position, one pair of features, "
                 "512 positions)")


# --- Exercise 4.4: the residual block, pre-norm and post-norm -----------------------------------------


def _block_variant(kind: str = "right") -> Callable[..., Tensor]:
    def forward(block: TransformerBlock, x: Tensor, mask: Tensor | None = None) -> Tensor:
        def attn(h: Tensor) -> Tensor:
            return block.self_attn(h, None, None if kind == "no_mask" else mask)[0]

        pre = block.norm_first != (kind == "swapped")
        norm2 = block.norm1 if kind == "same_norm" else block.norm2
        if pre:
            h = block.norm1(x)
            base = h if kind == "residual_normed" else x
            x = attn(h) if kind == "no_attn_residual" else base + attn(h)
            h = norm2(x)
            base = h if kind == "residual_normed" else x
            return block.ff(h) if kind == "no_ff_residual" else base + block.ff(h)
        if kind == "norm_branch":
            x = x + block.norm1(attn(x))
            return x + norm2(block.ff(x))
        x = block.norm1(x + attn(x)) if kind != "no_attn_residual" else block.norm1(attn(x))
        return norm2(x + block.ff(x)) if kind != "no_ff_residual" else norm2(block.ff(x))

    return forward


_BLOCK_MISTAKES = [
    Mistake("pre-norm and post-norm are swapped: with block.norm_first (pre-norm) normalise the input of each "
            "branch, x + f(norm(x)); otherwise (post-norm) normalise the sum, norm(x + f(x)).",
            _block_variant("swapped")),
    Mistake("in pre-norm the residual adds the normalised input: it must add the branch to the un-normalised "
            "x, x = x + attn(norm1(x)), so the residual path stays an identity.", _block_variant("residual_normed")),
    Mistake("the residual connection around the attention is missing: x = x + attention(...).",
            _block_variant("no_attn_residual")),
    Mistake("the residual connection around the feed-forward net is missing: x = x + ff(...).",
            _block_variant("no_ff_residual")),
    Mistake("the same LayerNorm (norm1) is used for both branches: the feed-forward branch has its own, norm2.",
            _block_variant("same_norm")),
    Mistake("in post-norm the LayerNorm is applied to the branch output before the residual sum, x + norm(f(x)); "
            "post-norm normalises the sum, norm(x + f(x)).", _block_variant("norm_branch")),
    Mistake("the mask is not passed on to the attention: block.self_attn(h, mask=mask), so that no position "
            "attends to padding.", _block_variant("no_mask")),
]


def _block(norm_first: bool, seed: int, dtype: torch.dtype = torch.float32) -> TransformerBlock:
    """A block in eval mode whose LayerNorms have random weights, so that using the wrong one shows."""

    def make() -> TransformerBlock:
        block = TransformerBlock(8, 2, 16, norm_first=norm_first).eval()
        with torch.no_grad():
            for norm in (block.norm1, block.norm2):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0.0, 0.3)
        return block.to(dtype)

    return _seeded(seed, make)


def _block_cases() -> list[Case]:
    g = torch.Generator().manual_seed(44)

    def x(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype) * 2 + 1

    rows: list[tuple[str, tuple[Any, ...]]] = [
        ("a pre-norm block and a padding mask (lengths 5 and 3)", (_block(True, 1), x(2, 5, 8),
                                                                   padding_mask([5, 3], 5))),
        ("a post-norm block and a padding mask (lengths 5 and 3)", (_block(False, 2), x(2, 5, 8),
                                                                    padding_mask([5, 3], 5))),
        ("a pre-norm block and mask=None", (_block(True, 3), x(2, 5, 8), None)),
        ("a post-norm block and a causal mask", (_block(False, 4), x(2, 5, 8), causal_mask(5))),
        ("a batch of one, a pre-norm block and a padding mask (length 4 of 6)",
         (_block(True, 5), x(1, 6, 8), padding_mask([4], 6))),
        ("a single position (T = 1) and a post-norm block", (_block(False, 6), x(2, 1, 8), None)),
        ("a float64 pre-norm block and a padding mask (lengths 5 and 2)",
         (_block(True, 7, torch.float64), x(2, 5, 8, dtype=torch.float64), padding_mask([5, 2], 5))),
        ("a float64 post-norm block", (_block(False, 8, torch.float64), x(2, 4, 8, dtype=torch.float64), None)),
    ]
    cases = [Case(f"{label} (x {_shape(args[1])}" + (f", mask {_shape(args[2])})" if args[2] is not None else ")"),
                  args) for label, args in rows]
    args = (_block(False, 9), x(2, 5, 8))
    cases.append(Case(f"no mask argument at all: block_forward(block, x) (post-norm, x {_shape(args[1])})", args))
    return cases


def _block_identity(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x = case.args[:2]
    if not block.norm_first:
        return None
    silent = copy.deepcopy(block)
    with torch.no_grad():
        for linear in (silent.self_attn.out_proj, silent.ff.net[-1]):
            linear.weight.zero_()
            linear.bias.zero_()
    again = rerun(silent, x, *case.args[2:])
    if not torch.allclose(again.detach().double(), x.double(), atol=1e-5):
        return ("with the last layers of the attention and the feed-forward net set to zero (both branches output "
                "0) the block did not return x: the residual path of a pre-norm block is x + branch")
    return None


def _block_padding(case: Case, out: Tensor, rerun: Any) -> str | None:
    block, x = case.args[:2]
    mask = case.args[2] if len(case.args) > 2 else None
    if mask is None or mask.dim() != 3 or mask.shape[1] != 1:
        return None  # a padding mask [B, 1, T] only
    padded = ~mask[:, 0]  # [B, T]
    if not bool(padded.any()):
        return None
    changed = x.clone()
    changed[padded] += 5.0
    again = rerun(block, changed, mask)
    if not torch.allclose(again.detach()[~padded], out.detach()[~padded], atol=1e-4):
        return "changing x at the padded positions changed the outputs of the real positions"
    return None


_BLOCK_PROPERTIES = [
    Property("'a pre-norm block whose attention and feed-forward net output 0 is the identity'", _block_identity),
    Property("'padded positions do not change the outputs of the other positions'", _block_padding),
]


def _block_own_code(source: str) -> str | None:
    if re.search(r"\bblock\s*\(|\bblock\.forward\s*\(|TransformerEncoderLayer", source):
        return ("write the block from block.norm1, block.self_attn, block.norm2 and block.ff: calling the block "
                "itself (block(...)) or a library layer runs the course's code, not yours.")
    return None


# `mutable` stays empty: the block's parameters and its train/eval flag must come back unchanged.
_BLOCK_SPEC = Spec(reference=block_forward, cases=_block_cases, mistakes=_BLOCK_MISTAKES,
                   properties=_BLOCK_PROPERTIES, differentiable=True, part="output",
                   arg_names=("block", "x", "mask"), source_rules=[_block_own_code])


def check_transformer_block(block_forward_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 4.4: ``block_forward(block, x, mask=None) -> x`` for pre-norm and post-norm blocks; returns the
    function the rest of the hour uses (yours once it passes)."""
    return check(BLOCK, _BLOCK_SPEC, (block_forward_fn,), (block_forward,),
                 "outputs and gradients (x and every parameter of the block) match on 9 cases (pre-norm and "
                 "post-norm, padding and causal masks, a batch of one, one position, float64, no mask argument)")
