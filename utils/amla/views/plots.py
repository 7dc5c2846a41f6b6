"""Course plots. Each function returns a new ``matplotlib.figure.Figure`` (never ``plt.show()``).

Figures are made with ``Figure()``, not pyplot, so they are not registered anywhere: a notebook
displays one as its last expression, ``fig.savefig`` saves it, ``fig_to_png`` turns it into bytes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = ["ema", "plot_history", "plot_lr_schedule"]

#: Keys of eval records that are bookkeeping, not metrics.
_NOT_METRICS = frozenset({"step", "epoch", "elapsed_s"})
_PANEL_SIZE = (4.2, 3.2)
#: "0.0003" rather than an offset text ("1e-3") that collides with the title.
_LR_TICKS = FuncFormatter(lambda value, _pos: f"{value:.3g}")
#: One colour per train loss (the Trainer's ``loss``; a GAN loop's ``d_loss`` and ``g_loss``).
_LOSS_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:brown", "tab:pink")


def ema(values: Sequence[float], smoothing: float = 0.9) -> list[float]:
    """Exponential moving average, debiased so the first points are not dragged towards 0."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"ema: smoothing must be in [0, 1), got {smoothing!r}")
    out: list[float] = []
    average = 0.0
    weight = 0.0
    for value in values:
        average = smoothing * average + (1.0 - smoothing) * value
        weight = smoothing * weight + (1.0 - smoothing)
        out.append(average / weight)
    return out


