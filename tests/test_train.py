import math
import signal

import pytest
import torch
from torch import nn

import amla
from amla.toolkit.checkpoint import CheckpointError
from amla.toolkit.precision import autocast_dtype
from amla.toolkit.train import TrainConfig, Trainer, eval_batches, summed_cross_entropy, train_step, warmup_cosine


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def _model(seed=0, dropout=0.3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(dropout), nn.Linear(32, 2))


def _cfg(**kw):
    base = dict(max_steps=30, batch_size=32, lr=1e-2, warmup_steps=5, grad_accum=2, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_warmup_cosine_landmarks():
    lr = lambda s: warmup_cosine(s, 1.0, 10, 110, 0.1)  # noqa: E731
    assert lr(0) == pytest.approx(0.1) and lr(9) == pytest.approx(1.0) and lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.55) and lr(110) == pytest.approx(0.1) and lr(500) == pytest.approx(0.1)
    assert all(lr(s) >= lr(s + 1) for s in range(10, 120))


def test_accumulated_step_equals_one_big_batch():
    x, y = _data(32)
    big, small = _model(dropout=0.0), _model(dropout=0.0)
    opt_big = torch.optim.SGD(big.parameters(), lr=0.5)
    opt_small = torch.optim.SGD(small.parameters(), lr=0.5)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss_big, _ = train_step(big, [(x, y)], opt_big, scaler, None, None)
    loss_small, _ = train_step(small, list(zip(x.chunk(4), y.chunk(4))), opt_small, scaler, None, None)
    assert loss_small == pytest.approx(loss_big, abs=1e-6)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(big.parameters(), small.parameters()))


def _padded_step(loss_fn, chunks):
    """One SGD step on 32 examples, 20 of them ignored (-100) and all in the first quarter: (loss, weights)."""
    x, y = _data(32)
    y = y.clone()
    y[:8][torch.arange(8) % 4 != 0] = -100  # the first micro-batch counts 2 labels, the others 8 each
    y[8:20] = -100
    model = _model(dropout=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    micro = list(zip(x.chunk(chunks), y.chunk(chunks)))
    loss, _ = train_step(model, micro, opt, torch.amp.GradScaler("cpu", enabled=False), None, None, loss_fn)
    return loss, [p.detach() for p in model.parameters()]


def test_summed_loss_accumulates_the_exact_token_mean_and_dividing_by_k_does_not():
    mean_loss = lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1], ignore_index=-100)  # noqa: E731
    loss_full, w_full = _padded_step(mean_loss, 1)  # one batch: the mean over its 12 counted labels
    loss_summed, w_summed = _padded_step(summed_cross_entropy, 4)
    loss_naive, w_naive = _padded_step(mean_loss, 4)
    assert loss_summed == pytest.approx(loss_full, abs=1e-6)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(w_full, w_summed))
    assert _padded_step(summed_cross_entropy, 1)[0] == pytest.approx(loss_full, abs=1e-6)
    assert max(float((p - q).abs().max()) for p, q in zip(w_full, w_naive)) > 1e-3  # the mean of means is off


def test_a_loss_fn_mixing_pairs_and_means_is_refused():
    calls = iter([True, False])
    loss_fn = lambda m, b: summed_cross_entropy(m, b) if next(calls) else nn.functional.cross_entropy(m(b[0]), b[1])  # noqa: E731
    x, y = _data(16)
    model = _model(dropout=0.0)
    with pytest.raises(TypeError, match="pair for some micro-batches"):
        train_step(model, list(zip(x.chunk(2), y.chunk(2))), torch.optim.SGD(model.parameters(), lr=0.1),
                   torch.amp.GradScaler("cpu", enabled=False), None, None, loss_fn)


def test_clipping_bounds_the_update():
    x, y = _data(32)
    model = _model(dropout=0.0)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    _, norm = train_step(model, [(x * 100, y)], opt, torch.amp.GradScaler("cpu", enabled=False), None, 0.01)
    moved = math.sqrt(sum(((p - b) ** 2).sum().item() for p, b in zip(model.parameters(), before)))
    assert norm > 0.01 and moved == pytest.approx(0.01, rel=1e-4)  # reported norm is the one before clipping


def test_precision_is_a_no_op_off_cuda():
    for p in ("auto", "fp32", "bf16", "fp16"):
        assert autocast_dtype(torch.device("cpu"), p) is None
    with pytest.raises(ValueError, match="expected one of auto, fp32, bf16, fp16"):
        autocast_dtype(torch.device("cpu"), "int8")


