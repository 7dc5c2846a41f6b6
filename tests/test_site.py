"""``amla site``: the course website for Hour 02 (smoke profile), opened from disk in Debian's chromium.

The site is built once for the module (about 10 s executing, 4 s Sphinx). The browser test opens its index over
file://, follows the link to the hour, and checks the page's title, the execution line, math typeset by MathJax,
the pictures (the widget views' static PNGs among them), no widget left over, the navigation, and the search page;
every request the page makes is recorded (and any that would leave the machine aborted) and must be file:// (or
data: and about:blank, which are inline), and none may miss its file. The other tests cover the pure parts and the errors: the cache (a rebuild executes
nothing), a bad hour, profile or --out, and a notebook that fails. Screenshots go to test-artifacts/browser/site/.

The browser test is skipped where /usr/bin/chromium or playwright is missing; AMLA_REQUIRE_BROWSER=1 (CI) makes
that a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("myst_nb", reason="the `site` extra is not installed (pip install 'amla[site]')")

from amla.course import site as S  # noqa: E402
from amla.course.build import BuildError  # noqa: E402
from amla.course.hours import hour  # noqa: E402
from amla.views.base import WIDGET_VIEW_MIMETYPE  # noqa: E402
from browser_pages import _browser_required  # noqa: E402, F401 - the fixture browser_mark() asks for in CI
from browser_pages import IMAGE_LOADED, browser_mark, fresh_shots  # noqa: E402
from browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, step  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:sphinx_book_theme")  # its Sphinx 11 notice

H = hour(2)
TITLE = "Advanced ML Architectures, hour by hour"
SHOTS = ARTIFACTS / "site"
MATHJAX_DONE = """() => window.MathJax && MathJax.Hub && MathJax.Hub.queue && MathJax.Hub.queue.pending === 0
    && document.querySelectorAll(".math.notranslate script[type^='math/tex']").length > 0"""
LOCAL = ("file://", "data:", "about:", "http://127.0.0.1")
"""What the pages may ask for: files of the site, inline data, blank frames, this machine; nothing else."""
ALLOWED_MISSING = re.compile(r"/fonts/HTML-CSS/TeX/otf/MathJax_\w+-\w+\.otf$")
"""Fonts of MathJax's TeX set, which Jupyter's MathJax package leaves out (it ships STIX-Web, which the site uses):
Chromium asks for two of them for the hidden MathML that MathJax adds for screen readers; nothing shows them."""
SPHINX_MATH = ".math.notranslate"  # Sphinx's math elements (MathJax's HTML-CSS output has spans of class "math")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hour 02's site, built under the smoke profile; returns its index.html."""
    out = tmp_path_factory.mktemp("site") / "site"
    index = S.build_site(REPO, [2], out=out, profile="smoke")
    assert index == out / "index.html" and index.is_file()
    return index


# --- in the browser ---------------------------------------------------------------------------------------


@browser_mark()
def test_the_site_of_hour_02_in_chromium_offline(built: Path) -> None:
    from playwright.sync_api import sync_playwright

    fresh_shots(SHOTS)
    requests: list[str] = []
    blocked: list[str] = []
    errors: list[str] = []
    failed: list[str] = []

    def guard(route) -> None:  # noqa: ANN001 - Playwright's Route
        url = route.request.url
        if url.startswith(LOCAL):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with sync_playwright() as playwright:
        with step("launch chromium", 60):
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.route("**/*", guard)
            context.on("request", lambda request: requests.append(request.url))
            context.on("requestfailed", lambda request: failed.append(request.url) if not _summary(request) else None)
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            try:
                _drive(page, built)
            except Exception:
                page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
                raise
        finally:
            browser.close()
    leaving = [u for u in requests if not u.startswith(LOCAL)]
    assert not blocked and not leaving, f"requests that would leave the machine: {sorted(set(blocked + leaving))}"
    assert any(u.endswith("MathJax.js") or "MathJax.js?" in u for u in requests), "MathJax was not loaded"
    missing = [u for u in failed if not u.startswith("about:") and not ALLOWED_MISSING.search(u) and u not in blocked]
    assert not missing, f"files the pages ask for that are not in the site: {missing}"
    widget_errors = [e for e in errors if "widget" in e.lower() or "require" in e.lower()]
    assert not widget_errors, f"widget scripts failed in the page: {widget_errors}"


