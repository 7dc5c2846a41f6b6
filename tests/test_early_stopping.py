"""EarlyStopping (Hour 07): stops after `patience` evaluations without improvement, restores the best weights."""

import pytest
import torch
from torch import nn

from amla.toolkit.early_stopping import EarlyStopping
from amla.toolkit.train import Trainer, TrainConfig


def _trainer(scores, stopper, max_steps=20, eval_every=2):
    """A tiny regression whose evaluation returns the next value of ``scores`` (and records the weight then)."""
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    x = torch.randn(64, 1)
    data = (x, 3 * x)
    seen = []
    values = iter(scores)

    def evaluate(m):
        seen.append(m.weight.detach().clone())
        return {"val_acc": next(values), "val_loss": 0.0}

    config = TrainConfig(max_steps=max_steps, batch_size=16, lr=0.05, eval_every=eval_every, progress=False)
    loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    return Trainer(model, data, config, loss_fn=loss, eval_fn=evaluate, callbacks=[stopper], device="cpu"), seen


def test_stops_after_patience_and_restores_the_best_weights():
    stopper = EarlyStopping("val_acc", patience=2)
    trainer, seen = _trainer([0.5, 0.7, 0.6, 0.65, 0.9, 0.9], stopper)
    trainer.fit()
    assert trainer.step == 8, "two evaluations without improvement after the best at step 4"
    assert stopper.best == 0.7 and stopper.best_step == 4 and stopper.stopped_at == 8
    assert torch.equal(trainer.model.weight, seen[1]), "the weights of the best evaluation are put back"
    assert "best val_acc 0.7000 at step 4; stopped early at step 8" == stopper.summary()


def test_runs_to_the_end_while_improving_and_min_delta_and_min_mode():
    stopper = EarlyStopping("val_acc", patience=1)
    trainer, seen = _trainer([0.1 * k for k in range(1, 11)], stopper)
    trainer.fit()
    assert trainer.step == 20 and stopper.stopped_at is None and stopper.best_step == 20
    assert torch.equal(trainer.model.weight, seen[-1])
    small_gains = EarlyStopping("val_acc", patience=1, min_delta=0.05)
    trainer, _ = _trainer([0.50, 0.52, 0.9], small_gains)
    trainer.fit()
    assert small_gains.stopped_at == 4, "a gain below min_delta is no improvement"
    lower = EarlyStopping("val_loss", mode="min", patience=1)
    lower.best = 1.0
    assert lower._better(0.9) and not lower._better(1.1)


def test_refuses_bad_settings_and_a_missing_metric_in_one_line():
    for kwargs, phrase in [({"mode": "up"}, "mode must be"), ({"patience": 0}, "patience must be"),
                           ({"min_delta": -1.0}, "min_delta must be")]:
        with pytest.raises(ValueError, match=phrase) as info:
            EarlyStopping(**kwargs)
        assert "\n" not in str(info.value)
    trainer, _ = _trainer([0.5], EarlyStopping("val_f1"))
    with pytest.raises(KeyError, match="not the watched metric 'val_f1'"):
        trainer.fit()
