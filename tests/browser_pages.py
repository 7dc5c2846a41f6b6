"""What the browser tests of the course's views share: the CI rule, the lab fixture, the page, the pictures.

- ``browser_mark()`` and the ``_browser_required`` fixture: a module's ``pytestmark``. Skipped where chromium or
  playwright is missing; under ``AMLA_REQUIRE_BROWSER=1`` (CI) the test fails instead, so a failed install cannot
  hide behind a green run.
- ``started_lab`` / ``lab_with(lab_server, notebooks)``: one isolated JupyterLab (``browser_support.LabServer``) per
  test process, the session fixture ``lab_server`` of tests/conftest.py; a module-scoped ``lab`` fixture yields
  from ``lab_with``, which writes the module's notebooks (name -> code cells) into its root.
- ``chromium_page(lab)``: a page of a fresh headless Debian chromium; a failure inside saves a screenshot and the
  server log to test-artifacts/browser/ and fails with the browser's console errors and the log's tail.
- ``open_and_run_all(page, lab, notebook)``: open a notebook, wait for its kernel, Run > Run All Cells, and wait
  for the first cell's ``KERNEL-OK|pid|...`` line (its pid is recorded so the server's shutdown can check it).
- ``inked_fraction`` / ``changed_fraction`` / ``shown_png`` / ``settle_on``: compare what the page shows with the
  kernel's PNGs.
- ``fresh_shots(folder)``: the folder for a test's screenshots, made, with the files of an earlier run removed.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest

from browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, LabServer, StepError, skip_reason, step

KERNEL_IDLE = """() => /Python 3[^|]*\\|\\s*Idle/.test(document.getElementById("jp-main-statusbar")?.innerText ?? "")"""
SLIDER_HANDLE = ".widget-slider .noUi-handle, .widget-slider .slider-handle, .widget-slider input"
"""An ipywidgets slider's handle (ipywidgets 8's noUiSlider, 7.x's jQuery UI slider, or a plain input)."""
IMAGE_LOADED = """(img) => img.complete && img.naturalWidth > 0 && img.src.length > 0"""
IMAGE_REPLACED = """([img, old]) => img.src !== old && img.complete && img.naturalWidth > 0"""
FETCH_IMAGE = """async (img) => {
    const blob = await (await fetch(img.src)).blob();
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
}"""

KERNEL_OK_CELL = """\
import os, sys
import amla
print("KERNEL-OK", os.getpid(), sys.prefix, amla.__file__, sep="|")
"""
"""The first cell of every test notebook: proves which interpreter and which amla the kernel runs."""


def browser_mark() -> pytest.MarkDecorator:
    """The ``pytestmark`` of a browser test module (use it with the ``_browser_required`` fixture imported)."""
    reason = skip_reason()
    if reason is not None and os.environ.get("AMLA_REQUIRE_BROWSER") == "1":
        return pytest.mark.usefixtures("_browser_required")
    return pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture
def _browser_required() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.fail(f"AMLA_REQUIRE_BROWSER=1 (as in CI), but the browser test cannot run: {reason}")