def _summary(request) -> bool:  # noqa: ANN001 - Playwright's Request
    """Sphinx's search page fetching a hit's page for the summary under it: a browser refuses fetch() on file://
    (served over http the summaries show; from disk the hits are listed without them)."""
    return request.frame.url.split("?")[0].endswith("/search.html") and request.url.endswith(".html")


def _drive(page, index: Path) -> None:  # noqa: ANN001 - Playwright's Page
    with step("the index: course title, execution line, the table of hours", 20):
        page.goto(index.as_uri())
        assert TITLE in page.title()
        assert page.locator("h1").first.inner_text().strip().startswith(TITLE)
        body = page.locator("article").inner_text()
        assert "Notebooks executed under the smoke profile on" in body and "with amla 0.1.0 and torch" in body
        assert page.locator(f"nav.bd-links a[href='{H.stem}.html']").count() == 1, "the sidebar lists the hour"
        page.screenshot(path=str(SHOTS / "index.png"))
    with step("follow the table's link to the hour", 20):
        page.locator("article table").get_by_role("link", name=H.title).click()
        page.wait_for_url(re.compile(rf"/{H.stem}\.html$"))
        assert page.title().startswith(f"Hour 02: {H.title}")
        article = page.locator("article")
        assert re.search(r"Executed under the smoke profile on \d{4}-\d\d-\d\d \d\d:\d\d UTC with amla 0\.1\.0 "
                         r"and torch \S+\.", article.inner_text())
    with step("MathJax 2 typeset the page's math, without errors", 30):
        page.wait_for_function(MATHJAX_DONE, timeout=30_000)
        maths = page.locator(SPHINX_MATH).count()
        typeset = page.locator(f"{SPHINX_MATH}:has(> .MathJax, > .MathJax_Display)").count()
        assert maths > 5 and typeset == maths, f"{typeset} of {maths} formulas typeset"
        assert page.locator(".MathJax_Error, merror").count() == 0, "MathJax reported an error in a formula"
    with step("every picture loaded, widget views as their PNG, no widget left over", 20):
        images = page.locator("article img")
        assert images.count() >= 4, f"only {images.count()} pictures on the page"
        for i in range(images.count()):
            images.nth(i).scroll_into_view_if_needed()
            page.wait_for_function(IMAGE_LOADED, arg=images.nth(i).element_handle())
        text = article.inner_text()
        assert "Loading widget" not in text and "<View " not in text
        assert page.locator("script[type^='application/vnd.jupyter.widget']").count() == 0
        page.screenshot(path=str(SHOTS / "hour.png"))
    with step("navigation: the sidebar marks the hour and links home, a prev link to the index", 10):
        assert page.locator("nav.bd-links a.current").inner_text().strip() == f"Hour 02: {H.title}"
        assert page.locator("nav.bd-links a[href='index.html']").count() == 1
        prev = page.locator("a.left-prev")
        assert prev.count() == 1 and prev.get_attribute("href") == "index.html"
    with step("search: 'softmax' finds the hour", 30):
        page.goto(index.with_name("search.html").as_uri() + "?q=softmax")
        hit = page.locator(f"#search-results a[href^='{H.stem}.html']").first
        hit.wait_for(timeout=20_000)
        assert H.title in hit.inner_text()
        page.screenshot(path=str(SHOTS / "search.png"))


# --- the build: cache and errors -----------------------------------------------------------------------


