"""Live training curves in ONE notebook output, updated in place.

``Dashboard`` is a Trainer callback, and it can be fed by a loop written out by hand (a GAN's two-player loop)::

    dash = Dashboard()
    dash.start(max_steps)
    for step in range(max_steps):
        ...
        dash.log(step, d_loss=d.item(), g_loss=g.item())   # every step
        dash.log_eval(step, modes=7)                       # now and then
    history = dash.finish()

 In a Jupyter kernel it displays the curves once per fit
(``display(bundle, raw=True, display_id=True)``) and then updates that same output with
``handle.update(bundle, raw=True)``; it never clears output, so printed lines and warnings stay.
Each bundle holds ``image/png`` (the curves) and ``text/plain`` (a one-line status), so a saved
notebook, GitHub and nbconvert show the final picture, and a text-only frontend shows the status.

It redraws at most every ``every_s`` seconds, and rarer still when a picture is slow to draw (the
time spent drawing stays under ``max_overhead`` of the wall time), and thins curves to
``max_points``, so the drawing does not slow training; ``on_fit_end`` always redraws, so the
output keeps the final state.
Without a kernel (a plain script) it displays nothing but still keeps ``last_png``.
"""

from __future__ import annotations

import base64
import math
import numbers
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from amla.views.base import fig_to_png
from amla.views.plots import plot_history

__all__ = ["Dashboard"]


