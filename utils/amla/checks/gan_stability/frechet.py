"""The self-check of Exercise 12.3: the Frechet distance between two Gaussians (what it checks: the package
docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.gan.fid import frechet_distance, sqrtm_psd

FRECHET = exercise(12, "12.3", "Frechet distance", "frechet_distance")


def _cov(d: int, g: torch.Generator, dtype: torch.dtype = torch.float64, rank: int | None = None,
         scale: float = 1.0) -> Tensor:
    a = torch.randn(d, rank or d + 2, generator=g, dtype=torch.float64)
    return (a @ a.T / a.shape[1] * scale).to(dtype)


def _frechet_cases() -> list[Case]:
    g = torch.Generator().manual_seed(123)
    mu = lambda d, dtype=torch.float64: torch.randn(d, generator=g, dtype=dtype)  # noqa: E731
    s_a, m_a = _cov(4, g), mu(4)
    # two covariances that do not commute: sqrt(S1) sqrt(S2) is not sqrt(sqrt(S1) S2 sqrt(S1)) here
    rot = torch.tensor([[math.cos(0.6), -math.sin(0.6)], [math.sin(0.6), math.cos(0.6)]], dtype=torch.float64)
    s_x = torch.diag(torch.tensor([4.0, 0.25], dtype=torch.float64))
    s_y = rot @ torch.diag(torch.tensor([1.0, 9.0], dtype=torch.float64)) @ rot.T
    # near-singular: rank 3 of 6, plus a tiny ridge (like dead ReLU features), the other one of full rank
    s_low = _cov(6, g, rank=3) + 1e-12 * torch.eye(6, dtype=torch.float64)
    big = _cov(5, g, scale=1e3)
    big2 = big + 1e-3 * _cov(5, g)
    s_same = _cov(3, g)
    return [
        Case("two Gaussians in 4-D (float64)", (m_a, s_a, mu(4), _cov(4, g))),
        Case("two equal Gaussians (the distance is 0)", (m_a, s_a, m_a.clone(), s_a.clone()), atol=1e-6),
        Case("two covariances that do not commute (2-D, rotated by 0.6 rad)", (mu(2), s_x, mu(2), s_y)),
        Case("1-D Gaussians, variances 4 and 9 (closed form (m1 - m2)^2 + (2 - 3)^2)",
             (torch.tensor([1.0], dtype=torch.float64), torch.tensor([[4.0]], dtype=torch.float64),
              torch.tensor([-0.5], dtype=torch.float64), torch.tensor([[9.0]], dtype=torch.float64))),
        Case("near-singular covariances (rank 3 of 6: eigenvalues near 0 must not become nan)",
             (mu(6), s_low, mu(6), _cov(6, g, rank=2)), atol=1e-4),
        Case("float32 inputs in 3-D (compute in float64, return a Python float)",
             (mu(3, torch.float32), _cov(3, g, torch.float32), mu(3, torch.float32), _cov(3, g, torch.float32)),
             atol=1e-4),
        Case("covariances near 1e3 that differ by 1e-3 (the terms cancel: float32 is not precise enough)",
             (torch.zeros(5, dtype=torch.float64), big, torch.zeros(5, dtype=torch.float64), big2), atol=1e-6),
        Case("equal covariances and different means (the distance is ||mu1 - mu2||^2)",
             (mu(3), s_same, mu(3), s_same.clone())),
    ]


def _trace_sqrt(s1: Tensor, s2: Tensor, kind: str) -> Tensor:
    r1 = sqrtm_psd(s1)
    if kind == "product":
        return (r1 @ sqrtm_psd(s2)).trace()
    if kind == "elementwise":
        return torch.sqrt((s1 @ s2).clamp(min=0)).trace()
    if kind == "sqrt_trace":
        return torch.sqrt((s1 @ s2).trace())
    m = r1 @ s2 @ r1
    return torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()


def _variant(kind: str) -> Callable[..., float]:
    def fn(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
        m1, m2, s1, s2 = (x.double() for x in (mu1, mu2, sigma1, sigma2))
        diff = (m1 - m2).square().sum()
        if kind == "mean_not_squared":
            diff = (m1 - m2).norm()
        trace = _trace_sqrt(s1, s2, kind if kind in ("product", "elementwise", "sqrt_trace") else "right")
        factor = 1.0 if kind == "no_factor_2" else 2.0
        value = diff + s1.trace() + s2.trace() - factor * trace
        if kind == "plus":
            value = diff + s1.trace() + s2.trace() + 2 * trace
        if kind == "sqrt":
            return float(value.clamp(min=0).sqrt())
        return float(value)

    return fn


_FRECHET_MISTAKES = [
    Mistake("the cross term is tr(sqrt(S1) sqrt(S2)): that is right only when S1 and S2 commute. Take the square "
            "root of the product: tr((S1^{1/2} S2 S1^{1/2})^{1/2}), e.g. the sum of the square roots of the "
            "eigenvalues of the symmetric matrix S1^{1/2} S2 S1^{1/2}.", _variant("product")),
    Mistake("torch.sqrt(S1 @ S2) takes the square root of each entry; the distance needs the matrix square root "
            "(sqrtm), e.g. through torch.linalg.eigh.", _variant("elementwise")),
    Mistake("the cross term is sqrt(tr(S1 S2)): the trace of the square root is not the square root of the trace "
            "(sum the square roots of the eigenvalues instead).", _variant("sqrt_trace")),
    Mistake("the cross term is missing its factor 2: d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(...).",
            _variant("no_factor_2")),
    Mistake("the cross term is added; it is subtracted: - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2}).", _variant("plus")),
    Mistake("the distance between the means is not squared: ||mu1 - mu2||^2.", _variant("mean_not_squared")),
    Mistake("the square root of the distance is returned; FID is the squared Frechet distance d^2 (no final sqrt).",
            _variant("sqrt")),
]


def _as_float(result: Any) -> float:
    return float(result)


def _zero_for_equal(case: Case, result: Any, rerun: Any) -> str | None:
    m1, s1 = case.args[0], case.args[1]
    same = _as_float(rerun(m1, s1, m1.clone(), s1.clone()))
    if not abs(same) <= 1e-6 * max(1.0, float(s1.double().trace())):
        return f"frechet_distance(mu, S, mu, S) = {same:.6g}, expected 0"
    return None


def _symmetric(case: Case, result: Any, rerun: Any) -> str | None:
    m1, s1, m2, s2 = case.args
    swapped = _as_float(rerun(m2, s2, m1, s1))
    if not math.isclose(swapped, _as_float(result), rel_tol=1e-4, abs_tol=1e-4):
        return f"d(A, B) = {_as_float(result):.6g} but d(B, A) = {swapped:.6g}"
    return None


def _finite(case: Case, result: Any, rerun: Any) -> str | None:
    if not math.isfinite(_as_float(result)):
        return (f"got {_as_float(result)}: a square root of a slightly negative eigenvalue (near-singular "
                "covariances) gives nan; clamp the eigenvalues at 0")
    return None


_FRECHET_PROPERTIES = [
    Property("'the distance is finite'", _finite),
    Property("'the distance of a Gaussian to itself is 0'", _zero_for_equal),
    Property("'d(A, B) = d(B, A)'", _symmetric),
]

_FRECHET_SPEC = Spec(reference=frechet_distance, cases=_frechet_cases, mistakes=_FRECHET_MISTAKES,
                     properties=_FRECHET_PROPERTIES, part="distance", arg_names=("mu1", "sigma1", "mu2", "sigma2"),
                     atol=1e-5, rtol=1e-5)


def check_frechet_distance(frechet_distance_fn: Callable[..., float]) -> Callable[..., float]:
    """Exercise 12.3: ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float``; returns the distance the hour's
    FIDs are computed with."""
    return check(FRECHET, _FRECHET_SPEC, (frechet_distance_fn,), (frechet_distance,),
                 "equal Gaussians give 0, non-commuting and near-singular covariances, the 1-D closed form, "
                 "float32 inputs, a Python float ({cases} cases)")
