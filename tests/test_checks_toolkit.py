"""The self-checks of Hour 01: Exercise 1.1 (training step), 1.2 (warmup-cosine schedule), 1.3 (exact resume).

Classes that cannot occur, and why:
- 1.1 is not differentiable in the engine's sense (it returns a float and updates parameters): a wrong gradient
  shows up as wrong parameters after the step, which the tests below cover ("right loss, wrong update").
- 1.2 takes only numbers, which cannot be changed in place, and is not differentiable; it has no default argument
  (the student's signature names min_lr), so "a default argument left out" does not apply.
- 1.3's inputs are the scenario's numbers (steps, a file name): what the functions must leave alone is the state of
  the run (model, optimizer, scheduler, training mode, random state), checked by the property 'saving changes
  nothing'; nothing in it is differentiable.
"""

import math
import os
import random
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from amla.checks import toolkit as T
from amla.checks.toolkit.lr_schedule import _schedule_variant, reference_lr_at
from amla.checks.toolkit.resume import _without, reference_load, reference_save
from amla.checks.toolkit.train_step import _step_variant, reference_train_step
from amla.toolkit.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from amla.toolkit.precision import autocast
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 1.1 ------------------------------------------------------------------------------------------


def _step(model, micro_batches, optimizer, scaler, dtype, max_norm):  # the notebook's solution
    device = next(model.parameters()).device
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for x, y in micro_batches:
        with autocast(device, dtype):
            loss = nn.functional.cross_entropy(model(x), y) / len(micro_batches)
        scaler.scale(loss).backward()
        total += loss.item()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    return total


def _step_zero_at_the_end(model, micro_batches, optimizer, scaler, dtype, max_norm):
    """Zeroes after stepping instead of before (fine: a fresh model has no gradients), sums a tensor, .item() once."""
    device = next(model.parameters()).device
    losses = []
    for x, y in micro_batches:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss / len(micro_batches)).backward()
        losses.append(loss.detach())
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), max_norm=max_norm)
    scaler.step(optimizer)
    scaler.update()
    model.zero_grad(set_to_none=False)
    return torch.stack(losses).mean().item()


def _step_manual_clip(model, micro_batches, optimizer, scaler, dtype, max_norm):
    """Clips by hand (the formula clip_grad_norm_ uses), sums the loss of the examples with reduction='sum'."""
    device = next(model.parameters()).device
    optimizer.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        with autocast(device, dtype):
            loss = nn.functional.cross_entropy(model(x), y, reduction="sum") / (len(y) * len(micro_batches))
        scaler.scale(loss).backward()
        total += loss.item()
    scaler.unscale_(optimizer)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    coef = min(1.0, max_norm / (float(norm) + 1e-6))
    for g in grads:
        g.mul_(coef)
    scaler.step(optimizer)
    scaler.update()
    return total


@pytest.mark.parametrize("fn", [_step, _step_zero_at_the_end, _step_manual_clip, reference_train_step],
                         ids=lambda f: f.__name__)
def test_train_step_accepts_correct_answers_written_differently(fn, capsys):
    passes(T.check_train_step, fn)
    assert "the rest of this hour uses your `train_step`" in capsys.readouterr().out.lower()


def test_train_step_not_done_returns_a_reference_with_the_students_signature(capsys):
    reference = not_done(T.check_train_step, raise_not_done, capsys=capsys)
    assert reference is reference_train_step
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    micro = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))] * 2
    loss = reference(model, micro, opt, torch.amp.GradScaler("cpu", enabled=False), None, 1.0)
    assert type(loss) is float


