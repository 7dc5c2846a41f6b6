"""amla grade: students' notebooks through the self-checks, each in a process and kernel of its own. A right, a
wrong, an unsolved and an unchecked exercise, a notebook that hangs (stopped at its time limit, its kernel gone), one whose kernel
dies and one that is not JSON: every one gets its row, and the CSV says the same."""

import csv
import time

import nbformat

from amla.course.cli import main

v4 = nbformat.v4
SETUP = "import amla\ndevice = amla.setup(hour=2, seed=0)"
CHECK = "softmax = amla.checks.attention.check_softmax(softmax)"
RIGHT = "def softmax(x, dim=-1):\n    e = (x - x.amax(dim=dim, keepdim=True)).exp()\n    return e / e.sum(dim=dim, keepdim=True)"
WRONG = "def softmax(x, dim=-1):\n    e = x.exp()  # not stable\n    return e / e.sum(dim=dim, keepdim=True)"
TODO = "def scaled_dot_product_attention(q, k, v, mask=None):\n    raise NotImplementedError('Exercise 2.2')"
CHECK_2 = "scaled_dot_product_attention = amla.checks.attention.check_attention(scaled_dot_product_attention)"


def _write(folder, name, *cells):
    path = folder / f"{name}.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell(c) for c in cells]), path)
    return path


def test_grade_gives_every_notebook_its_row(tmp_path, capsys):
    paths = [_write(tmp_path, "alice", SETUP, RIGHT, CHECK, TODO, CHECK_2),
             _write(tmp_path, "bob", SETUP, WRONG, CHECK, "print(nope)"), _write(tmp_path, "erin", SETUP, "import os\nos._exit(3)")]
    (tmp_path / "frank.ipynb").write_text("{not json")
    out_csv = tmp_path / "grades.csv"
    assert main(["grade", *map(str, paths), str(tmp_path / "frank.ipynb"), "--csv", str(out_csv)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("amla grade runs the students' code with your rights: it is not a sandbox.")
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip() and not line.startswith("one row")}
    assert rows["alice"].split()[2:4] == ["passed", "not"] and "not done" in rows["alice"]
    assert "FAILED" in rows["bob"] and "not run" in rows["bob"]  # bob's notebook has no check cell for 2.2
    assert "2.1: with x of shape" in rows["bob"] and "it looks like" in rows["bob"]
    assert "NameError in cell 4: name 'nope' is not defined" in rows["bob"]
    assert "the kernel stopped" in rows["erin"] and "not a valid notebook (NotJSONError" in rows["frank"]
    with open(out_csv) as f:
        table = list(csv.DictReader(f))
    by = {(r["student"], r["exercise"], r["status"]) for r in table}
    assert {("alice", "2.1", "passed"), ("alice", "2.2", "not done"), ("bob", "2.1", "FAILED"), ("bob", "2.2", "not run"),
            ("bob", "", "cell error"), ("erin", "", "problem"), ("frank", "", "problem")} <= by


def test_a_notebook_that_hangs_is_stopped_at_its_limit_with_its_kernel(tmp_path, capsys):
    beat = tmp_path / "beat"
    dave = _write(tmp_path, "dave", "import time\nwhile True:  # a heartbeat, to see whether the kernel lives\n"
                                    f"    open({str(beat)!r}, 'w').write(str(time.time()))\n    time.sleep(0.1)")
    assert main(["grade", str(dave), "--limit", "10", "--csv", str(tmp_path / "g.csv")]) == 0
    assert "stopped after the time limit of 10 s" in capsys.readouterr().out and beat.exists()
    last = beat.stat().st_mtime
    time.sleep(1.5)
    assert beat.stat().st_mtime == last, "dave's kernel still runs after its time limit"


def test_grade_refuses_missing_files_and_a_bad_limit_in_one_line(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nobody.ipynb")]) == 2
    assert "no such notebook file(s): " in capsys.readouterr().err
    path = _write(tmp_path, "x", SETUP)
    assert main(["grade", str(path), "--limit", "0"]) == 2
    assert "--limit must be a positive number of seconds, got 0" in capsys.readouterr().err
