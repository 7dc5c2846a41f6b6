"""The student notebooks, as a student first meets them: nothing filled in, Run All, smoke profile.

Every cell must run (no error output), every exercise's check must say "not done yet" and hand back the
reference, and the end-of-hour summary must list every exercise as not done. (The solution notebooks run
under nbval, where every exercise must pass.) The hours tests/test_colab.py runs in its Colab-like environment,
with the same assertions, are left to it where it can run (in CI it must).
"""

from __future__ import annotations

from pathlib import Path

from amla.checks.contract import EXPECT_ENV
from amla.course.build import source_hour
from amla.course.runner import execute
from student_support import COLAB_HOURS, ROOT, assert_nothing_filled_in, colab_test_runs

STUDENT = sorted((ROOT / "hours").glob("[0-9][0-9]_*.ipynb"))
if colab_test_runs():  # those hours run there, in a Colab-like environment, with the same assertions
    STUDENT = [p for p in STUDENT if int(p.name[:2]) not in COLAB_HOURS]


def _run_with_nothing_filled_in(path: Path) -> None:
    hour = source_hour(ROOT / "solutions" / f"{path.stem}.py").number
    result = execute(path, "smoke", timeout=600, env={EXPECT_ENV: "open"})
    assert result.ok, f"{path.name}: {result.error}"
    assert_nothing_filled_in(result.executed.cells, hour, path.name)


class _StudentNotebook:
    """One class per hour (below), so pytest-xdist's loadscope runs each notebook on whichever worker is free."""

    path: Path

    def test_runs_top_to_bottom_with_nothing_filled_in(self) -> None:
        _run_with_nothing_filled_in(self.path)


for _path in STUDENT:
    _name = f"Test_{_path.stem}"  # e.g. Test_03_seq2seq: `pytest -k 03_` picks one hour
    globals()[_name] = type(_name, (_StudentNotebook,), {"path": _path, "__doc__": f"hours/{_path.name}"})