@pytest.mark.parametrize(
    "variant, phrase",
    [
        (dict(divide=False), "not divided by the number of micro-batches"),
        (dict(zero="each"), "zeroed inside the micro-batch loop"),
        (dict(zero="never"), "gradients are never zeroed"),
        (dict(clip="before_unscale"), r"clipped before scaler\.unscale_"),
        (dict(clip="none"), "never clipped"),
        (dict(clip="fixed"), "fixed norm of 1.0 instead of `max_norm`"),
        (dict(step_each=True), "steps after every micro-batch"),
        (dict(steps=False), "optimizer never steps"),
        (dict(returns="sum"), "sum of the micro-batch losses, not their mean"),
        (dict(returns="last"), "last micro-batch's"),
        (dict(cast="none"), "`dtype` is ignored"),
        (dict(cast="forward"), "loss is computed outside autocast"),
        (dict(cast="torch"), r"torch\.autocast\(device\.type, dtype=dtype\) autocasts even when dtype is None"),
    ],
)
def test_train_step_names_the_known_mistakes(variant, phrase):
    fails(T.check_train_step, _step_variant(**variant), match=phrase)


def test_train_step_catches_gradients_left_over_from_the_previous_step():
    def never_zeroes(model, micro_batches, optimizer, scaler, dtype, max_norm):  # right on a fresh model
        device = next(model.parameters()).device
        total = 0.0
        for x, y in micro_batches:
            with autocast(device, dtype):
                loss = nn.functional.cross_entropy(model(x), y) / len(micro_batches)
            scaler.scale(loss).backward()
            total += loss.item()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        return total

    fails(T.check_train_step, never_zeroes, match=r"after the second step.*gradients are never zeroed")


def test_train_step_notices_changed_micro_batches():
    def normalises_in_place(model, micro_batches, optimizer, scaler, dtype, max_norm):
        for x, _ in micro_batches:
            x /= x.std()
        return _step(model, micro_batches, optimizer, scaler, dtype, max_norm)

    fails(T.check_train_step, normalises_in_place, match=r"changed its argument `micro_batches` in place")

    def pops(model, micro_batches, optimizer, scaler, dtype, max_norm):
        k, device = len(micro_batches), next(model.parameters()).device
        optimizer.zero_grad()
        total = 0.0
        while micro_batches:
            x, y = micro_batches.pop()
            with autocast(device, dtype):
                loss = nn.functional.cross_entropy(model(x), y) / k
            scaler.scale(loss).backward()
            total += loss.item()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        return total

    fails(T.check_train_step, pops, match=r"changed its argument `micro_batches` in place")


def test_train_step_wants_a_python_float():
    def keeps_the_graph(model, micro_batches, optimizer, scaler, dtype, max_norm):
        optimizer.zero_grad()
        total = 0
        for x, y in micro_batches:
            loss = nn.functional.cross_entropy(model(x), y) / len(micro_batches)
            scaler.scale(loss).backward()
            total = total + loss
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        return total

    fails(T.check_train_step, keeps_the_graph,
          match=r"loss of the first step should be a Python float \(loss\.item\(\)\): a tensor that still holds its graph")

    def zero_d_tensor(*args):
        return torch.tensor(_step(*args))

    fails(T.check_train_step, zero_d_tensor, match=r"should be a Python float \(t\.item\(\).*got a 0-d tensor")


def test_train_step_catches_a_bug_on_an_edge_input_only():
    def squeezes_the_labels(model, micro_batches, optimizer, scaler, dtype, max_norm):
        return _step(model, [(x, y.squeeze()) for x, y in micro_batches], optimizer, scaler, dtype, max_norm)

    fails(T.check_train_step, squeezes_the_labels,
          match=r"with a batch of 1 in every micro-batch.*your code raised ValueError.*line \d+ of your code")


def test_train_step_catches_a_right_loss_with_a_wrong_update():
    def divides_twice(model, micro_batches, optimizer, scaler, dtype, max_norm):  # the gradient is K times too small
        device, k = next(model.parameters()).device, len(micro_batches)
        optimizer.zero_grad()
        total = 0.0
        for x, y in micro_batches:
            with autocast(device, dtype):
                loss = nn.functional.cross_entropy(model(x), y) / k
            scaler.scale(loss / k).backward()
            total += loss.item()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        return total

    message = fails(T.check_train_step, divides_twice, match=r"the parameters after the first step\['0\.weight'\] differs")
    assert "it looks like" not in message


