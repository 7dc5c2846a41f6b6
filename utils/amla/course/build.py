"""``amla build``: the two notebooks of every hour, built from one jupytext source.

``solutions/NN_slug.py`` (percent format, read with the settings of ``solutions/jupytext.toml``) becomes

* ``solutions/NN_slug.ipynb``: the complete notebook (paired with the source in JupyterLab), and
* ``hours/NN_slug.ipynb``: the student notebook, where every ``### BEGIN SOLUTION`` ...
  ``### END SOLUTION`` region is replaced by ``raise NotImplementedError(...)`` naming its exercise,
  and every markdown cell tagged ``answer`` by ``**Your answer:** ...``.

Both start with the set-up cell of ``amla.course.hours.setup_cell``, and so does the source itself (the build
keeps its first cell current), so JupyterLab's jupytext pairing opens the solution notebook with it and saves
it back to the same source. The output is deterministic (stable
cell ids, no outputs), so rebuilding an unchanged source changes no byte. The hour table of README.md,
between ``<!-- hours:start -->`` and ``<!-- hours:end -->``, is generated too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
from jupytext.config import JupytextConfiguration, load_jupytext_configuration_file
from jupytext.metadata_filter import filter_metadata
from nbformat import NotebookNode

from amla.course.hours import HOURS, SOURCE_DIR, STUDENT_DIR, Hour, hour, setup_cell
from amla.course.readme import README, README_END, README_START, hour_table, render_readme

JUPYTEXT_CONFIG = "jupytext.toml"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
SETUP_TAG = "setup"
ANSWER_TAG = "answer"
STUDENT_ANSWER = "**Your answer:** ..."

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
JUPYTEXT_LAYOUT_KEYS = ("lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker")
"""Cell metadata jupytext itself writes to reproduce the source's blank lines; kept in the paired
solutions notebook (so writing it back gives the same text), dropped from the student notebook."""

_SOURCE_NAME = re.compile(r"^(\d{2})_([a-z0-9_]+)\.py$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*$")
_EXERCISE = re.compile(r"^Exercise\s+([\w.\-]+)\s*:\s*(\S.*?)(?:\s+#+)?$")
_MARKER_LIKE = re.compile(r"^#+\s*(BEGIN|END)\s*SOLUTION\b", re.IGNORECASE)
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


class BuildError(ValueError):
    """A source, README.md or the repository layout is not what the build expects (one-line message)."""


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str

    @property
    def label(self) -> str:
        return f"Exercise {self.id} ({self.title})"


@dataclass(frozen=True)
class Region:
    """Lines ``begin``..``end`` (0-based, markers included) of a code cell hold the solution of ``exercise``."""

    begin: int
    end: int
    indent: str
    exercise: Exercise


# --- repository layout -------------------------------------------------------------------------


def find_root(start: str | os.PathLike[str] | None = None, *, command: str = "build") -> Path:
    """The first directory at or above ``start`` (default: the CWD) holding pyproject.toml and solutions/."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / SOURCE_DIR).is_dir():
            return candidate
    raise BuildError(f"run amla {command} inside the course repository (no {SOURCE_DIR}/ found above CWD)")


def check_root(root: str | os.PathLike[str]) -> Path:
    """``root`` itself as a course repository (for ``--root``), or a one-line error."""
    path = Path(root).resolve()
    if not (path / "pyproject.toml").is_file() or not (path / SOURCE_DIR).is_dir():
        raise BuildError(f"--root {root}: expected a course repository holding pyproject.toml and {SOURCE_DIR}/")
    return path


def source_hour(path: Path) -> Hour:
    """The hour a source file belongs to, checked against amla.course.hours.HOURS."""
    shown = f"{path.parent.name}/{path.name}"
    match = _SOURCE_NAME.match(path.name)
    if not match:
        raise BuildError(f"{shown}: a source must be named NN_slug.py, like {HOURS[0].stem}.py")
    number, slug = int(match.group(1)), match.group(2)
    try:
        h = hour(number)
    except ValueError:
        raise BuildError(f"{shown}: amla/course/hours.py has no hour {number}; it has hours 1 to {len(HOURS)}") from None
    if h.slug != slug:
        raise BuildError(f"{shown}: amla/course/hours.py calls hour {number} {h.stem!r} ({h.title}); expected {h.stem}.py")
    return h