def test_trainer_learns_and_records_history():
    x, y = _data()
    events = []

    class Spy(amla.Callback):
        def on_fit_start(self, trainer):
            events.append("start")

        def on_step_end(self, trainer, record):
            events.append("step")

        def on_eval(self, trainer, record):
            events.append("eval")

        def on_fit_end(self, trainer):
            events.append("end")

    def evaluate(model):
        return {"val_acc": (model(x).argmax(1) == y).float().mean()}

    trainer = Trainer(_model(), (x, y), _cfg(max_steps=60, eval_every=20), eval_fn=evaluate, callbacks=[Spy()], device="cpu")
    history = trainer.fit()
    assert events == ["start"] + (["step"] * 20 + ["eval"]) * 3 + ["end"]
    assert len(history.train) == 60 and [r["step"] for r in history.eval] == [20, 40, 60]
    assert history.last("val_acc") > 0.9
    assert history.train[0]["lr"] == pytest.approx(1e-2 / 5) and history.train[-1]["lr"] < 2e-3
    assert {"loss", "grad_norm", "samples_per_s", "elapsed_s"} <= set(history.train[0]) and "tokens_per_s" not in history.train[0]
    with pytest.raises(KeyError, match="history has no 'val_f1'"):
        history.series("val_f1")


def test_token_inputs_report_tokens_per_second_and_datasets_work():
    tokens = torch.randint(0, 10, (64, 6))
    dataset = [(tokens[i], tokens[i]) for i in range(64)]  # any indexable dataset, collated by default_collate
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 10))
    trainer = Trainer(model, dataset, _cfg(max_steps=3, warmup_steps=0, grad_accum=1, batch_size=16), device="cpu")
    record = trainer.fit().train[0]
    assert record["tokens_per_s"] == pytest.approx(record["samples_per_s"] * 6)


def test_checkpoint_resume_is_exact(tmp_path):
    x, y = _data()
    whole = Trainer(_model(), (x, y), _cfg(), device="cpu")
    whole.fit()
    path = str(tmp_path / "run.pt")
    class Crash(amla.Callback):  # the process dies after step 13 (the checkpoint of step 13 is on disk)
        def on_step_end(self, trainer, record):
            trainer.should_stop = trainer.step == 13

    first = Trainer(_model(), (x, y), _cfg(checkpoint_path=path), callbacks=[Crash()], device="cpu")
    first.fit()
    torch.manual_seed(12345)  # a new process starts from another random state
    resumed = Trainer(_model(seed=7), (x, y), _cfg(checkpoint_path=path), device="cpu").load(path)
    assert resumed.step == 13 and len(resumed.history.train) == 13
    resumed.fit()
    assert _same(whole.model, resumed.model)
    assert [r["loss"] for r in whole.history.train] == [r["loss"] for r in resumed.history.train]


