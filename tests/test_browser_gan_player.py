"""The GAN player in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

A notebook records 4 clearly different steps of a tiny 2-D GAN (no training to speak of: the generator is moved by
hand between the snapshots), shows ``GanPlayer`` on them, and writes the kernel's picture of every frame to disk.
The test runs it with "Run > Run All Cells", checks that the live widget rendered (the Play button, the frame
slider, a non-blank picture that is the kernel's picture of the last frame), moves the slider in the page with the
keyboard, as a user would, and checks that the picture changed and is exactly the kernel's picture of the chosen
frame. Screenshots go to test-artifacts/browser/ (git-ignored).

Reuses the isolated JupyterLab of tests/browser_support.py and the page helpers of tests/browser_pages.py; skipped
where chromium or playwright is missing, and failing instead under AMLA_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from browser_pages import _browser_required  # noqa: F401 - the fixture browser_mark() asks for in CI
from browser_pages import IMAGE_LOADED, IMAGE_REPLACED, KERNEL_OK_CELL, SLIDER_HANDLE, browser_mark, \
    changed_fraction, chromium_page, inked_fraction, lab_with, open_and_run_all, shown_png
from browser_support import ARTIFACTS, LabServer, step

pytestmark = browser_mark()


NOTEBOOK = "gan_player.ipynb"
FRAMES = 4
VIEW_CLASS = "amla-browser-test-gan-player"

VIEW_CELL = f"""\
from pathlib import Path
import torch
from amla.gan.losses import g_loss_nonsaturating
from amla.gan.mlp import Discriminator, Generator
from amla.gan.toy import ring
from amla.views.gan_player import GanPlayer, record

torch.manual_seed(0)
G, D = Generator(hidden=16), Discriminator(hidden=16)
z = torch.randn(200, 2)
frames = []
for k in range({FRAMES}):  # move the generator's output by hand: every frame looks different
    with torch.no_grad():
        G.net[-1].bias.copy_(torch.tensor([0.8 * k - 1.2, 0.6 - 0.4 * k]))
        D.net[-1].bias.fill_(2.0 * k - 3.0)
    frames.append(record(G, D, z, g_loss_nonsaturating, step=100 * k, grid=24, note=f"frame note {{k}}"))
player = GanPlayer(frames, ring().sample(300, torch.Generator().manual_seed(1)), title="browser test")
slider = player.controls["frame"]
for i in range({FRAMES}):  # the kernel's own picture of every frame, for the test to compare
    slider.value = i
    Path(f"expected-frame-{{i}}.png").write_bytes(player.png)
slider.value = {FRAMES - 1}
player.widget.add_class("{VIEW_CLASS}")
player
"""


@pytest.fixture(scope="module")
def lab(lab_server: LabServer) -> Iterator[LabServer]:
    yield from lab_with(lab_server, {NOTEBOOK: [KERNEL_OK_CELL, VIEW_CELL]})


def test_gan_player_slider_in_chromium(lab: LabServer) -> None:
    start = time.monotonic()
    with chromium_page(lab) as page:
        open_and_run_all(page, lab, NOTEBOOK)
        view = page.locator(f".{VIEW_CLASS}")
        image = view.locator("img.widget-image")
        slider = view.locator(SLIDER_HANDLE).first
        with step("the player renders (Play button, frame slider, a loaded picture)", 120):
            image.wait_for(state="visible", timeout=120_000)
            page.wait_for_function(IMAGE_LOADED, arg=image.element_handle(), timeout=30_000)
            view.locator(".widget-play, .widget-hbox button").first.wait_for(state="visible", timeout=10_000)
            slider.wait_for(state="visible", timeout=10_000)
            readout = view.locator(".widget-readout").first
            assert readout.inner_text().strip() == str(FRAMES - 1), f"the slider starts at {readout.inner_text()!r}"
        expected = {i: (lab.root / f"expected-frame-{i}.png").read_bytes() for i in range(FRAMES)}
        with step("the picture is the kernel's picture of the last frame", 30):
            old_src = image.get_attribute("src")
            before_png = shown_png(page, image)
            image_before = image.screenshot()
            view.screenshot(path=str(ARTIFACTS / "gan-player-before.png"))
            assert inked_fraction(image_before) > 0.05, "the rendered picture is blank"
            assert before_png == expected[FRAMES - 1], "the picture in the page is not the kernel's last frame"
        target = FRAMES - 3
        with step(f"move the slider to frame {target} with the keyboard and wait for the redraw", 30):
            slider.focus()
            for _ in range(FRAMES - 1 - target):
                page.keyboard.press("ArrowLeft")
            page.wait_for_function(IMAGE_REPLACED, arg=[image.element_handle(), old_src], timeout=30_000)
            # the slider does not update continuously: wait until the picture settles on the last value sent
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                shown = shown_png(page, image)
                if shown == expected[target]:
                    break
                time.sleep(0.3)
        with step("screenshot after", 30):
            after_png = shown_png(page, image)
            image_after = image.screenshot()
            view.screenshot(path=str(ARTIFACTS / "gan-player-after.png"))
    assert view is not None
    assert after_png != before_png, "the picture did not change after moving the slider"
    assert changed_fraction(image_before, image_after) > 0.01, "the rendered picture barely changed"
    matching = [i for i, png in expected.items() if png == after_png]
    assert matching == [target], f"after moving the slider to frame {target} the page shows the kernel's frame {matching}"
    print(f"gan player browser test: {time.monotonic() - start:.1f} s")
