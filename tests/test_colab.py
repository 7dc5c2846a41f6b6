"""Colab, tested: the course package from a freshly built wheel, in a new Colab-like environment, as the notebook's
first cell installs it, and one hour of each part run there under the smoke profile, views included.

The environment (a ``uv venv`` of this Python) gets Colab's kernel side first: ipywidgets 7.7 with IPython 7.34,
ipykernel 6.17 and the classic notebook, torch and the scientific packages (the list is COLAB_PREINSTALLED in the
Makefile, written to build/colab-wheels/preinstalled.txt). Nothing downloads: `make test` (target colab-wheels)
fills the wheelhouse build/colab-wheels once, and the test installs from there only (uv --offline --no-index,
pip with PIP_NO_INDEX). Where the wheelhouse or uv is missing the test skips; in CI (CI=true or
AMLA_REQUIRE_BROWSER=1) it fails instead.

Each hour runs the student notebook (what Colab opens) from a folder of its own, in a kernel of that environment
that has a stand-in ``google.colab`` module imported, so the first cell's own line
``pip install -q <pip_target(extras)>`` runs; only the requirement is swapped for the wheel file, since GitHub is
out of reach. The class runs on one xdist worker (loadscope), in order, in one environment.

The time each step took goes to test-artifacts/colab/timings.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets import default

from amla.checks.contract import EXPECT_ENV
from amla.course import hours as course
from amla.course import readme
from amla.views.base import WIDGET_VIEW_MIMETYPE
from student_support import COLAB_HOURS, COLAB_WHEELHOUSE, assert_nothing_filled_in

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = COLAB_WHEELHOUSE
PREINSTALLED = WHEELHOUSE / "preinstalled.txt"
TIMINGS = ROOT / "test-artifacts" / "colab" / "timings.json"
UV = Path(sys.executable).with_name("uv")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# The fastest smoke hour of each part that shows a view (measured with `amla run NN --profile smoke` on 2 cores,
# about 8-10 s each): transformers, GANs, graphs (the `graphs` extra) and RL (the `rl` extra). Hour 01 (the
# toolkit) takes about twice as long and is left out.
HOURS_RUN = COLAB_HOURS  # test_student_notebooks leaves these hours to this test

# The kernel: Colab imports google.colab before the first cell; the stand-in is an empty module.
KERNEL_LAUNCH = "import google.colab; from ipykernel import kernelapp; kernelapp.launch_new_instance()"

_timings: dict[str, float] = {}


def _timed(name: str, start: float) -> None:
    _timings[name] = round(time.perf_counter() - start, 2)
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text(json.dumps(_timings, indent=1) + "\n")


def _cannot_run(reason: str) -> None:
    """Skip here, fail in CI: a wheelhouse that set-up did not fill must not hide behind a green run."""
    if os.environ.get("CI") == "true" or os.environ.get("AMLA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"in CI (CI=true or AMLA_REQUIRE_BROWSER=1) the Colab test must run, but: {reason}", pytrace=False)
    pytest.skip(reason)


def _run(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}",
                    pytrace=False)
    return done


def _package_files() -> list[Path]:
    """The files of the package as the repository has them (tracked and new, not ignored), relative to utils/."""
    utils = ROOT / "utils"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "amla"],
                            cwd=utils, capture_output=True, text=True)
    if listed.returncode == 0:
        names = [Path(n) for n in listed.stdout.split("\0") if n]
    else:  # not a git checkout: every file but caches
        names = [p.relative_to(utils) for p in (utils / "amla").rglob("*") if p.is_file()]
    return sorted(n for n in names if (utils / n).is_file() and "__pycache__" not in n.parts and n.suffix != ".pyc")


def _pip_requirement(extras: tuple[str, ...], wheel: Path) -> str:
    extra = f"[{','.join(extras)}]" if extras else ""
    return f"amla{extra} @ {wheel.as_uri()}"


def _colab_kernel_manager(python: Path) -> type[AsyncKernelManager]:
    """A kernel manager whose every kernel is the Colab-like environment's Python with google.colab imported."""
    spec = KernelSpec(argv=[str(python), "-c", KERNEL_LAUNCH, "-f", "{connection_file}"],
                      display_name="Python 3 (Colab-like)", language="python")

    class Specs(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return spec

    class Manager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _colab_specs(self) -> KernelSpecManager:
            return Specs(parent=self)

    return Manager


PROBE = """\
import json, sys, IPython, ipykernel, ipywidgets, amla
print("COLAB-PROBE " + json.dumps({"ipywidgets": ipywidgets.__version__, "IPython": IPython.__version__,
      "ipykernel": ipykernel.__version__, "amla": amla.__file__, "python": sys.executable,
      "colab": "google.colab" in sys.modules}))
"""


def _probe(cell: nbformat.NotebookNode) -> dict[str, object]:
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    line = next((s for s in text.splitlines() if s.startswith("COLAB-PROBE ")), None)
    assert line, f"the probe cell printed no versions: {text!r}"
    return json.loads(line.removeprefix("COLAB-PROBE "))


def _cell_seconds(cell: nbformat.NotebookNode) -> float:
    """How long the kernel took for a cell (nbclient's timestamps); nan where it did not run."""
    times = cell.get("metadata", {}).get("execution", {})
    try:
        start, end = (datetime.fromisoformat(times[k].replace("Z", "+00:00"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
    except (KeyError, ValueError):
        return float("nan")
    return (end - start).total_seconds()


def _views(nb: nbformat.NotebookNode) -> list[dict[str, object]]:
    """The outputs that hold both a live widget and its static picture (a View's bundle)."""
    return [o["data"] for c in nb.cells for o in c.get("outputs", [])
            if WIDGET_VIEW_MIMETYPE in o.get("data", {}) and "image/png" in o.get("data", {})]


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    if not PREINSTALLED.is_file():
        _cannot_run(f"no Colab-like wheelhouse at {WHEELHOUSE.relative_to(ROOT)} (make colab-wheels fills it; "
                    "make test runs it)")
    if not UV.is_file():
        _cannot_run(f"no uv beside {sys.executable} (make setup installs it)")
    return WHEELHOUSE


@pytest.fixture(scope="module")
def wheel(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the package, built from a copy of its files (the checkout's build/ stays untouched)."""
    start = time.perf_counter()
    src = tmp_path_factory.mktemp("colab-src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for rel in _package_files():
        (src / "utils" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "utils" / rel, src / "utils" / rel)
    out = tmp_path_factory.mktemp("colab-wheel")
    # setuptools from this environment (no isolated build environment to fill), offline
    _run(UV, "build", "--wheel", "--offline", "--no-build-isolation", "--python", sys.executable, "-q", "-o", out, src)
    wheels = sorted(out.glob("amla-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {[w.name for w in wheels]}"
    _timed("wheel build", start)
    return wheels[0]


@pytest.fixture(scope="module")
def colab_python(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a new environment with what Colab has before the first cell runs (and no amla)."""
    start = time.perf_counter()
    venv = tmp_path_factory.mktemp("colab") / "venv"
    _run(UV, "venv", "-q", "--offline", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    _run(UV, "pip", "install", "-q", "--offline", "--no-index", "--find-links", wheelhouse, "--python", python,
         "-c", ROOT / "constraints.txt", "-r", PREINSTALLED)
    _timed("venv + preinstalled packages", start)
    return python


@pytest.fixture(scope="module")
def fake_colab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a stand-in google.colab (``google`` stays a namespace package, as with protobuf beside it)."""
    folder = tmp_path_factory.mktemp("fake-colab")
    (folder / "google" / "colab").mkdir(parents=True)
    (folder / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s own module (tests only)."""\n')
    return folder


class TestColab:
    """One class: one xdist worker (loadscope) builds the wheel and the environment and runs the hours in order."""

    def test_wheel_holds_every_package_file(self, wheel: Path) -> None:
        files = _package_files()
        in_wheel = set(zipfile.ZipFile(wheel).namelist())
        missing = [f.as_posix() for f in files if f.as_posix() not in in_wheel]
        assert not missing, (f"{wheel.name} lacks files the source tree has under utils/amla (add them to "
                             f"[tool.setuptools.package-data] in pyproject.toml): {missing}")
        data = [f.as_posix() for f in files if f.suffix != ".py"]
        assert "amla/py.typed" in data and "amla/course/lab-overrides.json" in data

    @pytest.mark.parametrize("number", HOURS_RUN)
    def test_hour_runs_as_on_colab(self, number: int, wheel: Path, colab_python: Path, fake_colab: Path,
                                   wheelhouse: Path, tmp_path: Path) -> None:
        h = course.hour(number)
        nb = nbformat.read(ROOT / course.STUDENT_DIR / f"{h.stem}.ipynb", as_version=4)
        first = nb.cells[0]
        target = course.pip_target(h.extras)
        assert first.source.count(repr(target)) == 1, (
            f"the first cell of hours/{h.stem}.ipynb does not install {target!r} (pip_target of the setting in "
            "amla/course/hours.py): run amla build")
        assert 'if "google.colab" in sys.modules:' in first.source
        first.source = first.source.replace(repr(target), repr(_pip_requirement(h.extras, wheel)))
        nb.cells.append(nbformat.v4.new_code_cell(PROBE))

        # Each hour installs the package itself, as in a fresh Colab session (extras of earlier hours stay).
        _run(UV, "pip", "uninstall", "-q", "--python", colab_python, "amla")
        before = json.loads(_run(colab_python, "-c", "import json, IPython, ipykernel; print(json.dumps("
                                 "{'IPython': IPython.__version__, 'ipykernel': ipykernel.__version__}))").stdout)

        content = tmp_path / "content"  # Colab's working folder: nothing of the repository beside the notebook
        content.mkdir()
        venv_bin = str(colab_python.parent)
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != Path(sys.executable).parent]
        env = {
            **os.environ,
            "PATH": os.pathsep.join([venv_bin, *path]),
            "VIRTUAL_ENV": str(colab_python.parent.parent),
            "PYTHONPATH": str(fake_colab),
            "AMLA_PROFILE": "smoke",
            "AMLA_OFFLINE": "1",
            EXPECT_ENV: "open",  # the student notebook: every exercise still open
            # the first cell's pip: this wheelhouse only, none of the machine's pip settings
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(wheelhouse),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # ipykernel 6.17's debugger would warn about frozen modules
        }
        client = NotebookClient(nb, timeout=600, kernel_name="colab",
                                kernel_manager_class=_colab_kernel_manager(colab_python),
                                resources={"metadata": {"path": str(content)}})
        start, failure = time.perf_counter(), None
        try:
            client.execute(env=env)
        except CellExecutionError as err:
            failed = next((i for i, c in enumerate(nb.cells)
                           for o in c.get("outputs", []) if o.get("output_type") == "error"), None)
            where = f" in cell {failed + 1} ({nb.cells[failed].source.splitlines()[0]!r})" if failed is not None else ""
            tail = "\n".join(ANSI.sub("", str(err)).strip().splitlines()[-12:])
            failure = f"hours/{h.stem}.ipynb, as on Colab: {err.ename}{where}: {err.evalue}\n{tail}"
        finally:
            _timings[f"hour {h.stem}: first cell (pip install, import, setup)"] = round(_cell_seconds(nb.cells[0]), 2)
            _timed(f"hour {h.stem}", start)
        if failure:
            pytest.fail(failure, pytrace=False)

        # as tests/test_student_notebooks.py asks of every hour: no error, every exercise "not done yet"
        assert_nothing_filled_in(nb.cells[:-1], h.number, f"hours/{h.stem}.ipynb on Colab")
        probe = _probe(nb.cells[-1])
        assert probe["colab"] is True
        assert str(probe["ipywidgets"]).startswith("7.7"), f"ipywidgets {probe['ipywidgets']} in the Colab kernel"
        assert Path(str(probe["amla"])).is_relative_to(colab_python.parent.parent), (
            f"amla came from {probe['amla']}, not from the wheel the first cell installed")
        # pyproject.toml's promise: installing the course upgrades nothing under Colab's running kernel
        assert {k: probe[k] for k in before} == before, f"the first cell's install changed {before} to {probe}"

        views = _views(nb)
        assert views, f"{h.stem}: no output holds a view (a live widget and its picture)"
        state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
        for data in views:
            model_id = data[WIDGET_VIEW_MIMETYPE]["model_id"]
            assert model_id in state, f"{h.stem}: the view's widget {model_id} never reached the frontend"
            # ipywidgets 7's models (@jupyter-widgets/controls 1.x), the ones Colab's frontend renders
            assert str(state[model_id]["model_module_version"]).startswith("1."), state[model_id]
            assert len(data["image/png"]) > 1000, f"{h.stem}: the view's picture is (nearly) empty"


def test_one_setting_drives_install_line_and_badges(monkeypatch: pytest.MonkeyPatch) -> None:
    """REPO_URL and BRANCH in amla/course/hours.py are the only place: a fork that changes them gets both the
    first cell's install line and the README's Colab badges (README: "Using a fork")."""
    fork, branch = "https://github.com/someone/amla-fork", "autumn"
    monkeypatch.setattr(course, "REPO_URL", fork)
    monkeypatch.setattr(course, "BRANCH", branch)
    h = course.hour(13)
    assert course.pip_target(h.extras) == f"amla[graphs] @ git+{fork}@{branch}"
    assert repr(f"amla[graphs] @ git+{fork}@{branch}") in course.setup_cell(h)
    url = "https://colab.research.google.com/github/someone/amla-fork/blob/autumn/hours/13_message_passing.ipynb"
    assert course.colab_url(h.stem) == url
    table = "\n".join(readme.hour_table({13: Path("solutions/13_message_passing.py")}))
    assert f"({url})" in table and "amla-course" not in table
