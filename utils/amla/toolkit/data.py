"""The course data directory, sha256-verified downloads, and the small datasets the early hours use.

Nothing downloads at import. ``AMLA_DATA`` names the data directory (CI points it at a read-only
copy of the test data); otherwise it is ``$XDG_CACHE_HOME/amla`` or ``~/.cache/amla``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATA_ENV = "AMLA_DATA"


def user_cache() -> Path:
    """The course's folder in the user's cache: ``$XDG_CACHE_HOME/amla`` or ``~/.cache/amla``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "amla"


def data_dir() -> Path:
    """Where datasets live: ``AMLA_DATA`` or the user's cache directory (``~/.cache/amla``)."""
    explicit = os.environ.get(DATA_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return user_cache()


class DataMissing(FileNotFoundError):
    """A data file is not in the data directory and could not be downloaded."""


class ChecksumMismatch(ValueError):
    """A file's sha256 is not the published one."""


@dataclass(frozen=True)
class RemoteFile:
    """A file of a public dataset: where it sits under the data directory, its URL and its sha256."""

    relpath: str
    url: str
    sha256: str

    def path(self, root: Path | None = None) -> Path:
        return (root or data_dir()) / self.relpath


REMOTE_FILES: dict[str, RemoteFile] = {
    "tinyshakespeare": RemoteFile(
        "tinyshakespeare/input.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    "mnist-test-images": RemoteFile(
        "MNIST/raw/t10k-images-idx3-ubyte.gz",
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "mnist-test-labels": RemoteFile(
        "MNIST/raw/t10k-labels-idx1-ubyte.gz",
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}
"""Every file the course may download. Planetoid graphs are fetched by PyG's own loader."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str, *, root: Path | None = None, download: bool = True, timeout: float = 30.0) -> Path:
    """Path to the verified file ``name`` of ``REMOTE_FILES``, downloading it when absent.

    A present file with the wrong sha256 is an error (never silently replaced); a missing file that
    cannot be downloaded raises ``DataMissing`` saying which file, from where, and where to put it.
    """
    if name not in REMOTE_FILES:
        raise KeyError(f"unknown data file {name!r}; known: {', '.join(sorted(REMOTE_FILES))}")
    remote = REMOTE_FILES[name]
    target = remote.path(root)
    if target.exists():
        got = sha256_of(target)
        if got != remote.sha256:
            raise ChecksumMismatch(
                f"{target} has sha256 {got[:12]}..., expected {remote.sha256[:12]}...; delete it to download again"
            )
        return target
    how = f"download {remote.url} to {target} (or set {DATA_ENV} to a directory holding {remote.relpath})"
    if not download:
        raise DataMissing(f"{name}: {target} is missing; {how}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(remote.url, timeout=timeout) as response, open(tmp, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
    except (urllib.error.URLError, OSError) as err:
        tmp.unlink(missing_ok=True)
        raise DataMissing(f"{name}: {target} is missing and the download failed ({err}); {how}") from None
    got = sha256_of(tmp)
    if got != remote.sha256:
        tmp.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{name}: downloaded file has sha256 {got[:12]}..., expected {remote.sha256[:12]}...")
    os.replace(tmp, target)
    return target


def status(root: Path | None = None) -> dict[str, str]:
    """For ``amla doctor``: which known data files are present (and verified) in the data directory."""
    result = {}
    for name, remote in REMOTE_FILES.items():
        path = remote.path(root)
        if not path.exists():
            result[name] = "missing (downloaded on first use)"
        else:
            result[name] = "ok" if sha256_of(path) == remote.sha256 else "WRONG sha256"
    return result


def digits(test_fraction: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits (ships with scikit-learn, no download), as float tensors in [0, 1].

    Returns ``x_train [N, 64], y_train [N], x_test [M, 64], y_test [M]`` from a stratified split.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te), torch.from_numpy(y_te)