def write_notebook(path: Path, cells: Sequence[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, path)


def save_log(server: LabServer) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if server.log_path.exists():
        (ARTIFACTS / "server.log").write_bytes(server.log_path.read_bytes())


def started_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """The body of the session-scoped ``lab_server`` fixture (tests/conftest.py): one isolated JupyterLab per test
    process (each xdist worker), shared by the browser test modules that process runs, stopped at the end."""
    server = LabServer(tmp_path_factory.mktemp("lab"))
    try:
        try:
            server.start(timeout_s=60)
        except StepError as exc:
            save_log(server)
            pytest.fail(f"{exc}\n--- JupyterLab log (tail) ---\n{server.log_tail()}", pytrace=False)
        yield server
    finally:
        server.stop()


def lab_with(server: LabServer, notebooks: Mapping[str, Sequence[str]]) -> Iterator[LabServer]:
    """The body of a module-scoped ``lab`` fixture: the shared server with ``notebooks`` written into its root;
    the module's kernels are shut down when it is done (a worker runs one module at a time: --dist loadscope)."""
    for name, cells in notebooks.items():
        write_notebook(server.root / name, cells)
    try:
        yield server
    finally:
        server.shutdown_kernels()


@contextlib.contextmanager
def chromium_page(lab: LabServer) -> Iterator[Any]:
    """A page of a fresh headless Debian chromium; a failure inside saves the page and the log (see ``_fail``)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
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


def _fail(page: Any, lab: LabServer, exc: BaseException, console: list[str]) -> None:
    """Save the page and the server log, and fail with the step, the log tail and the page's errors."""
    saved = []
    if page is not None:
        try:
            page.screenshot(path=str(ARTIFACTS / "failure-page.png"), full_page=True, timeout=10_000)
            saved.append("failure-page.png")
        except Exception as shot_error:  # the page may be gone: the log still helps
            saved.append(f"(no page screenshot: {type(shot_error).__name__})")
    save_log(lab)
    saved.append("server.log")
    errors = "\n".join(console[-10:]) or "(none)"
    message = (
        f"{exc}\n"
        f"artifacts in {ARTIFACTS.relative_to(REPO)}: {', '.join(saved)}\n"
        f"--- browser console errors (last 10) ---\n{errors}\n"
        f"--- JupyterLab log (tail) ---\n{lab.log_tail()}"
    )
    raise AssertionError(message) from exc


def open_and_run_all(page: Any, lab: LabServer, notebook: str) -> tuple[dict[str, Any], str]:
    """Open ``notebook`` (its kernel session started over REST), Run All, wait for the first cell's line.

    Returns the session and the first cell's ``KERNEL-OK|pid|prefix|amla file`` text."""
    with step("start the notebook's python3 kernel session (REST API)", 60):
        session = lab.start_session(notebook)
        assert session["kernel"]["name"] == "python3", f"the session's kernel is {session['kernel']}"
    with step("open the notebook in JupyterLab", 60):
        page.goto(lab.lab_url(f"/lab/workspaces/amla-test-{secrets.token_hex(4)}/tree/{notebook}?reset"),
                  timeout=60_000)
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    with step("wait for the python3 kernel to be connected and idle (status bar)", 60):
        # the toolbar's execution indicator says "idle" before any kernel exists; the status bar
        # goes "No Kernel | Initializing" -> "Python 3 (ipykernel) | Initializing" -> "... | Idle"
        page.wait_for_function(KERNEL_IDLE, timeout=60_000)
    with step("Run > Run All Cells", 15):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    with step("first cell: the kernel imports amla", 90):
        output = page.locator(".jp-OutputArea-output", has_text="KERNEL-OK").first
        dialog = page.locator(".jp-Dialog")
        output.or_(dialog).first.wait_for(timeout=90_000)
        if dialog.count():
            raise AssertionError(f"JupyterLab showed a dialog instead of running: {dialog.first.inner_text()!r}")
        line = output.inner_text().strip()
        lab.kernel_pids.append(int(line.split("|")[1]))
    return session, line


def settle_on(page: Any, image: Any, expected: Mapping[int, bytes], wanted: set[int],
              timeout_s: float = 20) -> int | None:
    """Wait until the page shows the kernel's picture of one of the ``wanted`` frames (keys of ``expected``);
    which one, or None when time runs out (a slider that does not update continuously sends its last value)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shown = shown_png(page, image)
        hits = [k for k in wanted if expected[k] == shown]
        if hits:
            return hits[0]
        time.sleep(0.2)
    return None


def fresh_shots(folder: Path) -> Path:
    """``folder`` made if missing and emptied of files (screenshots of an earlier run); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        if old.is_file():
            old.unlink()
    return folder


def shown_png(page: Any, image: Any) -> bytes:
    """The bytes of the PNG an ``<img>`` of the page shows (fetched from its src, as the browser decoded it)."""
    return base64.b64decode(page.evaluate(FETCH_IMAGE, image.element_handle()))


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
