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

import base64
import contextlib
import io
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, LabServer, StepError, skip_reason, step

_reason = skip_reason()
if _reason is not None and os.environ.get("AMLA_REQUIRE_BROWSER") == "1":
    _reason = None
    pytestmark = pytest.mark.usefixtures("_browser_required")
else:
    pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


@pytest.fixture
def _browser_required() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.fail(f"AMLA_REQUIRE_BROWSER=1 (as in CI), but the browser test cannot run: {reason}")

NOTEBOOK = "attention_view.ipynb"
HEADS = 4
TARGET_HEAD = 3  # chosen in the browser; the view starts at head 0
VIEW_CLASS = "amla-browser-test-view"

SETUP_CELL = """\
import os, sys
import amla
print("KERNEL-OK", os.getpid(), sys.prefix, amla.__file__, sep="|")
"""

# Four heads that look nothing alike: self, previous token, first token, uniform over the past.
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


def write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP_CELL), nbformat.v4.new_code_cell(VIEW_CELL)]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    server = LabServer(tmp_path_factory.mktemp("lab"))
    try:
        try:
            server.start(timeout_s=60)
        except StepError as exc:
            _save_log(server)
            pytest.fail(f"{exc}\n--- JupyterLab log (tail) ---\n{server.log_tail()}", pytrace=False)
        write_notebook(server.root / NOTEBOOK)
        yield server
    finally:
        server.stop()


def _save_log(server: LabServer) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if server.log_path.exists():
        (ARTIFACTS / "server.log").write_bytes(server.log_path.read_bytes())


# --- picture checks (Pillow comes with matplotlib) --------------------------------------------------


def _pixels(png: bytes):  # noqa: ANN202 - a PIL image
    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB")


def inked_fraction(png: bytes) -> float:
    """Share of pixels that are not (near-)white."""
    image = _pixels(png).convert("L")
    histogram = image.histogram()
    return 1.0 - sum(histogram[245:]) / (image.width * image.height)


def changed_fraction(a: bytes, b: bytes) -> float:
    """Share of pixels that differ between two pictures (1.0 when the sizes differ)."""
    from PIL import ImageChops

    first, second = _pixels(a), _pixels(b)
    if first.size != second.size:
        return 1.0
    diff = ImageChops.difference(first, second).convert("L").point(lambda v: 255 if v > 24 else 0)
    return diff.histogram()[255] / (first.width * first.height)


# --- the test ----------------------------------------------------------------------------------------

KERNEL_IDLE = """() => /Python 3[^|]*\\|\\s*Idle/.test(document.getElementById("jp-main-statusbar")?.innerText ?? "")"""
IMAGE_LOADED = """(img) => img.complete && img.naturalWidth > 0 && img.src.length > 0"""
IMAGE_REPLACED = """([img, old]) => img.src !== old && img.complete && img.naturalWidth > 0"""
FETCH_IMAGE = """async (img) => {
    const blob = await (await fetch(img.src)).blob();
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
}"""


@contextlib.contextmanager
def _chromium_page(lab: LabServer) -> Iterator[Any]:
    """A page of a fresh headless Debian chromium; a failure inside saves the page and the log (see ``_fail``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        with step("launch chromium", 60):
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=60_000
            )
        page = None
        console: list[str] = []
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1).new_page()
            page.set_default_timeout(30_000)
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
            yield page
        except Exception as exc:
            _fail(page, lab, exc, console)
        finally:
            browser.close()


def test_attention_viewer_head_dropdown_in_chromium(lab: LabServer) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*"):
        if old.is_file():
            old.unlink()
    timings: dict[str, float] = dict(lab.timings)
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[name] = now - clock
        clock = now

    with _chromium_page(lab) as page:
        lap("launch chromium")
        _drive(page, lab, lap)
    print("browser test timings: " + ", ".join(f"{name} {secs:.1f} s" for name, secs in timings.items()))


def _drive(page, lab: LabServer, lap) -> None:  # noqa: ANN001 - Playwright's Page, a callback
    workspace = f"amla-test-{secrets.token_hex(4)}"
    with step("start the notebook's python3 kernel session (REST API)", 60):
        session = lab.start_session(NOTEBOOK)
        assert session["kernel"]["name"] == "python3", f"the session's kernel is {session['kernel']}"
    with step("open the notebook in JupyterLab", 60):
        page.goto(lab.lab_url(f"/lab/workspaces/{workspace}/tree/{NOTEBOOK}?reset"), timeout=60_000)
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    with step("check the ipywidgets labextension is loaded", 5):
        extensions = page.evaluate(
            "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
            ".federated_extensions.map(e => e.name)"
        )
        assert "@jupyter-widgets/jupyterlab-manager" in extensions, (
            f"the isolated JupyterLab does not load ipywidgets' labextension; it found {extensions}"
        )
    with step("wait for the python3 kernel to be connected and idle (status bar)", 60):
        # the toolbar's execution indicator says "idle" before any kernel exists; the status bar
        # goes "No Kernel | Initializing" -> "Python 3 (ipykernel) | Initializing" -> "... | Idle"
        page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    lap("open notebook + kernel")

    with step("Run > Run All Cells", 15):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    with step("first cell: the kernel is this interpreter and imports amla", 90):
        output = page.locator(".jp-OutputArea-output", has_text="KERNEL-OK").first
        dialog = page.locator(".jp-Dialog")
        output.or_(dialog).first.wait_for(timeout=90_000)
        if dialog.count():
            raise AssertionError(f"JupyterLab showed a dialog instead of running: {dialog.first.inner_text()!r}")
        _, pid, prefix, amla_file = output.inner_text().strip().split("|")
        lab.kernel_pids.append(int(pid))
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
        before_png = base64.b64decode(page.evaluate(FETCH_IMAGE, image.element_handle()))
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
        after_png = base64.b64decode(page.evaluate(FETCH_IMAGE, image.element_handle()))
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


def _fail(page, lab: LabServer, exc: BaseException, console: list[str]) -> None:  # noqa: ANN001
    """Save the page and the server log, and fail with the step, the log tail and the page's errors."""
    saved = []
    if page is not None:
        try:
            page.screenshot(path=str(ARTIFACTS / "failure-page.png"), full_page=True, timeout=10_000)
            saved.append("failure-page.png")
        except Exception as shot_error:  # the page may be gone: the log still helps
            saved.append(f"(no page screenshot: {type(shot_error).__name__})")
    _save_log(lab)
    saved.append("server.log")
    errors = "\n".join(console[-10:]) or "(none)"
    message = (
        f"{exc}\n"
        f"artifacts in {ARTIFACTS.relative_to(REPO)}: {', '.join(saved)}\n"
        f"--- browser console errors (last 10) ---\n{errors}\n"
        f"--- JupyterLab log (tail) ---\n{lab.log_tail()}"
    )
    raise AssertionError(message) from exc


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

    with _chromium_page(lab) as page:
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
        with step("File > Save, then the paired source is unchanged", 30):
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (folder / f"{SOLUTION}.py").stat().st_mtime < now:
                time.sleep(0.2)
            assert (folder / f"{SOLUTION}.py").stat().st_mtime >= now, "saving did not write the paired source"
            assert (folder / f"{SOLUTION}.py").read_bytes() == source, \
                "saving the notebook in JupyterLab changed its source solutions/02_attention.py"
