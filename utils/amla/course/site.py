"""``amla site``: the course website, every hour a page with its outputs, built offline by Sphinx and myst-nb.

The student notebooks (``hours/NN_slug.ipynb``: answers hidden, exercises unsolved, the course's reference
standing in) are executed under a profile and cached in ``<out>/../site-executed/<profile>/``, keyed by the
sha256 of the notebook and of the package's source, so a rebuild without changes executes nothing (delete that
folder to execute again).
A Sphinx project is then written into a temporary folder next to ``out``: ``conf.py`` (generated here), an
index page (the course title, the README's first paragraph, the table of hours) and the executed notebooks,
each with a line saying under which profile, when, and with which amla and torch it ran. myst-nb renders them
as they are (``nb_execution_mode = "off"``) with sphinx-book-theme, and Sphinx's own search.

Nothing is loaded from the network: MathJax 2.7 comes from the user's cache (``amla.course.assets``), the
theme ships its fonts and scripts, and the widget views are shown as the static picture every course view
leaves beside its widget (the widget state and views are removed, so myst-nb embeds no widget manager from a
CDN). The site appears whole or not at all: a notebook that fails stops the build before ``out`` is touched.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from amla.checks.contract import EXPECT_ENV
from amla.course import assets
from amla.course.build import BuildError
from amla.course.hours import REPO_URL, STUDENT_DIR, Hour, setup_cell
from amla.course.runner import check_profile, execute, notebooks

MARKER = ".amla-site"
"""The file that marks a folder as a site this module built (only such a folder is replaced)."""
STAMP_KEY = "amla_site"
"""Notebook metadata of a cached execution: profile, time (UTC), amla and torch versions, seconds."""
DEFAULT_TITLE = "Advanced ML Architectures, hour by hour"
MATHJAX2_CONFIG = {
    # MathJax.js is loaded without "?config=" (Sphinx refuses query strings on local assets): the configuration
    # that package ships, and the Safe extension, are named here instead.
    "config": ["TeX-AMS-MML_HTMLorMML-full.js", "Safe.js"],
    # Typeset only Sphinx's math elements (class "math"), as myst-parser arranges for MathJax 3: a "$" or "\("
    # in a printed output stays text.
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": False,
                "processEnvironments": False, "ignoreClass": ".*", "processClass": "math"},
    # That package ships the STIX-Web fonts only (assets.MATHJAX_FONTS): without them, a glyph such as a prime
    # sends MathJax for its default TeX fonts, which are not there ("Math Processing Error").
    "HTML-CSS": {**assets.MATHJAX_FONTS["HTML-CSS"], "linebreaks": {"automatic": True}},
    "SVG": {"font": "STIX-Web"},
    "messageStyle": "none",
}


@functools.lru_cache(maxsize=1)
def _package_digest() -> bytes:
    """The sha256 of the ``amla`` package's source, read once per process (not once per hour)."""
    import amla

    digest = hashlib.sha256()
    package = Path(amla.__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.digest()


def _sha256(path: Path) -> str:
    """The cache key of a notebook's run: its bytes and the source of the ``amla`` package it imports (a change
    to the package executes the hours again)."""
    return hashlib.sha256(path.read_bytes() + _package_digest()).hexdigest()


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def executed_notebook(h: Hour, path: Path, profile: str, cache: Path) -> NotebookNode:
    """The notebook at ``path`` executed under ``profile``: from ``cache`` when a run of these very bytes is
    there, else executed now (and cached). A failed cell raises ``BuildError`` naming the hour and the error."""
    digest = _sha256(path)
    cached = cache / f"{h.stem}-{digest[:16]}.ipynb"
    if cached.is_file():
        nb = nbformat.read(cached, as_version=4)
        if nb.metadata.get(STAMP_KEY, {}).get("sha256") == digest:
            return nb
    print(f"executing {STUDENT_DIR}/{path.name} (profile {profile}) ...", file=sys.stderr, flush=True)
    result = execute(path, profile, env={EXPECT_ENV: "open"})  # unsolved, as students get it
    if not result.ok:
        raise BuildError(f"hour {h.number:02d} ({path.name}) failed under profile {profile}: {result.error}")
    nb = result.executed
    nb.metadata[STAMP_KEY] = {
        "sha256": digest, "profile": profile, "wall_s": round(result.wall_s, 1),
        "executed": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "amla": _version("amla"), "torch": _version("torch"),
    }
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob(f"{h.stem}-*.ipynb"):  # an earlier version of this hour
        old.unlink()
    partial = cached.with_suffix(".partial")
    nbformat.write(nb, partial)
    os.replace(partial, cached)
    return nb


def stamp_line(stamp: Mapping[str, Any]) -> str:
    """The sentence every page carries about its execution."""
    return (f"Executed under the `{stamp['profile']}` profile on {stamp['executed']} "
            f"with amla {stamp['amla']} and torch {stamp['torch']}.")


def page(h: Hour, nb: NotebookNode) -> NotebookNode:
    """The hour as a page: its title first (before the set-up cell), then the stamp line, static outputs."""
    nb = assets.static_outputs(nb)
    cells = nb.cells
    if len(cells) > 1 and cells[0].cell_type == "code" and cells[0].source == setup_cell(h) \
            and cells[1].cell_type == "markdown" and cells[1].source.startswith("# "):
        cells[0], cells[1] = cells[1], cells[0]
    line = f"*{stamp_line(nb.metadata[STAMP_KEY])}*"
    if cells and cells[0].cell_type == "markdown" and cells[0].source.startswith("# "):
        title, _, rest = cells[0].source.partition("\n")
        cells[0].source = f"{title}\n\n{line}\n{rest}"
    else:
        cells.insert(0, nbformat.v4.new_markdown_cell(f"# Hour {h.number:02d}: {h.title}\n\n{line}"))
    return nb


def course_author(root: Path) -> str:
    """Who holds the copyright, from LICENSE's ``Copyright (c) <year> <holder>`` line."""
    licence = root / "LICENSE"
    found = re.search(r"Copyright \(c\) (?:\d{4}\S* )?(.+)", licence.read_text()) if licence.is_file() else None
    return found.group(1).strip() if found else "the course authors"


def readme_intro(root: Path) -> tuple[str, str]:
    """The course title (README's first heading) and its first paragraph."""
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), DEFAULT_TITLE)
    body = text.split(f"# {title}", 1)[-1] if text else ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body.split("\n## ", 1)[0]) if p.strip()]
    return title, (paragraphs[0] if paragraphs else "")