def test_train_step_diagnoses_by_property_when_no_known_mistake_matches():
    def returns_the_scaled_loss(model, micro_batches, optimizer, scaler, dtype, max_norm):
        device = next(model.parameters()).device
        optimizer.zero_grad()
        total = 0.0
        for x, y in micro_batches:
            with autocast(device, dtype):
                loss = nn.functional.cross_entropy(model(x), y) / len(micro_batches)
            scaled = scaler.scale(loss)
            scaled.backward()
            total += scaled.item()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.step(optimizer)
        scaler.update()
        return total

    fails(T.check_train_step, returns_the_scaled_loss,
          match=r"'the returned loss is the mean of the micro-batch losses' does not hold: .*scaled loss")

    def clips_each_parameter(model, micro_batches, optimizer, scaler, dtype, max_norm):
        device = next(model.parameters()).device
        optimizer.zero_grad()
        total = 0.0
        for x, y in micro_batches:
            with autocast(device, dtype):
                loss = nn.functional.cross_entropy(model(x), y) / len(micro_batches)
            scaler.scale(loss).backward()
            total += loss.item()
        scaler.unscale_(optimizer)
        for p in model.parameters():
            nn.utils.clip_grad_norm_(p, max_norm)
        scaler.step(optimizer)
        scaler.update()
        return total

    fails(T.check_train_step, clips_each_parameter,
          match=r"'after clipping, an SGD step moves the parameters by at most lr \* max_norm' does not hold")


# --- Exercise 1.2 ------------------------------------------------------------------------------------------


def _lr(step, max_lr, warmup, total, min_lr):  # the notebook's solution
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def _lr_clamped_progress(step, max_lr, warmup, total, min_lr):  # end first, progress clamped, numpy's cos
    if step >= total and step >= warmup:
        return min_lr
    if step < warmup:
        return (step + 1) * (max_lr / warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return (max_lr - min_lr) * (1 + np.cos(np.pi * progress)) / 2 + min_lr


def _lr_cosine_of_remaining(step, max_lr, warmup, total, min_lr):  # the cosine written around the end
    if step < warmup:
        return max_lr * (step + 1) / warmup
    remaining = max(0, total - step) / max(1, total - warmup)
    return min_lr + (max_lr - min_lr) * (1 - math.cos(math.pi * remaining)) / 2


@pytest.mark.parametrize("fn", [_lr, _lr_clamped_progress, _lr_cosine_of_remaining, reference_lr_at],
                         ids=lambda f: f.__name__)
def test_schedule_accepts_correct_answers_written_differently(fn):
    passes(T.check_lr_schedule, fn)


def test_schedule_not_done_returns_a_reference_with_the_students_signature(capsys):
    reference = not_done(T.check_lr_schedule, raise_not_done, capsys=capsys)
    assert reference(0, 1.0, 10, 100, 0.1) == pytest.approx(0.1) and type(reference(200, 1.0, 10, 100, 0)) is float


@pytest.mark.parametrize(
    "kind, phrase",
    [
        ("warmup_from_zero", "warmup starts from 0"),
        ("no_warmup", "there is no warmup"),
        ("full_period", "full period"),
        ("to_zero", "decays to 0 instead of min_lr"),
        ("cosine_from_zero", "measured from step 0"),
        ("early_end", "reaches min_lr one step early"),
        ("no_clamp", "past `total` the cosine goes on"),
    ],
)
def test_schedule_names_the_known_mistakes(kind, phrase):
    fails(T.check_lr_schedule, _schedule_variant(kind), match=phrase)


# A changed input cannot occur for 1.2: its arguments are numbers.


def test_schedule_wants_a_python_float():
    def torch_cos(step, max_lr, warmup, total, min_lr):
        if step < warmup:
            return max_lr * (step + 1) / warmup
        if step >= total:
            return min_lr
        return min_lr + 0.5 * (max_lr - min_lr) * (1 + torch.cos(torch.tensor(math.pi * (step - warmup) / (total - warmup))))

    fails(T.check_lr_schedule, torch_cos,
          match=r"the learning rate should be a Python float \(t\.item\(\), or math\.cos instead of torch\.cos\), got a 0-d tensor")


def test_schedule_catches_a_bug_on_an_edge_input_only():
    def progress_first(step, max_lr, warmup, total, min_lr):  # divides by total - warmup before looking at the step
        if step < warmup:
            return max_lr * (step + 1) / warmup
        progress = min(1.0, (step - warmup) / (total - warmup))
        return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))

    fails(T.check_lr_schedule, progress_first,
          match=r"with step 8 of .*\(warm-up as long as the run \(no cosine part\)\), your code raised ZeroDivisionError")

    def warmup_computed_first(step, max_lr, warmup, total, min_lr):  # divides by warmup even when there is none
        warm = max_lr * (step + 1) / warmup
        return warm if step < warmup else _lr(step, max_lr, warmup, total, min_lr)

    fails(T.check_lr_schedule, warmup_computed_first, match=r"\(no warm-up\), your code raised ZeroDivisionError")


