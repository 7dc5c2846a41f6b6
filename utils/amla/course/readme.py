"""The hour table of README.md, between ``<!-- hours:start -->`` and ``<!-- hours:end -->``: written by
``amla build`` from ``amla.course.hours``, so the titles, links and Colab badges are never typed twice."""

from __future__ import annotations

from pathlib import Path

from amla.course.hours import HOURS, SOURCE_DIR, STUDENT_DIR, colab_url

README = "README.md"
README_START = "<!-- hours:start -->"
README_END = "<!-- hours:end -->"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def hour_table(sources: dict[int, Path]) -> list[str]:
    """Markdown table of all hours: links and a Colab badge where a source exists, else "planned"."""
    rows = ["| Hour | Topic | Student notebook | Solutions | Colab |", "|---:|---|---|---|---|"]
    for h in HOURS:
        title = h.title.replace("|", "\\|")
        if h.number in sources:
            student = f"[{h.stem}.ipynb]({STUDENT_DIR}/{h.stem}.ipynb)"
            solution = f"[{h.stem}.ipynb]({SOURCE_DIR}/{h.stem}.ipynb)"
            badge = f"[![Open In Colab]({COLAB_BADGE})]({colab_url(h.stem)})"
            rows.append(f"| {h.number} | {title} | {student} | {solution} | {badge} |")
        else:
            rows.append(f"| {h.number} | {title} | planned | | |")
    return rows


def render_readme(text: str, table: list[str]) -> str:
    """README text with the region between the hour markers replaced by ``table``."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == README_START]
    ends = [i for i, line in enumerate(lines) if line.strip() == README_END]
    if len(starts) != 1 or len(ends) != 1 or starts[0] > ends[0]:
        from amla.course.build import BuildError  # here, not at the top: build imports this module

        raise BuildError(
            f"{README} needs the line {README_START} and, below it, the line {README_END} (once each) "
            f"around the hour table; found {len(starts)} start and {len(ends)} end marker(s)"
        )
    return "\n".join(lines[: starts[0] + 1] + ["", *table, ""] + lines[ends[0] :])
