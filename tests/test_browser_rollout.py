"""The attention-rollout viewer (Hour 08) in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

A notebook shows ``amla.views.RolloutViewer`` for a small seeded ViT (2 layers, 4 images), run with "Run > Run All
Cells". In the page the "layers" slider is moved with the keyboard (focus its handle, press Home), then the
"show" Dropdown is changed to the raw attention, then the "image" slider is moved to the last image (End). After
each change the test waits for the redraw and checks that the picture is exactly the kernel's PNG for those
controls, which the notebook wrote beside itself. Screenshots go to test-artifacts/browser/rollout (git-ignored).

Skipped where /usr/bin/chromium or playwright is missing; AMLA_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from browser_pages import _browser_required  # noqa: F401 - the fixture browser_mark() asks for in CI
from browser_pages import IMAGE_LOADED, IMAGE_REPLACED, KERNEL_OK_CELL, browser_mark, changed_fraction, \
    chromium_page, fresh_shots, inked_fraction, lab_with, open_and_run_all, shown_png
from browser_support import ARTIFACTS, LabServer, step

pytestmark = browser_mark()

NOTEBOOK = "rollout_viewer.ipynb"
VIEW_CLASS = "amla-browser-test-rollout"
SHOTS = ARTIFACTS / "rollout"
STATES = [(0, 2, "rollout"), (0, 1, "rollout"), (0, 1, "raw attention"), (3, 1, "raw attention")]

VIEW_CELL = f"""\
from pathlib import Path
import torch
from amla.transformers.vit import ViT, attention_rollout
from amla.views import RolloutViewer

torch.manual_seed(0)
model = ViT(8, 2, 10, d_model=16, n_layers=2, n_heads=2, d_ff=32).eval()
x = torch.zeros(4, 1, 8, 8)
for i in range(4):
    x[i, 0, 2 * i: 2 * i + 3, :] = 1.0  # a bar in a different place in every image: different maps
with torch.no_grad():
    logits, maps = model(x, need_weights=True)
view = RolloutViewer(x, maps, logits.softmax(-1), torch.arange(4), attention_rollout, title="browser test")
for n, (i, k, mode) in enumerate({STATES!r}):
    Path(f"expected-{{n}}.png").write_bytes(view.png_for(i, k, mode))
view.widget.add_class("{VIEW_CLASS}")
view
"""


@pytest.fixture(scope="module")
def lab(lab_server: LabServer) -> Iterator[LabServer]:
    yield from lab_with(lab_server, {NOTEBOOK: [KERNEL_OK_CELL, VIEW_CELL]})


def test_rollout_viewer_sliders_and_dropdown_in_chromium(lab: LabServer) -> None:
    fresh_shots(SHOTS)
    with chromium_page(lab) as page:
        _drive(page, lab)


def _drive(page, lab: LabServer) -> None:  # noqa: ANN001 - Playwright's Page
    open_and_run_all(page, lab, NOTEBOOK)
    view = page.locator(f".{VIEW_CLASS}")
    image = view.locator("img.widget-image")
    with step("the viewer renders: two sliders, the 'show' dropdown, a picture", 90):
        image.wait_for(state="visible", timeout=90_000)
        page.wait_for_function(IMAGE_LOADED, arg=image.element_handle(), timeout=30_000)
        readouts = view.locator(".widget-readout")
        assert [readouts.nth(i).inner_text().strip() for i in range(2)] == ["0", "2"]
        dropdown = view.get_by_label("show", exact=True)
        options = [t.replace("\xa0", " ").strip() for t in dropdown.locator("option").all_inner_texts()]
        assert options == ["rollout", "raw attention"], options
    expected = [(lab.root / f"expected-{n}.png").read_bytes() for n in range(len(STATES))]  # written by now
    assert len(set(expected)) == len(expected), "the kernel's four pictures should all differ"
    with step("the first picture is the kernel's: image 0, rollout through both layers", 30):
        first = shown_png(page, image)
        shot_first = image.screenshot()
        view.screenshot(path=str(SHOTS / "rollout-0.png"))
    assert inked_fraction(shot_first) > 0.03, "the rendered picture is blank"
    assert first == expected[0], "the first picture in the page is not the kernel's picture"

    handles = view.locator(".noUi-handle, .ui-slider-handle")
    actions = [("press Home on the 'layers' slider (rollout through layer 1 only)", lambda: _press(handles.nth(1), "Home")),
               ("choose 'raw attention' in the 'show' Dropdown", lambda: dropdown.select_option(label="raw attention")),
               ("press End on the 'image' slider (the last image)", lambda: _press(handles.nth(0), "End"))]
    previous = shot_first
    for n, (what, act) in enumerate(actions, start=1):
        with step(f"{what}, and wait for the redraw", 30):
            src = image.get_attribute("src")
            act()
            page.wait_for_function(IMAGE_REPLACED, arg=[image.element_handle(), src], timeout=30_000)
            png = shown_png(page, image)
            shot = image.screenshot()
            view.screenshot(path=str(SHOTS / f"rollout-{n}.png"))
        shown = [k for k, e in enumerate(expected) if e == png]
        assert shown == [n], f"after '{what}' the picture is the kernel's picture of state {shown or 'none'}, not {n}"
        assert changed_fraction(previous, shot) > 0.002, f"the rendered picture barely changed after '{what}'"
        previous = shot


def _press(handle, key: str) -> None:  # noqa: ANN001 - a Playwright Locator
    handle.focus()
    handle.press(key)