def test_schedule_diagnoses_by_property_when_no_known_mistake_matches():
    def quadratic_warmup(step, max_lr, warmup, total, min_lr):
        if step < warmup:
            return max_lr * ((step + 1) / warmup) ** 2
        return _lr(step, max_lr, warmup, total, min_lr)

    fails(T.check_lr_schedule, quadratic_warmup,
          match=r"'the warm-up rises linearly, in steps of max_lr / warmup, to max_lr at step warmup - 1' does not hold")

    def restarts_after_the_end(step, max_lr, warmup, total, min_lr):
        return max_lr if step > total else _lr(step, max_lr, warmup, total, min_lr)

    fails(T.check_lr_schedule, restarts_after_the_end,
          match=r"'after the warm-up the learning rate never increases' does not hold: it rises from")


# --- Exercise 1.3 ------------------------------------------------------------------------------------------


def _save(path, model, optimizer, scheduler, step):  # the notebook's solution
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "step": step, "rng": rng_state()}
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load(path, model, optimizer, scheduler):
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"]


def _save_with_the_toolkit(path, model, optimizer, scheduler, step):
    save_checkpoint(path, {"weights": model.state_dict(), "opt": optimizer.state_dict(),
                           "sched": scheduler.state_dict(), "step": step, "rng": rng_state()})


def _load_with_the_toolkit(path, model, optimizer, scheduler):
    state = load_checkpoint(path)
    model.load_state_dict(state["weights"])
    optimizer.load_state_dict(state["opt"])
    scheduler.load_state_dict(state["sched"])
    set_rng_state(state["rng"])
    return int(state["step"])


