"""The self-check of Exercise 6.4: one KV-cache decode step (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.gpt import kv_attend

KV_ATTEND = exercise(6, "6.4", "One decode step with the KV cache", "kv_attend")

KVAttend = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, int], Tensor]


def _kv_variant(kind: str) -> KVAttend:
    """kv_attend with one typical bug switched on (kind)."""

    def fn(q: Tensor, k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, pos: int) -> Tensor:
        slot = {"write_after": pos + 1, "write_before": pos - 1}.get(kind, pos)
        if kind != "no_write" and 0 <= slot < k_cache.size(2):
            k_cache[:, :, slot : slot + 1] = k
            if kind != "keys_only":
                v_cache[:, :, slot : slot + 1] = v
        if kind == "no_write":
            keys = torch.cat([k_cache[:, :, :pos], k], dim=2)
            values = torch.cat([v_cache[:, :, :pos], v], dim=2)
        else:
            end = {"whole_cache": k_cache.size(2), "prefix_only": pos}.get(kind, pos + 1)
            keys, values = k_cache[:, :, :end], v_cache[:, :, :end]
        if kind == "no_scale":
            return (q @ keys.transpose(-2, -1)).softmax(-1) @ values
        return F.scaled_dot_product_attention(q, keys, values, is_causal=kind == "is_causal")

    return fn


_KV_MISTAKES = [
    Mistake("the query attends to every slot of the cache, including the ones after pos that hold no position of "
            "this sequence (zeros, or leftovers of an earlier one): attend to k_cache[:, :, :pos + 1] only.",
            _kv_variant("whole_cache")),
    Mistake("the query attends to the stored positions but not to itself: the new key and value are part of the "
            "attention, slots 0 .. pos (k_cache[:, :, :pos + 1]).", _kv_variant("prefix_only")),
    Mistake("the attention uses is_causal=True: with one query and pos + 1 keys, PyTorch aligns the causal mask at "
            "the top left and the query sees the first key only. The new position may see all stored ones: no mask.",
            _kv_variant("is_causal")),
    Mistake("the new key and value are written one slot too far (at pos + 1): slots 0 .. pos - 1 hold the earlier "
            "positions, so the new one goes into slot pos.", _kv_variant("write_after")),
    Mistake("the new key and value overwrite the last stored position (slot pos - 1): slots 0 .. pos - 1 hold the "
            "earlier positions, so the new one goes into slot pos.", _kv_variant("write_before")),
    Mistake("the new key and value are used but not written into the cache: the next step needs them there "
            "(k_cache[:, :, pos:pos + 1] = k, the same for v).", _kv_variant("no_write")),
    Mistake("only the key is written into the cache; the value belongs there too (v_cache[:, :, pos:pos + 1] = v).",
            _kv_variant("keys_only")),
    Mistake("the scores are not divided by sqrt(head_dim) before the softmax.", _kv_variant("no_scale")),
]


def _kv_cases() -> list[Case]:
    g = torch.Generator().manual_seed(64)

    def case(label: str, B: int, H: int, max_len: int, hd: int, pos: int,
             dtype: torch.dtype = torch.float32, leftovers: bool = True) -> Case:
        def r(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=g, dtype=dtype)

        q, k, v = r(B, H, 1, hd), r(B, H, 1, hd), r(B, H, 1, hd)
        k_cache, v_cache = r(B, H, max_len, hd), r(B, H, max_len, hd)
        if not leftovers:
            k_cache[:, :, pos:] = 0.0
            v_cache[:, :, pos:] = 0.0
        shapes = f"q, k, v [{B}, {H}, 1, {hd}], caches [{B}, {H}, {max_len}, {hd}]"
        return Case(f"{label} ({shapes}, pos={pos})", (q, k, v, k_cache, v_cache, pos))

    return [
        case("3 positions stored, leftovers of an earlier sequence in the later slots", 2, 2, 6, 4, 3),
        case("3 positions stored, zeros in the later slots (a fresh cache)", 2, 2, 6, 4, 3, leftovers=False),
        case("an empty cache (the first decode step: the query sees only itself)", 2, 2, 6, 4, 0),
        case("one position stored", 2, 3, 5, 4, 1),
        case("the last free slot (pos = max_len - 1)", 2, 2, 6, 4, 5),
        case("a batch of one and one head", 1, 1, 7, 8, 4),
        case("head_dim 1", 2, 2, 6, 1, 2),
        case("float64", 2, 2, 6, 4, 3, dtype=torch.float64),
    ]


def _invoke(fn: KVAttend, q: Tensor, k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor,
            pos: int) -> tuple[Any, Tensor, Tensor]:
    """The output and both caches after the call: the caches are meant to be written in place (copies of the case's,
    so that autograd can follow the write when the gradients are compared)."""
    k_cache, v_cache = k_cache.clone(), v_cache.clone()
    out = fn(q, k, v, k_cache, v_cache, pos)
    return out, k_cache, v_cache


def _later_slots_ignored(case: Case, result: Any, rerun: Any) -> str | None:
    q, k, v, k_cache, v_cache, pos = case.args
    if pos + 1 >= k_cache.size(2):
        return None
    k2, v2 = k_cache.clone(), v_cache.clone()
    k2[:, :, pos + 1 :] += 5.0
    v2[:, :, pos + 1 :] -= 5.0
    again = rerun(q, k, v, k2, v2, pos)[0]
    if not torch.allclose(again.detach().double(), result[0].detach().double(), atol=1e-5):
        return "changing the cache slots after pos (no position of this sequence) changed the output"
    return None


def _only_slot_pos_written(case: Case, result: Any, rerun: Any) -> str | None:
    q, k, v, k_cache, v_cache, pos = case.args
    for name, before, after in (("k_cache", k_cache, result[1]), ("v_cache", v_cache, result[2])):
        keep = torch.ones(before.size(2), dtype=torch.bool)
        keep[pos] = False
        if not torch.equal(after[:, :, keep].detach(), before[:, :, keep]):
            return f"{name} changed in slots other than pos={pos}: only the new position's slot is written"
    return None


def _first_step_is_v(case: Case, result: Any, rerun: Any) -> str | None:
    q, k, v, k_cache, v_cache, pos = case.args
    if pos != 0:
        return None
    if not torch.allclose(result[0].detach().double(), v.double(), atol=1e-5):
        return "with nothing stored, the query can attend only to itself (weight 1), so the output must be v"
    return None


_KV_PROPERTIES = [
    Property("'the output does not depend on the cache slots after pos'", _later_slots_ignored),
    Property("'only slot pos of the caches is written'", _only_slot_pos_written),
    Property("'the first step (pos = 0) returns v'", _first_step_is_v),
]

_KV_SPEC = Spec(reference=kv_attend, cases=_kv_cases, mistakes=_KV_MISTAKES, properties=_KV_PROPERTIES,
                invoke=_invoke, part="output", items=("output", "k_cache after the call", "v_cache after the call"),
                differentiable=True, arg_names=("q", "k", "v", "k_cache", "v_cache", "pos"))


def check_kv_attend(kv_attend_fn: KVAttend) -> KVAttend:
    """Exercise 6.4: ``kv_attend(q, k, v, k_cache, v_cache, pos) -> out [B, H, 1, hd]``, writing k and v into slot
    ``pos``; returns the function the hour's cached generation runs (yours once it passes)."""
    return check(KV_ATTEND, _KV_SPEC, (kv_attend_fn,), (kv_attend,),
                 "outputs, both caches and the gradients match on {cases} cases (an empty cache, the last slot, "
                 "leftovers in the later slots, one head, head_dim 1, float64)")
