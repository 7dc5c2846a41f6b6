"""The real course: set-up files agree, notebooks are fresh and shaped as promised."""

import re
from pathlib import Path

import nbformat
import pytest
import tomllib
import yaml

from amla.course import build as B
from amla.course.hours import HOURS, REPO_URL, setup_cell

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_exactly_the_pyproject_package_set():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict)]
    assert sorted(conda) == ["pip", "python=3.11"], "conda installs only python and pip; packages come from pyproject"
    assert pip_sections == [["-c constraints.txt", "-e .[all]"]]
    extras = _pyproject()["project"]["optional-dependencies"]
    listed = set(re.fullmatch(r"amla\[(.*)\]", extras["all"][0]).group(1).split(","))
    assert len(extras["all"]) == 1 and listed == set(extras) - {"all"}, "the 'all' extra must name every other extra"


def test_version_floors_and_the_torch_pin():
    project = _pyproject()["project"]
    deps = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0]: d for d in project["dependencies"]}
    assert project["requires-python"] == ">=3.10,<3.14"
    # Colab keeps its own IPython and ipykernel: the core must not pull newer ones under the running kernel.
    assert not set(deps) & {"ipython", "ipykernel", "jupyter_client", "jupyter-client", "notebook", "jupyterlab"}
    assert deps["torch"] == "torch>=2.3" and deps["ipywidgets"] == "ipywidgets>=7.7"
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert pins == ["torch==2.13.0"]
    makefile = (ROOT / "Makefile").read_text()
    assert makefile.count("-c constraints.txt") == 1 and "$(PIP) torch" in makefile
    # pip (torch) and uv (the rest) install under the same pins
    assert "PIP    := $(PY) -m pip install --disable-pip-version-check -q $(PIN)" in makefile
    assert re.search(r"uv pip install .*\$\(PIN\)", makefile)


def test_readme_gives_two_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Start here.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make lab", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    targets = re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.M)
    assert {"lab", "test"} <= set(targets)


def test_every_notebook_and_the_readme_match_their_sources():
    assert SOURCES, "no hour sources found"
    assert B.build(ROOT, check=True) == [], "run `amla build`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_and_solution_notebooks(source):
    hour = B.source_hour(source)
    solution = nbformat.read(ROOT / "solutions" / f"{source.stem}.ipynb", as_version=4)
    student = nbformat.read(ROOT / "hours" / f"{source.stem}.ipynb", as_version=4)
    for nb in (solution, student):
        nbformat.validate(nb)
        assert "widgets" not in nb.metadata
        assert nb.cells[0].cell_type == "code" and nb.cells[0].source == setup_cell(hour)
        assert REPO_URL in nb.cells[0].source and "!" not in nb.cells[0].source
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None

    regions = B.solution_regions(solution.cells, source.name)
    assert regions, f"{source.name} has no exercises"
    student_text = "\n".join(cell.source for cell in student.cells)
    assert "BEGIN SOLUTION" not in student_text and "END SOLUTION" not in student_text
    outside = "\n".join(
        line
        for i, cell in enumerate(solution.cells)
        for n, line in enumerate(cell.source.splitlines())
        if not any(r.begin <= n <= r.end for r in regions.get(i, []))
    )
    for i, cell_regions in regions.items():
        lines = solution.cells[i].source.splitlines()
        for region in cell_regions:
            message = f"Exercise {region.exercise.id} ({region.exercise.title})"
            assert message in student_text, f"no NotImplementedError naming {message}"
            for line in lines[region.begin + 1 : region.end]:
                if len(line.strip()) >= 12 and line.strip() not in outside:
                    assert line.strip() not in student_text, f"solution line leaked into hours/: {line.strip()!r}"
    answers = [c for c in solution.cells if "answer" in c.metadata.get("tags", [])]
    for cell in answers:
        assert cell.source not in student_text, "an answer leaked into hours/"


def test_every_hour_with_a_source_has_a_colab_badge():
    readme = (ROOT / "README.md").read_text()
    for source in SOURCES:
        h = B.source_hour(source)
        assert f"blob/main/hours/{h.stem}.ipynb" in readme
    assert len(HOURS) == 18


_CHECK_CALL = re.compile(r"^(?P<lhs>[\w, ]+?)\s*=\s*amla\.checks\.(?P<topic>\w+)\.(?P<check>check_\w+)\((?P<args>[\w, ]*)\)\s*$")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_exercise_is_declared_and_its_check_returns_the_implementation(source):
    """The exercise contract, as written in the sources: heading titles equal the declared exercises, the cell
    after an exercise assigns what its check returns to the names the student wrote, and the hour ends with
    the summary (just before the questions)."""
    from amla.checks.contract import exercises

    hour = B.source_hour(source)
    nb = B.load_source(source)
    regions = B.solution_regions(nb.cells, source.name)
    found = {r.exercise.id: r.exercise.title for rs in regions.values() for r in rs}
    declared = {ex.id: ex for ex in exercises(hour.number)}
    assert {i: ex.title for i, ex in declared.items()} == found, "headings and amla.checks declarations differ"
    for index in sorted(regions):
        ex = declared[regions[index][0].exercise.id]
        after = next(c for c in nb.cells[index + 1 :] if c.cell_type == "code")
        match = _CHECK_CALL.match(after.source.strip())
        assert match, f"{ex.label}: the next code cell should be `... = amla.checks.<topic>.check_...(...)`"
        names = [n.strip() for n in match["args"].split(",")]
        assert names == list(ex.names) == [n.strip() for n in match["lhs"].split(",")], \
            f"{ex.label}: the check should take and return {ex.names}"
    codes = [c.source.strip() for c in nb.cells if c.cell_type == "code"]
    assert "amla.checks.summary()" in codes, "no amla.checks.summary() cell"
    questions = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Questions" in c.source)
    summary_at = next(i for i, c in enumerate(nb.cells) if c.source.strip() == "amla.checks.summary()")
    assert summary_at < questions and all(c.cell_type == "markdown" for c in nb.cells[summary_at + 1 : questions])
    for cell in nb.cells:
        assert "except NotImplementedError" not in cell.source, "the contract makes try/except NotImplementedError moot"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_saving_the_solution_notebook_in_jupyterlab_writes_back_its_source(source):
    """jupytext pairs solutions/NN.ipynb with its source in JupyterLab: the source holds the set-up cell, and what
    a save writes (jupytext, from the notebook) is the source byte for byte."""
    import jupytext

    text = source.read_text()
    hour = B.source_hour(source)
    assert text.startswith(f'# %% tags=["setup"]\n{setup_cell(hour)}\n')
    notebook = jupytext.read(ROOT / "solutions" / f"{source.stem}.ipynb")
    assert jupytext.writes(notebook, fmt="py:percent", config=B.jupytext_config(source.parent)) == text
