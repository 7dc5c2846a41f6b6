"""The self-check of Exercise 1.3: save and load the complete training state
(what it checks: the package docstring)."""

from __future__ import annotations

import os
import random
import re
import tempfile
from collections.abc import Callable
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
from amla.toolkit.train import warmup_cosine

RESUME = exercise(1, "1.3", "Save and load the complete training state", "save_training_state", "load_training_state")


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
    return check(RESUME, _RESUME_SPEC, (save_training_state, load_training_state),
                 (reference_save, reference_load),
                 "the resumed run equals the uninterrupted one bit for bit (saved at step 0, twice to one path, "
                 "a path without suffix), saving changes nothing, leaves no temporary file and is atomic")
