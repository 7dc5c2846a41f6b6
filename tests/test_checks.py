import pytest
import torch

from amla.checks import CheckFailed, Mistake, compare
from amla.checks import toolkit as T
from amla.toolkit.checkpoint import rng_state, set_rng_state


def _inputs(g):
    return (torch.randn(3, 4, generator=g),)


def test_compare_passes_and_names_shape_and_mistakes(capsys):
    softmax = lambda x: x.softmax(-1)  # noqa: E731
    compare("softmax", softmax, softmax, _inputs)
    assert "\u2713 softmax passed" in capsys.readouterr().out
    wrong_axis = Mistake("softmax over the wrong axis.", lambda x: x.softmax(0))
    with pytest.raises(CheckFailed, match="looks like softmax over the wrong axis"):
        compare("softmax", lambda x: x.softmax(0), softmax, _inputs, [wrong_axis])
    with pytest.raises(CheckFailed, match=r"has shape \(4, 3\), expected \(3, 4\)"):
        compare("softmax", lambda x: x.softmax(-1).T, softmax, _inputs, [wrong_axis])
    with pytest.raises(CheckFailed, match="differs from the reference by up to"):
        compare("softmax", lambda x: x.softmax(-1) + 0.1, softmax, _inputs, [wrong_axis])
    with pytest.raises(CheckFailed, match="your code raised ZeroDivisionError"):
        compare("softmax", lambda x: 1 / 0, softmax, _inputs)
    with pytest.raises(CheckFailed, match="should be a tensor or number"):
        compare("softmax", lambda x: "text", softmax, _inputs)


def _solutions():
    import math
    import os

    from torch import nn

    from amla.toolkit.precision import autocast

    def train_step(model, micro_batches, optimizer, scaler, dtype, max_norm):
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

    def lr_at(step, max_lr, warmup, total, min_lr):
        if step < warmup:
            return max_lr * (step + 1) / warmup
        if step >= total:
            return min_lr
        return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))

    def save(path, model, optimizer, scheduler, step):
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "step": step, "rng": rng_state()}
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)

    def load(path, model, optimizer, scheduler):
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return state["step"]

    return train_step, lr_at, save, load


def test_toolkit_checks_pass_correct_solutions_without_moving_the_rng():
    train_step, lr_at, save, load = _solutions()
    before = torch.get_rng_state()
    T.check_train_step(train_step)
    T.check_lr_schedule(lr_at)
    T.check_resume(save, load)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize(
    "variant, phrase",
    [
        (dict(divide=False), "not divided by the number of micro-batches"),
        (dict(zero_each=True), "zeroed inside the micro-batch loop"),
        (dict(clip="before_unscale"), "clipped before scaler.unscale_"),
        (dict(clip="none"), "never clipped"),
        (dict(step_each=True), "steps after every micro-batch"),
    ],
)
def test_train_step_check_names_the_mistake(variant, phrase):
    with pytest.raises(CheckFailed, match=phrase):
        T.check_train_step(T._step_variant(**variant))


@pytest.mark.parametrize(
    "kind, phrase",
    [
        ("warmup_from_zero", "warmup starts from 0"),
        ("no_warmup", "there is no warmup"),
        ("full_period", "full period"),
        ("to_zero", "decays to 0 instead of min_lr"),
        ("cosine_from_zero", "measured from step 0"),
    ],
)
def test_schedule_check_names_the_mistake(kind, phrase):
    with pytest.raises(CheckFailed, match=phrase):
        T.check_lr_schedule(T._schedule_variant(kind))


@pytest.mark.parametrize(
    "piece, phrase",
    [
        ("optimizer", "optimizer state is not restored"),
        ("scheduler", "schedule is not restored"),
        ("rng", "random-number state is not restored"),
        ("step", "step is not restored"),
    ],
)
def test_resume_check_names_the_missing_piece(piece, phrase):
    save, load = T._without(piece)
    with pytest.raises(CheckFailed, match=phrase):
        T.check_resume(save, load)


def test_resume_check_wants_atomic_writes_and_weights_only():
    _, _, save, load = _solutions()

    def save_in_place(path, model, optimizer, scheduler, step):
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "step": step, "rng": rng_state()}, path)

    with pytest.raises(CheckFailed, match="crash while saving destroyed the previous checkpoint"):
        T.check_resume(save_in_place, load)

    def load_unsafe(path, model, optimizer, scheduler):
        return torch.load(path)["step"]

    with pytest.raises(CheckFailed, match="weights_only=True"):
        T.check_resume(save, load_unsafe)

    def not_done(*args):
        raise NotImplementedError

    with pytest.raises(CheckFailed, match="not implemented yet"):
        T.check_train_step(not_done)
