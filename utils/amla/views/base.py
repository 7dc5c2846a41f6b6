"""Interactive figures that still show a picture where no widget frontend runs.

A ``View`` is a row of ipywidgets core controls above an ``ipywidgets.Image`` holding a PNG that
matplotlib renders from the current control values. Displaying a view puts, in ONE output, both the
live widget (``application/vnd.jupyter.widget-view+json``) and the current picture (``image/png``):
JupyterLab, VS Code and Colab render the live widget; GitHub, nbconvert's HTML (without saved widget
state) and a reopened notebook fall back to the picture.

A ``View`` is not itself a widget, so ``display(view)`` goes through IPython's formatters and our
``_repr_mimebundle_`` on ipywidgets 7.x (where widgets display themselves with ``_ipython_display_``)
and 8.x (where they use ``_repr_mimebundle_``) alike. Both versions tag the view with
``version_major`` 2.

Figures are built with ``matplotlib.figure.Figure`` (rendered by Agg, never ``plt.show()``);
``fig_to_png`` also closes figures made with pyplot, so redraws leak nothing.
"""

from __future__ import annotations

import base64
import html
import inspect
import io
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"

__all__ = ["WIDGET_VIEW_MIMETYPE", "View", "fig_to_png", "interactive", "make_control", "play_button"]


def fig_to_png(fig: Figure, dpi: int = 100, close: bool = True) -> bytes:
    """The PNG bytes of ``fig`` at ``dpi``; ``close`` also releases a figure pyplot keeps track of."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig_to_png expected a matplotlib Figure, got {type(fig).__name__}")
    if not isinstance(dpi, numbers.Real) or isinstance(dpi, bool) or dpi <= 0:
        raise ValueError(f"fig_to_png: dpi must be a positive number, got {dpi!r}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    if close:
        _close(fig)
    return buffer.getvalue()


def _close(fig: Figure) -> None:
    """Forget ``fig`` in pyplot's registry if it is there (figures made with ``Figure()`` are not)."""
    import matplotlib.pyplot as plt  # imported late: pyplot picks a backend on import

    plt.close(fig)