def _save_file_object(path, model, optimizer, scheduler, step):  # an open file, fsync, the step as a tensor, torch RNG only
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".partial")
    with open(tmp, "wb") as f:
        torch.save({"m": model.state_dict(), "o": optimizer.state_dict(), "s": scheduler.state_dict(),
                    "step": torch.tensor(step), "torch_rng": torch.get_rng_state()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_file_object(path, model, optimizer, scheduler):
    with open(path, "rb") as f:
        state = torch.load(f, map_location="cpu", weights_only=True)
    model.load_state_dict(state["m"])
    optimizer.load_state_dict(state["o"])
    scheduler.load_state_dict(state["s"])
    torch.set_rng_state(state["torch_rng"])
    return state["step"].item()


@pytest.mark.parametrize("pair", [(_save, _load), (_save_with_the_toolkit, _load_with_the_toolkit),
                                  (_save_file_object, _load_file_object), (reference_save, reference_load)],
                         ids=["notebook", "toolkit", "file_object_tensor_step", "reference"])
def test_resume_accepts_correct_answers_written_differently(pair, capsys):
    passes(T.check_resume, *pair)
    assert "the rest of this hour uses your `save_training_state` and `load_training_state`" in \
        capsys.readouterr().out.lower()


def test_resume_not_done_returns_both_references(tmp_path, capsys):
    save, load = not_done(T.check_resume, raise_not_done, raise_not_done, capsys=capsys)
    assert (save, load) == (reference_save, reference_load)
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save(str(tmp_path / "s.pt"), model, opt, sched, 3)
    assert load(str(tmp_path / "s.pt"), model, opt, sched) == 3
    _, load_only = not_done(T.check_resume, _save, raise_not_done, capsys=capsys)  # half done is not done
    assert load_only is reference_load


@pytest.mark.parametrize(
    "piece, phrase",
    [
        ("model", "model's weights are not restored"),
        ("optimizer", "optimizer state is not restored"),
        ("scheduler", "schedule is not restored"),
        ("rng", "random-number state is not restored"),
        ("step", "step is not restored"),
        ("in_place", "crash while saving destroyed the previous checkpoint.*os.replace"),
    ],
)
def test_resume_names_the_known_mistakes(piece, phrase):
    fails(T.check_resume, *_without(piece), match=phrase)


def test_resume_wants_weights_only_and_the_same_keys():
    def load_unsafe(path, model, optimizer, scheduler):
        return torch.load(path)["step"]

    fails(T.check_resume, _save, load_unsafe, match=r"weights_only=True")

    def load_other_key(path, model, optimizer, scheduler):
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng_state"])
        return state["step"]

    fails(T.check_resume, _save, load_other_key,
          match=r"KeyError: .*'rng_state'.*save_training_state did not write.*line \d+ of your code: `set_rng_state")


def test_resume_notices_a_save_that_changes_the_run():
    def save_in_eval_mode(path, model, optimizer, scheduler, step):
        model.eval()
        _save(path, model, optimizer, scheduler, step)

    fails(T.check_resume, save_in_eval_mode,
          _load, match=r"'saving changes nothing .*' does not hold: save_training_state changed the model's mode")

    def save_random_name(path, model, optimizer, scheduler, step):
        tmp = f"{path}.{random.randrange(10**6)}.tmp"
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "rng": rng_state()}
        torch.save(state, tmp)
        os.replace(tmp, path)

    fails(T.check_resume, save_random_name, _load, match=r"changed the random-number state \(random numbers were drawn")

    def save_torch_random_name(path, model, optimizer, scheduler, step):
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "rng": rng_state()}
        tmp = f"{path}.{int(torch.randint(10**6, ()))}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)

    fails(T.check_resume, save_torch_random_name, _load, match=r"changed the random-number state")


def test_resume_wants_the_step_as_an_int():
    def load_tensor(path, model, optimizer, scheduler):
        return torch.tensor(_load(path, model, optimizer, scheduler))

    fails(T.check_resume, _save, load_tensor,
          match=r"the step returned by load_training_state should be a Python int \(use int\(t\) or t\.item\(\)\), got a 0-d tensor")

    def load_float(path, model, optimizer, scheduler):
        return float(_load(path, model, optimizer, scheduler))

    fails(T.check_resume, _save, load_float, match=r"step returned by load_training_state should be an int .*got the float 4")


def test_resume_catches_a_bug_on_an_edge_input_only():
    def save_suffix_swap(path, model, optimizer, scheduler, step):  # "state.pt" -> "state.tmp"; "run_state" -> itself
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "rng": rng_state()}
        tmp = path.replace(".pt", ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    fails(T.check_resume, save_suffix_swap, _load,
          match=r"with a path without the \.pt suffix .*'a crash while saving leaves the previous checkpoint intact'")

    def save_once(path, model, optimizer, scheduler, step):  # "never overwrite a checkpoint"
        if not os.path.exists(path):
            _save(path, model, optimizer, scheduler, step)

    fails(T.check_resume, save_once, _load,
          match=r"with two saves in a row .*'load returns the step of the last save' does not hold: .*returned step 2")


def test_resume_diagnoses_by_property_when_no_known_mistake_matches():
    def save_by_copy(path, model, optimizer, scheduler, step):
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "rng": rng_state()}
        torch.save(state, path + ".tmp")
        shutil.copyfile(path + ".tmp", path)

    fails(T.check_resume, save_by_copy, _load,
          match=r"'no temporary file is left next to the checkpoint' does not hold: .*state\.pt\.tmp")

    def load_without_optimizer_and_rng(path, model, optimizer, scheduler):  # two pieces missing: no one mistake
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        scheduler.load_state_dict(state["scheduler"])
        return state["step"]

    message = fails(T.check_resume, _save, load_without_optimizer_and_rng,
                    match=r"'the resumed run equals the uninterrupted one bit for bit' does not hold")
    assert "it looks like" not in message