def test_ctrl_c_stops_after_the_step_and_fit_continues_exactly(tmp_path, capsys):
    x, y = _data()
    whole = Trainer(_model(), (x, y), _cfg(), device="cpu")
    whole.fit()

    class PressStop(amla.Callback):
        def on_step_end(self, trainer, record):
            if trainer.step == 11:
                signal.raise_signal(signal.SIGINT)

    path = str(tmp_path / "c.pt")
    trainer = Trainer(_model(), (x, y), _cfg(checkpoint_path=path), callbacks=[PressStop()], device="cpu")
    trainer.fit()
    assert trainer.step == 11 and len(trainer.history.train) == 11
    assert "model and history are at step 11/30" in capsys.readouterr().out
    assert amla.toolkit.checkpoint.load_checkpoint(path)["step"] == 11
    torch.rand(100)  # other cells use the random generator in between
    trainer.callbacks = []
    trainer.fit()
    assert trainer.step == 30 and _same(whole.model, trainer.model)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_damaged_trainer_checkpoint_gives_a_clear_error(tmp_path):
    x, y = _data()
    path = tmp_path / "run.pt"
    trainer = Trainer(_model(), (x, y), _cfg(max_steps=2, warmup_steps=0, checkpoint_path=str(path)), device="cpu")
    trainer.fit()
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(CheckpointError, match="damaged.pt"):
        Trainer(_model(), (x, y), _cfg(), device="cpu").load(str(damaged))
    assert Trainer(_model(), (x, y), _cfg(), device="cpu").load(str(path)).step == 2
    with pytest.raises(KeyError, match="lacks"):
        trainer.load_state_dict({"model": {}})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_steps=0), "max_steps must be a positive int"),
        (dict(batch_size=2.5), "batch_size must be a positive int"),
        (dict(lr=0), "lr must be > 0"),
        (dict(warmup_steps=100), r"warmup_steps must be in \[0, max_steps=30\]"),
        (dict(grad_clip=-1.0), "grad_clip must be > 0 or None"),
        (dict(precision="half"), "precision='half'; expected one of"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _cfg(**kwargs)


def test_bad_training_data_is_named():
    x, y = _data()
    with pytest.raises(ValueError, match=r"share their first dimension; got shapes \(256, 8\), \(255,\)"):
        Trainer(_model(), (x, y[:-1]), _cfg(), device="cpu")
    with pytest.raises(ValueError, match="batch_size=512 is larger than the training set \\(256 examples\\)"):
        Trainer(_model(), (x, y), _cfg(batch_size=512), device="cpu")
    with pytest.raises(TypeError, match="tuple of tensors or a Dataset, got int"):
        Trainer(_model(), 5, _cfg(), device="cpu")


def test_eval_batches_chunks_in_eval_mode_and_restores_the_mode():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()
    a, b = torch.arange(10).view(5, 2), torch.arange(5)
    chunks = []
    for x, y in eval_batches(model, (a, b), 2):
        assert not model.training
        chunks.append((x, y))
    assert model.training
    assert [len(y) for _, y in chunks] == [2, 2, 1]
    assert torch.equal(torch.cat([x for x, _ in chunks]), a) and torch.equal(torch.cat([y for _, y in chunks]), b)
    for _ in eval_batches(model, (a,), 2):
        break  # leaving early still restores the mode (once the generator is closed)
    assert model.training


# --- the hooks through which Hour 01's exercises train the model (step_fn, lr_fn) ------------------------


def _float_step(model, micro_batches, optimizer, scaler, dtype, max_norm):
    """The package step with the exercise's signature and return type (the loss, a float)."""
    return train_step(model, micro_batches, optimizer, scaler, dtype, max_norm)[0]


def _lr_at(step, max_lr, warmup, total, min_lr):
    return warmup_cosine(step, max_lr, warmup, total, min_lr)


@pytest.mark.parametrize("grad_clip", [1.0, None])
def test_the_package_functions_through_the_hooks_give_a_bit_identical_run(grad_clip):
    x, y = _data()
    plain = Trainer(_model(), (x, y), _cfg(grad_clip=grad_clip), device="cpu")
    plain.fit()
    hooked = Trainer(_model(), (x, y), _cfg(grad_clip=grad_clip), step_fn=_float_step, lr_fn=_lr_at, device="cpu")
    hooked.fit()
    assert _same(plain.model, hooked.model)
    for key in ("loss", "lr"):
        assert [r[key] for r in plain.history.train] == [r[key] for r in hooked.history.train]
    assert "grad_norm" not in hooked.history.train[0]  # a plain float says nothing about the norm: none is made up
    tupled = Trainer(_model(), (x, y), _cfg(grad_clip=grad_clip), step_fn=train_step, device="cpu")
    tupled.fit()  # a step returning (loss, grad_norm) keeps the norm in the history
    assert [r["grad_norm"] for r in plain.history.train] == [r["grad_norm"] for r in tupled.history.train]


def test_the_hooks_are_the_functions_that_train():
    x, y = _data()
    calls = []

    def counting_step(*args):
        calls.append(len(args[1]))
        return _float_step(*args)

    trainer = Trainer(_model(), (x, y), _cfg(max_steps=6, lr=1e-2), step_fn=counting_step,
                      lr_fn=lambda step, max_lr, warmup, total, min_lr: max_lr / (step + 1), device="cpu")
    trainer.fit()
    assert calls == [2] * 6  # grad_accum=2 micro-batches per call
    assert [r["lr"] for r in trainer.history.train] == pytest.approx([1e-2 / (s + 1) for s in range(6)])


def test_resume_stays_exact_with_the_hooks(tmp_path):
    x, y = _data()
    hooks = dict(step_fn=_float_step, lr_fn=_lr_at, device="cpu")
    whole = Trainer(_model(), (x, y), _cfg(), **hooks)
    whole.fit()
    path = str(tmp_path / "hooked.pt")

    class Crash(amla.Callback):
        def on_step_end(self, trainer, record):
            trainer.should_stop = trainer.step == 13

    Trainer(_model(), (x, y), _cfg(checkpoint_path=path), callbacks=[Crash()], **hooks).fit()
    torch.manual_seed(12345)
    resumed = Trainer(_model(seed=7), (x, y), _cfg(checkpoint_path=path), **hooks).load(path)
    resumed.fit()
    assert _same(whole.model, resumed.model)
    assert [r["loss"] for r in whole.history.train] == [r["loss"] for r in resumed.history.train]


def test_the_hooks_refuse_bad_combinations_in_one_line():
    x, y = _data()
    with pytest.raises(ValueError, match=r"^pass step_fn or loss_fn, not both: step_fn computes the cross-entropy itself$"):
        Trainer(_model(), (x, y), _cfg(), step_fn=_float_step, loss_fn=lambda m, b: m(b[0]).sum(), device="cpu")
    with pytest.raises(TypeError, match=r"^lr_fn must return the learning rate as a Python float, got Tensor$"):
        Trainer(_model(), (x, y), _cfg(), lr_fn=lambda s, *a: torch.tensor(1e-3), device="cpu")
    graph_loss = Trainer(_model(), (x, y), _cfg(), step_fn=lambda *a: torch.tensor(_float_step(*a)), device="cpu")
    with pytest.raises(TypeError, match=r"^step_fn must return the loss as a Python float, got Tensor$"):
        graph_loss.fit()
