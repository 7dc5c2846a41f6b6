"""Early stopping for the course Trainer: a ``Callback`` that watches one evaluation metric.

``EarlyStopping(metric="val_acc", mode="max", patience=2, min_delta=0.0)``: after every evaluation it compares
the metric with the best so far; ``patience`` evaluations in a row without an improvement larger than
``min_delta`` stop the run (``trainer.should_stop``). It keeps a copy of the best weights (on the CPU) and puts
them back into the model when the run ends, so the model that leaves ``fit()`` is the one that did best on
the validation data. ``best``, ``best_step``, ``stopped_at`` (``None`` if the run went to ``max_steps``) say
what happened.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from amla.toolkit.train import Callback

if TYPE_CHECKING:
    from amla.toolkit.train import Trainer

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop after ``patience`` evaluations without improvement of ``metric``; restore the best weights."""

    def __init__(self, metric: str = "val_acc", *, mode: str = "max", patience: int = 2, min_delta: float = 0.0,
                 restore_best: bool = True):
        if mode not in ("max", "min"):
            raise ValueError(f"EarlyStopping: mode must be 'max' or 'min', got {mode!r}")
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be a positive int, got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta}")
        self.metric, self.mode, self.patience, self.min_delta, self.restore_best = metric, mode, patience, min_delta, restore_best
        self.best = -math.inf if mode == "max" else math.inf
        self.best_step: int | None = None
        self.stopped_at: int | None = None
        self.bad_evals = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def _better(self, value: float) -> bool:
        return value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta

    def on_eval(self, trainer: Trainer, record: dict[str, float]) -> None:
        if self.metric not in record:
            raise KeyError(f"EarlyStopping: eval_fn returned {sorted(k for k in record if k != 'step')}, "
                           f"not the watched metric {self.metric!r}")
        value = float(record[self.metric])
        if self._better(value):
            self.best, self.best_step, self.bad_evals = value, int(record["step"]), 0
            if self.restore_best:
                self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_at = int(record["step"])

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best and self._best_state is not None:
            trainer.model.load_state_dict(self._best_state)

    def summary(self) -> str:
        how = f"stopped early at step {self.stopped_at}" if self.stopped_at is not None else "ran to the last step"
        return f"best {self.metric} {self.best:.4f} at step {self.best_step}; {how}"
