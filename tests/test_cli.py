"""The ``amla`` command through ``amla.course.cli.main``: exit codes, output, and two real notebook executions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import amla.course.runner
from amla.course.cli import main
from amla.course.runner import RunResult

CONFIG = Path(__file__).resolve().parents[1] / "solutions" / "jupytext.toml"

SOURCE = """\
# %% [markdown]
# ### Exercise 1.1: Add

# %%
def add(a, b):
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'course'\n")
    (tmp_path / "README.md").write_text("# Course\n<!-- hours:start -->\n<!-- hours:end -->\n")
    (tmp_path / "solutions").mkdir()
    shutil.copy(CONFIG, tmp_path / "solutions" / "jupytext.toml")
    (tmp_path / "solutions" / "01_toolkit.py").write_text(SOURCE)
    return tmp_path


def write_notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, id=f"cell-{i}") for i, source in enumerate(sources)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_build_check_exit_codes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--check", "--root", str(repo)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [
        "solutions/01_toolkit.py", "solutions/01_toolkit.ipynb", "hours/01_toolkit.ipynb", "README.md"]
    assert not (repo / "hours").exists()
    assert main(["build", "--root", str(repo)]) == 0
    assert "wrote hours/01_toolkit.ipynb" in capsys.readouterr().out
    assert main(["build", "01", "--check", "--root", str(repo)]) == 0
    assert capsys.readouterr().out.startswith("up to date")


def test_usage_errors_are_one_line(repo: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path_factory.mktemp("not-a-course")
    assert main(["build", "--root", str(elsewhere)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected a course repository holding pyproject.toml and solutions/" in err
    assert main(["build", "19", "--root", str(repo)]) == 2
    assert "no hour 19: the course has hours 1 to 18" in capsys.readouterr().err
    assert main(["bench", "01", "--root", str(repo), "--profile", "fast"]) == 2
    assert "profile 'fast' is not one of smoke, cpu, gpu" in capsys.readouterr().err
    assert main(["run", "02", "--root", str(repo), "--profile", "smoke"]) == 2
    assert "solutions/02_attention.ipynb does not exist; run amla build first" in capsys.readouterr().err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("build", "run", "bench", "doctor", "fetch"):
        assert f"    {command} " in out
    done = subprocess.run([sys.executable, "-m", "amla", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "doctor" in done.stdout


def test_doctor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AMLA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # files are looked for in the cache too
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "\u2713 ipykernel importable" in out
    assert f"\u2713 data dir {tmp_path / 'data'} can be created" in out
    assert "tinyshakespeare (Hours 06-07): missing (downloaded on first use)" in out
    assert "\u2713 widget frontend: jupyterlab_widgets" in out and "torch.compile: C compiler" in out
    assert "\u2713 Hours 13-14: torch_geometric, networkx (amla[graphs])" in out


def test_doctor_names_the_fix_for_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata
    import importlib.util
    import shutil

    from amla.course import cli

    real_find, real_version = importlib.util.find_spec, importlib.metadata.version
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gymnasium" else real_find(name, *a))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    checks = dict((text.split(":")[0], (mark, text)) for mark, text in cli.doctor_checks())
    assert checks["Hours 15-18"] == (cli.INFO, "Hours 15-18: gymnasium missing; pip install 'amla[rl]'")
    mark, text = checks["torch.compile"]
    assert mark == cli.INFO and "no C compiler" in text and "apt install gcc" in text
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "2.0.1" if name == "jupyterlab_widgets" else real_version(name))
    mark, text = cli._widget_frontend_check()
    assert mark == cli.FAIL and "jupyterlab_widgets 2.0.1 does not match ipywidgets" in text and "pip install -U" in text


def test_fetch_names_what_is_unknown_and_never_downloads_in_tests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "no-such-file"]) == 2
    assert "unknown data file(s) no-such-file; known: " in capsys.readouterr().err
    monkeypatch.setenv("AMLA_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("AMLA_OFFLINE", "1")
    assert main(["fetch", "sentence-polarity"]) == 2
    err = capsys.readouterr().err
    assert "AMLA_OFFLINE is set" in err and "vaderSentiment-3.3.2.tar.gz" in err and err.count("\n") == 1


def test_run_table_and_student_notebooks(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--root", str(repo)]) == 0
    capsys.readouterr()
    calls = []

    def fake_execute(path: Path, profile: str, timeout: int | None = None) -> RunResult:
        calls.append((Path(path).relative_to(repo).as_posix(), profile, timeout))
        return RunResult(Path(path), 3.25, {}, "NotImplementedError in cell 3 (def add(a, b):): Exercise 1.1 (Add)")

    monkeypatch.setattr(amla.course.runner, "execute", fake_execute)
    saved = tmp_path / "executed"
    code = main(["run", "--student", "--profile", "smoke", "--timeout", "30", "--save", str(saved), "--root", str(repo)])
    assert code == 1 and calls == [("hours/01_toolkit.ipynb", "smoke", 30)]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["hour", "notebook", "status", "wall", "s"]
    assert lines[1].split()[:3] == ["01", "hours/01_toolkit.ipynb", "FAILED"] and lines[1].endswith("3.2")
    assert "Exercise 1.1 (Add)" in lines[1]
    assert lines[2].split() == ["total", "0/1", "ok", "3.2"]
    assert (saved / "01_toolkit.ipynb").is_file()


def test_bench_prints_reported_metrics(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_notebook(repo / "solutions" / "01_toolkit.ipynb", "import amla", "amla.report(x=1.5)")
    assert main(["bench", "01", "--profile", "smoke", "--root", str(repo)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["metrics"] == {"x": 1.5} and record["profile"] == "smoke" and record["ok"] is True
    assert record["hour"] == 1 and record["notebook"] == "solutions/01_toolkit.ipynb"
    assert record["device"] in {"cuda", "mps", "cpu"} and record["wall_s"] > 0 and "error" not in record


def test_bench_reports_a_failing_cell(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The first cell checks what the kernel sees: the profile asked for, and the notebook's folder as cwd.
    monkeypatch.setenv("AMLA_PROFILE", "cpu")
    first = "import os\nassert os.environ['AMLA_PROFILE'] == 'smoke' and os.path.isfile('02_attention.ipynb')"
    write_notebook(repo / "solutions" / "02_attention.ipynb", first, "ratio = 1 / 0")
    assert main(["bench", "02", "--profile", "smoke", "--root", str(repo)]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["ok"] is False and record["metrics"] == {}
    assert record["error"] == "ZeroDivisionError in cell 2 (ratio = 1 / 0): division by zero"


def test_missing_instructor_tools_get_a_one_line_hint(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.delitem(sys.modules, "amla.course.build", raising=False)
    monkeypatch.setitem(sys.modules, "jupytext", None)  # as if the `tools` extra were not installed
    assert main(["build", "--check", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "jupytext is missing" in err and "pip install 'amla[tools]'" in err
