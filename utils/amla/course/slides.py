"""``amla slides``: an hour as reveal.js slides, from the same notebook, working offline.

The slide structure is the notebooks' own ``slideshow`` metadata (each section starts a slide, the rest follows
on it). nbconvert's ``SlidesExporter`` renders the cells with the course's template (``templates/amla_reveal``),
which loads reveal.js and MathJax from an ``assets/`` folder beside the decks (``amla.course.assets``), never from
a CDN, so a folder of decks can be copied to a laptop and presented without a network.

- **Student deck** (default): from ``hours/``, where each question's answer is already ``**Your answer:** ...``;
  the deck holds no answer at all.
- **Instructor deck** (``solutions=True``): from ``solutions/``; each answer becomes a speaker note (press ``S``
  in the deck for the speaker view), so the audience sees the question and the presenter sees the answer.
- The set-up cell is skipped (it installs and seeds; nothing to present).
- ``profile``: the notebook is executed under that profile first, so the slides show its numbers and pictures
  (the views' static picture stands in for the widget); without it the deck shows the notebook as stored
  (``hours/`` and ``solutions/`` are stored without outputs).
"""

from __future__ import annotations

import copy
from pathlib import Path

from nbformat import NotebookNode

from amla.checks.contract import EXPECT_ENV
from amla.course.assets import MATHJAX_FONTS, MATHJAX_URL, REVEAL_PREFIX, install, static_outputs
from amla.course.build import ANSWER_TAG, SETUP_TAG, BuildError, _tags
from amla.course.hours import Hour

TEMPLATE = "amla_reveal"
TEMPLATES = Path(__file__).with_name("templates")
THEME = "white"
"""reveal.js's theme: ``white`` uses the fonts in its own folder (``simple`` and others import Google Fonts)."""


def prepare(nb: NotebookNode, *, instructor: bool) -> NotebookNode:
    """A copy of ``nb`` ready for the slides: set-up cell skipped, answers as speaker notes (``instructor``) or
    left as the student version has them, widget outputs reduced to their static picture."""
    nb = static_outputs(copy.deepcopy(nb))  # with widget state nbconvert would fetch the widget manager
    for cell in nb.cells:
        slideshow = cell.setdefault("metadata", {}).setdefault("slideshow", {})
        if SETUP_TAG in _tags(cell):
            slideshow["slide_type"] = "skip"
        elif ANSWER_TAG in _tags(cell):
            if not instructor:  # the student notebook never carries this tag; a deck must not show an answer
                raise BuildError("a student deck got a cell tagged 'answer'; build the hours with amla build")
            slideshow["slide_type"] = "notes"
    return nb


def render(nb: NotebookNode, title: str) -> str:
    """The HTML of one deck whose assets lie in ``assets/`` beside it."""
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(template_name=TEMPLATE, extra_template_basedirs=[str(TEMPLATES)])
    exporter.reveal_url_prefix = REVEAL_PREFIX
    exporter.reveal_theme = THEME
    exporter.mathjax_url = MATHJAX_URL
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}, "mathjax_fonts": MATHJAX_FONTS})
    remote = [marker for marker in ("https://", "http://", "//cdn", "unpkg.com") if marker in _scripts_and_links(body)]
    if remote:
        raise BuildError(f"the deck {title!r} would load {remote[0]}... from the network; the template must not")
    return body


def _scripts_and_links(html: str) -> str:
    """The ``src=`` and ``href=`` values of a page, joined (what a browser would fetch)."""
    import re

    return " ".join(m.group(2) for m in re.finditer(r"""\b(src|href)\s*=\s*["']([^"']*)["']""", html))


def deck_name(h: Hour, instructor: bool) -> str:
    return f"{h.stem}{'.instructor' if instructor else ''}.slides.html"


def make_slides(root: Path, hours: list[int] | None = None, *, out: Path, solutions: bool = False,
                profile: str | None = None) -> list[Path]:
    """Write one deck per hour into ``out`` (with ``out/assets/``) and return their paths.

    ``solutions``: the instructor's deck (answers as speaker notes); ``profile``: execute first (see above)."""
    import nbformat

    from amla.course.runner import execute, notebooks

    chosen = notebooks(root, hours, student=not solutions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    install(out)
    written = []
    for h, path in chosen:
        if profile is None:
            nb = nbformat.read(path, as_version=4)
        else:
            # a student deck runs the unsolved notebook, as students get it (the suite may expect "passed")
            result = execute(path, profile, env=None if solutions else {EXPECT_ENV: "open"})
            if not result.ok:
                raise BuildError(f"{path.name} failed under profile {profile}: {result.error}")
            nb = result.executed
        target = out / deck_name(h, solutions)
        html = render(prepare(nb, instructor=solutions), f"Hour {h.number:02d}: {h.title}")
        tmp = target.with_name(target.name + ".part")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(target)
        written.append(target)
    return written
