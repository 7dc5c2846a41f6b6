"""The attention viewer in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

A notebook showing ``amla.views.AttentionViewer`` (4 clearly different heads) is opened in an isolated
JupyterLab, run with "Run > Run All Cells", and its ``head`` Dropdown is changed in the page, as a user
would. The test checks that the live widget rendered (controls + a non-blank picture), that the
frontend -> kernel -> frontend round trip redrew the picture, and that the picture shown is exactly the
kernel's PNG for the chosen head. Screenshots go to test-artifacts/browser/ (git-ignored).

Skipped where /usr/bin/chromium or playwright is missing (.ci/run installs chromium). CI sets
AMLA_REQUIRE_BROWSER=1: there a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_pages import _browser_required  # noqa: F401 - the fixture browser_mark() asks for in CI
from browser_pages import IMAGE_LOADED, IMAGE_REPLACED, KERNEL_IDLE, KERNEL_OK_CELL, browser_mark, changed_fraction, \
    chromium_page, fresh_shots, inked_fraction, lab_with, open_and_run_all, shown_png
from browser_support import ARTIFACTS, REPO, LabServer, step

pytestmark = browser_mark()


NOTEBOOK = "attention_view.ipynb"
HEADS = 4
TARGET_HEAD = 3  # chosen in the browser; the view starts at head 0
VIEW_CLASS = "amla-browser-test-view"

VIEW_CELL = f"""\
from pathlib import Path
import torch
from amla.views import AttentionViewer

tokens = ["the", "cat", "sat", "on", "the", "mat"]
T = len(tokens)
eye = torch.eye(T)
previous = torch.diag(torch.ones(T - 1), -1)
previous[0, 0] = 1.0
first = torch.zeros(T, T)
first[:, 0] = 1.0
causal = torch.tril(torch.ones(T, T))
uniform = causal / causal.sum(-1, keepdim=True)
weights = torch.stack([eye, previous, first, uniform]).unsqueeze(0)  # [1, {HEADS}, T, T]

viewer = AttentionViewer(weights, tokens, title="browser test")
head = viewer.controls["head"]
for i in range(len(head.options)):  # the kernel's own picture of every head, for the test to compare
    head.index = i
    Path(f"expected-head-{{i}}.png").write_bytes(viewer.png)