class View:
    """Controls + a picture redrawn from them. Subclasses implement ``draw()``.

    Subclasses create their controls (and any state ``draw`` needs), then call
    ``super().__init__(controls)``, which lays them out, draws the first picture and redraws it
    whenever a control's ``value`` changes::

        class Sine(View):
            def __init__(self) -> None:
                self.freq = widgets.FloatSlider(value=1.0, min=0.5, max=5.0, description="freq")
                super().__init__({"freq": self.freq})

            def draw(self) -> Figure:
                fig = Figure(figsize=(5, 3))
                ax = fig.subplots()
                x = np.linspace(0, 2 * np.pi, 200)
                ax.plot(x, np.sin(self.freq.value * x))
                return fig

    Attributes: ``controls`` (name -> widget), ``image`` (the ``ipywidgets.Image``), ``widget``
    (the whole container), ``png`` (bytes of the current picture).
    """

    def __init__(self, controls: Mapping[str, widgets.Widget] | None = None, *, dpi: int = 100) -> None:
        self.controls: dict[str, widgets.Widget] = dict(controls or {})
        for name, control in self.controls.items():
            if not isinstance(control, widgets.Widget) or not control.has_trait("value"):
                raise TypeError(
                    f"control {name!r} is a {type(control).__name__}, which has no value; "
                    "expected an ipywidgets control such as IntSlider, Dropdown or Checkbox"
                )
        self.dpi = dpi
        self.png: bytes = b""
        self.image = widgets.Image(format="png")
        self.error = widgets.HTML(layout=widgets.Layout(display="none"))
        row = widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        self.widget = widgets.VBox([row, self.error, self.image])
        self.refresh()
        for control in self.controls.values():
            control.observe(self._on_change, names="value")

    def draw(self) -> Figure:
        """A new Figure of the current control values (subclasses implement this)."""
        raise NotImplementedError(f"{type(self).__name__} must implement draw() -> Figure")

    @property
    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def figure(self) -> Figure:
        """A fresh Figure of the current state, for saving or static use (not closed for you)."""
        fig = self.draw()
        if not isinstance(fig, Figure):
            raise TypeError(
                f"{type(self).__name__}.draw() must return a matplotlib Figure, "
                f"got {type(fig).__name__} (did you forget `return fig`?)"
            )
        return fig

    def refresh(self) -> None:
        """Redraw the picture from the current control values."""
        self.png = fig_to_png(self.figure(), dpi=self.dpi)
        self.image.value = self.png

    def set_controls(self, wanted: Sequence[tuple[widgets.Widget, Any]]) -> bool:
        """Set several controls to new values quietly (no redraw per control), then redraw once if any changed.

        ``wanted``: ``(control, value)`` pairs; returns whether anything changed."""
        changed = [(control, value) for control, value in wanted if control.value != value]
        for control, value in changed:
            control.unobserve(self._on_change, names="value")
            try:
                control.value = value
            finally:
                control.observe(self._on_change, names="value")
        if changed:
            self.refresh()
        return bool(changed)

    def prepend(self, *extra: widgets.Widget) -> None:
        """Put widgets that are not controls (a ``Play`` button) at the start of the control row."""
        row = self.widget.children[0]
        row.children = (*extra, *row.children)

    def _on_change(self, change: Mapping[str, Any]) -> None:
        """Redraw after a control moved; show an error inside the view (a widget callback's
        exception would only reach the frontend's log) and keep the last good picture."""
        try:
            self.refresh()
        except Exception as exc:  # any error of the student's draw code: shown in the view itself
            message = html.escape(f"{type(exc).__name__}: {exc}")
            self.error.value = f"<pre style='color:#b00020;margin:0'>{message}</pre>"
            self.error.layout.display = None
        else:
            self.error.value = ""
            self.error.layout.display = "none"

    def save(self, path: str | Path) -> Path:
        """Write the current picture to ``path`` (a .png file); returns the path."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ValueError(f"View.save writes PNG: expected a path ending in .png, got {str(path)!r}")
        path.write_bytes(self.png)
        return path

    def close(self) -> None:
        """Close the widgets (the frontend removes the live view; the saved picture stays)."""
        for control in self.controls.values():
            control.unobserve(self._on_change, names="value")
        for child in [*self.controls.values(), *self.widget.children, self.widget]:
            child.close()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.values.items())
        return f"<{type(self).__name__} {shown}>" if shown else f"<{type(self).__name__}>"

    def _repr_mimebundle_(
        self, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """text/plain + image/png (base64) + the live widget, for IPython's display machinery."""
        data: dict[str, Any] = {
            "text/plain": repr(self),
            "image/png": base64.b64encode(self.png).decode("ascii"),
            WIDGET_VIEW_MIMETYPE: {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.widget.model_id,
            },
        }
        if include:
            data = {key: value for key, value in data.items() if key in include}
        if exclude:
            data = {key: value for key, value in data.items() if key not in exclude}
        return data


class _FunctionView(View):
    """The View behind ``interactive``: ``draw`` calls the user's function with the values."""

    def __init__(self, draw_fn: Callable[..., Figure], controls: Mapping[str, widgets.Widget]) -> None:
        self.draw_fn = draw_fn
        super().__init__(controls)

    def draw(self) -> Figure:
        fig = self.draw_fn(**self.values)
        if not isinstance(fig, Figure):
            name = getattr(self.draw_fn, "__name__", "draw_fn")
            raise TypeError(
                f"{name}() must return a matplotlib Figure, got {type(fig).__name__} "
                "(did you forget `return fig`?)"
            )
        return fig

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.values.items())
        return f"<View {getattr(self.draw_fn, '__name__', 'draw_fn')}({shown})>"


def interactive(draw_fn: Callable[..., Figure], **controls: Any) -> View:
    """Like ipywidgets' ``interact``, but a View: live where widgets run, a picture elsewhere.

    ``draw_fn(**values)`` returns a Figure. Each control is an ipywidgets control, or shorthand:
    ``(lo, hi)`` / ``(lo, hi, step)`` of ints -> IntSlider, with a float -> FloatSlider (both start
    in the middle); a list/tuple of str -> Dropdown (starts at the first); a bool -> Checkbox.

        interactive(lambda n, color: bar_chart(n, color), n=(1, 10), color=["red", "blue"])
    """
    if not callable(draw_fn):
        raise TypeError(
            f"interactive: draw_fn must be a function returning a Figure, got {type(draw_fn).__name__}"
        )
    _check_signature(draw_fn, list(controls))
    made = {name: make_control(name, spec) for name, spec in controls.items()}
    return _FunctionView(draw_fn, made)


