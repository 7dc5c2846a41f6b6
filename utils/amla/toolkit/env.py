"""Device, seeding, profiles and the environment report.

Every notebook starts with ``device = amla.setup(hour=N)`` and declares its sizes with one line::

    S = amla.per_profile(smoke=dict(steps=20), cpu=dict(steps=2000), gpu=dict(steps=5000))
"""

from __future__ import annotations

import os
import platform
import random
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "gpu")
"""smoke: every cell runs in well under a minute on 2 CPU cores (tests, CI); cpu: reaches the
course targets on a laptop in minutes; gpu: bigger settings for one CUDA GPU."""


def pick_device(prefer: str | None = None) -> torch.device:
    """cuda > mps > cpu, or the device named by ``prefer`` / the ``AMLA_DEVICE`` variable."""
    name = prefer or os.environ.get("AMLA_DEVICE")
    if name:
        dev = torch.device(name)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was asked for, but CUDA is not available here; use 'cpu'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> int:
    """Seed python's ``random``, numpy and torch (all devices) with one number and return it."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def profile() -> str:
    """The run profile: ``AMLA_PROFILE`` if set, else ``gpu`` when CUDA is available, else ``cpu``."""
    value = os.environ.get("AMLA_PROFILE", "").strip().lower()
    if value:
        if value not in PROFILES:
            raise ValueError(f"AMLA_PROFILE={value!r} is not a profile; expected one of {', '.join(PROFILES)}")
        return value
    return "gpu" if torch.cuda.is_available() else "cpu"


def per_profile(**settings: dict[str, Any]) -> SimpleNamespace:
    """Pick the settings of the current profile: ``per_profile(smoke={...}, cpu={...}, gpu={...})``.

    ``gpu`` may be left out (it falls back to ``cpu``). Every profile must name the same keys, so a
    setting cannot silently exist in one size only.
    """
    unknown = set(settings) - set(PROFILES)
    if unknown:
        raise ValueError(f"unknown profile(s) {sorted(unknown)}; expected keys among {list(PROFILES)}")
    for needed in ("smoke", "cpu"):
        if needed not in settings:
            raise ValueError(f"per_profile needs a {needed!r} entry; got only {sorted(settings)}")
    settings.setdefault("gpu", settings["cpu"])
    keys = {name: set(values) for name, values in settings.items()}
    reference = keys["cpu"]
    for name, ks in keys.items():
        if ks != reference:
            missing, extra = sorted(reference - ks), sorted(ks - reference)
            raise ValueError(f"profile {name!r} differs from 'cpu' in its keys: missing {missing}, extra {extra}")
    return SimpleNamespace(**settings[profile()])


def in_colab() -> bool:
    return "google.colab" in sys.modules


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is worth using on this device (only CUDA with native bf16 counts)."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def env_report(device: torch.device | None = None) -> dict[str, str]:
    """Facts that explain a run: versions, device, precision support, widgets, Colab."""
    device = device or pick_device()
    try:
        import ipywidgets

        widgets_version = ipywidgets.__version__
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        widgets_version = "not installed"
    from amla import __version__
    from amla.toolkit.data import data_dir

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "-"
    return {
        "amla": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "gpu": gpu,
        "bf16": "yes" if bf16_supported(device) else "no",
        "cpu threads": str(torch.get_num_threads()),
        "ipywidgets": widgets_version,
        "colab": "yes" if in_colab() else "no",
        "profile": profile(),
        "data dir": str(data_dir()),
    }


def setup(hour: int | None = None, seed: int = 0) -> torch.device:
    """What the first cell of every notebook calls: pick the device, seed, print one status line."""
    from amla.checks.contract import start_hour

    device = pick_device()
    seed_everything(seed)
    start_hour(hour)  # no exercise of this hour checked yet (amla.checks.summary() reports them at the end)
    _configure_ipython()
    where = f"Hour {hour:02d} | " if hour is not None else ""
    print(f"{where}amla profile: {profile()} | device: {device} | seed: {seed} | torch {torch.__version__}")
    return device


def _configure_ipython() -> None:
    """In a notebook kernel: inline figures (a returned matplotlib Figure shows as a picture), and a
    failed self-check shown as its message alone, without a traceback."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    ip = get_ipython()
    if ip is None:
        return
    if getattr(ip, "kernel", None) is not None:
        ip.run_line_magic("matplotlib", "inline")
    from amla.checks.engine import CheckFailed

    def show(shell, etype, value, tb, tb_offset=None):  # noqa: ANN001 - IPython's signature
        print(f"\u2717 {value}", file=sys.stderr)
        return None

    ip.set_custom_exc((CheckFailed,), show)
