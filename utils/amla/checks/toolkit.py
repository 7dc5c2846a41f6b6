"""Self-checks of Hour 01 (the toolkit): the training step, the warmup-cosine schedule, exact resume."""

from __future__ import annotations

import inspect
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable
from unittest import mock

import torch
from torch import nn

from amla.toolkit.checkpoint import rng_state, set_rng_state
from amla.checks.core import Mistake, compare, fail, passed
from amla.toolkit.train import default_loss, warmup_cosine

# --- Exercise 1.1: one mixed-precision training step with accumulation and clipping ------------------


def _reference_step(model, micro_batches, optimizer, scaler, dtype, max_norm):  # noqa: ANN001
    from amla.toolkit.train import train_step

    loss, _ = train_step(model, micro_batches, optimizer, scaler, dtype, max_norm)
    return loss


def _step_variant(*, divide: bool = True, zero_each: bool = False, clip: str = "after_unscale", step_each: bool = False):
    """A training step with one typical bug switched on (all off = correct)."""

    def step(model, micro_batches, optimizer, scaler, dtype, max_norm):  # noqa: ANN001
        k = len(micro_batches)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for batch in micro_batches:
            if zero_each:
                optimizer.zero_grad(set_to_none=True)
            loss = default_loss(model, batch)
            if divide:
                loss = loss / k
            scaler.scale(loss).backward()
            total += loss.item() if divide else loss.item() / k
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
        else:
            scaler.unscale_(optimizer)
            if clip != "none":
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        return total

    return step


def _step_inputs(g: torch.Generator) -> tuple[Any, ...]:
    with torch.random.fork_rng(devices=[]):  # a check must not move the notebook's random state
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # An enabled scaler (on CPU too) makes "clip before unscale" visible: the scaled gradients are 2**10 too big.
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    micro = [(torch.randn(8, 6, generator=g) * 3, torch.randint(0, 3, (8,), generator=g)) for _ in range(4)]
    return model, micro, optimizer, scaler, None, 0.5


def _params_after(result: Any, model: nn.Module, *rest: Any) -> dict[str, Any]:
    return {"loss": result, "params": [p.detach().clone() for p in model.parameters()]}


def check_train_step(train_step: Callable[..., float]) -> None:
    """Exercise 1.1: compare one accumulated, clipped, scaled step with the reference."""
    mistakes = [
        Mistake("the loss of each micro-batch is not divided by the number of micro-batches, so the accumulated "
                "gradient is K times too large (accumulation must give the mean, like one big batch).",
                _step_variant(divide=False)),
        Mistake("the gradients are zeroed inside the micro-batch loop, so only the last micro-batch counts; "
                "zero them once, before the loop.", _step_variant(zero_each=True)),
        Mistake("the gradients are clipped before scaler.unscale_(optimizer): clipping then sees the scaled "
                "gradients (2**10 times too big here); unscale first, then clip.",
                _step_variant(clip="before_unscale")),
        Mistake("the gradient norm is never clipped; call torch.nn.utils.clip_grad_norm_ after unscaling.",
                _step_variant(clip="none")),
        Mistake("the optimizer steps after every micro-batch instead of once after all of them.",
                _step_variant(step_each=True)),
    ]
    compare("Exercise 1.1 (training step)", train_step, _reference_step, _step_inputs, mistakes,
            observe=_params_after, what="result (loss and updated parameters)", atol=1e-6, rtol=1e-5)


# --- Exercise 1.2: warmup + cosine learning-rate schedule --------------------------------------------


