"""The self-check of Exercise 11.2: spherical interpolation of latent vectors (what it checks: the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.gan.dcgan import slerp

SLERP = exercise(11, "11.2", "Spherical interpolation", "slerp")


def _slerp_cases() -> list[Case]:
    g = torch.Generator().manual_seed(111)

    def randn(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    same = randn(3, 8)
    base = randn(2, 16)
    units = torch.nn.functional.normalize(randn(4, 3), dim=-1)
    return [
        Case("a batch of 5 pairs of 16-d latents (norms about 4) and t = [0.1, 0.25, 0.5, 0.7, 0.9]",
             (randn(5, 16), randn(5, 16) * 1.5, torch.tensor([0.1, 0.25, 0.5, 0.7, 0.9]))),
        Case("t = 0.0 (a float): the result is z0", (randn(3, 8), randn(3, 8), 0.0)),
        Case("t = 1.0 (a float): the result is z1", (randn(3, 8), randn(3, 8), 1.0)),
        Case("one pair of plain vectors z0, z1 of shape (64,) and t = 0.3 (a float)", (randn(64), randn(64), 0.3)),
        Case("4 pairs of unit vectors in 3-d and t = [0.0, 0.33, 0.5, 1.0]",
             (units, torch.nn.functional.normalize(randn(4, 3), dim=-1), torch.tensor([0.0, 0.33, 0.5, 1.0]))),
        Case("identical vectors z0 == z1 (angle 0: sin(angle) = 0) and t = 0.5", (same, same.clone(), 0.5)),
        Case("parallel vectors z1 = 2.5 z0 and t = 0.25", (same, 2.5 * same, 0.25)),
        Case("nearly parallel vectors (angle about 1e-3) and t = [0.2, 0.6]",
             (base, base + 1e-3 * randn(2, 16), torch.tensor([0.2, 0.6]))),
        Case("a batch of one: z0, z1 of shape (1, 16) and t = [0.4]", (randn(1, 16), randn(1, 16), torch.tensor([0.4]))),
        Case("float64 latents of shape (3, 10) and float64 t = [0.2, 0.5, 0.8]",
             (randn(3, 10, dtype=torch.float64), randn(3, 10, dtype=torch.float64),
              torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64))),
    ]


def _slerp_variant(kind: str) -> Callable[..., Tensor]:
    """A slerp with one typical bug switched on (kind)."""

    def fn(z0: Tensor, z1: Tensor, t: Any) -> Tensor:
        t = torch.as_tensor(t, dtype=z0.dtype)
        if kind != "t_not_per_row":
            t = t.unsqueeze(-1)
        if kind == "lerp":
            return (1 - t) * z0 + t * z1
        if kind == "unnormalised":
            cos = (z0 * z1).sum(-1, keepdim=True)
        elif kind == "global_angle":
            cos = (z0 * z1).sum() / (z0.norm() * z1.norm())
        else:
            cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
        omega = torch.arccos(cos.clamp(-1, 1))
        den = omega if kind == "omega_not_sin" else torch.sin(omega)
        w = torch.cos if kind == "cos_weights" else torch.sin
        a, b = (w(t * omega), w((1 - t) * omega)) if kind == "swapped" else (w((1 - t) * omega), w(t * omega))
        out = a / den * z0 + b / den * z1
        if kind != "no_fallback":
            small = torch.sin(omega) < 1e-6
            out = torch.where(small, (1 - t) * z0 + t * z1, out)
        if kind == "unit_output":
            out = torch.nn.functional.normalize(out, dim=-1)
        return out

    return fn


_SLERP_MISTAKES = [
    Mistake("this is linear interpolation, (1 - t) z0 + t z1: the path cuts through the inside of the sphere, where "
            "the latents are shorter than any the generator was trained on. Weight z0 by sin((1 - t) w) / sin(w) "
            "and z1 by sin(t w) / sin(w), w the angle between them.", _slerp_variant("lerp")),
    Mistake("the angle comes from the dot product of the raw vectors: cos(w) = <z0, z1> / (|z0| |z1|); divide by "
            "both norms (or normalise z0 and z1 first) before arccos.", _slerp_variant("unnormalised")),
    Mistake("one angle is computed for the whole batch (the sums and norms run over every entry); compute it per "
            "row, along the last axis, with keepdim=True.", _slerp_variant("global_angle")),
    Mistake("the weights are swapped: at t = 0 the result must be z0, so z0 gets sin((1 - t) w) / sin(w) and z1 "
            "gets sin(t w) / sin(w).", _slerp_variant("swapped")),
    Mistake("the weights are divided by the angle w instead of sin(w).", _slerp_variant("omega_not_sin")),
    Mistake("the weights use cos instead of sin: slerp's weights are sin((1 - t) w) / sin(w) and sin(t w) / sin(w).",
            _slerp_variant("cos_weights")),
    Mistake("identical or parallel vectors give 0 / 0 = nan: the angle is 0 and so is sin(w). Where sin(w) is tiny "
            "(say below 1e-6), use linear interpolation, the limit of slerp as w -> 0 (torch.where).",
            _slerp_variant("no_fallback")),
    Mistake("the result is normalised to unit length: slerp moves along the arc between z0 and z1, and the "
            "formula itself blends their norms; do not normalise the result.", _slerp_variant("unit_output")),
    Mistake("a tensor t of shape [N] is not given a last axis, so it cannot broadcast against [N, D] latents "
            "(one fraction per row): use t.unsqueeze(-1) (a float t works either way).",
            _slerp_variant("t_not_per_row")),
]


def _like(t: Any, value: float) -> Any:
    return torch.full_like(t, value) if isinstance(t, Tensor) else value


def _endpoints(case: Case, out: Tensor, rerun: Any) -> str | None:
    z0, z1, t = case.args
    for value, want, name in ((0.0, z0, "z0"), (1.0, z1, "z1")):
        got = rerun(z0, z1, _like(t, value))
        if isinstance(got, Tensor) and got.shape == want.shape and not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
            return f"with t = {value:g} the result is not {name} (off by up to {(got - want).abs().max().item():.3g})"
    return None


def _unit_norms(case: Case, out: Tensor, rerun: Any) -> str | None:
    z0, z1, t = case.args
    if z0.dim() < 2 or (z0 == z1).all():
        return None
    u0, u1 = torch.nn.functional.normalize(z0, dim=-1), torch.nn.functional.normalize(z1, dim=-1)
    got = rerun(u0, u1, _like(t, 0.5))
    if isinstance(got, Tensor) and got.shape == u0.shape:
        norms = got.norm(dim=-1)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
            return (f"halfway between unit vectors the norms are {norms.min().item():.4g} to {norms.max().item():.4g}, "
                    "not 1: a point on the arc between unit vectors is a unit vector")
    return None


def _even_steps(case: Case, out: Tensor, rerun: Any) -> str | None:
    z0, z1, _ = case.args
    if z0.dim() < 2 or (z0 == z1).all():
        return None
    steps = 7  # between unit vectors (with unequal norms the direction does not turn evenly)
    u0, u1 = torch.nn.functional.normalize(z0[0], dim=-1), torch.nn.functional.normalize(z1[0], dim=-1)
    a, b = u0.expand(steps, -1), u1.expand(steps, -1)
    path = rerun(a, b, torch.linspace(0, 1, steps, dtype=z0.dtype))
    if not isinstance(path, Tensor) or path.shape != a.shape:
        return None
    unit = torch.nn.functional.normalize(path.double(), dim=-1)
    angles = torch.arccos((unit[1:] * unit[:-1]).sum(-1).clamp(-1, 1))
    if float(angles.max() - angles.min()) > 1e-3 * max(1.0, float(angles.mean())) + 1e-4:
        return (f"the angles between consecutive points of a 7-point path (t = 0, 1/6, ..., 1) range from "
                f"{angles.min().item():.4f} to {angles.max().item():.4f} rad; evenly spaced t must give equal angles")
    return None


_SLERP_PROPERTIES = [
    Property("'t = 0 gives z0 and t = 1 gives z1'", _endpoints),
    Property("'between unit vectors every point has norm 1'", _unit_norms),
    Property("'between unit vectors, evenly spaced t turn by equal angles'", _even_steps),
]

_SLERP_SPEC = Spec(reference=slerp, cases=_slerp_cases, mistakes=_SLERP_MISTAKES, properties=_SLERP_PROPERTIES,
                   arg_names=("z0", "z1", "t"), atol=1e-5, rtol=1e-4)


def check_slerp(slerp_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 11.2: ``slerp(z0 [..., D], z1 [..., D], t float or [...]) -> [..., D]``; returns the slerp the
    rest of the hour uses (yours once it passes)."""
    return check(SLERP, _SLERP_SPEC, (slerp_fn,), (slerp,),
                 "endpoints, unit norms, equal angle steps, parallel and nearly parallel vectors, a batch of one, "
                 "float64 ({cases} cases)")
