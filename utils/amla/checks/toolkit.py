"""Self-checks of Hour 01 (the toolkit): the training step, the warmup-cosine schedule, exact resume.

- 1.1 ``train_step``: two steps in a row on fresh copies of a small model (gradients left over from the first step
  show in the second), the losses and the parameters after each step compared with the reference; edge inputs:
  one micro-batch, micro-batches of one example, a max_norm that does not bind and one that binds hard, an enabled
  GradScaler (init_scale 2**10, so that clipping the scaled gradients is visible), a disabled one with momentum,
  bf16 autocast on the CPU. The micro-batches must come back unchanged; model, optimizer and scaler may change.
- 1.2 ``lr_at``: the learning rate at chosen steps of several schedules; edge inputs: no warm-up, warm-up as long as
  the run (no cosine part), min_lr == max_lr, min_lr = 0, steps far past the end. Its inputs are numbers, which
  cannot be changed in place.
- 1.3 ``save_training_state`` and ``load_training_state``, checked together: a run is interrupted, saved, loaded
  into fresh objects in "a new process" and finished; it must equal the uninterrupted run bit for bit, saving must
  change nothing, must leave no temporary file, must survive a crash mid-write, and the last save must win.
"""

from __future__ import annotations

import copy
import math
import os
import random
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import Tensor, nn

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.checks.values import snapshot, unchanged
from amla.toolkit.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from amla.toolkit.precision import autocast
from amla.toolkit.train import train_step as _package_step
from amla.toolkit.train import warmup_cosine

__all__ = ["check_lr_schedule", "check_resume", "check_train_step"]

TRAIN_STEP = exercise(1, "1.1", "A training step with accumulation, mixed precision and clipping", "train_step")
SCHEDULE = exercise(1, "1.2", "Warmup-cosine schedule", "lr_at")
RESUME = exercise(1, "1.3", "Save and load the complete training state", "save_training_state", "load_training_state")
_CPU = torch.device("cpu")


@contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is faster than several, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- Exercise 1.1: one mixed-precision training step with accumulation and clipping ------------------


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
    with _one_thread():
        return check(TRAIN_STEP, _STEP_SPEC, (train_step,), (reference_train_step,),
                     f"two steps in a row match the reference on {len(_step_cases())} cases (one micro-batch, batches "
                     "of 1, clipping that does not bind and that binds hard, loss scaling, momentum, bf16 autocast)")


# --- Exercise 1.2: warmup + cosine learning-rate schedule --------------------------------------------


def reference_lr_at(step: int, max_lr: float, warmup: int, total: int, min_lr: float) -> float:
    """``amla.toolkit.train.warmup_cosine`` with the exercise's signature (always a Python float)."""
    return float(warmup_cosine(step, max_lr, warmup, total, min_lr))


def _schedule_variant(kind: str) -> Callable[..., float]:
    def lr(step: int, max_lr: float, warmup: int, total: int, min_lr: float) -> float:
        if kind == "no_warmup":
            return warmup_cosine(step, max_lr, 0, total, min_lr)
        if step < warmup:
            return max_lr * (step if kind == "warmup_from_zero" else step + 1) / warmup
        if step >= total and kind != "no_clamp":
            return min_lr if kind != "to_zero" else 0.0
        span = total if kind == "cosine_from_zero" else max(1, total - warmup - (kind == "early_end"))
        progress = (step if kind == "cosine_from_zero" else step - warmup) / span
        turns = 2.0 if kind == "full_period" else 1.0
        floor = 0.0 if kind == "to_zero" else min_lr
        return floor + 0.5 * (max_lr - floor) * (1.0 + math.cos(turns * math.pi * progress))

    return lr


