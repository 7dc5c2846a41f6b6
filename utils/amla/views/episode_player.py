"""The episode player: the rendered frames of an RL episode with play controls, the reward and the agent's value
estimate per step below them (Hours 15-18).

``EpisodePlayer(episodes)`` takes one or several ``amla.rl.episodes.Episode``\\ s (``run_episode(...,
render=True)`` records them). It is a ``View``: a ``Play`` button and a frame slider (jslinked in the browser), an
episode ``Dropdown`` when there are several, above one picture: the frame, then the reward of every step and the
value estimate (or whatever per-step number the hour passes as ``values``: the return-to-go a Decision
Transformer is fed, say), with a marker at the step shown. Where no widget frontend runs (GitHub, nbconvert, a
reopened notebook), the output holds a **filmstrip** instead: evenly spaced frames of the episode above the same
curves, so the static picture still tells the episode's story.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from amla.views.base import View, fig_to_png, play_button

__all__ = ["EpisodePlayer"]

REWARD_COLOR = "#1c7ed6"
VALUE_COLOR = "#e8590c"
MARK_COLOR = "0.25"


def _episodes(episodes: Any) -> list[Any]:
    items = [episodes] if hasattr(episodes, "rewards") else list(episodes) if isinstance(episodes, Sequence) else None
    if not items or not all(hasattr(e, "rewards") and hasattr(e, "frames") for e in items):
        raise ValueError("EpisodePlayer: expected an Episode or a non-empty list of Episodes (from "
                         f"amla.rl.episodes.run_episode), got {type(episodes).__name__}")
    for k, e in enumerate(items):
        if len(e.rewards) == 0:
            raise ValueError(f"EpisodePlayer: episode {k} has no steps")
        if e.values is not None and len(e.values) != len(e.rewards):
            raise ValueError(f"EpisodePlayer: episode {k} has {len(e.values)} values for {len(e.rewards)} steps; "
                             "expected one value per step (or values=None)")
        if len(e.frames) != len(e.frame_steps):
            raise ValueError(f"EpisodePlayer: episode {k} has {len(e.frames)} frames but {len(e.frame_steps)} "
                             "frame_steps; expected one step number per frame")
    return items


class EpisodePlayer(View):
    """Play back rendered episodes: the frame, and below it the reward and the value estimate of every step.

    ``episodes``: an ``Episode`` or a list of them; ``values_label``: what ``Episode.values`` holds (default "value
    estimate"); ``filmstrip``: how many frames the static picture shows. Controls: ``controls["frame"]`` (an
    ``IntSlider`` over the recorded frames; its readout is the frame number, the title gives the step), ``play``
    (a ``Play`` button linked to it in the browser), and ``controls["episode"]`` (a ``Dropdown``) with several
    episodes. ``show(step, episode=None)`` moves to the frame of a step."""

    def __init__(self, episodes: Any, *, title: str = "", values_label: str = "value estimate",
                 interval_ms: int = 150, filmstrip: int = 6, start: int = 0, dpi: int = 80) -> None:
        self.episodes = _episodes(episodes)
        self.title, self.values_label = str(title), str(values_label)
        if not isinstance(filmstrip, int) or isinstance(filmstrip, bool) or filmstrip < 1:
            raise ValueError(f"EpisodePlayer: filmstrip must be a positive number of frames, got {filmstrip!r}")
        self.n_strip = filmstrip
        frames = max(len(self.episodes[0].frames), 1)
        if not isinstance(start, int) or not -frames <= start < frames:
            raise ValueError(f"EpisodePlayer: start must index the {frames} frames of the first episode, got {start!r}")
        self.slider = widgets.IntSlider(value=start % frames, min=0, max=frames - 1, step=1, description="frame",
                                        continuous_update=False, layout=widgets.Layout(width="420px"))
        self.play, self.link = play_button(self.slider, interval_ms=int(interval_ms))
        controls: dict[str, widgets.Widget] = {"frame": self.slider}
        self.choice: widgets.Dropdown | None = None
        if len(self.episodes) > 1:
            options = [(self._name(k), k) for k in range(len(self.episodes))]
            self.choice = widgets.Dropdown(options=options, value=0, description="episode",
                                           layout=widgets.Layout(width="320px"))
            controls["episode"] = self.choice
        super().__init__(controls, dpi=dpi)
        self.prepend(self.play)
        if self.choice is not None:
            self.choice.observe(self._on_episode, names="value")

    # --- state ---------------------------------------------------------------------------------------------------

    def _name(self, k: int) -> str:
        e = self.episodes[k]
        return f"{e.label or f'episode {k}'}: return {e.ret:g}, {len(e)} steps"

    @property
    def episode(self) -> Any:
        """The episode shown now."""
        return self.episodes[self.choice.value if self.choice is not None else 0]

    @property
    def step(self) -> int:
        """The step of the frame shown now (0 = before the first action; ``len(episode)`` = after the last)."""
        e = self.episode
        if not e.frames:
            return len(e) - 1
        return int(e.frame_steps[min(self.slider.value, len(e.frames) - 1)])

    def _on_episode(self, change: Any) -> None:
        frames = max(len(self.episode.frames), 1)
        self.play.max = self.slider.max = frames - 1  # a value past the new end is clamped by the slider itself
        self.slider.disabled = self.play.disabled = frames == 1

    def show(self, step: int, episode: int | None = None) -> "EpisodePlayer":
        """Move to the recorded frame nearest ``step`` (of episode number ``episode``); returns the player."""
        if episode is not None:
            if not isinstance(episode, int) or not 0 <= episode < len(self.episodes):
                raise ValueError(f"EpisodePlayer.show: episode must be 0..{len(self.episodes) - 1}, got {episode!r}")
            if self.choice is not None:
                self.choice.value = episode
        e = self.episode
        if e.frames:
            index = int(np.argmin([abs(s - step) for s in e.frame_steps]))
            self.set_controls([(self.slider, index)])
        return self

    # --- pictures ------------------------------------------------------------------------------------------------

    def _curves(self, fig: Figure, spec: Any, e: Any, marks: Sequence[int]) -> None:
        """Reward per step and the value estimate below a frame or a filmstrip, with markers at ``marks``."""
        t = np.arange(len(e))
        rows = 2 if e.values is not None else 1
        sub = spec.subgridspec(rows, 1, hspace=0.15)
        ax = fig.add_subplot(sub[0])
        ax.step(t, e.rewards, where="post", color=REWARD_COLOR, linewidth=1.2)
        ax.set_ylabel("reward", fontsize=8)
        axes = [ax]
        if e.values is not None:
            ax_v = fig.add_subplot(sub[1], sharex=ax)
            ax_v.plot(t, e.values, color=VALUE_COLOR, linewidth=1.2)
            ax_v.set_ylabel(self.values_label, fontsize=8)
            axes.append(ax_v)
        for a in axes:
            for m in marks:  # a mark at len(e) is the picture after the last step
                a.axvline(m, color=MARK_COLOR, linewidth=0.8, linestyle="--")
            a.tick_params(labelsize=7)
            a.set_xlim(-0.5, len(e) + 0.5)
        for a in axes[:-1]:
            a.tick_params(labelbottom=False)
        axes[-1].set_xlabel("step", fontsize=8)
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))

    def _heading(self, e: Any, step: int) -> str:
        done = min(step, len(e))
        got = float(e.rewards[:done].sum())
        parts = [self.title] if self.title else []
        parts.append(f"{e.label + ': ' if e.label else ''}step {step}/{len(e)}, return so far {got:g} of {e.ret:g}")
        if step < len(e) and e.values is not None:
            parts.append(f"{self.values_label} {e.values[step]:.3g}")
        return "  |  ".join(parts)

    def draw(self) -> Figure:
        e, step = self.episode, self.step
        fig = Figure(figsize=(6.4, 5.6 if e.values is not None else 4.8), layout="constrained")
        spec = fig.add_gridspec(2, 1, height_ratios=(3.0, 1.6 if e.values is not None else 0.9))
        ax = fig.add_subplot(spec[0])
        if e.frames:
            ax.imshow(e.frames[min(self.slider.value, len(e.frames) - 1)])
        else:
            ax.text(0.5, 0.5, "no frames recorded\n(run_episode(..., render=True))", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9, color="0.4")
        ax.set_axis_off()
        ax.set_title(self._heading(e, step), fontsize=8.5)
        self._curves(fig, spec[1], e, [step])
        return fig

    def filmstrip(self, episode: int | None = None) -> Figure:
        """The static picture: ``filmstrip`` evenly spaced frames of an episode (the one shown by default) above
        its reward and value curves, each frame's step marked."""
        e = self.episodes[episode] if episode is not None else self.episode
        picks = np.unique(np.linspace(0, len(e.frames) - 1, min(self.n_strip, len(e.frames))).round().astype(int)) \
            if e.frames else np.array([], dtype=int)
        width = max(6.4, 1.6 * max(len(picks), 1))
        aspect = e.frames[0].shape[0] / e.frames[0].shape[1] if e.frames else 0.5  # height / width of a frame
        strip = width / max(len(picks), 1) * aspect + 0.3
        curves = 1.8 if e.values is not None else 1.0
        fig = Figure(figsize=(width, strip + curves + 0.4), layout="constrained")
        spec = fig.add_gridspec(2, 1, height_ratios=(strip, curves))
        top = spec[0].subgridspec(1, max(len(picks), 1), wspace=0.05)
        for j, k in enumerate(picks):
            ax = fig.add_subplot(top[j])
            ax.imshow(e.frames[k])
            ax.set_axis_off()
            ax.set_title(f"step {e.frame_steps[k]}", fontsize=7.5)
        heading = f"{self.title + ': ' if self.title else ''}{e.label + ', ' if e.label else ''}return {e.ret:g} in " \
                  f"{len(e)} steps ({'terminated' if e.terminated else 'truncated' if e.truncated else 'cut'})"
        fig.suptitle(heading, fontsize=9)
        self._curves(fig, spec[1], e, [int(e.frame_steps[k]) for k in picks])
        return fig

    def _repr_mimebundle_(self, include: Sequence[str] | None = None,
                          exclude: Sequence[str] | None = None) -> dict[str, Any]:
        """The live player, and the filmstrip as the picture a page without widgets shows."""
        data = super()._repr_mimebundle_(include, exclude)
        if "image/png" in data:
            data["image/png"] = base64.b64encode(fig_to_png(self.filmstrip(), dpi=self.dpi)).decode("ascii")
        return data

    def close(self) -> None:
        self.link.close()
        self.play.close()
        super().close()
