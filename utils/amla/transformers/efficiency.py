"""Measuring what makes transformers fast or lean (Hour 09): time, memory, SDPA backends, activation
checkpointing, ``torch.compile`` with a fallback, autocast, and what fp16 does to gradients (``fp16_roundtrip``).

Every timing is the median of ``repeats`` after ``warmup`` calls, the variants alternating (a, b, a, b, ...) so a
machine that slows down meanwhile slows all of them alike. Memory on the CPU is counted by ``PeakMemory``, a
dispatch mode that adds the bytes of every storage an op allocates and subtracts them when it is freed (the
tensors alive before the call are not counted); on a GPU ``cuda_peak_bytes`` reads the allocator.
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.checkpoint import checkpoint

from amla.transformers.attention import causal_mask

BACKENDS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_ms(fns: Mapping[str, Callable[[], Any]], repeats: int = 5, warmup: int = 1,
              device: torch.device | str | None = None) -> dict[str, float]:
    """Median wall time in milliseconds of each zero-argument function, the variants run alternately."""
    if not fns:
        raise ValueError("median_ms needs at least one function to time, got none")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


class PeakMemory(TorchDispatchMode):
    """``with PeakMemory() as m: ...`` then ``m.peak``: the most bytes allocated at once inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def _free(self, key: int, n: int) -> None:
        if self.live.pop(key, None) is not None:
            self.now -= n

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key, n = storage.data_ptr(), storage.nbytes()
                if n and key not in self.live:
                    self.live[key] = n
                    self.now += n
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(t, self._free, key, n)  # the storage dies with its last tensor at the latest
        return out


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated while ``fn()`` runs: the allocator's count on CUDA, ``PeakMemory`` elsewhere."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    with PeakMemory() as m:
        fn()
    return m.peak


def math_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool = False) -> Tensor:
    """Attention written out: the [B, H, T, T] scores and probabilities are materialised."""
    scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5
    if causal:
        scores = scores.masked_fill(~causal_mask(q.size(-2), k.size(-2), device=q.device), float("-inf"))
    return scores.softmax(-1) @ v


def sdpa(q: Tensor, k: Tensor, v: Tensor, backend: str | None = None, causal: bool = False) -> Tensor:
    """``F.scaled_dot_product_attention`` restricted to one backend (``BACKENDS``), or PyTorch's choice."""
    if backend is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)} or None, got {backend!r}")
    with sdpa_kernel(BACKENDS[backend]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def available_backends(q: Tensor) -> list[str]:
    """The SDPA backends that run on ``q``'s device and dtype here (each tried once on a small causal input)."""
    ok = []
    for name in BACKENDS:
        try:
            sdpa(q[:1, :1, :8], q[:1, :1, :8], q[:1, :1, :8], name, causal=True)
            ok.append(name)
        except RuntimeError:
            pass
    return ok


def with_checkpointing(blocks: Sequence[Callable[[Tensor], Tensor]], x: Tensor, enabled: bool = True) -> Tensor:
    """Run ``blocks`` in turn; with ``enabled`` each block's activations are recomputed in the backward instead of
    kept (``torch.utils.checkpoint`` with ``use_reentrant=False``)."""
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False) if enabled else block(x)
    return x


def compile_or_fallback(fn: Callable[..., Any], *example: Any) -> tuple[Callable[..., Any], float | None, str]:
    """``torch.compile(fn)`` and the seconds its first call took (compilation), or ``fn`` itself, ``None`` and the
    reason when no compiler works here (no C compiler, an unsupported platform)."""
    try:
        compiled = torch.compile(fn)
        t0 = time.perf_counter()
        compiled(*example)
        return compiled, time.perf_counter() - t0, "compiled"
    except Exception as err:  # noqa: BLE001 - any failure of the compiler means: run eagerly
        torch._dynamo.reset()
        return fn, None, f"unavailable ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''})"


def autocast_ratio(model: nn.Module, x: Tensor, dtype: torch.dtype = torch.bfloat16, repeats: int = 5) -> dict[str, float]:
    """Forward+backward time in fp32 and under autocast(``dtype``) on ``x``'s device; ``ratio`` = fp32 / autocast
    (above 1: autocast is faster)."""
    device = x.device.type

    def step(cast: bool) -> None:
        with torch.autocast(device, dtype=dtype, enabled=cast):
            loss = model(x).float().pow(2).mean()
        loss.backward()

    t = median_ms({"fp32": lambda: step(False), "autocast": lambda: step(True)}, repeats=repeats, device=x.device)
    return {**t, "ratio": t["fp32"] / t["autocast"]}


def fp16_roundtrip(values: Tensor, scale: float = 1.0) -> dict[str, float]:
    """What storing ``values * scale`` in float16 and dividing by ``scale`` again does to the nonzero ``values``:
    the fractions that become 0 (underflow), that are subnormal (below fp16's smallest normal number, 6.1e-5, so
    with fewer than 11 significant bits), that overflow to inf, and the median relative error of the finite rest."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    v = values.detach().flatten().double()
    v = v[v != 0]
    if v.numel() == 0:
        raise ValueError("values has no nonzero entries")
    scaled = v * scale
    half = scaled.to(torch.float16)
    finite = torch.isfinite(half)
    rel = ((half[finite].double() / scale - v[finite]).abs() / v[finite].abs())
    return {"zero": float((half == 0).double().mean()),
            "subnormal": float((scaled.abs() < torch.finfo(torch.float16).smallest_normal).double().mean()),
            "inf": float((~finite).double().mean()), "median_rel_err": float(rel.median()) if rel.numel() else float("nan")}


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved FLOP/s (tokens/s x FLOPs per token) over the device's peak; ``None``
    when the peak is unknown (a CPU)."""
    if tokens_per_s < 0 or flops_per_token <= 0:
        raise ValueError(f"tokens_per_s must be >= 0 and flops_per_token > 0, got {tokens_per_s}, {flops_per_token}")
    return None if not peak_flops else tokens_per_s * flops_per_token / peak_flops


PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "T4": 65e12}


def device_peak_flops(device: torch.device | str) -> float | None:
    """Dense bf16 peak FLOP/s of a known CUDA GPU (its datasheet, without sparsity); ``None`` otherwise."""
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
