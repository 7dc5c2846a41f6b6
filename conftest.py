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
