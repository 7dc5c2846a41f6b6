"""The self-check of Exercise 12.2: the spectral norm by power iteration (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.gan.stable import spectral_norm_estimate

SPECTRAL = exercise(12, "12.2", "Spectral norm by power iteration", "spectral_norm_estimate")


def _unit(x: Tensor) -> Tensor:
    return x / x.norm()


def _spectral_cases() -> list[Case]:
    g = torch.Generator().manual_seed(122)

    def w(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    def u(n: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return _unit(torch.randn(n, generator=g, dtype=dtype))

    rank1 = torch.outer(w(4), w(6))
    return [
        Case("a weight [5, 3] and one iteration", (w(5, 3), u(5), 1)),
        Case("a weight [4, 7] and three iterations", (w(4, 7), u(4), 3)),
        Case("a weight [6, 6] and 200 iterations (converged: sigma = torch.linalg.matrix_norm(W, 2))",
             (w(6, 6), u(6), 200)),
        Case("a rank-1 weight a b^T [4, 6] (one iteration is exact: sigma = |a| |b|)", (rank1, u(4), 1)),
        Case("a weight of one row [1, 5] (u has one entry)", (w(1, 5), u(1), 2)),
        Case("a weight of one column [5, 1] (v has one entry)", (w(5, 1), u(5), 2)),
        Case("float64 (a weight [3, 4] and u in float64), two iterations", (w(3, 4, dtype=torch.float64),
                                                                           u(3, torch.float64), 2)),
        Case("n_iters left out (the default: one iteration), a weight [3, 5]", (w(3, 5), u(3))),
    ]


def _variant(kind: str) -> Callable[..., tuple[Tensor, Tensor]]:
    """The power iteration with one typical bug switched on."""

    def fn(weight: Tensor, u: Tensor, n_iters: int = 1) -> tuple[Tensor, Tensor]:
        if kind == "frobenius":
            return weight.norm(), u
        steps = 1 if kind == "ignores_n" else n_iters
        start = u
        ctx = torch.enable_grad() if kind == "with_grad" else torch.no_grad()
        with ctx:
            for _ in range(steps):
                if kind == "transposed":
                    v = weight @ u
                    u = weight.T @ v
                else:
                    v = F.normalize(weight.T @ u, dim=0) if kind != "no_normalise_v" else weight.T @ u
                    u = weight @ v
                if kind not in ("no_normalise_u",):
                    u = F.normalize(u, dim=0)
        if kind == "sigma_wt_u":
            sigma = (weight.T @ u).norm()
        elif kind == "old_u":
            sigma = torch.dot(start, weight @ v)
        elif kind == "no_normalise_u":
            sigma = torch.dot(F.normalize(u, dim=0), weight @ v)
        else:
            sigma = torch.dot(u, weight @ v)
        if kind == "square":
            sigma = sigma**2
        if kind == "not_updated":
            u = start
        return sigma, u

    return fn


_SPECTRAL_MISTAKES = [
    Mistake("the Frobenius norm ||W||_F is returned: it bounds the spectral norm from above but is not it (equal "
            "only for rank 1). Run the power iteration: v = normalise(W^T u), u = normalise(W v), sigma = u^T W v.",
            _variant("frobenius")),
    Mistake("`n_iters` is ignored: only one iteration is run. Repeat v = normalise(W^T u), u = normalise(W v) "
            "n_iters times.", _variant("ignores_n")),
    Mistake("u is not normalised after u = W v: the returned u must be a unit vector "
            "(u = F.normalize(W @ v, dim=0)).", _variant("no_normalise_u")),
    Mistake("v is not normalised (v = W^T u): normalise it before computing u = W v, or sigma = u^T W v is "
            "scaled by ||W^T u||.", _variant("no_normalise_v")),
    Mistake("W and W^T are swapped: v = W^T u has the size of W's input, u = W v the size of its output.",
            _variant("transposed")),
    Mistake("sigma is computed with the u you were given, not the updated one: sigma = u_new^T W v.",
            _variant("old_u")),
    Mistake("sigma is ||W^T u|| with the new u: an estimate too, but this exercise (Miyato et al.'s Algorithm 1) "
            "asks for sigma = u^T W v with the u and v of the last iteration (its gradient is then u v^T).",
            _variant("sigma_wt_u")),
    Mistake("sigma is squared: u^T W v is sigma itself, not sigma^2.", _variant("square")),
    Mistake("the updated u is not returned: return the new u, so that the next call continues the iteration.",
            _variant("not_updated")),
    Mistake("the power iteration runs with gradients: torch (and the course) run it under torch.no_grad(), so that "
            "sigma's gradient is u v^T and nothing flows into u; only the final sigma = u^T W v is differentiable.",
            _variant("with_grad")),
]


def _u_unit(case: Case, result: Any, rerun: Any) -> str | None:
    u = result[1]
    if isinstance(u, Tensor) and abs(float(u.detach().double().norm()) - 1) > 1e-4:
        return f"||u|| = {float(u.detach().double().norm()):.6g}"
    return None


def _below_true_norm(case: Case, result: Any, rerun: Any) -> str | None:
    sigma = float(result[0].detach().double()) if isinstance(result[0], Tensor) else float(result[0])
    true = float(torch.linalg.matrix_norm(case.args[0].double(), 2))
    if sigma > true * (1 + 1e-4) + 1e-6:
        return (f"sigma = {sigma:.6g} exceeds the spectral norm {true:.6g}; for unit vectors u and v, u^T W v can "
                "never exceed it")
    return None


def _converges(case: Case, result: Any, rerun: Any) -> str | None:
    weight, u = case.args[0], case.args[1]
    again = rerun(weight, u, 500)
    sigma = float(again[0].detach().double())
    true = float(torch.linalg.matrix_norm(weight.double(), 2))
    if abs(sigma - true) > 1e-3 * true:
        return (f"after 500 iterations sigma = {sigma:.6g}, but torch.linalg.matrix_norm(W, 2) = {true:.6g}")
    return None


_SPECTRAL_PROPERTIES = [
    Property("'the returned u is a unit vector'", _u_unit),
    Property("'sigma <= the true spectral norm'", _below_true_norm),
    Property("'many iterations reach torch.linalg.matrix_norm(W, 2)'", _converges),
]

def _invoke(fn: Callable[..., Any], weight: Tensor, u: Tensor, *n_iters: int) -> Any:
    """u is a buffer in use (it never asks for a gradient): whether one could flow into it does not matter."""
    return fn(weight, u.detach(), *n_iters)


_SPECTRAL_SPEC = Spec(reference=spectral_norm_estimate, cases=_spectral_cases, mistakes=_SPECTRAL_MISTAKES,
                      properties=_SPECTRAL_PROPERTIES, invoke=_invoke, items=("sigma", "u"), differentiable=True,
                      arg_names=("weight", "u", "n_iters"), atol=1e-5, rtol=1e-4)


def check_spectral_norm(spectral_norm_estimate_fn: Callable[..., tuple[Tensor, Tensor]]
                        ) -> Callable[..., tuple[Tensor, Tensor]]:
    """Exercise 12.2: ``spectral_norm_estimate(weight, u, n_iters=1) -> (sigma, u)``; returns the estimate the
    spectrally normalised discriminator uses."""
    return check(SPECTRAL, _SPECTRAL_SPEC, (spectral_norm_estimate_fn,), (spectral_norm_estimate,),
                 "one or many iterations, rank 1, a single row or column, float64, u kept a unit vector, "
                 "sigma's gradient u v^T ({cases} cases)")
