"""``amla slides``: decks from the hours' own notebooks, offline, with answers only in the instructor's deck.

The unit tests check what goes into a deck (set-up cell skipped, answers hidden or turned into speaker notes,
widget outputs reduced to their static picture, no URL that leaves the machine). The browser test opens a deck in
Debian's chromium from disk, moves to the next slide with the keyboard and checks that every request the page
made was for a local file (reveal.js and MathJax come from the deck's ``assets/`` folder).
"""

from __future__ import annotations

import base64
import copy
import json
import re

import nbformat
import pytest

from amla.course import assets, slides
from amla.course.build import BuildError
from amla.course.cli import main
from amla.course.hours import hour
from amla.views.base import WIDGET_VIEW_MIMETYPE, fig_to_png
from browser_pages import _browser_required  # noqa: F401 - the fixture browser_mark() asks for in CI
from browser_pages import browser_mark
from browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, step

HOUR = 2
STUDENT = REPO / "hours" / f"{hour(HOUR).stem}.ipynb"
SOLUTION = REPO / "solutions" / f"{hour(HOUR).stem}.ipynb"


def _png() -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [0, 1])
    return base64.b64encode(fig_to_png(fig)).decode("ascii")


def _with_view_output(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` with a view's output (widget + static picture) on its last code cell, as an executed hour has."""
    nb = copy.deepcopy(nb)
    cell = [c for c in nb.cells if c.cell_type == "code"][-1]
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "AttentionViewer(...)", "image/png": _png(),
        WIDGET_VIEW_MIMETYPE: {"model_id": "abc", "version_major": 2, "version_minor": 0}})]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def _answer_text() -> str:
    nb = nbformat.read(SOLUTION, as_version=4)
    answers = [c.source for c in nb.cells if "answer" in c.metadata.get("tags", [])]
    assert answers, "the solutions notebook has no answer cell to test with"
    return answers[0]


def _visible_words(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_student_deck_skips_setup_and_holds_no_answer():
    nb = nbformat.read(STUDENT, as_version=4)
    ready = slides.prepare(nb, instructor=False)
    assert ready.cells[0].metadata["slideshow"]["slide_type"] == "skip"
    assert "slideshow" not in nb.cells[0].metadata, "prepare changed the notebook it was given"
    html = slides.render(ready, "Hour 02")
    answer = " ".join(_answer_text().split()[2:12])  # a run of the answer's words, past its bold label
    assert answer and answer not in " ".join(_visible_words(html).split())
    assert "Your answer:" in html


def test_instructor_deck_puts_answers_in_speaker_notes():
    nb = nbformat.read(SOLUTION, as_version=4)
    html = slides.render(slides.prepare(nb, instructor=True), "Hour 02")
    notes = re.findall(r'<aside class="notes">(.*?)</aside>', html, flags=re.S)
    assert len(notes) == 1
    words = " ".join(_answer_text().split()[2:8])
    assert words in " ".join(_visible_words(notes[0]).split())


def test_a_student_deck_refuses_an_answer_cell():
    nb = nbformat.read(SOLUTION, as_version=4)
    with pytest.raises(BuildError, match="answer"):
        slides.prepare(nb, instructor=False)


def test_views_leave_their_picture_and_nothing_loads_from_the_network():
    nb = _with_view_output(nbformat.read(STUDENT, as_version=4))
    ready = slides.prepare(nb, instructor=False)
    data = [c for c in ready.cells if c.cell_type == "code"][-1].outputs[0].data
    assert WIDGET_VIEW_MIMETYPE not in data and "image/png" in data
    assert "widgets" not in ready.metadata
    html = slides.render(ready, "Hour 02")
    fetched = slides._scripts_and_links(html).split()
    assert fetched and all(not re.match(r"(https?:)?//", url) for url in fetched), fetched
    assert f'src="{assets.REVEAL_PREFIX}/dist/reveal.js"' in html
    assert assets.MATHJAX_URL in html
    assert "data:image/png;base64," in html


def test_make_slides_writes_decks_and_assets(tmp_path):
    written = slides.make_slides(REPO, [HOUR], out=tmp_path)
    assert [p.name for p in written] == [f"{hour(HOUR).stem}.slides.html"]
    teacher = slides.make_slides(REPO, [HOUR], out=tmp_path, solutions=True)
    assert [p.name for p in teacher] == [f"{hour(HOUR).stem}.instructor.slides.html"]
    for rel in ("reveal.js/dist/reveal.js", "reveal.js/plugin/notes/notes.js", "reveal.js/LICENSE",
                "mathjax/MathJax.js", "mathjax/config/TeX-AMS-MML_HTMLorMML-full.js"):
        assert (tmp_path / assets.ASSETS / rel).is_file(), rel
    assert not list(tmp_path.glob("*.part"))
    theme = (tmp_path / assets.ASSETS / "reveal.js/dist/theme" / f"{slides.THEME}.css").read_text()
    assert "@import" in theme and not re.search(r"url\((['\"]?)(https?:)?//", theme), "the theme loads remote fonts"


def test_a_profile_executes_the_hour_first_and_a_failure_names_it(tmp_path):
    root = tmp_path / "course"
    (root / "hours").mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Hour 02", metadata={
        "slideshow": {"slide_type": "slide"}}), nbformat.v4.new_code_cell("import os\nprint('profile', os.environ['AMLA_PROFILE'])")])
    nbformat.write(nb, root / "hours" / f"{hour(HOUR).stem}.ipynb")
    (deck,) = slides.make_slides(root, [HOUR], out=tmp_path / "out", profile="smoke")
    assert "profile smoke" in deck.read_text()
    nb.cells.append(nbformat.v4.new_code_cell("1 / 0"))
    nbformat.write(nb, root / "hours" / f"{hour(HOUR).stem}.ipynb")
    with pytest.raises(BuildError, match=r"02_attention.ipynb failed under profile smoke: ZeroDivisionError"):
        slides.make_slides(root, [HOUR], out=tmp_path / "out", profile="smoke")
    assert "profile smoke" in deck.read_text(), "a failed run replaced the deck"


def test_unpack_is_done_once_and_refuses_unknown_names(tmp_path):
    first = assets.unpack("reveal.js", tmp_path)
    marker = first / "dist" / "reveal.js"
    before = marker.stat().st_mtime_ns
    assert assets.unpack("reveal.js", tmp_path) == first
    assert marker.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="unknown web asset 'bootstrap'"):
        assets.unpack("bootstrap", tmp_path)


def test_cli_names_a_bad_hour(capsys):
    assert main(["slides", "99"]) == 2
    assert "no hour 99" in capsys.readouterr().err


@browser_mark()
def test_deck_in_chromium_moves_on_and_stays_offline(tmp_path):
    from playwright.sync_api import sync_playwright

    nb = _with_view_output(nbformat.read(STUDENT, as_version=4))
    assets.install(tmp_path)
    deck = tmp_path / "deck.slides.html"
    deck.write_text(slides.render(slides.prepare(nb, instructor=False), "Hour 02"), encoding="utf-8")
    requests: list[str] = []
    errors: list[str] = []
    shots = ARTIFACTS / "slides"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        with step("launch chromium", 60):
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(30_000)
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            with step("open the deck from disk", 30):
                page.goto(deck.as_uri())
                page.wait_for_function("() => window.Reveal && Reveal.isReady()")
                assert page.evaluate("() => Reveal.getIndices().h") == 0
                assert "Hour 02" in page.locator(".reveal .slides section.present").first.text_content()
            with step("MathJax typesets the math", 30):
                page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display, "
                                       "mjx-container').length > 0")
            page.screenshot(path=str(shots / "first-slide.png"))
            with step("the right arrow moves to the next slide", 15):
                page.evaluate("() => { window.moved = false; Reveal.on('slidetransitionend', () => window.moved = true); }")
                page.locator("body").press("ArrowRight")
                page.wait_for_function("() => Reveal.getIndices().h === 1 && window.moved")
                assert "Attention is a soft dictionary lookup" in \
                    page.locator(".reveal .slides section.present").first.text_content()
            page.screenshot(path=str(shots / "second-slide.png"))
            with step("the view's static picture shows on its slide", 15):
                page.evaluate("""() => {
                    const img = document.querySelector('.reveal img[src^="data:image/png"]');
                    const where = Reveal.getIndices(img.closest('section'));
                    Reveal.slide(where.h, where.v);
                }""")
                image = page.locator('.reveal section.present img[src^="data:image/png"]').last
                image.wait_for(state="visible")
                assert image.evaluate("img => img.complete && img.naturalWidth > 0")
            with step("the math of a slide first shown now is typeset, with a size", 30):
                page.evaluate("() => { window.typeset = false; MathJax.Hub.Queue(() => { window.typeset = true; }); }")
                page.wait_for_function("() => window.typeset")
                sizes = page.evaluate("""() => [...document.querySelectorAll('.reveal section.present script[type^="math/tex"]')]
                    .map(s => { const out = document.getElementById(s.id + '-Frame') || s.previousElementSibling;
                                return out ? out.getBoundingClientRect().width : -1; })""")
                assert sizes and min(sizes) > 0, f"math on the slide without a rendering: widths {sizes}"
            page.screenshot(path=str(shots / "picture-slide.png"))
        finally:
            browser.close()
    assert not errors, errors
    # about:blank is MathJax probing for fonts (no request); anything with a host would leave the machine
    remote = [url for url in requests if not url.startswith(("file://", "data:", "about:blank"))]
    assert not remote, f"the deck made requests off the machine: {remote[:5]}"
    assert any(url.endswith("/dist/reveal.js") for url in requests)
    assert json.dumps(requests).count("MathJax.js") == 1
