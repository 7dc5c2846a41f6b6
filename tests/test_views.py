"""amla.views: interactive views with a static fallback, plots, the live dashboard (headless)."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import IPython
import IPython.display
import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure

from amla.views import Dashboard, View, fig_to_png, interactive, plot_history, plot_lr_schedule
from amla.views.base import WIDGET_VIEW_MIMETYPE, make_control
from amla.views.plots import ema

matplotlib.use("Agg")  # a figure leaking through pyplot must never open a window

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bar_figure(n: int) -> Figure:
    fig = Figure(figsize=(2, 2))
    ax = fig.subplots()
    ax.bar([0], [n])
    ax.set_ylim(0, 10)
    return fig


def bar_height(fig: Figure) -> float:
    return fig.axes[0].patches[0].get_height()


# --- View / interactive -------------------------------------------------------------------------


def test_interactive_slider_redraws_the_picture() -> None:
    calls: list[int] = []

    def draw(n: int) -> Figure:
        calls.append(n)
        return bar_figure(n)

    slider = widgets.IntSlider(value=2, min=0, max=10)
    view = interactive(draw, n=slider)
    before = view.png
    assert before.startswith(PNG_MAGIC) and calls == [2]
    assert bytes(view.image.value) == before

    slider.value = 7
    assert calls[-1] == 7
    assert view.png != before and bytes(view.image.value) == view.png
    assert bar_height(view.figure()) == 7
    assert view.values == {"n": 7}
    assert slider.description == "n"  # an empty description is filled with the name


def test_view_subclass_redraws_and_saves(tmp_path: Path) -> None:
    class Colors(View):
        def __init__(self) -> None:
            self.color = widgets.Dropdown(options=["red", "blue"], value="red")
            self.draws = 0
            super().__init__({"color": self.color}, dpi=50)

        def draw(self) -> Figure:
            self.draws += 1
            fig = Figure(figsize=(1, 1))
            fig.subplots().bar([0], [1], color=self.color.value)
            return fig

    view = Colors()
    red = view.png
    view.color.value = "blue"
    assert view.draws == 2 and view.png != red
    assert view.widget.children[-1] is view.image
    assert view.controls["color"] in view.widget.children[0].children
    saved = view.save(tmp_path / "colors.png")
    assert saved.read_bytes() == view.png
    with pytest.raises(ValueError, match=r"ending in \.png"):
        view.save(tmp_path / "colors.jpg")


def test_mimebundle_has_widget_and_png() -> None:
    view = interactive(bar_figure, n=(0, 10))
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/png", WIDGET_VIEW_MIMETYPE}
    assert base64.b64decode(bundle["image/png"]) == view.png
    assert view.png.startswith(PNG_MAGIC)
    assert bundle[WIDGET_VIEW_MIMETYPE] == {
        "version_major": 2,
        "version_minor": 0,
        "model_id": view.widget.model_id,
    }
    assert "n=5" in bundle["text/plain"]
    assert set(view._repr_mimebundle_(exclude=[WIDGET_VIEW_MIMETYPE])) == {"text/plain", "image/png"}
    assert set(view._repr_mimebundle_(include=["image/png"])) == {"image/png"}


def test_display_puts_both_mimetypes_in_one_output() -> None:
    """What ``display(view)`` publishes: IPython's formatter output for the object."""
    view = interactive(bar_figure, n=(0, 10))
    data, _metadata = DisplayFormatter().format(view)
    assert {"image/png", WIDGET_VIEW_MIMETYPE, "text/plain"} <= set(data)
    assert data[WIDGET_VIEW_MIMETYPE]["model_id"] == view.widget.model_id


def test_shorthand_makes_core_controls() -> None:
    assert isinstance(make_control("n", (0, 10)), widgets.IntSlider)
    assert make_control("n", (0, 10)).value == 5
    assert make_control("n", (0, 10, 3)).value == 3
    lr = make_control("lr", (0.0, 1.0))
    assert isinstance(lr, widgets.FloatSlider) and lr.value == pytest.approx(0.5)
    assert isinstance(make_control("x", (0, 2.5)), widgets.FloatSlider)
    act = make_control("act", ["relu", "gelu"])
    assert isinstance(act, widgets.Dropdown) and act.value == "relu"
    assert isinstance(make_control("bias", True), widgets.Checkbox)
    play = widgets.Play(min=0, max=3)
    assert make_control("t", play) is play


