"""The gridworld viewer of Hour 15 in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

A notebook runs 6 sweeps of value iteration on the course gridworld, shows ``GridworldViewer`` on them and writes
the kernel's picture of every sweep to disk. The test runs it with "Run > Run All Cells", checks that the live
widget rendered (Play button, iteration slider, a non-blank picture that is the kernel's picture of the last
sweep, the static fallback's frame), moves the slider to the first sweep with the keyboard and checks that the
picture is exactly the kernel's picture of sweep 0, then presses Play and checks that the sweeps advance on their
own. Screenshots go to test-artifacts/browser/ (git-ignored).

Skipped where chromium or playwright is missing, failing instead under AMLA_REQUIRE_BROWSER=1 (CI).
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

NOTEBOOK = "gridworld_viewer.ipynb"
VIEW_CLASS = "amla-browser-test-gridworld"
SWEEPS = 6

VIEW_CELL = f"""\
from pathlib import Path
import numpy as np
from amla.rl.gridworld import GridWorld, layout_masks
from amla.rl.tabular import q_from_v, transition_model
from amla.views import GridworldViewer

env = GridWorld()
P, R, terminal = transition_model(env)
V, frames = np.zeros(12), []
for _ in range({SWEEPS}):
    Q = q_from_v(P, R, V, 1.0)
    frames.append((V.copy(), Q.argmax(1)))
    V = Q.max(1)
walls = layout_masks(env.layout)["wall"].ravel()
viewer = GridworldViewer(frames, (3, 4), walls=walls, terminals=terminal & ~walls, title="value iteration",
                         interval_ms=500)
for k in range({SWEEPS}):  # the kernel's own picture of every sweep, for the test to compare
    Path(f"expected-sweep-{{k}}.png").write_bytes(viewer.png_for(k))
viewer.widget.add_class("{VIEW_CLASS}")
viewer
"""


@pytest.fixture(scope="module")
def lab(lab_server: LabServer) -> Iterator[LabServer]:
    yield from lab_with(lab_server, {NOTEBOOK: [KERNEL_OK_CELL, VIEW_CELL]})


def test_gridworld_viewer_slider_and_play_in_chromium(lab: LabServer) -> None:
    start = time.monotonic()
    expected = {k: (lab.root / f"expected-sweep-{k}.png") for k in range(SWEEPS)}
    with chromium_page(lab) as page:
        open_and_run_all(page, lab, NOTEBOOK)
        view = page.locator(f".{VIEW_CLASS}")
        image = view.locator("img.widget-image")
        slider = view.locator(SLIDER_HANDLE).first
        play = view.locator(".widget-play button").first
        with step("the viewer renders (Play button, iteration slider, a loaded picture)", 120):
            image.wait_for(state="visible", timeout=120_000)
            page.wait_for_function(IMAGE_LOADED, arg=image.element_handle(), timeout=30_000)
            play.wait_for(state="visible", timeout=10_000)
            slider.wait_for(state="visible", timeout=10_000)
        pictures = {k: path.read_bytes() for k, path in expected.items()}
        assert len(set(pictures.values())) == SWEEPS, "the kernel's sweeps are not all different"
        with step("the picture is the kernel's picture of the last sweep", 30):
            first_png = shown_png(page, image)
            first_shot = image.screenshot()
            view.screenshot(path=str(ARTIFACTS / "gridworld-viewer-before.png"))
            assert inked_fraction(first_shot) > 0.05, "the rendered picture is blank"
            assert first_png == pictures[SWEEPS - 1], "the picture in the page is not the kernel's last sweep"
        with step("move the slider to sweep 0 with the keyboard and wait for the redraw", 40):
            old_src = image.get_attribute("src")
            slider.focus()
            page.keyboard.press("Home")
            page.wait_for_function(IMAGE_REPLACED, arg=[image.element_handle(), old_src], timeout=30_000)
            shown = settle_on(page, image, pictures, {0})
            after_shot = image.screenshot()
            view.screenshot(path=str(ARTIFACTS / "gridworld-viewer-sweep0.png"))
            assert shown == 0, "after moving the slider to sweep 0 the page does not show the kernel's sweep 0"
        with step("press Play: the sweeps advance by themselves", 40):
            play.click()
            reached = settle_on(page, image, pictures, set(range(1, SWEEPS)))
            assert reached is not None, "after Play the page shows none of the kernel's later sweeps"
            view.screenshot(path=str(ARTIFACTS / "gridworld-viewer-playing.png"))
            play.click()
    assert changed_fraction(first_shot, after_shot) > 0.01, "the rendered picture barely changed"
    print(f"gridworld viewer browser test: {time.monotonic() - start:.1f} s")
