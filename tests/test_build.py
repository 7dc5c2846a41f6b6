"""amla.course.build on temporary course repositories: both notebooks, determinism, --check, README, errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_configuration_file

from amla.course import hours as course
from amla.course.build import BuildError, build, find_root, load_source, notebook_bytes, render_readme, student_notebook

CONFIG = Path(__file__).resolve().parents[1] / "solutions" / "jupytext.toml"

SOURCE = '''\
# %% [markdown]
# # Hour 1: The toolkit
#
# A tiny hour for the tests.

# %% [markdown]
# ### Exercise 1.1: Add
#
# Write `add`.

# %%
def add(a, b):
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION


# %% slideshow={"slide_type": "slide"} tags=["check"]
assert add(1, 2) == 3

# %% [markdown]
# **Question:** why add?

# %% [markdown] tags=["answer"]
# Because sums are useful.
'''

README = "# The course\n\nIntro.\n\n<!-- hours:start -->\nold table\n<!-- hours:end -->\n\nLicense: MIT.\n"

STUDENT_ADD = (
    "def add(a, b):\n"
    "    # YOUR CODE HERE\n"
    '    raise NotImplementedError("Exercise 1.1 (Add): replace this line with your code")'
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'course'\n")
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "solutions").mkdir()
    shutil.copy(CONFIG, tmp_path / "solutions" / "jupytext.toml")
    (tmp_path / "solutions" / "01_toolkit.py").write_text(SOURCE)
    return tmp_path


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_build_writes_both_notebooks_with_setup_cell_first(repo: Path) -> None:
    written = build(repo)
    assert written == ["wrote solutions/01_toolkit.py", "wrote solutions/01_toolkit.ipynb",
                       "wrote hours/01_toolkit.ipynb", "wrote README.md"]
    source = (repo / "solutions" / "01_toolkit.py").read_text()
    assert source.startswith(f'# %% tags=["setup"]\n{course.setup_cell(course.hour(1))}\n') and source.endswith(SOURCE)
    for path in (repo / "solutions" / "01_toolkit.ipynb", repo / "hours" / "01_toolkit.ipynb"):
        nb = read(path)
        first = nb.cells[0]
        assert first.cell_type == "code" and first.metadata["tags"] == ["setup"]
        assert first.source == course.setup_cell(course.hour(1))
        assert course.REPO_URL in first.source
        assert [c.source.splitlines()[0] for c in nb.cells[1:3]] == ["# Hour 1: The toolkit", "### Exercise 1.1: Add"]


def test_student_notebook_hides_solutions_and_answers(repo: Path) -> None:
    build(repo)
    student_path = repo / "hours" / "01_toolkit.ipynb"
    student, complete = read(student_path), read(repo / "solutions" / "01_toolkit.ipynb")
    assert student.cells[3].source == STUDENT_ADD
    assert "return a + b" not in student_path.read_text()
    assert "BEGIN SOLUTION" not in student_path.read_text()
    assert "return a + b" in complete.cells[3].source and "### END SOLUTION" in complete.cells[3].source
    assert student.cells[-1].source == "**Your answer:** ..." and "tags" not in student.cells[-1].metadata
    assert "Because sums are useful." not in student_path.read_text()
    assert complete.cells[-1].source == "Because sums are useful." and complete.cells[-1].metadata.tags == ["answer"]
    assert student.cells[-2].source == complete.cells[-2].source == "**Question:** why add?"


def test_tags_and_slideshow_survive_and_notebooks_are_clean(repo: Path) -> None:
    build(repo)
    for folder in ("solutions", "hours"):
        path = repo / folder / "01_toolkit.ipynb"
        nb = read(path)
        check = nb.cells[4]
        assert check.metadata["tags"] == ["check"] and check.metadata["slideshow"] == {"slide_type": "slide"}
        assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
        assert nb.metadata == {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "accelerator": "GPU",
            "colab": {"provenance": []},
            "amla": {"hour": 1},
        }
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cell.id)
            assert not {"execution", "widgets", "collapsed"} & set(cell.metadata)
        assert len({c.id for c in nb.cells}) == len(nb.cells)
        assert path.read_bytes().endswith(b"}\n")
        nbformat.validate(nb)


def test_rebuild_changes_no_byte(repo: Path) -> None:
    build(repo)
    paths = [repo / "solutions" / "01_toolkit.py", repo / "solutions" / "01_toolkit.ipynb",
             repo / "hours" / "01_toolkit.ipynb", repo / "README.md"]
    before = [p.read_bytes() for p in paths]
    assert build(repo) == []
    assert [p.read_bytes() for p in paths] == before


def test_check_writes_nothing_and_reports_stale_files(repo: Path) -> None:
    missing = build(repo, check=True)
    assert [line.split(":")[0] for line in missing] == [
        "solutions/01_toolkit.py", "solutions/01_toolkit.ipynb", "hours/01_toolkit.ipynb", "README.md"]
    assert "set-up cell" in missing[0] and all("missing" in line for line in missing[1:3])
    assert not (repo / "hours").exists() and (repo / "solutions" / "01_toolkit.py").read_text() == SOURCE
    build(repo)
    assert build(repo, check=True) == []
    source = repo / "solutions" / "01_toolkit.py"
    header = source.read_text()[: -len(SOURCE)]
    source.write_text(header + SOURCE.replace("return a + b", "return b + a"))
    before = (repo / "hours" / "01_toolkit.ipynb").read_bytes()
    stale = build(repo, check=True)
    assert [line.split(":")[0] for line in stale] == ["solutions/01_toolkit.ipynb"]
    assert "out of date" in stale[0] and "solutions/01_toolkit.py" in stale[0]
    assert (repo / "hours" / "01_toolkit.ipynb").read_bytes() == before
    source.write_text(header + SOURCE.replace("Write `add`.", "Write `add` now."))
    stale = build(repo, check=True)
    assert [line.split(":")[0] for line in stale] == ["solutions/01_toolkit.ipynb", "hours/01_toolkit.ipynb"]


def test_readme_table(repo: Path) -> None:
    build(repo)
    text = (repo / "README.md").read_text()
    assert text.startswith("# The course\n\nIntro.\n\n<!-- hours:start -->\n") and text.endswith("<!-- hours:end -->\n\nLicense: MIT.\n")
    assert "old table" not in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if re.match(r"\| \d+ \|", line)}
    assert sorted(map(int, rows)) == list(range(1, 19))
    badge = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
    assert f"{badge}({course.colab_url('01_toolkit')})" in rows["1"]
    assert "(hours/01_toolkit.ipynb)" in rows["1"] and "(solutions/01_toolkit.ipynb)" in rows["1"]
    assert "planned" in rows["2"] and "colab" not in rows["2"].lower()
    assert course.hour(2).title in rows["2"]


def test_readme_without_markers_is_an_error(repo: Path) -> None:
    (repo / "README.md").write_text("# The course\n\nno table here\n")
    with pytest.raises(BuildError, match="README.md needs the line <!-- hours:start -->"):
        build(repo)
    assert not (repo / "hours").exists()  # nothing written when any output cannot be built
    with pytest.raises(BuildError, match="found 1 start and 0 end"):
        render_readme("<!-- hours:start -->\n", [])


def one_line_error(repo: Path) -> str:
    with pytest.raises(BuildError) as info:
        build(repo)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    ### END SOLUTION\n", "", "has no '### END SOLUTION'"),
        ("    ### BEGIN SOLUTION\n", "", "has no '### BEGIN SOLUTION' before it"),
        ("    return a + b\n", "    ### BEGIN SOLUTION\n", "inside the region opened on line 2"),
        ("    ### END SOLUTION\n", "    ### End Solution\n", "looks like a marker"),
        ("# ### Exercise 1.1: Add\n", "# ### Adding\n", "no exercise heading above it"),
        ("# ### Exercise 1.1: Add\n", "# ### Exercise 1.1: Add\n#\n# ## Next part\n", "no exercise heading above it"),
    ],
)
def test_bad_markers_name_the_file_and_cell(repo: Path, old: str, new: str, expected: str) -> None:
    source = repo / "solutions" / "01_toolkit.py"
    assert old in SOURCE
    source.write_text(SOURCE.replace(old, new, 1))
    message = one_line_error(repo)
    assert message.startswith("solutions/01_toolkit.py, cell 3 ('def add(a, b):')")
    assert expected in message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("01_tools.py", "amla/course/hours.py calls hour 1 '01_toolkit'"),
        ("19_extra.py", "amla/course/hours.py has no hour 19"),
        ("1_toolkit.py", "must be named NN_slug.py"),
    ],
)
def test_source_name_must_match_course_hours(repo: Path, name: str, expected: str) -> None:
    (repo / "solutions" / name).write_text(SOURCE)
    message = one_line_error(repo)
    assert message.startswith(f"solutions/{name}:") and expected in message


def test_hours_selection(repo: Path) -> None:
    with pytest.raises(BuildError, match="hour 2 has no source solutions/02_attention.py"):
        build(repo, hours=[2])
    assert any(line.startswith("solutions/01_toolkit.ipynb: missing") for line in build(repo, hours=[1], check=True))


def test_several_regions_keep_their_indentation(tmp_path: Path) -> None:
    repo = tmp_path
    (repo / "solutions").mkdir()
    shutil.copy(CONFIG, repo / "solutions" / "jupytext.toml")
    code = (
        "# %% [markdown]\n# ## Exercise 2.3: Scaled \"dot\" products\n\n"
        "# %%\nclass Attn:\n    def score(self, q, k):\n        ### BEGIN SOLUTION\n        s = q @ k\n"
        "        return s / 2\n        ### END SOLUTION\n\n### BEGIN SOLUTION\nattn = Attn()\n### END SOLUTION\n"
    )
    (repo / "solutions" / "02_attention.py").write_text(code)
    student = student_notebook(load_source(repo / "solutions" / "02_attention.py"))
    message = 'raise NotImplementedError("Exercise 2.3 (Scaled \\"dot\\" products): replace this line with your code")'
    assert student.cells[2].source == (
        f"class Attn:\n    def score(self, q, k):\n        # YOUR CODE HERE\n        {message}\n\n# YOUR CODE HERE\n{message}"
    )
    compile(student.cells[2].source, "student", "exec")


def test_cell_ids_are_stable_and_distinct_for_duplicates(repo: Path) -> None:
    source = repo / "solutions" / "01_toolkit.py"
    source.write_text(SOURCE + "\n# %%\nprint(1)\n\n# %%\nprint(1)\n")
    first, second = load_source(source), load_source(source)
    ids = [c.id for c in first.cells]
    assert ids == [c.id for c in second.cells] and len(set(ids)) == len(ids)
    assert notebook_bytes(first) == notebook_bytes(second)


def test_jupytext_round_trip(repo: Path) -> None:
    config = load_jupytext_configuration_file(str(CONFIG))
    source = repo / "solutions" / "01_toolkit.py"
    nb = load_source(source)
    without_setup = nbformat.from_dict({**nb, "cells": nb.cells[1:]})
    assert jupytext.writes(without_setup, "py:percent", config=config) == SOURCE
    # the build puts the set-up cell into the source too: the paired notebook opens with it in JupyterLab
    build(repo)
    assert jupytext.writes(load_source(source), "py:percent", config=config) == source.read_text()
    # What pairing in JupyterLab writes back (setup cell included, read from the .ipynb) is the source itself.
    saved = read(repo / "solutions" / "01_toolkit.ipynb")
    saved.cells[1].metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00Z"}
    paired = jupytext.writes(saved, "py:percent", config=config)
    assert paired.startswith('# %% tags=["setup"]\n') and "execution" not in paired and "iopub" not in paired
    assert paired == source.read_text()
    source.write_text(paired)
    assert notebook_bytes(load_source(source)) == (repo / "solutions" / "01_toolkit.ipynb").read_bytes()
    assert build(repo, check=True) == []


def test_find_root(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    nested = repo / "hours" / "deeper"
    nested.mkdir(parents=True)
    assert find_root(nested) == repo.resolve()
    with pytest.raises(BuildError, match=r"run amla build inside the course repository \(no solutions/ found above CWD\)"):
        find_root(tmp_path_factory.mktemp("elsewhere"))
