"""The self-check of Exercise 12.1: WGAN-GP's gradient penalty (what it checks: the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.gan.stable import gradient_penalty

PENALTY = exercise(12, "12.1", "Gradient penalty", "gradient_penalty")

Critic = Callable[[Tensor], Tensor]


class _Recorder(nn.Module):
    """Wraps the critic and remembers the inputs it was called on (to see where the penalty was taken)."""

    def __init__(self, critic: nn.Module) -> None:
        super().__init__()
        self.critic = critic
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.inputs.append(x.detach().clone())
        return self.critic(x)


def _off_segment(real: Tensor, fake: Tensor, inputs: list[Tensor]) -> int:
    """How many samples the critic was *not* evaluated on their segment between real_i and fake_i (one t_i per
    sample); the call with the most samples on their segments counts (a student may call the critic more)."""
    if not inputs:
        return real.shape[0]
    b = real.shape[0]
    d = (real - fake).reshape(b, -1).double()
    best = b
    for x in inputs:
        if x.shape != real.shape:
            continue
        e = (x - fake).reshape(b, -1).double()
        s = (e * d).sum(1) / (d * d).sum(1).clamp(min=1e-30)
        residual = (e - s[:, None] * d).norm(dim=1) / d.norm(dim=1).clamp(min=1e-30)
        ok = (residual < 1e-4) & (s > -1e-5) & (s < 1 + 1e-5)
        best = min(best, int((~ok).sum()))
    return best


def _invoke(fn: Callable[..., Any], critic: nn.Module, real: Tensor, fake: Tensor, *t: Tensor) -> tuple[Any, ...]:
    """(the penalty, its gradient with respect to the critic's parameters, samples off their segment)."""
    recorder = _Recorder(critic)
    penalty = fn(recorder, real, fake, *t)
    params = [p for p in critic.parameters()]
    if isinstance(penalty, Tensor) and penalty.requires_grad and penalty.numel() == 1:
        grads = torch.autograd.grad(penalty.sum(), params, allow_unused=True)
        flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
    else:
        flat = torch.zeros(sum(p.numel() for p in params), dtype=params[0].dtype)
    return penalty, flat.detach(), _off_segment(real, fake, recorder.inputs)


class _Linear(nn.Module):
    """D(x) = w . x + b, for inputs of any shape [B, ...]: its gradient is w everywhere, the penalty (||w|| - 1)^2."""

    def __init__(self, shape: tuple[int, ...], scale: float, dtype: torch.dtype, g: torch.Generator) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, generator=g, dtype=dtype) * scale)
        self.b = nn.Parameter(torch.zeros((), dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.w).flatten(1).sum(1) + self.b


def _mlp(dtype: torch.dtype, g: torch.Generator) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(10_000, (1,), generator=g)))
        net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, 1))
    return net.to(dtype)


def _conv(g: torch.Generator) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(10_000, (1,), generator=g)))
        return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 3 * 3, 1))


def _penalty_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)

    def pts(b: int, dtype: torch.dtype = torch.float32, scale: float = 1.5) -> Tensor:
        return torch.randn(b, 2, generator=g, dtype=dtype) * scale

    def u(b: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.rand(b, generator=g, dtype=dtype)

    img = lambda b: torch.randn(b, 1, 5, 5, generator=g)  # noqa: E731
    t_ends = torch.tensor([0.0, 1.0, 0.3, 0.8])
    return [
        Case("an MLP critic on 6 points [6, 2] and t given [6]", (_mlp(torch.float32, g), pts(6), pts(6), u(6))),
        Case("a conv critic on images [4, 1, 5, 5] (the norm runs over all of C, H, W) and t given [4]",
             (_conv(g), img(4), img(4), u(4))),
        Case("t = [0, 1, 0.3, 0.8] (t = 1 is the real sample, t = 0 the fake one), an MLP critic",
             (_mlp(torch.float32, g), pts(4), pts(4), t_ends)),
        Case("a batch of one [1, 2] and t given [1]", (_mlp(torch.float32, g), pts(1), pts(1), u(1))),
        Case("float64 inputs (an MLP critic in float64, t given)", (_mlp(torch.float64, g), pts(5, torch.float64),
                                                                    pts(5, torch.float64), u(5, torch.float64))),
        Case("a critic linear in x, D(x) = w . x + b with ||w|| = 2.2 (penalty (||w|| - 1)^2 for any t), t left out",
             (_Linear((2,), 1.6, torch.float32, g), pts(6), pts(6))),
        Case("a linear critic on images [3, 1, 5, 5], t left out (you draw one t per sample)",
             (_Linear((1, 5, 5), 0.3, torch.float32, g), img(3), img(3))),
        Case("a linear critic in float64 with ||w|| < 1, t left out", (_Linear((2,), 0.4, torch.float64, g),
                                                                        pts(4, torch.float64), pts(4, torch.float64))),
    ]


def _variant(*, graph: bool = True, t_kind: str = "sample", norm: str = "sample", reduce: str = "mean",
             at: str = "mix", one_sided: bool = False) -> Callable[..., Tensor]:
    """The gradient penalty with one typical bug switched on (the defaults are correct)."""

    def fn(critic: Critic, real: Tensor, fake: Tensor, t: Tensor | None = None) -> Tensor:
        b = real.shape[0]
        if t is None:
            t = torch.rand_like(real) if t_kind == "element" else torch.rand(b, dtype=real.dtype)
        if t.shape == (b,):
            t = t.view(b, *([1] * (real.dim() - 1)))
        x = {"mix": t * real + (1 - t) * fake, "real": real, "fake": fake}[at].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=graph)
        if norm == "sample":
            n = grad.reshape(b, -1).norm(dim=1)
        elif norm == "last":
            n = grad.norm(dim=-1).reshape(b, -1)
        else:  # the whole batch
            n = grad.norm()
        if norm == "squared":
            return grad.reshape(b, -1).square().sum(1).mean()
        if norm == "squared_minus_one":
            return ((grad.reshape(b, -1).square().sum(1) - 1) ** 2).mean()
        gap = torch.relu(n - 1) if one_sided else n - 1
        per = gap**2
        return {"mean": per.mean(), "none": per, "sum": per.sum()}[reduce]

    return fn


