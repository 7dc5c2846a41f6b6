"""amla.views.EpisodePlayer: frames with play controls, rewards and values per step, a filmstrip when static."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from amla.rl.episodes import Episode, make_env, run_episode
from amla.views import EpisodePlayer


def _episode(steps: int, frames: int, values: bool = True, label: str = "") -> Episode:
    rng = np.random.default_rng(steps)
    frame_steps = np.linspace(0, steps, frames).round().astype(int).tolist()
    pictures = [np.full((12, 18, 3), 20 * k, dtype=np.uint8) for k in range(frames)]
    return Episode(observations=rng.normal(size=(steps, 2)), actions=np.zeros(steps, dtype=np.int64),
                   rewards=np.ones(steps), frames=pictures, frame_steps=frame_steps,
                   values=np.linspace(5, 1, steps) if values else None, truncated=True, label=label)


def test_player_over_a_real_rendered_episode() -> None:
    env = make_env("CartPole-v1", render=True, max_episode_steps=40)
    ep = run_episode(env, lambda o: int(o[2] > 0), seed=1, value_fn=lambda o: 10.0 - abs(float(o[2])) * 10,
                     frame_every=4)
    player = EpisodePlayer(ep, title="CartPole")
    assert player.choice is None and player.slider.max == len(ep.frames) - 1
    first = player.png
    player.show(20)
    assert player.step == 20 and player.png != first
    assert isinstance(player.filmstrip(), Figure)


def test_several_episodes_dropdown_and_clamped_slider() -> None:
    long, short = _episode(50, 11, label="long"), _episode(6, 3, values=False, label="short")
    player = EpisodePlayer([long, short])
    assert [label for label, _ in player.choice.options] == ["long: return 50, 50 steps", "short: return 6, 6 steps"]
    player.slider.value = 10
    player.choice.value = 1
    assert player.slider.max == 2 and player.play.max == 2 and player.slider.value == 2
    assert player.episode is short and player.step == 6
    player.show(0, episode=0)
    assert player.episode is long and player.step == 0


def test_static_fallback_is_a_filmstrip_not_the_live_frame() -> None:
    player = EpisodePlayer(_episode(30, 7), filmstrip=4)
    bundle = player._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/png", "application/vnd.jupyter.widget-view+json"}
    static = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
    live = Image.open(io.BytesIO(player.png))
    assert static.size[0] / static.size[1] > live.size[0] / live.size[1]  # a wide strip of frames
    assert len(player.filmstrip().axes) == 4 + 2  # 4 frames, reward and value panels


def test_episode_without_frames_still_draws_its_curves() -> None:
    ep = Episode(observations=np.zeros((5, 1)), actions=np.zeros(5), rewards=np.arange(5.0))
    player = EpisodePlayer(ep)
    assert player.slider.disabled and player.play.disabled and player.step == 4
    assert player.png.startswith(b"\x89PNG")


@pytest.mark.parametrize("bad, match", [
    ([], "non-empty list of Episodes"),
    ("an episode", "non-empty list of Episodes"),
    (Episode(np.zeros((0, 1)), np.zeros(0), np.zeros(0)), "has no steps"),
    (Episode(np.zeros((3, 1)), np.zeros(3), np.ones(3), values=np.ones(2)), "2 values for 3 steps"),
    (Episode(np.zeros((3, 1)), np.zeros(3), np.ones(3), frames=[np.zeros((2, 2, 3))]), "1 frames but 0 frame_steps"),
])
def test_bad_input_is_named(bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EpisodePlayer(bad)


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="filmstrip must be a positive number"):
        EpisodePlayer(_episode(5, 2), filmstrip=0)
    with pytest.raises(ValueError, match="start must index the 2 frames"):
        EpisodePlayer(_episode(5, 2), start=2)
    with pytest.raises(ValueError, match="episode must be 0..0"):
        EpisodePlayer(_episode(5, 2)).show(1, episode=3)