head.index = 0
viewer.widget.add_class("{VIEW_CLASS}")
viewer
"""


@pytest.fixture(scope="module")
def lab(lab_server: LabServer) -> Iterator[LabServer]:
    yield from lab_with(lab_server, {NOTEBOOK: [KERNEL_OK_CELL, VIEW_CELL]})


def test_attention_viewer_head_dropdown_in_chromium(lab: LabServer) -> None:
    fresh_shots(ARTIFACTS)
    timings: dict[str, float] = dict(lab.timings)
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[name] = now - clock
        clock = now

    with chromium_page(lab) as page:
        lap("launch chromium")
        _drive(page, lab, lap)
    print("browser test timings: " + ", ".join(f"{name} {secs:.1f} s" for name, secs in timings.items()))


def _drive(page, lab: LabServer, lap) -> None:  # noqa: ANN001 - Playwright's Page, a callback
    session, line = open_and_run_all(page, lab, NOTEBOOK)
    lap("open notebook + kernel + run all")
    with step("check the ipywidgets labextension is loaded", 5):
        extensions = page.evaluate(
            "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
            ".federated_extensions.map(e => e.name)"
        )
        assert "@jupyter-widgets/jupyterlab-manager" in extensions, (
            f"the isolated JupyterLab does not load ipywidgets' labextension; it found {extensions}"
        )
    with step("first cell: the kernel is this interpreter and imports amla", 10):
        _, _pid, prefix, amla_file = line.split("|")
        assert prefix == sys.prefix, f"the kernel runs in {prefix}, not in this interpreter's {sys.prefix}"
        assert Path(amla_file).resolve().is_relative_to(REPO), f"the kernel imports amla from {amla_file}"
        kernels = [kernel["id"] for kernel in lab.kernels()]
        assert kernels == [session["kernel"]["id"]], f"expected only the session's kernel, the server runs {kernels}"
    view = page.locator(f".{VIEW_CLASS}")
    image = view.locator("img.widget-image")
    with step("the attention view renders (controls + a loaded picture)", 90):
        image.wait_for(state="visible", timeout=90_000)
        page.wait_for_function(IMAGE_LOADED, arg=image.element_handle(), timeout=30_000)
        dropdown = view.get_by_label("head", exact=True)
        dropdown.wait_for(state="visible", timeout=10_000)
        options = [text.replace("\xa0", " ").strip() for text in dropdown.locator("option").all_inner_texts()]
        assert options == [f"head {h}" for h in range(HEADS)], f"head options in the page: {options}"
        assert dropdown.input_value() == "head 0", f"the view starts at {dropdown.input_value()!r}"
    lap("run all + render")

    with step("screenshot the view before", 30):
        old_src = image.get_attribute("src")
        before_png = shown_png(page, image)
        image_before = image.screenshot()
        view.screenshot(path=str(ARTIFACTS / "view-before.png"))
    inked = inked_fraction(image_before)
    assert inked > 0.03, f"the rendered picture is blank ({inked:.1%} of pixels not white)"
    expected = {h: (lab.root / f"expected-head-{h}.png").read_bytes() for h in range(HEADS)}
    assert before_png == expected[0], "the picture in the page is not the kernel's picture of head 0"

    with step(f"choose head {TARGET_HEAD} in the page's Dropdown and wait for the redraw", 30):
        dropdown.select_option(label=f"head {TARGET_HEAD}")
        page.wait_for_function(IMAGE_REPLACED, arg=[image.element_handle(), old_src], timeout=30_000)
    lap("change head + redraw")

    with step("screenshot the view after", 30):
        after_png = shown_png(page, image)
        image_after = image.screenshot()
        view.screenshot(path=str(ARTIFACTS / "view-after.png"))
        page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    lap("screenshots")

    assert after_png != before_png, "the picture's PNG did not change after choosing another head"
    changed = changed_fraction(image_before, image_after)
    assert changed > 0.005, f"the rendered picture barely changed ({changed:.2%} of pixels) after choosing another head"
    shown = [h for h, png in expected.items() if png == after_png]
    assert shown == [TARGET_HEAD], (
        f"after choosing head {TARGET_HEAD} in the page the picture is the kernel's picture of {shown or 'no head'}"
    )


# --- a solution notebook, opened in JupyterLab as `make lab` sets it up (jupytext pairs it with its source) ---

SOLUTION = "02_attention"
SUMMARY_DONE = "Hour 02 exercises: 2 of 2 passed."


def test_solution_notebook_opens_with_its_setup_cell_runs_and_saves_back_to_its_source(lab: LabServer) -> None:
    """An instructor opens solutions/02_attention.ipynb: jupytext (installed by `make lab`) reads its cells from
    the paired source solutions/02_attention.py. The notebook must start with the set-up cell, run top to bottom
    (every exercise passes), and saving it must leave the source byte for byte as it was."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    folder = lab.root / "solutions"
    folder.mkdir(exist_ok=True)
    for name in ("jupytext.toml", f"{SOLUTION}.py", f"{SOLUTION}.ipynb"):
        shutil.copy(REPO / "solutions" / name, folder / name)
    source = (folder / f"{SOLUTION}.py").read_bytes()
    now = time.time()  # a fresh clone can give the notebook the later time stamp: the case jupytext checks
    os.utime(folder / f"{SOLUTION}.py", (now - 60, now - 60))
    os.utime(folder / f"{SOLUTION}.ipynb", (now, now))
    path = f"solutions/{SOLUTION}.ipynb"

    with chromium_page(lab) as page:
        with step("start the solution notebook's kernel session (REST API)", 60):
            lab.start_session(path)
        with step("open the solution notebook in JupyterLab", 60):
            page.goto(lab.lab_url(f"/lab/workspaces/amla-sol-{secrets.token_hex(4)}/tree/{path}?reset"),
                      timeout=60_000)
            page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)
        with step("the first cell is the course set-up cell", 10):
            first = page.locator(".jp-NotebookPanel .jp-Cell").first.inner_text()
            assert "import amla" in first and "amla.setup(hour=2" in first, f"first cell: {first[:200]!r}"
        with step("Run > Run All Cells, until the exercise summary says every exercise passed", 240):
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            done = page.locator(".jp-OutputArea-output", has_text=SUMMARY_DONE)
            failure = page.locator(".jp-OutputArea-output", has_text=re.compile(r"Traceback|Error:"))
            done.or_(failure).first.wait_for(timeout=240_000)
            if failure.count():
                raise AssertionError(f"a cell failed: {failure.first.inner_text()[:600]!r}")
            page.wait_for_function(KERNEL_IDLE, timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "solution-page.png"))
        with step("no news or update prompt over the notebook (the course's lab settings, as in `make lab`)", 10):
            prompt = page.get_by_text(re.compile(r"official Jupyter news|newer version", re.I))
            assert prompt.count() == 0, (
                "JupyterLab shows its news/update prompt: the course's settings are missing; `make setup` installs "
                "utils/amla/course/lab-overrides.json as <prefix>/share/jupyter/lab/settings/overrides.json")
        with step("File > Save, then the paired source is unchanged", 30):
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (folder / f"{SOLUTION}.py").stat().st_mtime < now:
                time.sleep(0.2)
            assert (folder / f"{SOLUTION}.py").stat().st_mtime >= now, "saving did not write the paired source"
            assert (folder / f"{SOLUTION}.py").read_bytes() == source, \
                "saving the notebook in JupyterLab changed its source solutions/02_attention.py"