def plot_history(
    history: Any,
    metrics: Sequence[str] | None = None,
    *,
    smoothing: float = 0.9,
    max_points: int | None = None,
    title: str | None = None,
) -> Figure:
    """Training curves from a Trainer's ``History`` (``.train`` and ``.eval``: lists of dicts).

    Panels, left to right: train loss per step (raw, faint) with its moving average (solid) and the
    eval losses (keys ending in ``loss``, markers); the other eval metrics (``metrics`` picks them,
    default: every numeric eval key that is not a loss), only if there are any; the learning rate.
    ``max_points`` thins the train curves (the average is computed on every step first).
    """
    train, evals = _records(history)
    if max_points is not None and (not isinstance(max_points, int) or max_points < 2):
        raise ValueError(f"plot_history: max_points must be an int >= 2 or None, got {max_points!r}")
    eval_keys = _numeric_keys(evals)
    loss_keys = [key for key in eval_keys if key.endswith("loss")]
    metric_keys = list(metrics) if metrics is not None else [k for k in eval_keys if not k.endswith("loss")]

    panels = 2 + (1 if metric_keys else 0)
    fig = Figure(figsize=(_PANEL_SIZE[0] * panels, _PANEL_SIZE[1]))
    axes: list[Axes] = list(np.atleast_1d(fig.subplots(1, panels)))
    _fixed_margins(fig, panels, titled=bool(title))
    loss_ax, lr_ax = axes[0], axes[-1]

    _loss_panel(loss_ax, train, evals, loss_keys, smoothing, max_points)
    if metric_keys:
        _metrics_panel(axes[1], evals, metric_keys)
    _lr_panel(lr_ax, train, max_points)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def plot_lr_schedule(lr_fn: Callable[[int], float], steps: int, *, max_points: int = 2000) -> Figure:
    """The learning rate ``lr_fn(step)`` for ``step`` in ``0 .. steps - 1``."""
    if not callable(lr_fn):
        raise TypeError(f"plot_lr_schedule: lr_fn must be a function step -> lr, got {type(lr_fn).__name__}")
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"plot_lr_schedule: steps must be an int >= 1, got {steps!r}")
    xs = np.unique(np.linspace(0, steps - 1, min(int(steps), max_points)).round().astype(int))
    lrs = []
    for step in xs.tolist():
        lr = lr_fn(step)
        if not _is_finite_number(lr):
            raise ValueError(f"plot_lr_schedule: lr_fn({step}) returned {lr!r}; expected a finite number")
        lrs.append(float(lr))

    fig = Figure(figsize=(5.6, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(xs, lrs, color="tab:purple")
    peak = int(np.argmax(lrs))
    title = f"learning rate: peak {lrs[peak]:.2e} at step {xs[peak]}, final {lrs[-1]:.2e}"
    ax.set_title(title, fontsize="medium")
    _style(ax, "step", "lr")
    ax.yaxis.set_major_formatter(_LR_TICKS)
    return fig


# --- panels -------------------------------------------------------------------------------------


def _loss_panel(
    ax: Axes,
    train: list[Mapping[str, Any]],
    evals: list[Mapping[str, Any]],
    loss_keys: list[str],
    smoothing: float,
    max_points: int | None,
) -> None:
    drawn = False
    for key, color in zip(_train_loss_keys(train), _LOSS_COLORS):
        steps, losses = _series(train, key)
        smooth = ema(losses, smoothing)
        keep = _thin(len(steps), max_points)
        xs = [steps[i] for i in keep]
        name = "train loss" if key == "loss" else key
        ax.plot(xs, [losses[i] for i in keep], color=color, alpha=0.25, linewidth=0.8, label=name)
        ax.plot(xs, [smooth[i] for i in keep], color=color, linewidth=1.8, label=f"{name} (EMA)")
        drawn = True
    for key in loss_keys:
        ax.plot(*_series(evals, key), marker="o", markersize=4, linewidth=1.2, label=key)
    if not drawn and not any(_series(evals, key)[0] for key in loss_keys):
        _note(ax, "waiting for the first step")
    else:
        ax.legend(fontsize="small")
    ax.set_title("loss", fontsize="medium")
    _style(ax, "step", "loss")


def _train_loss_keys(train: list[Mapping[str, Any]]) -> list[str]:
    """The train keys holding a loss: ``loss`` (the Trainer's) first, then others such as ``d_loss``, ``g_loss``."""
    keys = [key for key in _numeric_keys(train) if key.endswith("loss")]
    return sorted(keys, key=lambda k: k != "loss")


def _metrics_panel(ax: Axes, evals: list[Mapping[str, Any]], keys: list[str]) -> None:
    missing = []
    for key in keys:
        steps, values = _series(evals, key)
        if steps:
            ax.plot(steps, values, marker="o", markersize=4, linewidth=1.2, label=key)
        else:
            missing.append(key)
    if len(missing) < len(keys):
        ax.legend(fontsize="small")
    if missing:
        _note(ax, "no values yet: " + ", ".join(missing))
    ax.set_title("eval metrics", fontsize="medium")
    _style(ax, "step", "")


def _lr_panel(ax: Axes, train: list[Mapping[str, Any]], max_points: int | None) -> None:
    steps, lrs = _series(train, "lr")
    if steps:
        keep = _thin(len(steps), max_points)
        ax.plot([steps[i] for i in keep], [lrs[i] for i in keep], color="tab:purple")
        ax.yaxis.set_major_formatter(_LR_TICKS)
    else:
        _note(ax, "no learning rate yet")
    ax.set_title("learning rate", fontsize="medium")
    _style(ax, "step", "lr")


# --- helpers ------------------------------------------------------------------------------------


def _records(history: Any) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """``history.train`` and ``history.eval`` as lists of dicts, or a one-line TypeError."""
    train = getattr(history, "train", None)
    evals = getattr(history, "eval", None)
    ok = isinstance(train, list) and isinstance(evals, list)
    if not ok or not all(isinstance(r, Mapping) for r in [*train, *evals]):  # type: ignore[misc]
        raise TypeError(
            "plot_history expected a History with .train and .eval lists of dicts "
            f"(trainer.history), got {type(history).__name__}"
        )
    return train, evals  # type: ignore[return-value]


def _numeric_keys(records: list[Mapping[str, Any]]) -> list[str]:
    """Keys with a number in at least one record, in first-seen order, bookkeeping keys left out."""
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in _NOT_METRICS and _is_finite_number(value):
                keys[key] = None
    return list(keys)


def _series(records: list[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the records where ``key`` holds a finite number."""
    steps: list[int] = []
    values: list[float] = []
    for index, record in enumerate(records):
        value = record.get(key)
        if _is_finite_number(value):
            steps.append(int(record.get("step", index)))
            values.append(float(value))
    return steps, values


def _thin(n: int, max_points: int | None) -> list[int]:
    """Indices of at most ``max_points`` evenly spaced points out of ``n`` (first and last kept)."""
    if max_points is None or n <= max_points:
        return list(range(n))
    return [int(i) for i in np.unique(np.linspace(0, n - 1, max_points).round())]


def _is_finite_number(value: Any) -> TypeGuard[numbers.Real]:
    if type(value) is float or type(value) is int:  # the common case, fast: histories are long
        return math.isfinite(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _fixed_margins(fig: Figure, panels: int, titled: bool) -> None:
    """Margins in inches, set once: a layout engine would cost a second draw on every redraw."""
    width, height = fig.get_size_inches()
    left, right, gap, bottom, top = 0.7, 0.2, 0.75, 0.5, (0.65 if titled else 0.35)
    axes_width = (width - left - right - (panels - 1) * gap) / panels
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
        wspace=gap / axes_width,
    )


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.45", fontsize="small")


def _style(ax: Axes, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