def find_sources(root: Path) -> dict[int, Path]:
    """Hour number -> source path, for every ``solutions/NN_*.py`` (a misnamed one is an error)."""
    sources: dict[int, Path] = {}
    for path in sorted((root / SOURCE_DIR).glob("[0-9]*.py")):
        sources[source_hour(path).number] = path
    return sources


def jupytext_config(source_dir: Path) -> JupytextConfiguration:
    """The jupytext settings the sources are read with (``solutions/jupytext.toml``)."""
    path = source_dir / JUPYTEXT_CONFIG
    if not path.is_file():
        raise BuildError(f"{path} is missing; it holds the jupytext settings the sources are read with")
    return load_jupytext_configuration_file(str(path))


# --- reading a source --------------------------------------------------------------------------


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _first_line(source: str) -> str:
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _regions_in(source: str) -> list[tuple[int, int, str]]:
    """(begin, end, indent) of each solution region of a code cell; a ValueError says what is wrong."""
    regions: list[tuple[int, int, str]] = []
    opened: tuple[int, str] | None = None
    for i, line in enumerate(source.splitlines()):
        stripped = line.strip()
        if stripped == BEGIN:
            if opened is not None:
                raise ValueError(f"{BEGIN!r} on line {i + 1} is inside the region opened on line {opened[0] + 1}")
            opened = (i, line[: len(line) - len(line.lstrip())])
        elif stripped == END:
            if opened is None:
                raise ValueError(f"{END!r} on line {i + 1} has no {BEGIN!r} before it")
            regions.append((opened[0], i, opened[1]))
            opened = None
        elif _MARKER_LIKE.match(stripped):
            raise ValueError(f"line {i + 1} {stripped!r} looks like a marker; write exactly {BEGIN!r} or {END!r}")
    if opened is not None:
        raise ValueError(f"{BEGIN!r} on line {opened[0] + 1} has no {END!r}")
    return regions


def _headings(markdown: str) -> Iterable[tuple[int, str]]:
    """(level, text) of each heading line of a markdown cell, skipping fenced code blocks."""
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            yield len(match.group(1)), match.group(2)


def solution_regions(cells: list[NotebookNode], where: str) -> dict[int, list[Region]]:
    """Cell index -> its solution regions, each tied to the exercise heading it belongs to.

    An ``Exercise <id>: <title>`` heading (any level) opens an exercise; it lasts until the next heading
    of the same or a higher level. ``where`` names the notebook in error messages (cells count from 1).
    """
    found: dict[int, list[Region]] = {}
    current: tuple[int, Exercise] | None = None
    for index, cell in enumerate(cells):
        at = f"{where}, cell {index + 1} ({_first_line(cell.source)!r})"
        if cell.cell_type == "markdown":
            for level, text in _headings(cell.source):
                if match := _EXERCISE.match(text):
                    current = (level, Exercise(match.group(1), match.group(2)))
                elif current is not None and level <= current[0]:
                    current = None
        try:
            spans = _regions_in(cell.source)
        except ValueError as err:
            raise BuildError(f"{at}: {err}") from None
        if spans and cell.cell_type != "code":
            raise BuildError(f"{at}: solution markers only work in code cells, this is a {cell.cell_type} cell")
        if ANSWER_TAG in _tags(cell) and cell.cell_type != "markdown":
            raise BuildError(f"{at}: only markdown cells can be tagged {ANSWER_TAG!r}; mark code with {BEGIN!r}")
        if spans and current is None:
            raise BuildError(f"{at}: solution region with no exercise heading above it, like '### Exercise 1.2: Title'")
        if spans and current is not None:
            found[index] = [Region(b, e, indent, current[1]) for b, e, indent in spans]
    return found