def _schedule_variant(kind: str) -> Callable[..., float]:
    def lr(step: int, max_lr: float, warmup: int, total: int, min_lr: float) -> float:
        if kind == "no_warmup":
            return warmup_cosine(step, max_lr, 0, total, min_lr)
        if step < warmup:
            return max_lr * (step if kind == "warmup_from_zero" else step + 1) / warmup
        if step >= total:
            return min_lr if kind != "to_zero" else 0.0
        if kind == "cosine_from_zero":
            progress = step / total
        else:
            progress = (step - warmup) / max(1, total - warmup)
        turns = 2.0 if kind == "full_period" else 1.0
        floor = 0.0 if kind == "to_zero" else min_lr
        return floor + 0.5 * (max_lr - floor) * (1.0 + math.cos(turns * math.pi * progress))

    return lr


def check_lr_schedule(lr_at: Callable[[int, float, int, int, float], float]) -> None:
    """Exercise 1.2: the learning rate at every step of three schedules."""
    settings = [(3e-3, 10, 100, 3e-4), (1.0, 5, 40, 0.0), (0.5, 20, 60, 0.1)]

    def curve(fn: Callable[..., float]) -> Callable[..., torch.Tensor]:
        def run(max_lr: float, warmup: int, total: int, min_lr: float) -> torch.Tensor:
            return torch.tensor([float(fn(s, max_lr, warmup, total, min_lr)) for s in range(total + 5)],
                                dtype=torch.float64)
        return run

    def inputs(g: torch.Generator) -> tuple[Any, ...]:
        return settings[int(g.initial_seed()) % len(settings)]

    mistakes = [
        Mistake("warmup starts from 0 (step / warmup): step 0 would not train at all; use (step + 1) / warmup.",
                curve(_schedule_variant("warmup_from_zero"))),
        Mistake("there is no warmup: the schedule starts at max_lr.", curve(_schedule_variant("no_warmup"))),
        Mistake("the cosine makes a full period (cos(2*pi*progress)) and climbs back up; it should fall only "
                "half a period, from max_lr to min_lr.", curve(_schedule_variant("full_period"))),
        Mistake("the schedule decays to 0 instead of min_lr.", curve(_schedule_variant("to_zero"))),
        Mistake("the cosine progress is measured from step 0 instead of from the end of warmup: "
                "progress = (step - warmup) / (total - warmup).", curve(_schedule_variant("cosine_from_zero"))),
    ]
    compare("Exercise 1.2 (warmup-cosine schedule)", curve(lr_at), curve(warmup_cosine), inputs, mistakes,
            trials=len(settings), what="learning-rate curve", atol=1e-9, rtol=1e-7)


# --- Exercise 1.3: save and load the complete training state -----------------------------------------


