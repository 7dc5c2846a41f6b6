"""The self-check of Exercise 1.1: one mixed-precision training step with accumulation and clipping
(what it checks: the package docstring)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.toolkit.precision import autocast
from amla.toolkit.train import train_step as _package_step

_CPU = torch.device("cpu")
TRAIN_STEP = exercise(1, "1.1", "A training step with accumulation, mixed precision and clipping", "train_step")


def reference_train_step(model: nn.Module, micro_batches: list[tuple[Tensor, Tensor]], optimizer: torch.optim.Optimizer,
                         scaler: torch.amp.GradScaler, dtype: torch.dtype | None, max_norm: float) -> float:
    """The course's step (``amla.toolkit.train.train_step``) with the exercise's signature: the mean loss, a float."""
    loss, _ = _package_step(model, micro_batches, optimizer, scaler, dtype, max_norm)
    return loss


def _step_variant(*, divide: bool = True, zero: str = "once", clip: str = "after_unscale", step_each: bool = False,
                  returns: str = "mean", cast: str = "all", steps: bool = True) -> Callable[..., float]:
    """A training step with one typical bug switched on (the defaults are correct).

    ``zero``: "once" | "each" (inside the loop) | "never"; ``clip``: "after_unscale" | "before_unscale" | "none" |
    "fixed" (1.0 instead of max_norm); ``returns``: "mean" | "sum" | "last"; ``cast``: "all" | "none" (dtype ignored)
    | "forward" (the loss outside autocast) | "torch" (``torch.autocast`` itself, which casts even for dtype=None)."""

    def step(model, micro_batches, optimizer, scaler, dtype, max_norm):  # noqa: ANN001, ANN202
        device = next(model.parameters()).device
        k = len(micro_batches)
        if zero == "once":
            optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for x, y in micro_batches:
            if zero == "each":
                optimizer.zero_grad(set_to_none=True)
            context = torch.autocast(device.type, dtype=dtype) if cast == "torch" else autocast(
                device, dtype if cast != "none" else None)
            with context:
                logits = model(x)
                loss = nn.functional.cross_entropy(logits, y) if cast != "forward" else None
            if loss is None:
                loss = nn.functional.cross_entropy(logits, y)
            full = loss.item()
            if divide:
                loss = loss / k
            scaler.scale(loss).backward()
            total = full if returns == "last" else total + (full if returns == "sum" else full / k)
            if step_each:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
        if step_each:
            return total
        if clip == "before_unscale":
            nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.unscale_(optimizer)
        if clip in ("after_unscale", "fixed"):
            nn.utils.clip_grad_norm_(model.parameters(), max_norm if clip == "after_unscale" else 1.0)
        if steps:
            scaler.step(optimizer)
        scaler.update()
        return total

    return step


_STEP_MISTAKES = [
    Mistake("the loss of each micro-batch is not divided by the number of micro-batches, so the accumulated "
            "gradient is K times too large (accumulation must give the mean, like one big batch).",
            _step_variant(divide=False)),
    Mistake("the gradients are zeroed inside the micro-batch loop, so only the last micro-batch counts; "
            "zero them once, before the loop.", _step_variant(zero="each")),
    Mistake("the gradients are never zeroed: the first step looks right (a fresh model has no gradients yet), but "
            "every later step adds its gradients to the previous step's. Call optimizer.zero_grad() once, before "
            "the micro-batch loop.", _step_variant(zero="never")),
    Mistake("the gradients are clipped before scaler.unscale_(optimizer): clipping then sees the scaled "
            "gradients (2**10 times too big here); unscale first, then clip.", _step_variant(clip="before_unscale")),
    Mistake("the gradient norm is never clipped; call torch.nn.utils.clip_grad_norm_ after unscaling.",
            _step_variant(clip="none")),
    Mistake("the gradients are clipped to a fixed norm of 1.0 instead of `max_norm`.", _step_variant(clip="fixed")),
    Mistake("the optimizer steps after every micro-batch instead of once after all of them.",
            _step_variant(step_each=True)),
    Mistake("the optimizer never steps, so the parameters do not change: call scaler.step(optimizer) (it calls "
            "optimizer.step() unless the gradients overflowed), then scaler.update().", _step_variant(steps=False)),
    Mistake("the returned loss is the sum of the micro-batch losses, not their mean.", _step_variant(returns="sum")),
    Mistake("the returned loss is the last micro-batch's, not the mean over all of them.",
            _step_variant(returns="last")),
    Mistake("`dtype` is ignored: the forward pass and the loss must run inside `with autocast(device, dtype):` "
            "(a no-op when dtype is None, bf16 or fp16 matrix products otherwise).", _step_variant(cast="none")),
    Mistake("the loss is computed outside autocast: cross_entropy then runs in bf16 on the bf16 logits, while "
            "inside autocast PyTorch computes it in fp32. Put both model(x) and the loss inside "
            "`with autocast(device, dtype):`.", _step_variant(cast="forward")),
    Mistake("torch.autocast(device.type, dtype=dtype) autocasts even when dtype is None (to bf16 on the CPU, to fp16 "
            "on CUDA), so the fp32 steps here ran in 16 bits; use the given autocast(device, dtype), which does "
            "nothing for dtype=None.", _step_variant(cast="torch")),
]


def _step_case(label: str, seed: int, *, k: int = 4, batch: int = 8, max_norm: float = 0.5, lr: float = 0.1,
               momentum: float = 0.0, scale: float | None = 2.0**10, dtype: torch.dtype | None = None) -> Case:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    scaler = (torch.amp.GradScaler("cpu", init_scale=scale) if scale is not None
              else torch.amp.GradScaler("cpu", enabled=False))
    micro = [(torch.randn(batch, 6, generator=g) * 3, torch.randint(0, 3, (batch,), generator=g)) for _ in range(k)]
    scaler_text = f"an enabled GradScaler (init_scale 2**{int(math.log2(scale))})" if scale else "a disabled GradScaler"
    text = (f"{label}: {k} micro-batch{'es' * (k > 1)} of {batch} example{'s' * (batch > 1)}, SGD (lr {lr:g}"
            f"{f', momentum {momentum:g}' if momentum else ''}), {scaler_text}, dtype={dtype}, max_norm={max_norm:g}")
    return Case(text, (model, micro, optimizer, scaler, dtype, max_norm))


def _step_cases() -> list[Case]:
    return [
        _step_case("ordinary inputs", 1),
        _step_case("a single micro-batch (K = 1)", 2, k=1, batch=16),
        _step_case("a max_norm that does not bind", 3, max_norm=1e6),
        _step_case("a max_norm that binds hard", 4, max_norm=1e-3),
        _step_case("a batch of 1 in every micro-batch", 5, k=3, batch=1),
        _step_case("momentum and no loss scaling", 6, momentum=0.9, scale=None, max_norm=1.0),
        _step_case("bf16 autocast (on the CPU here)", 7, dtype=torch.bfloat16, scale=None, max_norm=1.0),
    ]


def _two_steps(step: Callable[..., Any], model: nn.Module, micro: list[Any], optimizer: Any, scaler: Any,
               dtype: torch.dtype | None, max_norm: float) -> tuple[Any, dict[str, Tensor], Any, dict[str, Tensor]]:
    """Two steps in a row (the second on an untouched copy of the micro-batches): each one's loss and parameters."""
    spare = copy.deepcopy(micro)
    first = step(model, micro, optimizer, scaler, dtype, max_norm)
    after_first = {n: p.detach().clone() for n, p in model.named_parameters()}
    second = step(model, spare, optimizer, scaler, dtype, max_norm)
    return first, after_first, second, {n: p.detach().clone() for n, p in model.named_parameters()}


