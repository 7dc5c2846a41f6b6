"""The gridworld viewer of Hour 15 (``amla.views.gridworld``), without a browser: one picture per iteration, a
slider and a play button over the frames, the last frame as the static picture, and one-line errors."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib
import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from amla.rl.gridworld import CLIFF_ACTION_DELTAS, GridWorld, layout_masks
from amla.rl.tabular import q_from_v, transition_model, value_iteration
from amla.views import GridworldViewer, plot_grid_values
from amla.views.base import WIDGET_VIEW_MIMETYPE, View

matplotlib.use("Agg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweeps():
    env = GridWorld()
    P, R, terminal = transition_model(env)
    V, frames = np.zeros(12), []
    for _ in range(6):
        Q = q_from_v(P, R, V, 1.0)
        frames.append((V.copy(), Q.argmax(1)))
        V = Q.max(1)
    walls = layout_masks(env.layout)["wall"].ravel()
    return frames, walls, terminal & ~walls


def arrows(fig: Figure) -> list[Annotation]:
    return [t for t in fig.axes[0].texts if isinstance(t, Annotation)]


def test_slider_over_the_frames_starts_at_the_last_and_every_frame_has_its_picture(sweeps) -> None:
    frames, walls, ends = sweeps
    view = GridworldViewer(frames, (3, 4), walls=walls, terminals=ends, labels={3: "goal", 7: "pit"}, title="VI")
    slider = view.controls["iteration"]
    assert isinstance(view, View) and isinstance(slider, widgets.IntSlider) and isinstance(view.play, widgets.Play)
    assert (slider.min, slider.max, slider.value) == (0, 5, 5)
    assert view.link.source == (view.play, "value") and view.link.target == (slider, "value")
    assert view.widget.children[0].children[:2] == (view.play, slider)
    pictures = []
    for k in range(6):
        slider.value = k
        assert view.index == k and view.png.startswith(PNG_MAGIC) and bytes(view.image.value) == view.png
        pictures.append(view.png)
    assert len(set(pictures)) == 6, "each sweep draws a different picture"
    assert view.png_for(2) == pictures[2] and view.index == 5
    assert view.show(-2).index == 4
    view.close()


def test_one_arrow_per_live_cell_and_one_colour_scale(sweeps) -> None:
    frames, walls, ends = sweeps
    view = GridworldViewer(frames, (3, 4), walls=walls, terminals=ends)
    fig = view.figure()
    assert len(arrows(fig)) == 12 - walls.sum() - ends.sum()
    every = np.concatenate([V[~walls] for V, _ in frames])
    assert view.vlim == (every.min(), every.max())
    assert fig.axes[0].images[0].get_clim() == view.vlim
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert "end" in texts and any(t.startswith("0.") or t.startswith("-0.") for t in texts)


def test_static_fallback_is_the_last_frame(sweeps) -> None:
    frames, walls, ends = sweeps
    view = GridworldViewer(frames, (3, 4), walls=walls, terminals=ends)
    data, _ = DisplayFormatter().format(view)
    assert WIDGET_VIEW_MIMETYPE in data and "image/png" in data
    assert view.index == len(frames) - 1


def test_frames_without_a_policy_and_a_single_frame() -> None:
    view = GridworldViewer([(np.arange(4.0), None)], (2, 2))
    assert view.controls["iteration"].disabled and view.play.disabled
    assert arrows(view.figure()) == []


def test_plot_grid_values_with_a_path_and_into_given_axes() -> None:
    import gymnasium as gym

    P, R, terminal = transition_model(gym.make("CliffWalking-v1"))
    V, pi = value_iteration(P, R, 1.0)
    path = [36, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 47]
    fig = plot_grid_values(V, pi, (4, 12), terminals=terminal, action_deltas=CLIFF_ACTION_DELTAS, path=path,
                           hazards=np.arange(37, 47), title="cliff")
    assert isinstance(fig, Figure) and len(arrows(fig)) == 47
    line = fig.axes[0].lines[-1]
    assert list(line.get_xdata())[:2] == [0, 0] and list(line.get_ydata())[-1] == 3
    big = Figure()
    axes = big.subplots(1, 2)
    assert plot_grid_values(V, pi, (4, 12), ax=axes[1]) is big


@pytest.mark.parametrize("call, match", [
    (lambda: GridworldViewer([], (2, 2)), "non-empty list"),
    (lambda: GridworldViewer([(np.zeros(3), None)], (2, 2)), r"\[S\] = \[4\]"),
    (lambda: GridworldViewer([(np.zeros(4), np.array([0, 1, 2, 5]))], (2, 2)), "actions outside 0..3"),
    (lambda: GridworldViewer([(np.zeros(4), np.array([0.5, 1, 2, 3]))], (2, 2)), "integer actions"),
    (lambda: GridworldViewer([(np.full(4, np.nan), None)], (2, 2)), "NaN"),
    (lambda: GridworldViewer([(np.zeros(4), None)], (2, 0)), "shape must be"),
    (lambda: GridworldViewer([(np.zeros(4), None)], (2, 2), names=["a", "b"]), "one str per frame"),
    (lambda: GridworldViewer([np.zeros(4)], (2, 2)), r"\(V, policy\) pair"),
    (lambda: GridworldViewer([(np.zeros(4), None)], (2, 2), walls=[7]), "outside 0..3"),
    (lambda: GridworldViewer([(np.zeros(4), None)], (2, 2)).show(3), "no frame 3"),
    (lambda: plot_grid_values(np.zeros(4)), "shape=\\(nrow, ncol\\) is required"),
])
def test_bad_input_is_one_line(call, match) -> None:
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