_SCHEDULE_MISTAKES = [
    Mistake("warmup starts from 0 (step / warmup): step 0 would not train at all; use (step + 1) / warmup.",
            _schedule_variant("warmup_from_zero")),
    Mistake("there is no warmup: the schedule starts at max_lr.", _schedule_variant("no_warmup")),
    Mistake("the cosine makes a full period (cos(2*pi*progress)) and climbs back up; it should fall only "
            "half a period, from max_lr to min_lr.", _schedule_variant("full_period")),
    Mistake("the schedule decays to 0 instead of min_lr.", _schedule_variant("to_zero")),
    Mistake("the cosine progress is measured from step 0 instead of from the end of warmup: "
            "progress = (step - warmup) / (total - warmup).", _schedule_variant("cosine_from_zero")),
    Mistake("the cosine reaches min_lr one step early: progress = (step - warmup) / (total - warmup), without "
            "a - 1.", _schedule_variant("early_end")),
    Mistake("past `total` the cosine goes on and climbs back up: return min_lr for step >= total.",
            _schedule_variant("no_clamp")),
]


def _schedule_cases() -> list[Case]:
    settings = [  # (max_lr, warmup, total, min_lr, what is special)
        (3e-3, 10, 100, 3e-4, ""),
        (0.5, 20, 60, 0.1, ""),
        (1.0, 5, 40, 0.0, "min_lr = 0"),
        (1e-3, 0, 50, 1e-4, "no warm-up"),
        (2e-3, 8, 8, 2e-4, "warm-up as long as the run (no cosine part)"),
        (1e-3, 4, 20, 1e-3, "min_lr = max_lr"),
    ]
    cases = []
    for max_lr, warmup, total, min_lr, special in settings:
        steps = sorted({0, 1, warmup // 2, warmup - 1, warmup, warmup + 1, (warmup + total) // 2,
                        (warmup + 3 * total) // 4, total - 1, total, total + 1, 10 * total} - {-1})
        for step in steps:
            what = f"step {step} of max_lr={max_lr:g}, warmup={warmup}, total={total}, min_lr={min_lr:g}"
            cases.append(Case(what + (f" ({special})" if special else ""), (step, max_lr, warmup, total, min_lr)))
    return cases


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-12)


def _above_floor(case: Case, result: Any, rerun: Any) -> str | None:
    step, max_lr, warmup, total, min_lr = case.args
    if step >= warmup and float(result) < min_lr - 1e-12:
        return f"at step {step} it is {float(result):.6g}, below min_lr = {min_lr:g}"
    return None


def _linear_warmup(case: Case, result: Any, rerun: Any) -> str | None:
    step, max_lr, warmup, total, min_lr = case.args
    if warmup == 0:
        return None
    rates = [float(rerun(s, max_lr, warmup, total, min_lr)) for s in range(warmup)]
    if not _close(rates[-1], max_lr):
        return f"at step warmup - 1 = {warmup - 1} it is {rates[-1]:.6g}, not max_lr = {max_lr:g}"
    rises = [b - a for a, b in zip(rates, rates[1:])]
    if any(not _close(r, max_lr / warmup) for r in rises) or not _close(rates[0], max_lr / warmup):
        return f"the first warm-up rates are {', '.join(f'{r:.4g}' for r in rates[:4])}: not steps of max_lr / warmup"
    return None


def _non_increasing(case: Case, result: Any, rerun: Any) -> str | None:
    step, max_lr, warmup, total, min_lr = case.args
    if step < warmup:
        return None
    after = float(rerun(step + 1, max_lr, warmup, total, min_lr))
    if after > float(result) + 1e-12:
        return f"it rises from {float(result):.6g} at step {step} to {after:.6g} at step {step + 1}"
    return None


def _min_at_total(case: Case, result: Any, rerun: Any) -> str | None:
    step, max_lr, warmup, total, min_lr = case.args
    end = float(rerun(total, max_lr, warmup, total, min_lr))
    return None if _close(end, min_lr) else f"at step total = {total} it is {end:.6g}, not min_lr = {min_lr:g}"


_SCHEDULE_PROPERTIES = [
    Property("'the warm-up rises linearly, in steps of max_lr / warmup, to max_lr at step warmup - 1'", _linear_warmup),
    Property("'after the warm-up the learning rate never increases'", _non_increasing),
    Property("'at step total the learning rate is min_lr'", _min_at_total),
    Property("'after the warm-up the learning rate never falls below min_lr'", _above_floor),
]

_SCHEDULE_SPEC = Spec(reference=reference_lr_at, cases=_schedule_cases, mistakes=_SCHEDULE_MISTAKES,
                      properties=_SCHEDULE_PROPERTIES, part="learning rate", atol=1e-12, rtol=1e-7)


def check_lr_schedule(lr_at: Callable[[int, float, int, int, float], float]) -> Callable[..., float]:
    """Exercise 1.2: ``lr_at(step, max_lr, warmup, total, min_lr) -> float``; returns the schedule the rest of the hour
    uses (yours once it passes)."""
    return check(SCHEDULE, _SCHEDULE_SPEC, (lr_at,), (reference_lr_at,),
                 f"{len(_schedule_cases())} steps of 6 schedules (no warm-up, no cosine part, min_lr = max_lr, "
                 "min_lr = 0, far past the end)")


# --- Exercise 1.3: save and load the complete training state -----------------------------------------


def reference_save(path: str, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, step: int) -> None:
    """Everything an exact resume needs, written atomically (``amla.toolkit.checkpoint.save_checkpoint``)."""
    save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "step": step, "rng": rng_state()})


