"""Execute course notebooks (``amla run`` and ``amla bench``) in a kernel of this very interpreter.

The kernel is ``sys.executable -m ipykernel_launcher`` (never whatever ``python`` is first on PATH),
starts in the notebook's folder, and sees ``AMLA_PROFILE`` and ``AMLA_REPORT``; the metrics the
notebook passes to ``amla.toolkit.report`` come back in the result.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import zmq
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode
from traitlets import default

from amla.course.build import SOURCE_DIR, STUDENT_DIR, BuildError
from amla.course.hours import HOURS, Hour, hour
from amla.toolkit.report import REPORT_ENV, read_report

PROFILE_ENV = "AMLA_PROFILE"


def this_interpreter_kernel() -> KernelSpec:
    """An IPython kernel spec that runs ``sys.executable``, so notebooks see this environment's packages."""
    return KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name="Python 3 (ipykernel)",
        language="python",
        metadata={"supported_encryption": ["curve"]},
    )


class _ThisInterpreterSpecs(KernelSpecManager):
    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return this_interpreter_kernel()


class ThisInterpreterKernelManager(AsyncKernelManager):
    """A kernel manager whose every kernel is ``this_interpreter_kernel()``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        # Encrypt the kernel's local TCP traffic where jupyter_client and pyzmq support it (CurveZMQ).
        if self.has_trait("transport_encryption") and zmq.has("curve"):
            self.transport_encryption = "auto"

    @default("kernel_spec_manager")
    def _this_interpreter_specs(self) -> KernelSpecManager:
        return _ThisInterpreterSpecs(parent=self)


@dataclass
class RunResult:
    """What executing one notebook gave: time, reported metrics, and the error of a failed cell."""

    notebook: Path
    wall_s: float
    metrics: dict[str, float | int | str | bool]
    error: str | None = None
    executed: NotebookNode = field(default_factory=nbformat.v4.new_notebook, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def _one_line(text: str, limit: int = 200) -> str:
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_profile(profile: str) -> str:
    from amla.toolkit.env import PROFILES  # imports torch: only when a notebook is about to run

    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    return profile


def execute(path: str | os.PathLike[str], profile: str, timeout: int | None = None,
            env: dict[str, str] | None = None) -> RunResult:
    """Run every cell of the notebook at ``path`` (cwd: its folder); a failed cell stops the run.

    ``timeout`` is the limit per cell in seconds (None: no limit); ``env`` adds environment variables for the
    kernel. The error, when a cell fails,
    reads ``<exception> in cell <n> (<first line of the cell>): <message>``.
    """
    path = Path(path).resolve()
    check_profile(profile)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    nb = nbformat.read(path, as_version=4)
    current = {"index": -1}

    def on_cell_start(cell: NotebookNode, cell_index: int) -> None:
        current["index"] = cell_index

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        kernel_manager_class=ThisInterpreterKernelManager,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=on_cell_start,
    )
    with tempfile.TemporaryDirectory(prefix="amla-report-") as tmp:
        report_file = Path(tmp) / "report.json"
        env = {**os.environ, **(env or {}), PROFILE_ENV: profile, REPORT_ENV: str(report_file)}
        error = None
        start = time.perf_counter()
        try:
            client.execute(env=env)
        except Exception as err:  # a failed cell, a timeout or a dead kernel: all are reported, none raised
            name, message = (err.ename, err.evalue) if isinstance(err, CellExecutionError) else (type(err).__name__, str(err))
            where = ""
            if 0 <= current["index"] < len(nb.cells):
                where = f" in cell {current['index'] + 1} ({_one_line(nb.cells[current['index']].source, 60)})"
            error = f"{name}{where}: {_one_line(message)}"
        wall = time.perf_counter() - start
        metrics = read_report(report_file)
    return RunResult(notebook=path, wall_s=wall, metrics=metrics, error=error, executed=nb)


def notebooks(root: Path, hours: list[int] | None = None, student: bool = False) -> list[tuple[Hour, Path]]:
    """The built notebooks of ``hours`` (default: all that exist), from solutions/ or with ``student`` hours/."""
    folder = root / (STUDENT_DIR if student else SOURCE_DIR)
    if hours:
        chosen = []
        for number in hours:
            h = hour(number)
            path = folder / f"{h.stem}.ipynb"
            if not path.is_file():
                raise BuildError(f"{path.relative_to(root).as_posix()} does not exist; run amla build first")
            chosen.append((h, path))
        return chosen
    found = [(h, folder / f"{h.stem}.ipynb") for h in HOURS if (folder / f"{h.stem}.ipynb").is_file()]
    if not found:
        raise BuildError(f"no built notebooks in {folder.relative_to(root).as_posix()}/; run amla build first")
    return found
