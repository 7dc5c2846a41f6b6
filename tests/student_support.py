"""What a student notebook run with nothing filled in must show (tests/test_student_notebooks.py and, for the
hours it runs in a Colab-like environment, tests/test_colab.py), and which hours the Colab test runs."""

from __future__ import annotations

from pathlib import Path

from amla.checks.contract import exercises

ROOT = Path(__file__).resolve().parent.parent
COLAB_HOURS = (2, 10, 13, 15)
"""The hours tests/test_colab.py runs (the fastest smoke hour of each part that shows a view: transformers, GANs,
graphs with the `graphs` extra, RL with the `rl` extra); test_student_notebooks leaves them to it when it can run."""
COLAB_WHEELHOUSE = ROOT / "build" / "colab-wheels"


def colab_test_runs() -> bool:
    """Whether tests/test_colab.py will run here (its wheelhouse and uv are present), not skip."""
    import sys

    return (COLAB_WHEELHOUSE / "preinstalled.txt").is_file() and Path(sys.executable).with_name("uv").is_file()


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def assert_nothing_filled_in(cells: list, hour: int, name: str) -> None:
    """Every cell ran without an error, every exercise's check said "not done yet" once and the summary lists
    each as not done."""
    errors = [i for i, c in enumerate(cells) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name}: cells {errors} show an error"
    text = "\n".join(_text(c) for c in cells)
    declared = exercises(hour)
    assert declared, f"hour {hour} declares no exercises"
    for ex in declared:
        line = f"{ex.label} is not done yet: the cells below use the course's reference"
        assert text.count(line) == 1, f"{name}: expected the line {line!r} once"
        assert f"\u25cb {ex.label}: not done yet" in text, f"{name}: the summary does not list {ex.label}"
    assert f"Hour {hour:02d} exercises: 0 of {len(declared)} passed." in text