def _cell_id(cell_type: str, source: str, taken: set[str]) -> str:
    base = hashlib.sha256(f"{cell_type}\0{source}".encode()).hexdigest()[:12]
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def _new_cell(cell_type: str, source: str, metadata: dict) -> NotebookNode:
    """A cell with no outputs, execution_count None and a placeholder id (see ``_with_ids``)."""
    if cell_type == "code":
        cell = nbformat.v4.new_code_cell(source=source, metadata=metadata)
    elif cell_type == "markdown":
        cell = nbformat.v4.new_markdown_cell(source=source, metadata=metadata)
    elif cell_type == "raw":
        cell = nbformat.v4.new_raw_cell(source=source, metadata=metadata)
    else:
        raise BuildError(f"unknown cell type {cell_type!r}; expected code, markdown or raw")
    return cell


def _with_ids(cells: list[NotebookNode]) -> list[NotebookNode]:
    """Give every cell an id derived from its type and source (a counter tells duplicates apart)."""
    taken: set[str] = set()
    for cell in cells:
        cell.id = _cell_id(cell.cell_type, cell.source, taken)
    return cells


def _notebook(h: Hour, cells: list[NotebookNode]) -> NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.cells = _with_ids(cells)
    nb.metadata = nbformat.from_dict(
        {
            "kernelspec": dict(KERNELSPEC),
            "language_info": {"name": "python"},
            "accelerator": "GPU",
            "colab": {"provenance": []},
            "amla": {"hour": h.number},
        }
    )
    return nb


def with_setup_header(text: str, h: Hour, config: JupytextConfiguration) -> str:
    """Source ``text`` with the current set-up cell as its first cell (an old one at the top is replaced),
    written as jupytext writes it.

    The set-up cell lives in the source too, so that JupyterLab, where jupytext pairs ``solutions/NN_slug.ipynb``
    with its source and reads the cells from the source, opens the solution notebook with it, and saving the
    notebook there writes the source back unchanged. The rest of the text keeps its layout (jupytext records
    unusual blank lines in the cells' metadata and writes them back).
    """
    nb = jupytext.reads(text, fmt="py:percent", config=config)
    cells = nb.cells[1:] if nb.cells and SETUP_TAG in _tags(nb.cells[0]) else nb.cells
    for cell in cells:  # keys in the order the .ipynb stores them (sorted), so a save in JupyterLab keeps them
        cell.metadata = nbformat.from_dict(dict(sorted(cell.metadata.items())))
    nb.cells = [nbformat.v4.new_code_cell(setup_cell(h), metadata={"tags": [SETUP_TAG]}), *cells]
    return jupytext.writes(nb, fmt="py:percent", config=config)


def load_source(path: str | os.PathLike[str]) -> NotebookNode:
    """The complete notebook built from a source: set-up cell first, filtered cell metadata, no outputs."""
    path = Path(path)
    h = source_hour(path)
    config = jupytext_config(path.parent)
    shown = f"{path.parent.name}/{path.name}"
    raw = path.read_text(encoding="utf-8")
    # Validate with cell numbers as they appear in the source file, before any cell is added or dropped.
    solution_regions(jupytext.reads(raw, fmt="py:percent", config=config).cells, shown)
    read = jupytext.reads(with_setup_header(raw, h, config), fmt="py:percent", config=config)
    cells = [_new_cell("code", setup_cell(h), {"tags": [SETUP_TAG]})]
    for cell in read.cells:
        if SETUP_TAG in _tags(cell):  # the source's own copy (see with_setup_header); replaced by the fresh one
            continue
        metadata = dict(filter_metadata(cell.metadata, config.cell_metadata_filter))
        metadata.update({k: cell.metadata[k] for k in JUPYTEXT_LAYOUT_KEYS if k in cell.metadata})
        cells.append(_new_cell(cell.cell_type, cell.source, metadata))
    return _notebook(h, cells)


# --- the student notebook ----------------------------------------------------------------------