@pytest.mark.parametrize("spec", [(5, 1), (0, 10, 0), ("a", 1), 3, [], (1, 2, 3, 4), None, widgets.Button()])
def test_bad_shorthand_names_the_control(spec: Any) -> None:
    with pytest.raises(ValueError, match="control 'depth'") as info:
        interactive(lambda depth: bar_figure(1), depth=spec)
    assert "\n" not in str(info.value)


def test_draw_fn_mistakes_are_one_line_errors() -> None:
    with pytest.raises(TypeError, match="cannot take the controls") as info:
        interactive(lambda n: bar_figure(n), m=(0, 3))
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="return fig"):
        interactive(lambda n: None, n=(0, 3))
    with pytest.raises(TypeError, match="Figure"):
        fig_to_png("not a figure")  # type: ignore[arg-type]


def test_error_in_a_callback_shows_in_the_view() -> None:
    def draw(n: int) -> Figure:
        if n == 3:
            raise ValueError("n must not be 3")
        return bar_figure(n)

    slider = widgets.IntSlider(value=1, min=0, max=5)
    view = interactive(draw, n=slider)
    good = view.png
    slider.value = 3
    assert "n must not be 3" in view.error.value and view.png == good
    slider.value = 4
    assert view.error.value == "" and view.png != good


# --- plots ----------------------------------------------------------------------------------------


class FakeHistory:
    """The slice of amla.toolkit.train.History the views use."""

    def __init__(self) -> None:
        self.train: list[dict[str, Any]] = []
        self.eval: list[dict[str, Any]] = []

    def series(self, key: str) -> tuple[list[int], list[float]]:
        records = self.eval if any(key in r for r in self.eval) else self.train
        pairs = [(r["step"], r[key]) for r in records if key in r]
        return [s for s, _ in pairs], [v for _, v in pairs]


def filled_history(steps: int = 60, with_eval: bool = True) -> FakeHistory:
    history = FakeHistory()
    for step in range(1, steps + 1):
        history.train.append(
            {"step": step, "loss": 2.0 / step + 0.1 * (step % 3), "lr": 1e-3, "grad_norm": 1.0,
             "samples_per_s": 100.0, "elapsed_s": step * 0.01}
        )
        if with_eval and step % 20 == 0:
            history.eval.append({"step": step, "val_loss": 1.0 / step, "val_acc": 0.5 + step / 200})
    return history


def labels(fig: Figure, panel: int) -> list[str]:
    return [line.get_label() for line in fig.axes[panel].get_lines()]


def test_plot_history_empty_waits_for_first_step() -> None:
    fig = plot_history(FakeHistory())
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert any("waiting for the first step" in t.get_text() for t in fig.axes[0].texts)


def test_plot_history_panels_and_ema() -> None:
    fig = plot_history(filled_history(with_eval=False))
    assert len(fig.axes) == 2  # loss, lr: no eval metrics yet
    assert labels(fig, 0) == ["train loss", "train loss (EMA)"]

    history = filled_history()
    fig = plot_history(history)
    assert len(fig.axes) == 3
    assert labels(fig, 0) == ["train loss", "train loss (EMA)", "val_loss"]
    val_loss = fig.axes[0].get_lines()[2]
    assert val_loss.get_marker() == "o" and list(val_loss.get_xdata()) == [20, 40, 60]
    assert labels(fig, 1) == ["val_acc"]
    assert list(fig.axes[2].get_lines()[0].get_ydata()) == [1e-3] * 60

    ema_line = fig.axes[0].get_lines()[1]
    raw = [r["loss"] for r in history.train]
    assert list(ema_line.get_ydata()) == pytest.approx(ema(raw, 0.9))
    assert list(ema_line.get_ydata()) != pytest.approx(raw)


def test_plot_history_thins_and_names_missing_metrics() -> None:
    history = filled_history(steps=1000)
    fig = plot_history(history, metrics=["val_acc", "val_f1"], max_points=100)
    raw, smooth = fig.axes[0].get_lines()[:2]
    assert len(raw.get_xdata()) == 100 and raw.get_xdata()[-1] == 1000
    assert smooth.get_ydata()[-1] == pytest.approx(ema([r["loss"] for r in history.train])[-1])
    assert any("val_f1" in t.get_text() for t in fig.axes[1].texts)


def test_plot_history_bad_input() -> None:
    with pytest.raises(TypeError, match=r"\.train and \.eval") as info:
        plot_history({"train": []})
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="max_points"):
        plot_history(FakeHistory(), max_points=1)