def _mean_loss(model: nn.Module, micro: list[Any], dtype: torch.dtype | None,
               params: dict[str, Tensor] | None) -> float:
    model = copy.deepcopy(model)
    if params is not None:
        model.load_state_dict(params)
    with torch.no_grad(), autocast(_CPU, dtype):
        return sum(float(nn.functional.cross_entropy(model(x), y)) for x, y in micro) / len(micro)


def _loss_is_mean(case: Case, result: Any, rerun: Any) -> str | None:
    model, micro, _, scaler, dtype, _ = case.args
    for n, (loss, params) in enumerate([(result[0], None), (result[2], result[1])]):
        want = _mean_loss(model, micro, dtype, params)
        if not math.isclose(float(loss), want, rel_tol=1e-3, abs_tol=1e-5):
            hint = " (the scaled loss? return the loss before scaler.scale)" if scaler.is_enabled() else ""
            return (f"step {n + 1} returned {float(loss):.6g}, but the mean cross-entropy of its micro-batches on "
                    f"the parameters it started from is {want:.6g}{hint}")
    return None


def _update_is_bounded(case: Case, result: Any, rerun: Any) -> str | None:
    model, _, optimizer, _, _, max_norm = case.args
    group = optimizer.param_groups[0]
    if group["momentum"] or group["weight_decay"] or max_norm > 1e3:
        return None
    start = {n: p.detach() for n, p in model.named_parameters()}
    for n, (before, after) in enumerate([(start, result[1]), (result[1], result[3])]):
        moved = math.sqrt(sum(float(((after[k] - before[k]).double() ** 2).sum()) for k in before))
        if moved > group["lr"] * max_norm * (1 + 1e-3) + 1e-7:
            return (f"SGD step {n + 1} moved the parameters by {moved:.4g}, more than lr * max_norm = "
                    f"{group['lr'] * max_norm:.4g}: the whole gradient vector (all parameters together) must be "
                    "clipped to norm max_norm")
    return None