def index_page(title: str, intro: str, pages: list[tuple[Hour, Mapping[str, Any]]]) -> str:
    """The index page in MyST markdown: title, intro, the execution line, the table of hours, the toctree."""
    stamps = [s for _, s in pages]
    when = sorted(s["executed"] for s in stamps)
    span = f"on {when[0]}" if when[0] == when[-1] else f"between {when[0]} and {when[-1]}"
    builds = sorted({f"amla {s['amla']} and torch {s['torch']}" for s in stamps})
    profiles = sorted({s["profile"] for s in stamps})
    rows = "\n".join(f"| {h.number} | {{doc}}`{h.title} <{h.stem}>` | {s['executed']} |" for h, s in pages)
    toctree = "\n".join(h.stem for h, _ in pages)
    return (f"# {title}\n\n{intro}\n\n*Notebooks executed under the `{'`, `'.join(profiles)}` profile {span} "
            f"with {'; '.join(builds)}.*\n\n## The hours\n\n| Hour | Topic | Executed |\n|---:|---|---|\n{rows}\n\n"
            f"```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toctree}\n```\n")


def conf_py(title: str, author: str = "the course authors") -> str:
    """Sphinx's ``conf.py`` for the site."""
    settings = {
        "project": title,
        "author": author,
        "copyright": author,
        "html_title": title,
        "extensions": ["myst_nb"],
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "nb_execution_mode": "off",  # executed already, under the stated profile
        "nb_merge_streams": True,
        "myst_enable_extensions": ["dollarmath", "amsmath"],
        "myst_dmath_double_inline": True,  # "$$...$$" inside a paragraph is display math, as in Jupyter
        "myst_update_mathjax": False,  # it would write a MathJax 3 configuration; ours is MathJax 2's
        "mathjax_path": f"{assets.ASSETS}/mathjax/MathJax.js",  # relative to _static/
        "mathjax2_config": MATHJAX2_CONFIG,
        "html_theme": "sphinx_book_theme",
        "html_theme_options": {"repository_url": REPO_URL, "use_repository_button": True,
                               "home_page_in_toc": True, "show_navbar_depth": 1,
                               "primary_sidebar_end": []},  # not Read the Docs' ad slot
        "html_last_updated_fmt": None,
        "suppress_warnings": ["myst.header", "mystnb.unknown_mime_type"],
    }
    lines = ['"""Sphinx settings of the course website, written by amla.course.site (do not edit)."""', ""]
    return "\n".join([*lines, *(f"{key} = {value!r}" for key, value in settings.items()), ""])


