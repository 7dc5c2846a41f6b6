"""Helpers of tests/test_browser.py: an isolated JupyterLab server and Debian's chromium.

``LabServer`` runs ``python -m jupyterlab`` (this interpreter) on 127.0.0.1 with a random token, a
temporary root dir and temporary Jupyter config / data / runtime / workspace dirs, so no user setting
or old workspace leaks in. The labextensions (ipywidgets' manager) and the ``python3`` kernelspec
still come from ``sys.prefix/share/jupyter``, which Jupyter always searches; the kernelspec's
``python`` is replaced by the server's ``sys.executable``, i.e. this interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "browser"


def skip_reason() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not CHROMIUM.exists():
        return (
            f"Debian chromium not found at {CHROMIUM}; install it with `apt-get install -y chromium` "
            "(.ci/run does) to run the browser test"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"playwright is not importable ({exc}); install the dev extra: pip install -e '.[dev]'"
    return None


class StepError(AssertionError):
    """A named step of the browser test failed or timed out."""


@contextlib.contextmanager
def step(name: str, timeout_s: float | None = None) -> Iterator[None]:
    """Name a step, so a failure (or a Playwright timeout) says which step it was and how long it ran."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    start = time.monotonic()
    try:
        yield
    except StepError:
        raise
    except PlaywrightTimeout as exc:
        limit = f" (limit {timeout_s:g} s)" if timeout_s else ""
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StepError(
            f"step '{name}' timed out after {time.monotonic() - start:.1f} s{limit}: {first}"
        ) from exc
    except (AssertionError, PlaywrightError, TimeoutError, OSError, ValueError, KeyError) as exc:
        raise StepError(
            f"step '{name}' failed after {time.monotonic() - start:.1f} s: {type(exc).__name__}: {exc}"
        ) from exc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    """One JupyterLab server in ``base`` (a fresh temporary directory): ``start()``, ``stop()``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.log_path = base / "server.log"
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.kernel_pids: list[int] = []
        self.timings: dict[str, float] = {}

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTER_PLATFORM_DIRS"):
            env.pop(var, None)
        env.update(
            JUPYTER_CONFIG_DIR=str(self.base / "config"),
            JUPYTER_DATA_DIR=str(self.base / "data"),
            JUPYTER_RUNTIME_DIR=str(self.base / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(self.base / "config" / "lab" / "user-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(self.base / "config" / "lab" / "workspaces"),
            IPYTHONDIR=str(self.base / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        return env

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=50",  # the port is read back from the runtime file
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            # no news or update settings here: the Lab gets the course's own (lab-overrides.json, installed by
            # `make setup`), as `make lab` does, and test_browser.py checks that no news prompt shows
            # a safety net if this test process dies without its teardown
            "--ServerApp.shutdown_no_activity_timeout=900",
            "--MappingKernelManager.cull_idle_timeout=900",
            "--MappingKernelManager.cull_interval=60",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def start(self, timeout_s: float = 60.0) -> None:
        start = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.base / "runtime").mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.root, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = start + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise StepError(f"JupyterLab exited with code {self.proc.returncode} while starting")
            info = self._runtime_info()
            if info and self._get("/api/status", base=info["url"].rstrip("/")) is not None:
                self.url = info["url"].rstrip("/")
                break
            if time.monotonic() > deadline:
                raise StepError(f"step 'start JupyterLab' timed out after {timeout_s:g} s (no /api/status)")
            time.sleep(0.2)
        self.timings["server start"] = time.monotonic() - start

    def _runtime_info(self) -> dict[str, Any] | None:
        for path in (self.base / "runtime").glob("jpserver-*.json"):
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):  # being written
                continue
            if self.proc is not None and info.get("pid") == self.proc.pid and info.get("url"):
                return info
        return None

    def _request(self, method: str, path: str, base: str | None = None, timeout: float = 5.0) -> Any:
        request = urllib.request.Request(
            f"{base or self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def start_session(self, path: str, kernel: str = "python3") -> dict[str, Any]:
        """Start the notebook's kernel session through the REST API, before the page opens it: the page
        then connects to it (a kernel the page starts itself can race Lab's kernelspec loading, which
        shows a "Select Kernel" dialog instead)."""
        body = json.dumps({"path": path, "name": path, "type": "notebook", "kernel": {"name": kernel}}).encode()
        request = urllib.request.Request(
            f"{self.url}/api/sessions", data=body, method="POST",
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def _get(self, path: str, base: str | None = None) -> Any:
        try:
            return self._request("GET", path, base=base, timeout=2.0)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def kernels(self) -> list[dict[str, Any]]:
        return self._get("/api/kernels") or []

    def lab_url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.url}{path}{sep}token={self.token}"

    def shutdown_kernels(self) -> None:
        """Shut down every running kernel through the API (a test module's kernels, when it is done)."""
        if self.proc is None or self.proc.poll() is not None or not self.url:
            return
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
            for kernel in self.kernels():
                self._request("DELETE", f"/api/kernels/{kernel['id']}", timeout=10.0)

    def stop(self) -> None:
        """Shut down the kernels and the server: politely through the API, then by signal."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.url:
            self.shutdown_kernels()
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                self._request("POST", "/api/shutdown", timeout=5.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
        # kernels run in their own session: make sure the ones we saw are gone too
        for pid in self.kernel_pids:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not _alive(pid):
                    break
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
                for _ in range(30):
                    if not _alive(pid):
                        break
                    time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours would still answer; the kernel is the server's child, not ours
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
