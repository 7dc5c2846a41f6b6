"""The student notebooks, as a student first meets them: nothing filled in, Run All, smoke profile.

Every cell must run (no error output), every exercise's check must say "not done yet" and hand back the
reference, and the end-of-hour summary must list every exercise as not done. (The solution notebooks run
under nbval, where every exercise must pass.)
"""

from __future__ import annotations

from pathlib import Path

from amla.checks.contract import EXPECT_ENV, exercises
from amla.course.build import source_hour
from amla.course.runner import execute

ROOT = Path(__file__).resolve().parent.parent
STUDENT = sorted((ROOT / "hours").glob("[0-9][0-9]_*.ipynb"))


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def _run_with_nothing_filled_in(path: Path) -> None:
    hour = source_hour(ROOT / "solutions" / f"{path.stem}.py").number
    result = execute(path, "smoke", timeout=600, env={EXPECT_ENV: "open"})
    assert result.ok, f"{path.name}: {result.error}"
    cells = result.executed.cells
    errors = [i for i, c in enumerate(cells) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: cells {errors} show an error"
    text = "\n".join(_text(c) for c in cells)
    declared = exercises(hour)
    assert declared, f"hour {hour} declares no exercises"
    for ex in declared:
        line = f"{ex.label} is not done yet: the cells below use the course's reference"
        assert text.count(line) == 1, f"{path.name}: expected the line {line!r} once"
        assert f"\u25cb {ex.label}: not done yet" in text, f"{path.name}: the summary does not list {ex.label}"
    assert f"Hour {hour:02d} exercises: 0 of {len(declared)} passed." in text


class _StudentNotebook:
    """One class per hour (below), so pytest-xdist's loadscope runs each notebook on whichever worker is free."""

    path: Path

    def test_runs_top_to_bottom_with_nothing_filled_in(self) -> None:
        _run_with_nothing_filled_in(self.path)


for _path in STUDENT:
    _name = f"Test_{_path.stem}"  # e.g. Test_03_seq2seq: `pytest -k 03_` picks one hour
    globals()[_name] = type(_name, (_StudentNotebook,), {"path": _path, "__doc__": f"hours/{_path.name}"})
