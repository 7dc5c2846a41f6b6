"""The course Trainer: one small, readable training loop that every hour uses.

What it does, in order, for every optimizer step (``train_step``):
zero the gradients, run ``grad_accum`` micro-batches under autocast (each loss divided by
``grad_accum``; or, for a loss that returns ``(sum, count)``, the summed gradients divided by the whole batch's
count), scale and backpropagate, unscale, clip the gradient norm, step the optimizer through
the GradScaler, then step the warmup-cosine learning-rate schedule.

Around it: a deterministic batch order (batch ``m`` is a function of the seed and ``m`` only, so a
resumed run sees exactly the batches an uninterrupted one would), evaluation, history, throughput,
``tqdm.auto`` progress, callbacks (the live dashboard is one), atomic checkpoints that resume exactly,
and Ctrl-C that stops cleanly after the step in progress. Inside a process group (``amla.toolkit.distributed``,
Hour 09) it trains data-parallel: DDP, each rank its shard of the global batch, loss averaged, rank 0 logs and saves.

Hour 01's exercises plug in: ``Trainer(..., step_fn=train_step, lr_fn=lr_at)`` trains with the student's step
and schedule (same signatures as ``train_step`` and ``warmup_cosine`` below, the step without ``loss_fn``).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from amla.toolkit import distributed as ddp
from amla.toolkit.batches import Batch, OwnBatches, SeededBatches
from amla.toolkit.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from amla.toolkit.env import pick_device
from amla.toolkit.errors import check_hook
from amla.toolkit.optim import weight_decay_groups
from amla.toolkit.precision import PRECISIONS, autocast, autocast_dtype, grad_scaler



# --- the pieces Hour 01 builds as exercises -------------------------------------------------------


def warmup_cosine(step: int, max_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warmup to ``max_lr``, cosine decay to ``min_lr``.

    Warmup reaches ``max_lr`` at step ``warmup_steps - 1`` (step 0 already trains with ``max_lr / warmup_steps``);
    the cosine then falls from ``max_lr`` at ``warmup_steps`` to ``min_lr`` at ``total_steps`` and stays there.
    """
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def default_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Cross-entropy of ``model(x)`` against ``y``; works for [B, C] and [B, T, C] logits."""
    x, y = batch[0], batch[1]
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def summed_cross_entropy(model: nn.Module, batch: Batch, ignore_index: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the token cross-entropies, number of counted targets): targets equal to ``ignore_index`` (padding)
    count for nothing. Passed as ``loss_fn``, it makes ``train_step`` average over the real tokens of the whole batch."""
    x, y = batch[0], batch[1]
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), ignore_index=ignore_index,
                           reduction="sum")
    return loss, (y != ignore_index).sum()


def train_step(
    model: nn.Module,
    micro_batches: Sequence[Batch],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    dtype: torch.dtype | None = None,
    max_norm: float | None = 1.0,
    loss_fn: Callable[[nn.Module, Batch], Any] = default_loss,
) -> tuple[float, float]:
    """One optimizer step over ``len(micro_batches)`` accumulated micro-batches; returns (mean loss, grad norm).

    ``loss_fn`` returns the mean loss of its micro-batch, divided here by the number of micro-batches (exact when
    every micro-batch averages over as many terms, as GPT's fixed windows do), or a pair ``(sum, count)``
    (``summed_cross_entropy``): the gradients of the sums then accumulate and are divided once by the total count
    over all micro-batches and ranks, the exact token mean of the whole batch however the padding falls.
    """
    device = next(model.parameters()).device
    optimizer.zero_grad(set_to_none=True)
    total, count, summed = torch.zeros((), device=device), torch.zeros((), device=device), set()
    for batch in micro_batches:
        with autocast(device, dtype):
            out = loss_fn(model, batch)
        summed.add(isinstance(out, tuple))
        if len(summed) > 1:
            raise TypeError("loss_fn returned a (sum, count) pair for some micro-batches and a loss for others")
        loss = out[0] if isinstance(out, tuple) else out / len(micro_batches)
        if isinstance(out, tuple):
            count += out[1]
        scaler.scale(loss).backward()
        total += loss.detach().float()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if True in summed:  # DDP averaged the gradients of the ranks' sums: divide by the mean count per rank
        total, count = ddp.sum_over_ranks(torch.stack([total, count]))
        count = count.clamp(min=1)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(ddp.world_size() / count)
        total = total / count
    norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm if max_norm is not None else math.inf)
    scaler.step(optimizer)  # skips the step if fp16 gradients overflowed
    scaler.update()
    return total.item(), float(norm)


