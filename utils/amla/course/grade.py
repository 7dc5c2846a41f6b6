"""``amla grade``: run students' notebooks through the course's self-checks and tabulate their exercises.

**This runs the students' code**, with the rights of whoever runs ``amla grade``: it is not a sandbox. Grade
notebooks you would run yourself, or run it in a container or a throwaway account. For the same reason the table is
feedback, not proof: code in a notebook can change what ``amla.checks`` reports.

Each notebook runs in a process of its own (``python -m amla.course.grade NOTEBOOK``) with a fresh kernel, under
the smoke profile (the checks do not depend on it; the training cells then take seconds), every cell in order and
on after an error (a wrong answer raises ``CheckFailed`` in its check cell; the cells after it still run). A last
cell, added to the copy that runs, reads each exercise's state from ``amla.checks``: passed, failed (with the check's
message), not done, or not run (its check cell never ran). A notebook that is not valid JSON, that runs past its time
limit, or whose kernel dies gets its own row, and the other notebooks still run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from amla.course.runner import PROFILE_ENV, ThisInterpreterKernelManager, _one_line
from amla.toolkit.report import REPORT_ENV

MARK = "AMLA-GRADE "
_STATUS_CELL = (
    "import json as _json\n"
    "from amla.checks import contract as _contract\n"
    "_hour = _contract._HOUR[0]\n"
    "_states = {} if _hour is None else {ex.id: list(_contract.status(ex)) for ex in _contract.exercises(_hour)}\n"
    f"print({MARK!r} + _json.dumps({{'hour': _hour, 'exercises': _states}}))\n"
)
SHOWN = {"passed": "passed", "failed": "FAILED", "open": "not done", "unchecked": "not run"}
NOT_A_SANDBOX = ("amla grade runs the students' code with your rights: it is not a sandbox. Grade notebooks you "
                 "would run yourself, or run it in a container or a throwaway account.")


@dataclass
class Grade:
    """One notebook's row: its hour, each exercise's (state, message), and what went wrong with the notebook."""

    notebook: Path
    hour: int | None = None
    exercises: dict[str, tuple[str, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # cells that raised something other than a check's verdict
    problem: str = ""  # not valid JSON, too slow, or a dead kernel


def _flat(text: str, limit: int = 400) -> str:
    """The whole message on one line (a check's message names the likely mistake on its second line)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def grade_here(path: Path, profile: str = "smoke", pid_file: Path | None = None) -> Grade:
    """Run the notebook at ``path`` in a fresh kernel of this interpreter and read its exercise states; the kernel's
    process id and group go to ``pid_file`` as it starts (so that a parent that stops this run can stop it too)."""
    result = Grade(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_STATUS_CELL))

    def kernel_started(**_: object) -> None:
        provisioner = getattr(client.km, "provisioner", None)
        if pid_file is not None and provisioner is not None and not pid_file.exists():
            pid_file.write_text(f"{provisioner.pid} {provisioner.pgid}")

    client = NotebookClient(nb, allow_errors=True, kernel_name="python3", timeout=None,
                            kernel_manager_class=ThisInterpreterKernelManager,
                            resources={"metadata": {"path": str(path.parent)}}, on_cell_start=kernel_started)
    with tempfile.TemporaryDirectory(prefix="amla-grade-") as tmp:
        env = {**os.environ, PROFILE_ENV: profile, REPORT_ENV: str(Path(tmp) / "report.json")}
        try:
            client.execute(env=env)
        except Exception as err:  # a dead kernel: the states read so far are lost with it
            result.problem = f"the kernel stopped ({type(err).__name__}: {_one_line(err)})"
    for index, cell in enumerate(nb.cells[:-1]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") != "CheckFailed":
                result.errors.append(f"{out.get('ename')} in cell {index + 1}: {_one_line(out.get('evalue', ''))}")
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith(MARK):
                found = json.loads(line[len(MARK):])
                result.hour = found["hour"]
                result.exercises = {k: (v[0], v[1]) for k, v in found["exercises"].items()}
    if result.hour is None and not result.problem:
        result.problem = "no amla.setup(hour=N) ran: is this a course notebook?"
    return result


def grade(paths: list[Path], limit_s: float = 300.0, profile: str = "smoke") -> list[Grade]:
    """Grade every notebook in a child process of its own, each within ``limit_s`` seconds."""
    grades = []
    for path in paths:
        try:
            nbformat.read(path, as_version=4)
        except Exception as err:  # not JSON, not a notebook, unreadable
            grades.append(Grade(path, problem=f"not a valid notebook ({type(err).__name__}: {_one_line(err)})"))
            continue
        with tempfile.TemporaryDirectory(prefix="amla-grade-") as tmp:
            pid_file = Path(tmp) / "kernel.pid"
            cmd = [sys.executable, "-m", "amla.course.grade", str(path), "--profile", profile,
                   "--pid-file", str(pid_file)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
            try:
                out, err = proc.communicate(timeout=limit_s)
            except subprocess.TimeoutExpired:
                _stop_kernel(pid_file)  # the kernel runs in a process group of its own
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                grades.append(Grade(path, problem=f"stopped after the time limit of {limit_s:g} s (a cell that "
                                                  "never ends?)"))
                continue
        row = next((line for line in out.splitlines() if line.startswith(MARK)), None)
        if row is None:
            grades.append(Grade(path, problem=f"could not be run (exit code {proc.returncode}: "
                                              f"{_one_line(err.strip().splitlines()[-1] if err.strip() else '')})"))
            continue
        found = json.loads(row[len(MARK):])
        grades.append(Grade(path, found["hour"], {k: tuple(v) for k, v in found["exercises"].items()},
                            found["errors"], found["problem"]))
    return grades


def _stop_kernel(pid_file: Path) -> None:
    """Kill the kernel whose pid and process group ``grade_here`` wrote to ``pid_file`` (if it got that far)."""
    try:
        pid, pgid = (int(v) for v in pid_file.read_text().split())
    except (OSError, ValueError):
        return
    for kill, target in ((os.killpg, pgid), (os.kill, pid)):
        try:
            if target > 1 and target != os.getpgid(0):
                kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _names(grades: list[Grade]) -> list[str]:
    """The file name, or folder/file where two students' files share a name."""
    stems = [g.notebook.stem for g in grades]
    return [f"{g.notebook.parent.name}/{g.notebook.stem}" if stems.count(g.notebook.stem) > 1 else g.notebook.stem
            for g in grades]


def table(grades: list[Grade]) -> str:
    ids = sorted({i for g in grades for i in g.exercises}, key=lambda i: tuple(int(p) for p in i.split(".")))
    rows = [["student", "hour", *ids, "notes"]]
    for name, g in zip(_names(grades), grades):
        cells = [SHOWN[g.exercises[i][0]] if i in g.exercises else "" for i in ids]
        failed = [f"{i}: {_flat(g.exercises[i][1])}" for i in ids
                  if i in g.exercises and g.exercises[i][0] == "failed"]
        notes = "; ".join(([g.problem] if g.problem else []) + failed
                          + ([f"{len(g.errors)} cell(s) raised errors, first: {g.errors[0]}"] if g.errors else []))
        rows.append([name, "" if g.hour is None else f"{g.hour:02d}", *cells, notes])
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1] for r in rows)


def write_csv(grades: list[Grade], path: Path) -> None:
    """One row per (student, exercise), and one per notebook problem: student, notebook, hour, exercise, status,
    message."""
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["student", "notebook", "hour", "exercise", "status", "message"])
        for name, g in zip(_names(grades), grades):
            hour = "" if g.hour is None else g.hour
            if g.problem:
                out.writerow([name, str(g.notebook), hour, "", "problem", g.problem])
            for i, (state, message) in g.exercises.items():
                out.writerow([name, str(g.notebook), hour, i, SHOWN[state], _flat(message, 2000)])
            for error in g.errors:
                out.writerow([name, str(g.notebook), hour, "", "cell error", error])


def _main() -> int:  # the child process: grade one notebook, print one line
    parser = argparse.ArgumentParser(prog="python -m amla.course.grade")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--pid-file", type=Path, default=None)
    args = parser.parse_args()
    g = grade_here(args.notebook.resolve(), args.profile, args.pid_file)
    print(MARK + json.dumps({"hour": g.hour, "exercises": g.exercises, "errors": g.errors, "problem": g.problem}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
