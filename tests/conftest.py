"""Fixtures shared by the test modules (the suite's settings are in the repository's conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from browser_pages import started_lab
from browser_support import LabServer


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One JupyterLab per test process for all browser tests (started only when a browser test asks for it)."""
    yield from started_lab(tmp_path_factory)