# --- configuration and history --------------------------------------------------------------------


@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    min_lr: float | None = None  # cosine floor; None means lr / 10 (as in nanoGPT); equal to lr: constant
    warmup_steps: int = 0
    weight_decay: float = 0.0  # AdamW decay, applied to weight matrices only (not biases/norms)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_accum: int = 1
    grad_clip: float | None = 1.0
    precision: str = "auto"  # see autocast_dtype: a no-op on cpu and mps
    eval_every: int = 0  # 0: evaluate once, at the end
    checkpoint_path: str | None = None
    checkpoint_every: int = 0  # 0: only at the end and on interrupt (when checkpoint_path is set)
    seed: int = 0  # fixes the batch order
    progress: bool = True

    def __post_init__(self) -> None:
        positive = {"max_steps": self.max_steps, "batch_size": self.batch_size, "grad_accum": self.grad_accum}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise ValueError(f"TrainConfig.warmup_steps must be in [0, max_steps={self.max_steps}], got {self.warmup_steps}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision={self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        self.betas = tuple(self.betas)  # type: ignore[assignment]


@dataclass
class History:
    """One record per optimizer step (``train``) and per evaluation (``eval``)."""

    train: list[dict[str, float]] = field(default_factory=list)
    eval: list[dict[str, float]] = field(default_factory=list)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of ``key``, from the eval records if they have it, else the train records."""
        records = self.eval if any(key in r for r in self.eval) else self.train
        pairs = [(int(r["step"]), float(r[key])) for r in records if key in r]
        if not pairs and (self.train or self.eval):
            known = sorted({k for r in self.train + self.eval for k in r} - {"step"})
            raise KeyError(f"history has no {key!r}; it has {known}")
        return [s for s, _ in pairs], [v for _, v in pairs]

    def last(self, key: str) -> float:
        values = self.series(key)[1]
        if not values:
            raise KeyError(f"history has no {key!r} yet")
        return values[-1]

    def state_dict(self) -> dict[str, list[dict[str, float]]]:
        return {"train": [dict(r) for r in self.train], "eval": [dict(r) for r in self.eval]}

    def load_state_dict(self, state: dict[str, list[dict[str, float]]]) -> None:
        self.train, self.eval = [dict(r) for r in state["train"]], [dict(r) for r in state["eval"]]


class Callback:
    """Hooks the Trainer calls; override the ones you need. Set ``trainer.should_stop = True`` to stop."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...
    def on_step_end(self, trainer: "Trainer", record: dict[str, float]) -> None: ...
    def on_eval(self, trainer: "Trainer", record: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: "Trainer") -> None: ...


def eval_batches(model: nn.Module, tensors: Sequence[torch.Tensor], batch_size: int) -> Iterator[list[torch.Tensor]]:
    """Chunks of ``batch_size`` rows of each tensor, on the model's device, with the model in eval mode meanwhile
    (its mode is restored afterwards). The loop that evaluation helpers such as ``exact_match`` share."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for i in range(0, tensors[0].shape[0], batch_size):
            yield [t[i : i + batch_size].to(device) for t in tensors]
    finally:
        model.train(was_training)


@contextmanager
def _stop_after_step() -> Iterator[dict[str, bool]]:
    """While active, the first Ctrl-C only asks to stop after the current step; a second one interrupts."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
        print("\nStopping after this step (press Ctrl-C again to interrupt at once)...")

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# --- the Trainer ------------------------------------------------------------------------------


class Trainer:
    """Train ``model`` on ``train_data`` (a tuple of tensors sharing dim 0, a Dataset, or an object with its own
    ``batch(m)`` and ``batch_size``) as ``config`` says.

    ``loss_fn(model, batch) -> loss`` defaults to cross-entropy of ``model(x)`` against ``y``; a loss that returns
    ``(sum, count)`` (``summed_cross_entropy``) is averaged over the count of the whole accumulated batch.
    ``eval_fn(model) -> {"val_loss": ..., "val_acc": ...}`` runs under ``torch.no_grad`` in eval mode.
    ``step_fn`` replaces ``train_step`` (it returns the loss, or (loss, grad_norm); a plain loss leaves grad_norm out
    of the history) and computes the cross-entropy itself; ``lr_fn`` replaces ``warmup_cosine``.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Any,
        config: TrainConfig | None = None,
        *,
        loss_fn: Callable[[nn.Module, Batch], torch.Tensor] = default_loss,
        step_fn: Callable[..., float | tuple[float, float]] | None = None,
        lr_fn: Callable[[int, float, int, int, float], float] | None = None,
        eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        callbacks: Sequence[Callback] = (),
        device: torch.device | str | None = None,
        collate_fn: Callable[[list[Any]], Batch] | None = None,
    ):
        self.config = c = config or TrainConfig()
        check_hook("Trainer", "step_fn", step_fn, "train_step(model, micro_batches, optimizer, scaler, dtype, max_norm)")
        check_hook("Trainer", "lr_fn", lr_fn, "lr_at(step, max_lr, warmup, total, min_lr) -> float")
        if step_fn is not None and loss_fn is not default_loss:
            raise ValueError("pass step_fn or loss_fn, not both: step_fn computes the cross-entropy itself")
        self.device = torch.device(device) if device is not None else pick_device()
        self.model = model.to(self.device)
        self.net = ddp.wrap(self.model)  # DDP inside a process group; checkpoints keep the plain model's keys
        self.loss_fn, self.step_fn, self.eval_fn, self.callbacks = loss_fn, step_fn, eval_fn, list(callbacks)
        if callable(getattr(train_data, "batch", None)):  # an order of its own (Hour 07's LengthBuckets)
            self.batches: Any = OwnBatches(train_data, c.batch_size)
        else:
            self.batches = SeededBatches(train_data, c.batch_size, c.seed, collate_fn, ddp.shard(c.batch_size))
        self.optimizer = optimizer or self._adamw()
        self.min_lr = c.lr / 10 if c.min_lr is None else c.min_lr
        lr_at = lr_fn or warmup_cosine
        if not isinstance(first := lr_at(0, c.lr, c.warmup_steps, c.max_steps, self.min_lr), (int, float)):
            raise TypeError(f"lr_fn must return the learning rate as a Python float, got {type(first).__name__}")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_at(s, c.lr, c.warmup_steps, c.max_steps, self.min_lr) / c.lr
        )
        self.dtype = autocast_dtype(self.device, c.precision)
        self.scaler = grad_scaler(self.device, self.dtype)
        self.step = 0
        self.history = History()
        self.should_stop = False
        self._rng_at_stop: dict[str, Any] | None = None  # restored when fit() continues, so it continues exactly

    def _adamw(self) -> torch.optim.Optimizer:
        c, params = self.config, [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(weight_decay_groups(params, c.weight_decay), lr=c.lr, betas=c.betas,
                                 fused=self.device.type == "cuda")

    def _to_device(self, batch: Batch) -> Batch:
        return tuple(t.to(self.device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Run ``eval_fn`` (eval mode, no grad), record it in the history and tell the callbacks."""
        if self.eval_fn is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        try:
            metrics = {k: float(v) for k, v in self.eval_fn(self.model).items()}
        finally:
            self.model.train(was_training)
        record = {"step": self.step, **metrics}
        self.history.eval.append(record)
        for cb in self.callbacks:
            cb.on_eval(self, record)
        return metrics

    def _one_step(self) -> dict[str, float]:
        c, t0, first = self.config, time.perf_counter(), self.step * self.config.grad_accum
        micro = [self._to_device(self.batches(first + j)) for j in range(c.grad_accum)]
        lr = self.optimizer.param_groups[0]["lr"]
        if self.step_fn is None:
            loss, norm = train_step(self.net, micro, self.optimizer, self.scaler, self.dtype, c.grad_clip, self.loss_fn)
        else:
            clip = math.inf if c.grad_clip is None else c.grad_clip  # the package's step reads None as no clipping
            out = self.step_fn(self.net, micro, self.optimizer, self.scaler, self.dtype, clip)
            loss, norm = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
            if not isinstance(loss, (int, float)):
                raise TypeError(f"step_fn must return the loss as a Python float, got {type(loss).__name__}")
        loss = ddp.mean_over_ranks(loss)  # each rank's loss is the mean over its shard: average them
        self.scheduler.step()
        self.step += 1
        dt = max(time.perf_counter() - t0, 1e-9)
        record = {"step": self.step, "loss": loss, "lr": lr, **({} if norm is None else {"grad_norm": float(norm)}),
                  "samples_per_s": c.batch_size * c.grad_accum / dt}
        x = micro[0][0]
        if isinstance(x, torch.Tensor) and not x.is_floating_point():
            record["tokens_per_s"] = x.numel() * c.grad_accum * self.batches.world / dt  # integer inputs are token ids
        record["elapsed_s"] = (self.history.train[-1]["elapsed_s"] if self.history.train else 0.0) + dt
        return record

    def fit(self) -> History:
        """Train from ``self.step`` to ``config.max_steps``. Ctrl-C stops cleanly after the current step."""
        c = self.config
        self.model.train()
        self.should_stop = False
        if self._rng_at_stop is not None:
            set_rng_state(self._rng_at_stop)  # whatever ran between two fit() calls must not change the run
        for cb in self.callbacks:
            cb.on_fit_start(self)
        bar = tqdm(total=c.max_steps, initial=self.step, disable=not c.progress or not ddp.is_main(), desc="training", unit="step")
        interrupted = False
        try:
            with _stop_after_step() as ctrl_c:
                while self.step < c.max_steps and not self.should_stop:
                    record = self._one_step()
                    self.history.train.append(record)
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", refresh=False)
                    for cb in self.callbacks:
                        cb.on_step_end(self, record)
                    if c.eval_every and self.step % c.eval_every == 0:
                        self.evaluate()
                    if c.checkpoint_path and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                        self.save(c.checkpoint_path)
                    if ctrl_c["stop"]:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            self._rng_at_stop = rng_state()
        if interrupted:
            where = f" and saved to {c.checkpoint_path}" if c.checkpoint_path else ""
            print(f"Interrupted: model and history are at step {self.step}/{c.max_steps}{where}; call fit() to continue.")
        elif not self.history.eval or self.history.eval[-1]["step"] != self.step:
            self.evaluate()
        if c.checkpoint_path:
            self.save(c.checkpoint_path)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self.history

    # --- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs: weights, optimizer, schedule, scaler, step, history, RNG."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "step": self.step,
                "history": self.history.state_dict(), "rng": rng_state(),
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"model", "optimizer", "scheduler", "scaler", "step", "history", "rng"} - set(state)
        if missing:
            raise KeyError(f"checkpoint lacks {sorted(missing)}; was it written by Trainer.save?")
        for name in ("model", "optimizer", "scheduler", "scaler"):
            getattr(self, name).load_state_dict(state[name])
        self.step = int(state["step"])
        self.history.load_state_dict(state["history"])
        set_rng_state(state["rng"])
        self._rng_at_stop = state["rng"]

    def save(self, path: str) -> None:
        """Write a checkpoint atomically (see ``amla.toolkit.checkpoint``)."""
        if ddp.is_main():  # one writer: every rank holds the same weights
            save_checkpoint(path, self.state_dict())

    def load(self, path: str) -> "Trainer":
        """Resume from a checkpoint written by ``save`` (loaded with ``weights_only=True``)."""
        self.load_state_dict(load_checkpoint(path, map_location=self.device))
        return self
