"""The episode player in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

A notebook plays a short rendered CartPole episode with a scripted controller (frames every 20 steps), shows
``EpisodePlayer`` on it with a value estimate per step, and writes the kernel's picture of every frame to disk. The
test runs it with "Run > Run All Cells", checks that the live widget rendered (Play button, frame slider, a
non-blank picture that is the kernel's picture of frame 0), presses Play and checks that the frames advance on
their own to the kernel's pictures of later frames, then moves the slider with the keyboard and checks the picture
is exactly the kernel's picture of the chosen frame. Screenshots go to test-artifacts/browser/ (git-ignored).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from browser_pages import _browser_required  # noqa: F401 - the fixture browser_mark() asks for in CI
from browser_pages import IMAGE_LOADED, IMAGE_REPLACED, KERNEL_OK_CELL, SLIDER_HANDLE, browser_mark, \
    changed_fraction, chromium_page, inked_fraction, lab_with, open_and_run_all, settle_on, shown_png
from browser_support import ARTIFACTS, LabServer, step

pytestmark = browser_mark()

NOTEBOOK = "episode_player.ipynb"
VIEW_CLASS = "amla-browser-test-episode-player"

VIEW_CELL = f"""\
from pathlib import Path
from amla.rl.episodes import make_env, run_episode
from amla.views import EpisodePlayer

env = make_env("CartPole-v1", render=True, max_episode_steps=100)
episode = run_episode(env, lambda o: int(o[2] + 0.5 * o[3] > 0), seed=4, frame_every=20,
                      value_fn=lambda o: 100.0 - 200.0 * abs(float(o[2])), label="scripted")
player = EpisodePlayer(episode, title="browser test", interval_ms=700)
for i in range(len(episode.frames)):  # the kernel's own picture of every frame, for the test to compare
    player.slider.value = i
    Path(f"expected-episode-frame-{{i}}.png").write_bytes(player.png)
player.slider.value = 0
Path("frames.txt").write_text(str(len(episode.frames)))
player.widget.add_class("{VIEW_CLASS}")
player
"""


@pytest.fixture(scope="module")
def lab(lab_server: LabServer) -> Iterator[LabServer]:
    yield from lab_with(lab_server, {NOTEBOOK: [KERNEL_OK_CELL, VIEW_CELL]})


def test_episode_player_play_and_slider_in_chromium(lab: LabServer) -> None:
    start = time.monotonic()
    with chromium_page(lab) as page:
        open_and_run_all(page, lab, NOTEBOOK)
        view = page.locator(f".{VIEW_CLASS}")
        image = view.locator("img.widget-image")
        slider = view.locator(SLIDER_HANDLE).first
        play = view.locator(".widget-play button").first
        with step("the player renders (Play button, frame slider, a loaded picture)", 120):
            image.wait_for(state="visible", timeout=120_000)
            page.wait_for_function(IMAGE_LOADED, arg=image.element_handle(), timeout=30_000)
            play.wait_for(state="visible", timeout=10_000)
            slider.wait_for(state="visible", timeout=10_000)
        frames = int((lab.root / "frames.txt").read_text())
        expected = {i: (lab.root / f"expected-episode-frame-{i}.png").read_bytes() for i in range(frames)}
        assert len(set(expected.values())) == frames, "the kernel's frames are not all different"
        with step("the picture is the kernel's picture of frame 0", 30):
            first_png = shown_png(page, image)
            first_shot = image.screenshot()
            view.screenshot(path=str(ARTIFACTS / "episode-player-before.png"))
            assert inked_fraction(first_shot) > 0.03, "the rendered picture is blank"
            assert first_png == expected[0], "the picture in the page is not the kernel's frame 0"
        with step("press Play: the frames advance by themselves", 40):
            old_src = image.get_attribute("src")
            play.click()
            page.wait_for_function(IMAGE_REPLACED, arg=[image.element_handle(), old_src], timeout=30_000)
            reached = settle_on(page, image, expected, set(range(1, frames)))
            assert reached is not None, "after Play the page shows none of the kernel's later frames"
            view.screenshot(path=str(ARTIFACTS / "episode-player-playing.png"))
            play.click()  # ipywidgets 8: the same button, now showing "pause", stops the playing
        target = 1
        with step(f"move the slider to frame {target} with the keyboard and wait for the redraw", 40):
            time.sleep(1.0)  # let the last frame Play sent arrive
            slider.focus()
            page.keyboard.press("Home")
            for _ in range(target):
                page.keyboard.press("ArrowRight")
            shown = settle_on(page, image, expected, {target})
            after_shot = image.screenshot()
            view.screenshot(path=str(ARTIFACTS / "episode-player-after.png"))
            assert shown == target, f"after moving the slider to frame {target} the page does not show it"
    assert changed_fraction(first_shot, after_shot) > 0.005, "the rendered picture barely changed"
    print(f"episode player browser test: {time.monotonic() - start:.1f} s ({frames} frames)")