def run_sphinx(src: Path, html: Path, doctrees: Path) -> list[str]:
    """Build ``src`` into ``html``; returns Sphinx's warnings (a failed build raises ``BuildError``)."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    warnings = io.StringIO()
    try:
        with patch_docutils(src), docutils_namespace():
            app = Sphinx(src, src, html, doctrees, "html", status=None, warning=warnings, freshenv=True)
            app.build()
    except Exception as err:  # Sphinx's own errors, or an extension's
        first = next((s for s in str(err).splitlines() if s.strip()), type(err).__name__)
        raise BuildError(f"sphinx could not build the site: {first}") from err
    if app.statuscode:
        last = (warnings.getvalue().strip().splitlines() or ["see its warnings"])[-1]
        raise BuildError(f"sphinx could not build the site: {last}")
    return [line for line in warnings.getvalue().splitlines() if line.strip()]


def build_site(root: Path, hours: list[int] | None, *, out: Path, profile: str) -> Path:
    """Execute the student notebooks of ``hours`` (default: all built) under ``profile`` (cached), build the
    website into ``out`` (replacing a site built there before) and return ``out / "index.html"``."""
    root, out = Path(root).resolve(), Path(out).resolve()
    check_profile(profile)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise BuildError(f"--out {out}: expected a new or empty folder, or a site amla built (with {MARKER})")
    chosen = notebooks(root, sorted(set(hours)) if hours else None, student=True)
    cache = out.parent / "site-executed" / profile
    start = time.perf_counter()
    executed = [(h, executed_notebook(h, path, profile, cache)) for h, path in chosen]
    executing = time.perf_counter() - start
    title, intro = readme_intro(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".site-") as tmp:
        src, html = Path(tmp) / "src", Path(tmp) / "html"
        src.mkdir()
        (src / "conf.py").write_text(conf_py(title, course_author(root)), encoding="utf-8")
        pages = [(h, dict(nb.metadata[STAMP_KEY])) for h, nb in executed]
        (src / "index.md").write_text(index_page(title, intro, pages), encoding="utf-8")
        for h, nb in executed:
            nbformat.write(page(h, nb), src / f"{h.stem}.ipynb")
        assets.install(html / "_static", ("mathjax",))  # mathjax_path is under _static; Sphinx checksums it
        start = time.perf_counter()
        warnings = run_sphinx(src, html, Path(tmp) / "doctrees")
        summary = (f"{len(pages)} hour(s), profile {profile}, executing {executing:.1f} s, "
                   f"sphinx {time.perf_counter() - start:.1f} s, {len(warnings)} warning(s)")
        (html / MARKER).write_text(f"built by amla site: {summary}\n" + "".join(f"{w}\n" for w in warnings))
        if out.exists():
            shutil.rmtree(out)
        os.replace(html, out)  # the site appears whole
    print(f"site: {summary}{f' (in {out / MARKER})' if warnings else ''}", file=sys.stderr)
    return out / "index.html"
