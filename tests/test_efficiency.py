"""The measuring helpers of Hour 09 (amla.transformers.efficiency): timing, peak memory, SDPA backends,
checkpointing, compile with a fallback, autocast, MFU. Small inputs: behaviour, not speed."""

import pytest
import torch
import torch.nn.functional as F

from amla.checks.efficient.score_memory import reference_score_bytes
from amla.transformers import efficiency as E


def test_median_ms_alternates_and_takes_the_median():
    calls = []
    out = E.median_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4 and set(out) == {"a", "b"} and all(v >= 0 for v in out.values())
    with pytest.raises(ValueError, match="at least one function"):
        E.median_ms({})
    with pytest.raises(ValueError, match="repeats must be"):
        E.median_ms({"a": lambda: None}, repeats=0)


def test_peak_memory_counts_allocations_and_frees():
    with E.PeakMemory() as m:
        for _ in range(5):
            x = torch.empty(1000)  # noqa: F841 - each replaces the previous one, which is freed
    assert m.peak == 8000 and m.now == 4000
    assert E.peak_bytes(lambda: torch.empty(256, dtype=torch.float64)) == 2048


def test_math_attention_matches_sdpa_and_its_peak_matches_the_prediction():
    q, k, v = (torch.randn(2, 3, 64, 8) for _ in range(3))
    for causal in (False, True):
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        assert torch.allclose(E.math_attention(q, k, v, causal), ref, atol=1e-5)
        assert torch.allclose(E.sdpa(q, k, v, "math", causal), ref, atol=1e-5)
    predicted = reference_score_bytes(2, 3, 64, torch.float32)
    measured = E.peak_bytes(lambda: E.math_attention(q, k, v))
    assert predicted <= measured <= 1.2 * predicted
    assert E.peak_bytes(lambda: E.sdpa(q, k, v)) < predicted / 2  # the fused kernel keeps no T x T matrix
    assert "math" in E.available_backends(q)
    with pytest.raises(ValueError, match="backend must be one of"):
        E.sdpa(q, k, v, "fast")


def test_checkpointing_gives_the_same_gradients_with_less_memory():
    torch.manual_seed(0)
    blocks = [torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
              for _ in range(3)]
    x = torch.randn(32, 64, requires_grad=True)
    grads, peaks = [], []
    for enabled in (False, True):
        x.grad = None
        peaks.append(E.peak_bytes(lambda: E.with_checkpointing(blocks, x, enabled).square().sum().backward()))
        grads.append(x.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and peaks[1] < peaks[0]


def test_compile_falls_back_with_a_reason(monkeypatch):
    def broken(fn):
        raise RuntimeError("no C compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    fn = lambda x: x * 2  # noqa: E731
    out, seconds, how = E.compile_or_fallback(fn, torch.ones(2))
    assert out is fn and seconds is None and how.startswith("unavailable (RuntimeError: no C compiler")


def test_autocast_ratio_and_mfu():
    lin = torch.nn.Linear(16, 16)
    r = E.autocast_ratio(lin, torch.randn(8, 16), repeats=1)
    assert r["ratio"] == pytest.approx(r["fp32"] / r["autocast"])
    assert E.mfu(1000.0, 1e9, 1e13) == pytest.approx(0.1)
    assert E.mfu(1000.0, 1e9, None) is None and E.device_peak_flops("cpu") is None
    with pytest.raises(ValueError, match="flops_per_token > 0"):
        E.mfu(1.0, 0.0, 1e12)


def test_fp16_roundtrip_counts_underflow_subnormals_and_overflow():
    values = torch.cat([torch.logspace(-9, -3, 61), torch.zeros(3)])  # the zeros are left out
    plain, scaled = E.fp16_roundtrip(values), E.fp16_roundtrip(values, 2.0**16)
    below_half_tiniest = float((values[values != 0] < 2.0**-25).double().mean())  # rounds to 0 in fp16
    assert plain["zero"] == pytest.approx(below_half_tiniest) and plain["zero"] > 0.1
    assert plain["subnormal"] == pytest.approx(float((values[values != 0] < 2.0**-14).double().mean()))
    assert plain["inf"] == 0 and scaled["zero"] == 0 and scaled["subnormal"] == 0 and scaled["inf"] == 0
    assert scaled["median_rel_err"] <= 2.0**-11 < plain["median_rel_err"]  # all normal after scaling: rounding only
    assert E.fp16_roundtrip(torch.tensor([1e5, 1.0]))["inf"] == pytest.approx(0.5)  # 1e5 > 65504
    with pytest.raises(ValueError, match="scale must be > 0"):
        E.fp16_roundtrip(values, 0.0)