def test_ema_is_debiased() -> None:
    assert ema([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])
    assert ema([1.0, 3.0], smoothing=0.0) == [1.0, 3.0]
    assert ema([0.0, 10.0], smoothing=0.5)[1] == pytest.approx(10.0 * 0.5 / 0.75)
    with pytest.raises(ValueError, match="smoothing"):
        ema([1.0], smoothing=1.0)


def test_plot_lr_schedule() -> None:
    fig = plot_lr_schedule(lambda step: 0.1 * min(1.0, step / 10), 50)
    line = fig.axes[0].get_lines()[0]
    assert list(line.get_xdata()) == list(range(50))
    assert line.get_ydata()[5] == pytest.approx(0.05) and line.get_ydata()[-1] == pytest.approx(0.1)
    assert len(plot_lr_schedule(lambda step: 1.0, 10**6).axes[0].get_lines()[0].get_xdata()) <= 2000
    with pytest.raises(ValueError, match="steps"):
        plot_lr_schedule(lambda step: 1.0, 0)
    with pytest.raises(ValueError, match=r"lr_fn\(0\) returned 'x'"):
        plot_lr_schedule(lambda step: "x", 5)  # type: ignore[arg-type,return-value]


# --- Dashboard ------------------------------------------------------------------------------------


def fake_trainer(max_steps: int = 10) -> SimpleNamespace:
    return SimpleNamespace(history=FakeHistory(), config=SimpleNamespace(max_steps=max_steps), step=0)


def run_fit(dashboard: Dashboard, trainer: SimpleNamespace, steps: int) -> None:
    dashboard.on_fit_start(trainer)
    for step in range(1, steps + 1):
        record = {"step": step, "loss": 1.0 / step, "lr": 1e-3, "grad_norm": 0.5,
                  "samples_per_s": 250.0, "elapsed_s": 0.1 * step}
        trainer.history.train.append(record)
        trainer.step = step
        dashboard.on_step_end(trainer, record)
        if step % 5 == 0:
            evaluation = {"step": step, "val_loss": 0.5 / step, "val_acc": 0.9}
            trainer.history.eval.append(evaluation)
            dashboard.on_eval(trainer, evaluation)
    dashboard.on_fit_end(trainer)


class FakeDisplay:
    """Stands in for IPython.display.display: records calls, returns a handle recording updates."""

    def __init__(self) -> None:
        self.shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.updates: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def __call__(self, bundle: dict[str, Any], **kwargs: Any) -> SimpleNamespace:
        self.shown.append((bundle, kwargs))
        return SimpleNamespace(update=lambda bundle, **kw: self.updates.append((bundle, kw)))


@pytest.fixture
def fake_display(monkeypatch: pytest.MonkeyPatch) -> FakeDisplay:
    fake = FakeDisplay()
    monkeypatch.setattr(IPython.display, "display", fake)
    return fake


def test_dashboard_redraws_when_allowed() -> None:
    every_step = Dashboard(every_s=0, max_overhead=1.0)
    run_fit(every_step, fake_trainer(), steps=10)
    assert every_step.draws == 1 + 10 + 2 + 1  # fit start, steps, evals, fit end
    assert every_step.last_png.startswith(PNG_MAGIC)

    rarely = Dashboard(every_s=3600)
    run_fit(rarely, fake_trainer(), steps=10)
    assert rarely.draws == 2  # the first (fit start) and the final (fit end)
    assert rarely.last_text.startswith("step 10/10 | loss 0.1")


def test_dashboard_caps_drawing_overhead() -> None:
    dashboard = Dashboard(every_s=0)  # max_overhead=0.1: instant steps leave no time to draw
    run_fit(dashboard, fake_trainer(), steps=20)
    assert dashboard.draws == 2