def reference_load(path: str, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> int:
    """Restore what ``reference_save`` wrote (with ``weights_only=True``); the step to continue from."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])


def _without(piece: str) -> tuple[Callable[..., None], Callable[..., int]]:
    """A save/load pair that forgets ``piece`` of the state ("in_place": writes straight onto the path)."""

    def save(path: str, model: nn.Module, opt: Any, sched: Any, step: int) -> None:
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "step": step, "rng": rng_state()}
        state.pop(piece, None)
        torch.save(state, path) if piece == "in_place" else save_checkpoint(path, state)

    def load(path: str, model: nn.Module, opt: Any, sched: Any) -> int:
        state = torch.load(path, weights_only=True)
        for name, target in (("model", model), ("optimizer", opt), ("scheduler", sched)):
            if name in state:
                target.load_state_dict(state[name])
        if "rng" in state:
            set_rng_state(state["rng"])
        return int(state.get("step", 0))

    return save, load


_RESUME_MISTAKES = [
    Mistake("the model's weights are not restored: model.load_state_dict(state['model']).", _without("model")),
    Mistake("the optimizer state is not restored: AdamW's moment estimates start from zero again.",
            _without("optimizer")),
    Mistake("the learning-rate schedule is not restored, so it restarts its warmup.", _without("scheduler")),
    Mistake("the random-number state is not restored (amla.toolkit.checkpoint.rng_state / set_rng_state), so the "
            "resumed run draws different batches and dropout masks.", _without("rng")),
    Mistake("the step is not restored, so the run trains the wrong number of steps.", _without("step")),
    Mistake("a crash while saving destroyed the previous checkpoint: write to a temporary file in the same folder, "
            "then os.replace(tmp, path), so the old file is replaced only by a complete new one.",
            _without("in_place")),
]


def _fresh(total: int, seed: int) -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, 1.0, 3, total, 0.1))
    return model, opt, sched


def _train(model: nn.Module, opt: Any, sched: Any, start: int, stop: int) -> None:
    data = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    target = (data.sum(1) > 0).long()
    for _ in range(start, stop):
        idx = torch.randperm(64)[:16]  # the batch order comes from the global RNG, like a DataLoader's
        loss = nn.functional.cross_entropy(model(data[idx]), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def _weights(model: nn.Module) -> dict[str, Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _uninterrupted(total: int) -> dict[str, Tensor]:
    with torch.random.fork_rng(devices=[]):
        model, opt, sched = _fresh(total, 0)
        torch.manual_seed(42)
        _train(model, opt, sched, 0, total)
        return _weights(model)


def _global_rng() -> tuple[Any, ...]:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy(), np.random.get_state()[2]


def _what_changed(model: nn.Module, opt: Any, sched: Any, save: Callable[[], None]) -> list[str]:
    """Call ``save()`` and name what it changed: weights, optimizer, scheduler, training mode, random state."""
    before = [snapshot(model), snapshot(opt.state_dict()), snapshot(sched.state_dict())]
    rng = _global_rng()
    save()
    found = []
    if model.training != before[0]["training"]:
        found.append("the model's mode (model.eval() / model.train(): saving must leave the mode alone)")
    if not unchanged({k: v for k, v in before[0].items() if k != "training"}, model.state_dict()):
        found.append("the model's weights")
    for name, was, now in (("optimizer", before[1], opt.state_dict()), ("scheduler", before[2], sched.state_dict())):
        if not unchanged(was, now):
            found.append(f"the {name}'s state")
    now = _global_rng()
    if not (torch.equal(rng[0], now[0]) and rng[1] == now[1] and (rng[2] == now[2]).all() and rng[3] == now[3]):
        found.append("the random-number state (random numbers were drawn: saving must only read rng_state())")
    return found


def _crash_survives(save: Callable[..., None], folder: Path, name: str) -> str:
    """Save once, then save again while torch.save crashes half-way: is the first checkpoint still intact?"""
    folder.mkdir()
    target = folder / name
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save(str(target), model, opt, sched, 1)
    good = target.read_bytes()
    real_save = torch.save

    def crashing_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        real_save(obj, f, *args, **kwargs)
        if isinstance(f, (str, os.PathLike)):
            with open(f, "r+b") as handle:
                handle.truncate(100)  # a half-written file, then the "power cut"
        else:
            f.truncate(100)
        raise OSError("simulated crash while writing the checkpoint")

    with mock.patch("torch.save", crashing_save):
        try:
            save(str(target), model, opt, sched, 2)
        except OSError:
            pass
    return "intact" if target.exists() and target.read_bytes() == good else "destroyed"


def _as_step(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _resume(fns: tuple[Callable[..., None], Callable[..., int]], total: int, cut: int, first_save: int | None,
            name: str) -> tuple[Any, dict[str, Tensor], dict[str, Tensor], str, str, str]:
    """The scenario: train to ``cut`` (saving at ``first_save`` on the way), save, go on in the same process; then in
    "a new process" (fresh objects, another seed, another random state) load and finish; then the crash test."""
    save, load = fns
    outer = rng_state()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = str(folder / name)
            model, opt, sched = _fresh(total, 0)
            torch.manual_seed(42)
            changed = []
            if first_save is not None:
                _train(model, opt, sched, 0, first_save)
                changed += _what_changed(model, opt, sched, lambda: save(path, model, opt, sched, first_save))
            _train(model, opt, sched, first_save or 0, cut)
            changed += _what_changed(model, opt, sched, lambda: save(path, model, opt, sched, cut))
            left = sorted(p.name for p in folder.iterdir() if p.name != name)
            _train(model, opt, sched, cut, total)  # the process that saved goes on
            went_on = _weights(model)
            model, opt, sched = _fresh(total, 7)  # "a new process"
            torch.manual_seed(1234)
            try:
                start = load(path, model, opt, sched)
            except KeyError as err:
                if len(err.args) == 1 and isinstance(err.args[0], str):
                    err.args = (f"{err.args[0]!r}: load_training_state looks for a key that save_training_state did "
                                "not write; use the same keys in both",)
                raise
            _train(model, opt, sched, _as_step(start), total)
            crash = _crash_survives(save, folder / "crash", name)
            return (start, _weights(model), went_on, " and ".join(dict.fromkeys(changed)) or "nothing",
                    ", ".join(left) or "none", crash)
    finally:
        set_rng_state(outer)


def _saving_changes_nothing(case: Case, result: Any, rerun: Any) -> str | None:
    return None if result[3] == "nothing" else f"save_training_state changed {result[3]}"


def _crash_safe(case: Case, result: Any, rerun: Any) -> str | None:
    if result[5] == "intact":
        return None
    return ("a crash while saving destroyed the previous checkpoint: write to a temporary file in the same folder "
            f"(here the path is {case.args[3]!r}), then os.replace(tmp, path), so the old file is replaced only by a "
            "complete new one")


def _nothing_left(case: Case, result: Any, rerun: Any) -> str | None:
    if result[4] == "none":
        return None
    return (f"after saving, the folder still holds {result[4]}: move the temporary file onto the path with "
            "os.replace(tmp, path) (a copy leaves it behind)")


def _last_save_wins(case: Case, result: Any, rerun: Any) -> str | None:
    total, cut, first_save, name = case.args
    if _as_step(result[0]) == cut:
        return None
    also = f" (the save at step {first_save} came before it and must be replaced)" if first_save is not None else ""
    return f"load_training_state returned step {result[0]!r}, but the last save was at step {cut}{also}"


def _went_on_exactly(case: Case, result: Any, rerun: Any) -> str | None:
    want = _uninterrupted(case.args[0])
    if all(torch.equal(result[2][k], want[k]) for k in want):
        return None
    return "the run that saved and went on training differs from a run that never saved: saving must only read"


def _resumed_exactly(case: Case, result: Any, rerun: Any) -> str | None:
    want = _uninterrupted(case.args[0])
    if all(torch.equal(result[1][k], want[k]) for k in want):
        return None
    return ("the resumed run differs from the uninterrupted one: save and restore the model, the optimizer, the "
            "scheduler, the step and the RNG state (all five)")


_RESUME_PROPERTIES = [
    Property("'saving changes nothing (model, optimizer, scheduler, training mode, random state)'",
             _saving_changes_nothing),
    Property("'a crash while saving leaves the previous checkpoint intact'", _crash_safe),
    Property("'no temporary file is left next to the checkpoint'", _nothing_left),
    Property("'load returns the step of the last save'", _last_save_wins),
    Property("'the run that saved goes on as if it had not saved'", _went_on_exactly),
    Property("'the resumed run equals the uninterrupted one bit for bit'", _resumed_exactly),
]


def _resume_cases() -> list[Case]:
    return [
        Case("an 8-step run with dropout and AdamW, saved after step 4 to 'state.pt'", (8, 4, None, "state.pt")),
        Case("a checkpoint saved at step 0, before any training", (4, 0, None, "state.pt")),
        Case("two saves in a row to the same path (after steps 2 and 4)", (8, 4, 2, "state.pt")),
        Case("a path without the .pt suffix ('run_state')", (6, 3, None, "run_state")),
    ]


def _weights_only(source: str) -> str | None:
    loads = re.search(r"\.load\s*\(", source)
    if loads and "weights_only=True" not in source.replace(" ", ""):
        return ("load the file with torch.load(path, weights_only=True): a plain torch.load can run code hidden in a "
                "checkpoint someone sent you.")
    return None


_RESUME_SPEC = Spec(reference=(reference_save, reference_load), cases=_resume_cases, mistakes=_RESUME_MISTAKES,
                    properties=_RESUME_PROPERTIES, invoke=_resume, atol=0.0, rtol=0.0, source_rules=[_weights_only],
                    items=("step returned by load_training_state", "weights after the resumed run",
                           "weights of the run that saved and went on", "change made by saving",
                           "file left next to the checkpoint", "checkpoint after a crash while saving"))


def check_resume(save_training_state: Callable[..., None],
                 load_training_state: Callable[..., int]) -> tuple[Callable[..., None], Callable[..., int]]:
    """Exercise 1.3: stop a run, load it into fresh objects, finish it: it must equal the uninterrupted run. Returns
    ``(save_training_state, load_training_state)`` for the rest of the hour (yours once they pass)."""
    with _one_thread():
        return check(RESUME, _RESUME_SPEC, (save_training_state, load_training_state),
                     (reference_save, reference_load),
                     "the resumed run equals the uninterrupted one bit for bit (saved at step 0, twice to one path, "
                     "a path without suffix), saving changes nothing, leaves no temporary file and is atomic")
