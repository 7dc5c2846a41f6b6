"""``amla.report(name=value, ...)``: the key metrics an hour measures.

In a notebook it prints them as one line. When ``AMLA_REPORT`` names a file (``amla bench`` sets it),
the metrics are also merged into the JSON object kept in that file, which is how ``amla bench``
collects every hour's numbers.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path

REPORT_ENV = "AMLA_REPORT"


def _plain(name: str, value: object) -> float | int | str | bool:
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if hasattr(value, "item") and callable(value.item):  # 0-d tensors and numpy scalars
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"report: {name}={value} is not a finite number")
        return value
    raise TypeError(f"report: {name} must be a number, bool or str, got {type(value).__name__}")


def report(**metrics: object) -> None:
    """Record metrics: ``amla.report(test_accuracy=0.981, train_s=42.0)`` prints them and saves them for ``amla bench``."""
    if not metrics:
        raise ValueError("report() needs at least one name=value pair, e.g. report(test_accuracy=0.98)")
    plain = {name: _plain(name, value) for name, value in metrics.items()}
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in plain.items())
    print(f"[amla report] {shown}")
    target = os.environ.get(REPORT_ENV)
    if target:
        path = Path(target)
        existing = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
        existing.update(plain)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(existing, indent=1))
        os.replace(tmp, path)


def read_report(path: str | os.PathLike[str]) -> dict[str, float | int | str | bool]:
    """The metrics a notebook reported into ``path`` ({} when it reported none)."""
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() and p.stat().st_size else {}