def test_dashboard_updates_one_display_in_a_kernel(
    monkeypatch: pytest.MonkeyPatch, fake_display: FakeDisplay
) -> None:
    monkeypatch.setattr(IPython, "get_ipython", lambda: SimpleNamespace(kernel=object()))
    dashboard = Dashboard(every_s=0, max_overhead=1.0)
    run_fit(dashboard, fake_trainer(), steps=6)

    assert len(fake_display.shown) == 1
    assert fake_display.shown[0][1] == {"raw": True, "display_id": True}
    assert len(fake_display.updates) == dashboard.draws - 1 == 1 + 6 + 1
    for bundle, kwargs in [fake_display.shown[0], *fake_display.updates]:
        assert set(bundle) == {"image/png", "text/plain"}
        assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
        assert bundle["text/plain"].startswith("step ")
        assert kwargs.get("raw") is True
    final = fake_display.updates[-1][0]
    assert final["text/plain"] == (
        "step 6/10 | loss 0.1667 | val_loss 0.1 | val_acc 0.9 | lr 1.00e-03 | 250 samples/s | 1 s"
    )
    assert base64.b64decode(final["image/png"]) == dashboard.last_png

    run_fit(dashboard, fake_trainer(), steps=1)  # a second fit gets its own output
    assert len(fake_display.shown) == 2


def test_dashboard_shows_nothing_outside_a_kernel(fake_display: FakeDisplay, tmp_path: Path) -> None:
    dashboard = Dashboard(every_s=0, max_overhead=1.0)
    run_fit(dashboard, fake_trainer(), steps=3)
    assert fake_display.shown == [] and fake_display.updates == []
    assert dashboard.draws == 5 and dashboard.last_png.startswith(PNG_MAGIC)
    assert dashboard.save(tmp_path / "curves.png").read_bytes() == dashboard.last_png
    assert set(dashboard._repr_mimebundle_()) == {"image/png", "text/plain"}


def test_dashboard_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="every_s"):
        Dashboard(every_s=-1)
    with pytest.raises(ValueError, match="max_points"):
        Dashboard(max_points=1)
    with pytest.raises(ValueError, match="max_overhead"):
        Dashboard(max_overhead=0)


def test_dashboard_fed_by_a_hand_written_loop(monkeypatch: pytest.MonkeyPatch, fake_display: FakeDisplay) -> None:
    monkeypatch.setattr(IPython, "get_ipython", lambda: SimpleNamespace(kernel=object()))
    dash = Dashboard(every_s=0, max_overhead=1.0)
    assert dash.start(4) is dash
    for step in range(4):
        dash.log(step, d_loss=torch.tensor(1.0 + step), g_loss=0.5)  # a 0-d tensor is taken as its number
        if step % 2 == 1:
            dash.log_eval(step, modes=step + 5)
    history = dash.finish()
    assert history is dash.history
    assert [r["d_loss"] for r in history.train] == [1.0, 2.0, 3.0, 4.0]
    assert all(type(r["d_loss"]) is float for r in history.train)
    assert [r["modes"] for r in history.eval] == [6.0, 8.0]
    assert len(fake_display.shown) == 1 and dash.draws == 1 + 4 + 2 + 1
    assert dash.last_text == "step 4/4 | d loss 4 | g loss 0.5 | modes 8"
    # both losses are drawn, each with its moving average
    labels = [line.get_label() for line in plot_history(history).axes[0].get_lines()]
    assert labels == ["d_loss", "d_loss (EMA)", "g_loss", "g_loss (EMA)"]
    dash.start(2)  # a second loop starts a new history and a new output
    assert dash.history.train == [] and len(fake_display.shown) == 2


def test_dashboard_loop_bad_input() -> None:
    dash = Dashboard()
    with pytest.raises(RuntimeError, match=r"call dash.start\(max_steps\) before the loop"):
        dash.log(0, d_loss=1.0)
    with pytest.raises(ValueError, match="max_steps must be a positive int"):
        dash.start(0)
    dash.start(3)
    with pytest.raises(TypeError, match="d_loss must be a number"):
        dash.log(0, d_loss="0.7")
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        dash.log(-1, d_loss=0.7)
    with pytest.raises(ValueError, match="at least one name=value"):
        dash.log_eval(0)


# --- no leaks -------------------------------------------------------------------------------------


def test_no_figures_leak() -> None:
    def pyplot_draw(n: int) -> Figure:  # students often use pyplot: those figures must be closed
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.bar([0], [n])
        return fig

    open_before = len(plt.get_fignums())
    slider = widgets.IntSlider(value=1, min=0, max=5)
    view = interactive(pyplot_draw, n=slider)
    for value in (2, 3, 4):
        slider.value = value
    run_fit(Dashboard(every_s=0, max_overhead=1.0), fake_trainer(), steps=3)
    fig_to_png(plot_lr_schedule(lambda step: 1.0, 5))
    assert len(plt.get_fignums()) == open_before
    view.close()