class Dashboard:
    """Trainer callback drawing live training curves: ``Trainer(..., callbacks=[Dashboard()])``.

    ``every_s``: least seconds between redraws during training; ``max_overhead``: most fraction of
    the wall time spent drawing (1.0: no limit); ``max_points``: most points per train curve;
    ``metrics``: eval metrics to plot (default: all non-loss ones); ``dpi``: picture resolution.
    Attributes for inspection: ``draws`` (pictures rendered), ``last_png`` (bytes),
    ``last_text`` (status line).
    """

    def __init__(
        self,
        every_s: float = 1.0,
        max_overhead: float = 0.1,
        max_points: int = 500,
        metrics: Sequence[str] | None = None,
        dpi: int = 80,
    ) -> None:
        if not isinstance(every_s, (int, float)) or isinstance(every_s, bool) or not every_s >= 0:
            raise ValueError(f"Dashboard: every_s must be a number of seconds >= 0, got {every_s!r}")
        if not isinstance(max_overhead, (int, float)) or not 0 < max_overhead <= 1:
            raise ValueError(f"Dashboard: max_overhead must be a fraction in (0, 1], got {max_overhead!r}")
        if not isinstance(max_points, int) or isinstance(max_points, bool) or max_points < 2:
            raise ValueError(f"Dashboard: max_points must be an int >= 2, got {max_points!r}")
        self.every_s = float(every_s)
        self.max_overhead = float(max_overhead)
        self.max_points = max_points
        self.metrics = list(metrics) if metrics is not None else None
        self.dpi = dpi
        self.draws = 0
        self.last_png: bytes = b""
        self.last_text = ""
        self._handle: Any = None
        self._last_draw = -math.inf
        self._draw_cost = 0.0
        self._last_step: Mapping[str, Any] = {}
        self._last_eval: Mapping[str, Any] = {}
        self._loop: Any = None  # the state of a hand-written loop (start / log / finish)

    # --- the Trainer callback interface ---------------------------------------------------------

    def on_fit_start(self, trainer: Any) -> None:
        """New fit, new output: forget the previous handle and show the current state."""
        self._handle = None
        self._last_step = trainer.history.train[-1] if trainer.history.train else {}
        self._last_eval = trainer.history.eval[-1] if trainer.history.eval else {}
        self._draw(trainer)

    def on_step_end(self, trainer: Any, record: Mapping[str, Any]) -> None:
        self._last_step = record
        self._maybe_draw(trainer)

    def on_eval(self, trainer: Any, record: Mapping[str, Any]) -> None:
        self._last_eval = record
        self._maybe_draw(trainer)

    def on_fit_end(self, trainer: Any) -> None:
        """Always redraw, so the saved notebook keeps the final picture."""
        self._draw(trainer)

    # --- a loop written by hand -------------------------------------------------------------------

    def start(self, max_steps: int) -> "Dashboard":
        """Begin a hand-written loop of ``max_steps`` steps: a new, empty history and a new output."""
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise ValueError(f"Dashboard.start: max_steps must be a positive int, got {max_steps!r}")
        from amla.toolkit.train import History

        self._loop = SimpleNamespace(history=History(), step=0, config=SimpleNamespace(max_steps=max_steps))
        self.on_fit_start(self._loop)
        return self

    def log(self, step: int, **values: Any) -> None:
        """Record one training step's numbers (floats, ints or 0-d tensors), e.g. ``log(step, d_loss=0.69)``."""
        record = self._record("log", step, values)
        self._loop.history.train.append(record)
        self.on_step_end(self._loop, record)

    def log_eval(self, step: int, **values: Any) -> None:
        """Record an evaluation's numbers (drawn as the eval-metric panel), e.g. ``log_eval(step, modes=8)``."""
        record = self._record("log_eval", step, values)
        self._loop.history.eval.append(record)
        self.on_eval(self._loop, record)

    def finish(self) -> Any:
        """End the loop: draw the final picture (kept in the saved notebook) and return the ``History``."""
        loop = self._require_loop("finish")
        self.on_fit_end(loop)
        return loop.history

    @property
    def history(self) -> Any:
        """The ``History`` of the hand-written loop (``.train`` and ``.eval`` lists of dicts)."""
        return self._require_loop("history").history

    def _require_loop(self, what: str) -> Any:
        loop = getattr(self, "_loop", None)
        if loop is None:
            raise RuntimeError(f"Dashboard.{what}: call dash.start(max_steps) before the loop")
        return loop

    def _record(self, what: str, step: Any, values: Mapping[str, Any]) -> dict[str, float]:
        loop = self._require_loop(what)
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"Dashboard.{what}: step must be an int >= 0, got {step!r}")
        if not values:
            raise ValueError(f"Dashboard.{what}: expected at least one name=value, e.g. {what}(step, d_loss=0.7)")
        record: dict[str, float] = {"step": step}
        for key, value in values.items():
            if hasattr(value, "item") and callable(value.item) and getattr(value, "numel", lambda: 1)() == 1:
                value = value.item()
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                raise TypeError(f"Dashboard.{what}: {key} must be a number (or a 0-d tensor), "
                                f"got {type(value).__name__}")
            record[key] = float(value)
        loop.step = max(loop.step, step + 1 if what == "log" else step)
        return record

    # --- drawing ----------------------------------------------------------------------------------

    def _maybe_draw(self, trainer: Any) -> None:
        slow_draw_wait = self._draw_cost * (1.0 - self.max_overhead) / self.max_overhead
        if time.monotonic() - self._last_draw >= max(self.every_s, slow_draw_wait):
            self._draw(trainer)

    def _draw(self, trainer: Any) -> None:
        start = time.monotonic()
        self.last_text = self.status(trainer)
        fig = plot_history(trainer.history, self.metrics, max_points=self.max_points, title=self.last_text)
        self.last_png = fig_to_png(fig, dpi=self.dpi)
        self._show()
        self.draws += 1
        self._last_draw = time.monotonic()
        self._draw_cost = self._last_draw - start

    def status(self, trainer: Any) -> str:
        """One line: ``step 120/500 | loss 0.312 | val_loss 0.300 | lr 1.0e-03 | 850 samples/s``."""
        parts = [f"step {trainer.step}/{trainer.config.max_steps}"]
        step = self._last_step
        for key, value in step.items():
            if key.endswith("loss") and _number(value):
                parts.append(f"{key.replace('_', ' ')} {value:.4g}")
        for key, value in self._last_eval.items():
            if key != "step" and _number(value):
                parts.append(f"{key} {value:.4g}")
        if _number(step.get("lr")):
            parts.append(f"lr {step['lr']:.2e}")
        for key, unit in (("tokens_per_s", "tokens/s"), ("samples_per_s", "samples/s")):
            if _number(step.get(key)):
                parts.append(f"{step[key]:,.0f} {unit}")
                break
        if _number(step.get("elapsed_s")):
            parts.append(f"{step['elapsed_s']:.0f} s")
        return " | ".join(parts)

    def bundle(self) -> dict[str, str]:
        """The mimebundle of the last picture: base64 ``image/png`` and the ``text/plain`` status."""
        return {"image/png": base64.b64encode(self.last_png).decode("ascii"), "text/plain": self.last_text}

    def _show(self) -> None:
        """Display once per fit, then update that output in place; nothing without a kernel."""
        if not _in_kernel():
            return
        import IPython.display  # looked up at call time, so tests can stand in for it

        if self._handle is None:
            self._handle = IPython.display.display(self.bundle(), raw=True, display_id=True)
        else:
            self._handle.update(self.bundle(), raw=True)

    # --- static use -------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the last picture to ``path`` (a .png file); returns the path."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ValueError(f"Dashboard.save writes PNG: expected a path ending in .png, got {str(path)!r}")
        if not self.last_png:
            raise ValueError("Dashboard.save: nothing drawn yet; expected a fit to have started")
        path.write_bytes(self.last_png)
        return path

    def _repr_mimebundle_(
        self, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
    ) -> dict[str, str]:
        if not self.last_png:
            return {"text/plain": "<Dashboard: nothing drawn yet>"}
        return self.bundle()


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, VS Code, Colab), False in scripts and terminals."""
    try:
        import IPython
    except ImportError:
        return False
    shell = IPython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