def _tiny_run(save_fn: Callable[..., None] | None, load_fn: Callable[..., int] | None, folder: Path,
              total: int = 12, cut: int = 5) -> list[torch.Tensor]:
    """Train ``total`` steps; with save/load, stop after ``cut``, wreck the process state, load and finish."""

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, 1.0, 3, total, 0.1))
        return model, opt, sched

    data = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    target = (data.sum(1) > 0).long()

    def train(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, start: int, stop: int) -> None:
        for step in range(start, stop):
            idx = torch.randperm(64)[:16]  # the batch order comes from the global RNG, like a DataLoader's
            loss = nn.functional.cross_entropy(model(data[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()

    model, opt, sched = fresh()
    torch.manual_seed(42)
    if save_fn is None or load_fn is None:
        train(model, opt, sched, 0, total)
        return [p.detach().clone() for p in model.parameters()]
    train(model, opt, sched, 0, cut)
    path = folder / "state.pt"
    save_fn(str(path), model, opt, sched, cut)
    model, opt, sched = fresh()  # "a new process": fresh objects and a different RNG state
    torch.manual_seed(1234)
    start = load_fn(str(path), model, opt, sched)
    if not isinstance(start, int):
        fail("Exercise 1.3 (exact resume)", f"load_training_state should return the step as an int, got {start!r}.")
    train(model, opt, sched, start, total)
    return [p.detach().clone() for p in model.parameters()]


def _without(piece: str) -> tuple[Callable[..., None], Callable[..., int]]:
    """A save/load pair that forgets ``piece`` of the state."""

    def save(path: str, model: nn.Module, opt: Any, sched: Any, step: int) -> None:
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "step": step, "rng": rng_state()}
        state.pop(piece, None)
        torch.save(state, path)

    def load(path: str, model: nn.Module, opt: Any, sched: Any) -> int:
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        if "optimizer" in state:
            opt.load_state_dict(state["optimizer"])
        if "scheduler" in state:
            sched.load_state_dict(state["scheduler"])
        if "rng" in state:
            set_rng_state(state["rng"])
        return int(state.get("step", 0))

    return save, load


def check_resume(save_training_state: Callable[..., None], load_training_state: Callable[..., int]) -> None:
    """Exercise 1.3: stop a run, load it into fresh objects, finish it: it must equal the uninterrupted run."""
    with torch.random.fork_rng(devices=[]):  # a check must not move the notebook's random state
        _check_resume(save_training_state, load_training_state)


def _check_resume(save_training_state: Callable[..., None], load_training_state: Callable[..., int]) -> None:
    name = "Exercise 1.3 (exact resume)"
    if "weights_only=True" not in inspect.getsource(load_training_state).replace(" ", ""):
        fail(name, "load the file with torch.load(path, weights_only=True): a plain torch.load can run code "
                   "hidden in a checkpoint someone sent you.")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        expected = _tiny_run(None, None, folder)
        try:
            got = _tiny_run(save_training_state, load_training_state, folder)
        except NotImplementedError:
            fail(name, "not implemented yet: replace the `raise NotImplementedError` lines with your code.")
        except KeyError as err:
            fail(name, f"loading looked for the key {err} that saving did not write; use the same keys in both.")
        if not all(torch.equal(a, b) for a, b in zip(got, expected)):
            hints = {
                "optimizer": "the optimizer state is not restored: AdamW's moment estimates start from zero again.",
                "scheduler": "the learning-rate schedule is not restored, so it restarts its warmup.",
                "rng": "the random-number state is not restored (amla.toolkit.checkpoint.rng_state / set_rng_state), so "
                       "the resumed run draws different batches and dropout masks.",
                "step": "the step is not restored, so the run trains the wrong number of steps.",
            }
            for piece, hint in hints.items():
                if all(torch.equal(a, b) for a, b in zip(got, _tiny_run(*_without(piece), folder))):
                    fail(name, f"the resumed run differs from the uninterrupted one; {hint}")
            fail(name, "the resumed run differs from the uninterrupted one; save and restore the model, optimizer, "
                       "scheduler, step and RNG state.")
        # Atomic write: a crash in the middle of saving must leave the previous checkpoint intact.
        target = folder / "atomic.pt"
        _tiny_model = nn.Linear(2, 2)
        _opt = torch.optim.SGD(_tiny_model.parameters(), lr=0.1)
        _sched = torch.optim.lr_scheduler.LambdaLR(_opt, lambda s: 1.0)
        save_training_state(str(target), _tiny_model, _opt, _sched, 1)
        good = target.read_bytes()
        real_save = torch.save

        def crashing_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            real_save(obj, f, *args, **kwargs)
            if isinstance(f, (str, os.PathLike)):
                with open(f, "r+b") as handle:
                    handle.truncate(100)  # half-written file, then the "power cut"
            else:
                f.truncate(100)
            raise OSError("simulated crash while writing the checkpoint")

        with mock.patch("torch.save", crashing_save):
            try:
                save_training_state(str(target), _tiny_model, _opt, _sched, 2)
            except OSError:
                pass
        if not target.exists() or target.read_bytes() != good:
            fail(name, "a crash while saving destroyed the previous checkpoint: write to a temporary file in the same "
                       "folder, then os.replace(tmp, path), so the old file is replaced only by a complete new one.")
    passed(name, "the resumed run equals the uninterrupted one bit for bit, and saving is atomic")
