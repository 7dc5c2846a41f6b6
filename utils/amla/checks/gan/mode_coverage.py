"""The self-check of Exercise 10.3: the mode-coverage metric (what it checks: the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.gan.toy import grid, mode_coverage, ring

COVERAGE = exercise(10, "10.3", "Counting the captured modes", "mode_coverage")


def reference_mode_coverage(samples: Tensor, modes: Tensor, std: float) -> tuple[int, float]:
    """The course's ``amla.gan.toy.mode_coverage`` with the exercise's signature."""
    return mode_coverage(samples, modes, std)


def _coverage_variant(kind: str) -> Callable[[Tensor, Tensor, float], tuple[Any, Any]]:
    """A mode-coverage metric with one typical bug switched on (kind)."""

    def fn(samples: Tensor, modes: Tensor, std: float) -> tuple[Any, Any]:
        modes = modes.to(samples.dtype)
        dist = torch.cdist(samples, modes)  # [N, K]
        nearest_dist, nearest = dist.min(dim=1)
        radius = std if kind == "one_std" else 3 * std
        if kind == "squared":
            good = nearest_dist.square() <= 3 * std
        elif kind == "box":
            diff = (samples[:, None, :] - modes[None]).abs()  # [N, K, 2]
            good = (diff <= 3 * std).all(-1).any(-1)
        elif kind == "strict_grid":
            good = nearest_dist < 3 * std * 0.5
        else:
            good = nearest_dist <= radius
        if kind == "any_sample":
            captured = len(set(nearest.tolist()))
        elif kind == "any_mode_within":
            captured = int((dist <= 3 * std).any(dim=0).sum())
        elif kind == "count_good":
            captured = int(good.sum())
        else:
            captured = len(set(nearest[good].tolist()))
        fraction: Any = float(good.double().mean())
        if kind == "count_fraction":
            fraction = int(good.sum())
        elif kind == "percent":
            fraction = 100.0 * fraction
        elif kind == "per_mode":
            fraction = float(good.sum()) / max(captured, 1) / samples.shape[0] if captured else 0.0
        return int(captured), fraction

    return fn


_COVERAGE_MISTAKES = [
    Mistake("every mode that is the nearest mode of *some* sample is counted, even of a sample far from it: only "
            "high-quality samples (nearest mode within 3 std) capture a mode.", _coverage_variant("any_sample")),
    Mistake("a mode is counted when any sample lies within 3 std of it, even if another mode is nearer to that "
            "sample: the definition assigns each high-quality sample to its *nearest* mode only.",
            _coverage_variant("any_mode_within")),
    Mistake("the threshold is 1 standard deviation; a high-quality sample lies within 3 std of its nearest mode.",
            _coverage_variant("one_std")),
    Mistake("the squared distance is compared with 3 * std; compare the distance (torch.cdist, or the square root "
            "of the squared one) with 3 * std, or the squared distance with (3 * std) ** 2.",
            _coverage_variant("squared")),
    Mistake("each coordinate is tested on its own (|dx| <= 3 std and |dy| <= 3 std, a square): the definition uses "
            "the Euclidean distance to the mode (a disc of radius 3 std).", _coverage_variant("box")),
    Mistake("the number of high-quality samples is returned as the number of captured modes: count the distinct "
            "nearest modes of the high-quality samples (torch.unique or a set).", _coverage_variant("count_good")),
    Mistake("the number of high-quality samples is returned instead of their fraction: divide by the number of "
            "samples (or take the mean of the boolean mask as floats).", _coverage_variant("count_fraction")),
    Mistake("the fraction is given in percent; return a fraction between 0 and 1.", _coverage_variant("percent")),
]


def _cluster(g: torch.Generator, centre: Tensor, n: int, spread: float) -> Tensor:
    return centre + spread * torch.randn(n, 2, generator=g)


def _ring_case(g: torch.Generator, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, float]:
    """Points on 5 of the 8 modes of the ring (within about 2 std), points in the gaps, points near 3 std."""
    mix = ring()
    s = mix.std
    parts = [_cluster(g, mix.modes[k], 30, 0.7 * s) for k in (0, 1, 2, 4, 6)]
    angles = 2 * math.pi * (torch.arange(6) + 0.5) / 8  # halfway between two modes: far from every mode
    parts.append(torch.stack([angles.cos(), angles.sin()], 1))
    direction = torch.tensor([[0.6, 0.8]])
    parts.append(mix.modes[3] + 2.9 * s * direction)  # inside 3 std of mode 3 (captures it)
    parts.append(mix.modes[5] + 3.2 * s * direction)  # just outside 3 std of mode 5 (does not capture it)
    parts.append(mix.modes[7] + torch.tensor([[2.5 * s, 2.5 * s]]))  # 3.54 std away, but |dx|, |dy| < 3 std
    parts.append(mix.modes[0] + 1.5 * torch.tensor([[s, 0.0]]) + 0.4)  # far off in a corner
    samples = torch.cat(parts)
    return samples.to(dtype), mix.modes.clone(), s


def _coverage_cases() -> list[Case]:
    g = torch.Generator().manual_seed(103)
    ring_samples, ring_modes, ring_std = _ring_case(g)
    square = grid()
    on_grid = torch.cat([_cluster(g, square.modes[k], 12, 1.2 * square.std) for k in range(0, 25, 2)]
                        + [torch.rand(40, 2, generator=g) * 10 - 5])  # 13 modes well covered, plus uniform noise
    close_modes = torch.tensor([[0.0, 0.0], [0.04, 0.0], [1.0, 1.0]])  # two modes 4 std apart (std 0.01)
    between = torch.tensor([[0.026, 0.0], [0.027, 0.001], [0.5, 0.5]])  # within 3 std of both: mode 1 is nearer
    one_mode = torch.tensor([[2.0, -1.0]])
    one_point = torch.tensor([[2.0 + 0.05, -1.0 - 0.05]])
    far = torch.randn(7, 2, generator=g) + torch.tensor([6.0, 6.0])
    return [
        Case("samples on 5 of the 8 ring modes, in the gaps, and near 3 std (ring(), 160 samples)",
             (ring_samples, ring_modes, ring_std)),
        Case("the 5x5 grid (std 0.05): 13 modes covered, plus 40 uniform points", (on_grid, square.modes.clone(),
                                                                                  square.std)),
        Case("two modes only 4 std apart, samples between them (std 0.01)", (between, close_modes, 0.01)),
        Case("a single sample and a single mode (std 0.1)", (one_point, one_mode, 0.1)),
        Case("no high-quality sample at all (7 samples far from the ring)", (far, ring().modes.clone(), 0.01)),
        Case("float64 samples on the ring (modes float32)", _ring_case(g, torch.float64)),
        Case("an integer std (std=1, modes 10 apart)",
             (torch.tensor([[0.5, 0.5], [10.0, 2.5], [4.0, 4.0]]), torch.tensor([[0.0, 0.0], [10.0, 0.0]]), 1)),
    ]


def _in_range(case: Case, out: tuple[Any, Any], rerun: Any) -> str | None:
    samples, modes, _ = case.args
    captured, fraction = out
    if not 0 <= captured <= min(modes.shape[0], samples.shape[0]):
        return f"{captured} modes captured, but there are {modes.shape[0]} modes and {samples.shape[0]} samples"
    if not 0.0 <= fraction <= 1.0:
        return f"the high-quality fraction is {fraction:.4g}, outside [0, 1]"
    return None


def _order_free(case: Case, out: tuple[Any, Any], rerun: Any) -> str | None:
    samples, modes, std = case.args
    again = rerun(samples.flip(0), modes.flip(0), std)
    if again[0] != out[0] or not math.isclose(float(again[1]), float(out[1]), abs_tol=1e-6):
        return f"listing the samples and the modes in reverse order changed the result from {out} to {again}"
    return None


def _copies(case: Case, out: tuple[Any, Any], rerun: Any) -> str | None:
    samples, modes, std = case.args
    again = rerun(torch.cat([samples, samples]), modes, std)
    if again[0] != out[0] or not math.isclose(float(again[1]), float(out[1]), abs_tol=1e-6):
        return (f"every sample twice over changed the result from {out} to {again}: the modes are the same and the "
                "fraction of high-quality samples too")
    return None


def _far_away(case: Case, out: tuple[Any, Any], rerun: Any) -> str | None:
    samples, modes, std = case.args
    again = rerun(samples + 1000.0 * std, modes, std)
    if again[0] != 0 or float(again[1]) != 0.0:
        return f"samples moved 1000 std away from every mode gave {again}, expected (0, 0.0)"
    return None


_COVERAGE_PROPERTIES = [
    Property("'0 <= modes captured <= K and 0 <= fraction <= 1'", _in_range),
    Property("'the order of the samples and of the modes does not matter'", _order_free),
    Property("'repeating every sample changes nothing'", _copies),
    Property("'samples far from every mode give (0, 0.0)'", _far_away),
]

_COVERAGE_SPEC = Spec(reference=reference_mode_coverage, cases=_coverage_cases, mistakes=_COVERAGE_MISTAKES,
                      properties=_COVERAGE_PROPERTIES, items=("number of captured modes", "high-quality fraction"),
                      atol=1e-6, rtol=1e-6)


def check_mode_coverage(coverage_fn: Callable[[Tensor, Tensor, float], tuple[int, float]]
                        ) -> Callable[[Tensor, Tensor, float], tuple[int, float]]:
    """Exercise 10.3: ``mode_coverage(samples [N, 2], modes [K, 2], std) -> (int, float)``; returns the metric the
    rest of the hour measures with (yours once it passes)."""
    return check(COVERAGE, _COVERAGE_SPEC, (coverage_fn,), (reference_mode_coverage,),
                 "counts and fractions match on {cases} cases (the ring and the grid, points near 3 std, two modes "
                 "closer than 6 std, one sample, no high-quality sample, float64, an int std)")