def _check_signature(draw_fn: Callable[..., Figure], names: list[str]) -> None:
    """Fail now, in one line, if ``draw_fn`` cannot be called with the controls' names."""
    try:
        signature = inspect.signature(draw_fn)
    except (TypeError, ValueError):  # some builtins have no signature: let the first draw tell
        return
    try:
        signature.bind(**{name: None for name in names})
    except TypeError as exc:
        fn = getattr(draw_fn, "__name__", "draw_fn")
        raise TypeError(f"interactive: {fn}{signature} cannot take the controls {names}: {exc}") from None


def make_control(name: str, spec: Any) -> widgets.Widget:
    """An ipywidgets control from a widget or shorthand (see ``interactive``)."""
    if isinstance(spec, widgets.Widget):
        if not spec.has_trait("value"):
            raise ValueError(
                f"control {name!r}: a {type(spec).__name__} has no value; "
                "expected a control such as IntSlider, Dropdown or Checkbox"
            )
        if spec.has_trait("description") and not spec.description:
            spec.description = name
        return spec
    if isinstance(spec, bool):
        return widgets.Checkbox(value=spec, description=name)
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(item, str) for item in spec):
        return widgets.Dropdown(options=list(spec), value=spec[0], description=name)
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(_is_number(item) for item in spec):
        return _slider(name, spec)
    raise ValueError(
        f"control {name!r}: cannot make a control from {spec!r} ({type(spec).__name__}); expected "
        "an ipywidgets control, (lo, hi) or (lo, hi, step) numbers, a list of str, or a bool"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _slider(name: str, spec: tuple[Any, ...]) -> widgets.Widget:
    """IntSlider for all-int ``(lo, hi[, step])``, FloatSlider otherwise; value in the middle."""
    lo, hi = spec[0], spec[1]
    all_int = all(isinstance(item, numbers.Integral) for item in spec)
    step = spec[2] if len(spec) == 3 else (1 if all_int else (hi - lo) / 100)
    if not lo < hi or not step > 0:
        raise ValueError(f"control {name!r}: (lo, hi, step) needs lo < hi and step > 0, got {spec!r}")
    if all_int:
        middle = lo + ((hi - lo) // 2 // step) * step
        return widgets.IntSlider(value=middle, min=lo, max=hi, step=step, description=name)
    middle = lo + round((hi - lo) / 2 / step) * step
    return widgets.FloatSlider(value=middle, min=lo, max=hi, step=step, description=name)


def play_button(slider: widgets.Widget, *, interval_ms: int = 400) -> tuple[widgets.Play, Any]:
    """A ``Play`` button that moves ``slider`` in the browser (``jslink``: frames advance without a round trip
    through the kernel, which redraws on each value it receives). An ``IntSlider`` is driven over its values, a
    ``SelectionSlider`` over its index. Returns ``(play, link)``; both are disabled with the slider when there is
    one value only. Every frame player of the course (GAN steps, gallery epochs, embeddings, episodes) uses it."""
    if not isinstance(interval_ms, int) or isinstance(interval_ms, bool) or interval_ms < 1:
        raise ValueError(f"play_button: interval_ms must be a positive int (milliseconds), got {interval_ms!r}")
    if isinstance(slider, widgets.SelectionSlider):
        lo, hi, step, value, trait = 0, len(slider.options) - 1, 1, slider.index, "index"
    elif isinstance(slider, widgets.IntSlider):
        lo, hi, step, value, trait = slider.min, slider.max, slider.step, slider.value, "value"
    else:
        raise TypeError(f"play_button drives an IntSlider or a SelectionSlider, got {type(slider).__name__}")
    play = widgets.Play(value=value, min=lo, max=max(hi, lo), step=step, interval=interval_ms, description="play",
                        layout=widgets.Layout(width="150px"))
    link = widgets.jslink((play, "value"), (slider, trait))
    if hi <= lo:
        slider.disabled = play.disabled = True
    return play, link