def _blank_regions(source: str, regions: list[Region]) -> str:
    lines = source.splitlines()
    for region in sorted(regions, key=lambda r: r.begin, reverse=True):
        message = json.dumps(f"{region.exercise.label}: replace this line with your code", ensure_ascii=False)
        lines[region.begin : region.end + 1] = [
            f"{region.indent}# YOUR CODE HERE",
            f"{region.indent}raise NotImplementedError({message})",
        ]
    return "\n".join(lines)


def student_notebook(nb: NotebookNode) -> NotebookNode:
    """The student version of a complete notebook: solutions and answers removed, all else kept."""
    hour_number = nb.get("metadata", {}).get("amla", {}).get("hour")
    where = f"hour {hour_number} notebook" if hour_number is not None else "notebook"
    regions = solution_regions(nb.cells, where)
    cells: list[NotebookNode] = []
    for index, cell in enumerate(nb.cells):
        metadata = {k: copy.deepcopy(v) for k, v in cell.metadata.items() if k not in JUPYTEXT_LAYOUT_KEYS}
        source = cell.source
        if ANSWER_TAG in _tags(cell):
            source = STUDENT_ANSWER
            tags = [t for t in _tags(cell) if t != ANSWER_TAG]
            metadata.pop("tags")
            if tags:
                metadata["tags"] = tags
        elif index in regions:
            source = _blank_regions(source, regions[index])
        cells.append(_new_cell(cell.cell_type, source, metadata))
    student = copy.deepcopy(nb)
    student.cells = _with_ids(cells)
    return student


def notebook_bytes(nb: NotebookNode) -> bytes:
    """The exact bytes a notebook is committed as (validated nbformat 4.5 JSON, trailing newline)."""
    nbformat.validate(nb)
    text = nbformat.writes(nb, version=4)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


# --- the build ---------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build(root: str | os.PathLike[str], hours: Iterable[int] | None = None, check: bool = False) -> list[str]:
    """Build (or with ``check``, only compare) the notebooks of ``hours`` (default: every source) and README.md.

    Every output is computed before anything is written, so a bad source writes nothing. Returns one
    line per file written, or with ``check`` per file that is missing or out of date (empty: up to date).
    """
    root = Path(root)
    sources = find_sources(root)
    wanted = sorted(set(hours)) if hours is not None else sorted(sources)
    for number in wanted:
        try:
            h = hour(number)
        except ValueError as err:
            raise BuildError(str(err)) from None
        if number not in sources:
            raise BuildError(f"hour {number} has no source {SOURCE_DIR}/{h.stem}.py")

    outputs: dict[Path, tuple[bytes, str]] = {}
    for number in wanted:
        src = sources[number]
        origin = f"{SOURCE_DIR}/{src.name}"
        complete = load_source(src)
        header = with_setup_header(src.read_text(encoding="utf-8"), hour(number), jupytext_config(src.parent))
        outputs[src] = (header.encode("utf-8"), "the set-up cell of amla/course/hours.py")
        outputs[root / SOURCE_DIR / f"{src.stem}.ipynb"] = (notebook_bytes(complete), origin)
        outputs[root / STUDENT_DIR / f"{src.stem}.ipynb"] = (notebook_bytes(student_notebook(complete)), origin)
    readme = root / README
    if not readme.is_file():
        raise BuildError(f"{README} not found in {root}; it needs the lines {README_START} and {README_END}")
    new_readme = render_readme(readme.read_text(encoding="utf-8"), hour_table(sources))
    outputs[readme] = (new_readme.encode("utf-8"), "amla/course/hours.py and the sources")

    report: list[str] = []
    for path, (data, origin) in outputs.items():
        old = path.read_bytes() if path.is_file() else None
        if old == data:
            continue
        shown = path.relative_to(root).as_posix()
        if check:
            state = "missing" if old is None else "out of date"
            report.append(f"{shown}: {state} (built from {origin}); run amla build")
        else:
            _write(path, data)
            report.append(f"wrote {shown}")
    return report