_PENALTY_MISTAKES = [
    Mistake("torch.autograd.grad(...) is called without create_graph=True: the penalty then has no graph back to the "
            "critic's weights, so adding it to the loss changes nothing in training. Pass create_graph=True.",
            _variant(graph=False)),
    Mistake("t is drawn for every element (torch.rand_like(real)) instead of once per sample: the interpolates leave "
            "the straight line between real_i and fake_i. Draw t = torch.rand(B) and reshape it to [B, 1, ...].",
            _variant(t_kind="element")),
    Mistake("the penalty is the squared gradient norm ||g||^2; WGAN-GP penalises the distance of the norm from 1, "
            "(||g||_2 - 1)^2 (take .norm(dim=1), then subtract 1, then square).", _variant(norm="squared")),
    Mistake("the penalty is (||g||^2 - 1)^2: take the norm itself (the square root of the sum of squares), "
            "(||g||_2 - 1)^2.", _variant(norm="squared_minus_one")),
    Mistake("the norm is taken over the whole batch at once (grad.norm()); take one norm per sample, "
            "grad.reshape(B, -1).norm(dim=1), and average the penalties.", _variant(norm="batch")),
    Mistake("the norm is taken over the last dimension only; a sample's gradient is everything but the batch "
            "dimension: grad.reshape(B, -1).norm(dim=1).", _variant(norm="last")),
    Mistake("the per-sample penalties are not averaged: return their mean (a 0-d tensor).", _variant(reduce="none")),
    Mistake("the per-sample penalties are summed; WGAN-GP takes their mean (.mean()), so the penalty does not grow "
            "with the batch size.", _variant(reduce="sum")),
    Mistake("the penalty is taken at the real samples only; take it at the interpolates "
            "x_hat = t * real + (1 - t) * fake.", _variant(at="real")),
    Mistake("the penalty is taken at the fake samples only; take it at the interpolates "
            "x_hat = t * real + (1 - t) * fake.", _variant(at="fake")),
    Mistake("the penalty is one-sided, relu(||g|| - 1)^2 (WGAN-LP's variant); WGAN-GP's is two-sided, "
            "(||g|| - 1)^2.", _variant(one_sided=True)),
]


def _linear_closed_form(case: Case, result: Any, rerun: Any) -> str | None:
    critic = case.args[0]
    if not isinstance(critic, _Linear):
        return None
    want = float((critic.w.detach().double().norm() - 1) ** 2)
    got = float(result[0].detach().double().reshape(-1)[0]) if isinstance(result[0], Tensor) else float(result[0])
    if abs(got - want) > 1e-5 * max(1.0, want):
        return f"got {got:.6g}, expected (||w|| - 1)^2 = {want:.6g} (the gradient of w . x + b is w for every x)"
    return None


def _on_segments(case: Case, result: Any, rerun: Any) -> str | None:
    if result[2]:
        return (f"the critic was evaluated off the segment between real_i and fake_i for {result[2]} of "
                f"{case.args[1].shape[0]} samples; x_hat_i = t_i * real_i + (1 - t_i) * fake_i, one t_i per sample")
    return None


_PENALTY_PROPERTIES = [
    Property("'for a linear critic the penalty is (||w|| - 1)^2'", _linear_closed_form),
    Property("'x_hat lies on the segment between real and fake'", _on_segments),
]

_PENALTY_SPEC = Spec(reference=gradient_penalty, cases=_penalty_cases, mistakes=_PENALTY_MISTAKES,
                     properties=_PENALTY_PROPERTIES, invoke=_invoke, part="result",
                     items=("penalty", "gradient of the penalty with respect to the critic's weights",
                            "number of samples whose x_hat is off the real-fake segment"),
                     arg_names=("critic", "real", "fake", "t"), atol=1e-5, rtol=1e-4)


def check_gradient_penalty(gradient_penalty_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 12.1: ``gradient_penalty(critic, real, fake, t=None)``; returns the penalty the critic trains with."""
    return check(PENALTY, _PENALTY_SPEC, (gradient_penalty_fn,), (gradient_penalty,),
                 "one t per sample, the norm per sample over all its dimensions, the mean, and a graph back to the "
                 "critic's weights (create_graph=True) ({cases} cases)")