def _parameters_change(case: Case, result: Any, rerun: Any) -> str | None:
    start = dict(case.args[0].named_parameters())
    for n, params in enumerate((result[1], result[3])):
        if all(torch.equal(params[k], start[k].detach()) for k in start):
            return f"the parameters did not change in step {n + 1}"
        start = params
    return None


def _repeatable(case: Case, result: Any, rerun: Any) -> str | None:
    again = rerun(*case.args)
    same = [float(again[i]) == float(result[i]) for i in (0, 2)] + [
        all(torch.equal(again[i][k], result[i][k]) for k in result[i]) for i in (1, 3)]
    if not all(same):
        return "a second run on fresh copies of the same inputs gave another result (is some state kept between calls?)"
    return None


_STEP_PROPERTIES = [
    Property("'the returned loss is the mean of the micro-batch losses'", _loss_is_mean),
    Property("'after clipping, an SGD step moves the parameters by at most lr * max_norm'", _update_is_bounded),
    Property("'every step changes the parameters'", _parameters_change),
    Property("'two identical calls on fresh copies give the same result'", _repeatable),
]

_STEP_SPEC = Spec(reference=reference_train_step, cases=_step_cases, mistakes=_STEP_MISTAKES,
                  properties=_STEP_PROPERTIES, invoke=_two_steps, mutable=frozenset({0, 2, 3}), atol=1e-6, rtol=1e-5,
                  items=("loss of the first step", "parameters after the first step", "loss of the second step",
                         "parameters after the second step"))


def check_train_step(train_step: Callable[..., float]) -> Callable[..., float]:
    """Exercise 1.1: ``train_step(model, micro_batches, optimizer, scaler, dtype, max_norm) -> float``; returns the
    step the rest of the hour trains with (yours once it passes)."""
    return check(TRAIN_STEP, _STEP_SPEC, (train_step,), (reference_train_step,),
                 "two steps in a row match the reference on {cases} cases (one micro-batch, batches "
                 "of 1, clipping that does not bind and that binds hard, loss scaling, momentum, bf16 autocast)")
