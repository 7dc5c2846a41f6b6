"""The sample gallery in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

A notebook showing ``amla.views.gallery.SampleGallery`` (4 saved epochs whose pictures differ clearly, 3 classes)
is opened in an isolated JupyterLab (``tests/browser_support.py``, with the page helpers of
``tests/browser_pages.py``) and run with "Run > Run All Cells". In the page, the epoch slider is moved with the
keyboard (as a user would: focus its handle, press Home), then the class Dropdown is changed. Each time the test waits for the redraw and checks that the picture shown is exactly
the kernel's PNG for that epoch (and class), which the notebook wrote beside itself. Screenshots go to
test-artifacts/browser/ (git-ignored).

Skipped where /usr/bin/chromium or playwright is missing; AMLA_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_pages import _browser_required  # noqa: F401 - the fixture browser_mark() asks for in CI
from browser_pages import IMAGE_LOADED, IMAGE_REPLACED, KERNEL_OK_CELL, browser_mark, changed_fraction, \
    chromium_page, fresh_shots, inked_fraction, lab_with, open_and_run_all, shown_png
from browser_support import ARTIFACTS, REPO, LabServer, step

pytestmark = browser_mark()


NOTEBOOK = "sample_gallery.ipynb"
EPOCHS = 4  # saved epochs 0..3; the gallery starts at the last one
CLASS = 2
VIEW_CLASS = "amla-browser-test-gallery"
SHOTS = ARTIFACTS / "gallery"

# Epoch e draws a bar at row 2 + 5 e of every 28x28 image, class c a bar at column 3 + 8 c: every (epoch,
# class) picture differs visibly. The kernel writes its own PNG of each for the test to compare.
VIEW_CELL = f"""\
from pathlib import Path
import torch
from amla.views.gallery import SampleGallery

y = torch.arange(3).repeat_interleave(4)
snaps, strips = {{}}, {{}}
for e in range({EPOCHS}):
    x = -torch.ones(12, 1, 28, 28)
    x[:, :, 2 + 5 * e: 6 + 5 * e, :] = 1.0
    for c in range(3):
        x[y == c, :, :, 3 + 8 * c: 6 + 8 * c] = 1.0
    snaps[e] = x
    strips[e] = torch.stack([torch.linspace(-1, 1, 6).view(6, 1, 1, 1).expand(6, 1, 28, 28) * (e + 1) / {EPOCHS}] * 3)
gallery = SampleGallery(snaps, labels=y, classes=["zero", "one", "two"], interpolation=strips, title="browser test")
for e in range({EPOCHS}):
    Path(f"expected-epoch-{{e}}.png").write_bytes(gallery.png_for(e))
    Path(f"expected-epoch-{{e}}-class-{CLASS}.png").write_bytes(gallery.png_for(e, {CLASS}))
gallery.widget.add_class("{VIEW_CLASS}")
gallery
"""


@pytest.fixture(scope="module")
def lab(lab_server: LabServer) -> Iterator[LabServer]:
    yield from lab_with(lab_server, {NOTEBOOK: [KERNEL_OK_CELL, VIEW_CELL]})


def test_sample_gallery_epoch_slider_and_class_dropdown_in_chromium(lab: LabServer) -> None:
    fresh_shots(SHOTS)
    with chromium_page(lab) as page:
        _drive(page, lab)


def _drive(page, lab: LabServer) -> None:  # noqa: ANN001 - Playwright's Page
    session, line = open_and_run_all(page, lab, NOTEBOOK)
    with step("first cell: the kernel is this interpreter and imports amla", 10):
        _, _pid, prefix, amla_file = line.split("|")
        assert prefix == sys.prefix, f"the kernel runs in {prefix}, not in {sys.prefix}"
        assert Path(amla_file).resolve().is_relative_to(REPO), f"the kernel imports amla from {amla_file}"
        assert [k["id"] for k in lab.kernels()] == [session["kernel"]["id"]]
    view = page.locator(f".{VIEW_CLASS}")
    image = view.locator("img.widget-image")
    with step("the gallery renders: play button, epoch slider at the last epoch, class dropdown, a picture", 90):
        image.wait_for(state="visible", timeout=90_000)
        page.wait_for_function(IMAGE_LOADED, arg=image.element_handle(), timeout=30_000)
        view.locator(".widget-play, .jupyter-widgets.widget-play, button .fa-play, button").first.wait_for(
            state="visible", timeout=10_000)
        readout = view.locator(".widget-readout").first
        assert readout.inner_text().strip() == str(EPOCHS - 1), f"slider readout {readout.inner_text()!r}"
        dropdown = view.get_by_label("class", exact=True)
        options = [t.replace("\xa0", " ").strip() for t in dropdown.locator("option").all_inner_texts()]
        assert options == ["all classes", "class zero", "class one", "class two"], options

    expected = {e: (lab.root / f"expected-epoch-{e}.png").read_bytes() for e in range(EPOCHS)}
    with step("the first picture is the kernel's picture of the last epoch", 30):
        old_src = image.get_attribute("src")
        before = shown_png(page, image)
        shot_before = image.screenshot()
        view.screenshot(path=str(SHOTS / "gallery-before.png"))
    assert inked_fraction(shot_before) > 0.03, "the rendered picture is blank"
    assert before == expected[EPOCHS - 1], "the picture in the page is not the kernel's picture of the last epoch"

    with step("move the epoch slider to epoch 0 with the keyboard (Home on its handle) and wait for the redraw", 30):
        handle = view.locator(".noUi-handle, .ui-slider-handle").first
        handle.focus()
        handle.press("Home")
        page.wait_for_function(IMAGE_REPLACED, arg=[image.element_handle(), old_src], timeout=30_000)
        page.wait_for_function("(el) => el.innerText.trim() === '0'", arg=readout.element_handle(), timeout=10_000)
    with step("screenshot after the slider moved", 30):
        after = shown_png(page, image)
        shot_after = image.screenshot()
        view.screenshot(path=str(SHOTS / "gallery-epoch-0.png"))
    assert after != before, "the picture's PNG did not change after moving the epoch slider"
    assert changed_fraction(shot_before, shot_after) > 0.005, "the rendered picture barely changed"
    shown = [e for e, png in expected.items() if png == after]
    assert shown == [0], f"after moving the slider to epoch 0 the picture is the kernel's picture of {shown or 'no epoch'}"

    with step(f"choose class {CLASS} in the Dropdown and wait for the redraw", 30):
        src = image.get_attribute("src")
        dropdown.select_option(label="class two")
        page.wait_for_function(IMAGE_REPLACED, arg=[image.element_handle(), src], timeout=30_000)
        chosen = shown_png(page, image)
        view.screenshot(path=str(SHOTS / "gallery-epoch-0-class-2.png"))
    assert chosen == (lab.root / f"expected-epoch-0-class-{CLASS}.png").read_bytes(), \
        "after choosing class two the picture is not the kernel's picture of epoch 0, class two"
