"""Test-suite settings shared by tests/ and the nbval run over solutions/.

Set before any notebook kernel starts, so the kernels inherit them: the smoke profile (every cell runs,
no quality claim) and the shared test data when it lies beside the repo.
"""

import os
from pathlib import Path

os.environ.setdefault("AMLA_PROFILE", "smoke")
_shared = Path(__file__).resolve().parent.parent / "shared" / "data"
if "AMLA_DATA" not in os.environ and _shared.is_dir():
    os.environ["AMLA_DATA"] = str(_shared)
# The solution notebooks (run by nbval in this process's environment) must pass every exercise: their
# `amla.checks.summary()` cell raises otherwise. tests/test_student_notebooks.py sets "open" for the students'.
os.environ.setdefault("AMLA_EXPECT_EXERCISES", "passed")
# Nothing downloads in tests: a data file that set-up did not fetch is a clear DataMissing, not a download.
os.environ.setdefault("AMLA_OFFLINE", "1")

# Under pytest-xdist (pyproject's addopts: -n 2 --dist loadscope) every worker and the notebook kernels it
# starts use one thread each, so two workers share the two cores instead of fighting over them.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