def test_a_rebuild_reuses_the_executed_notebook(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_execution(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rebuild executed a notebook again")

    monkeypatch.setattr(S, "execute", no_execution)
    out = built.parent
    (out / "stale.html").write_text("left from an earlier build")
    assert S.build_site(REPO, [2, 2], out=out, profile="smoke") == built
    assert not (out / "stale.html").exists(), "the site is rebuilt whole"
    assert "executing 0.0 s" in (out / S.MARKER).read_text()
    cached = list((out.parent / "site-executed" / "smoke").glob("*.ipynb"))
    digest = S._sha256(REPO / "hours" / f"{H.stem}.ipynb")
    assert [p.name for p in cached] == [f"{H.stem}-{digest[:16]}.ipynb"]


@pytest.mark.parametrize("hours, profile, message", [
    ([99], "smoke", "no hour 99: the course has hours 1 to 18"),
    ([2], "fast", "profile 'fast' is not one of smoke, cpu, gpu"),
])
def test_bad_input_is_one_line(tmp_path: Path, hours: list[int], profile: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        S.build_site(REPO, hours, out=tmp_path / "site", profile=profile)
    assert "\n" not in str(info.value) and not (tmp_path / "site").exists()


def test_out_must_be_new_empty_or_a_site(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="expected a new or empty folder, or a site amla built"):
        S.build_site(REPO, [2], out=tmp_path, profile="smoke")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failing_notebook_stops_the_build_with_one_line(tmp_path: Path) -> None:
    root = tmp_path / "course"
    (root / "hours").mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hour 02"),
                                         nbformat.v4.new_code_cell("raise RuntimeError('the data is missing')")])
    nbformat.write(nb, root / "hours" / f"{H.stem}.ipynb")
    with pytest.raises(BuildError) as info:
        S.build_site(root, [2], out=tmp_path / "site", profile="smoke")
    assert str(info.value) == (f"hour 02 ({H.stem}.ipynb) failed under profile smoke: RuntimeError in cell 2 "
                               "(raise RuntimeError('the data is missing')): the data is missing")
    assert not (tmp_path / "site").exists() and not list((tmp_path / "site-executed").rglob("*.ipynb"))


# --- the pure parts --------------------------------------------------------------------------------------


def _executed(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": {}}}}
    nb.metadata[S.STAMP_KEY] = {"profile": "smoke", "executed": "2025-01-02 03:04 UTC", "amla": "0.1.0",
                                "torch": "2.13.0"}
    return nb


def test_a_page_keeps_the_picture_of_a_widget_view_and_starts_with_title_and_stamp() -> None:
    from amla.course.hours import setup_cell

    view = nbformat.v4.new_code_cell("view")
    view.outputs = [nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW_MIMETYPE: {"model_id": "x", "version_major": 2}, "image/png": "iVBORw0KGgo=", "text/plain": "<View>"})]
    nb = S.page(H, _executed([nbformat.v4.new_code_cell(setup_cell(H)),
                              nbformat.v4.new_markdown_cell("# Hour 02: Attention\n\nIntro."), view]))
    assert "widgets" not in nb.metadata
    assert set(nb.cells[2].outputs[0].data) == {"image/png", "text/plain"}
    assert nb.cells[0].source == ("# Hour 02: Attention\n\n*Executed under the `smoke` profile on 2025-01-02 03:04 "
                                  "UTC with amla 0.1.0 and torch 2.13.0.*\n\nIntro.")
    assert nb.cells[1].source == setup_cell(H)
    untitled = S.page(H, _executed([nbformat.v4.new_code_cell("1")]))
    assert untitled.cells[0].source.startswith(f"# Hour 02: {H.title}\n\n*Executed under")


def test_index_page_conf_and_readme_intro(tmp_path: Path) -> None:
    stamps = [{"profile": "smoke", "executed": d, "amla": "0.1.0", "torch": "2.13.0"} for d in ("b", "a")]
    text = S.index_page("T", "Intro.", [(hour(2), stamps[0]), (hour(3), stamps[1])])
    assert text.startswith("# T\n\nIntro.\n\n*Notebooks executed under the `smoke` profile between a and b "
                           "with amla 0.1.0 and torch 2.13.0.*")
    assert "| 2 | {doc}`Attention from first principles <02_attention>` | b |" in text
    assert "\n02_attention\n03_seq2seq\n```" in text
    conf: dict = {}
    exec(S.conf_py("T"), conf)
    assert conf["nb_execution_mode"] == "off" and conf["mathjax_path"] == "assets/mathjax/MathJax.js"
    assert conf["html_theme"] == "sphinx_book_theme" and conf["project"] == "T"
    assert S.course_author(REPO) == "The amla course authors" and S.course_author(tmp_path) == "the course authors"
    assert S.readme_intro(REPO)[0] == TITLE and S.readme_intro(REPO)[1].startswith("An open course")
    assert S.readme_intro(tmp_path) == (S.DEFAULT_TITLE, "")
