"""The course data directory, sha256-verified downloads, and the small datasets the early hours use.

Nothing downloads at import. ``AMLA_DATA`` names the data directory (CI points it at a read-only
copy of the test data); otherwise it is ``$XDG_CACHE_HOME/amla`` or ``~/.cache/amla``. Files are looked for in
the data directory, then in that cache; ``AMLA_OFFLINE=1`` (set by the test suite) forbids downloads.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATA_ENV = "AMLA_DATA"
OFFLINE_ENV = "AMLA_OFFLINE"


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
    "mnist-train-images": RemoteFile(
        "MNIST/raw/train-images-idx3-ubyte.gz",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "mnist-train-labels": RemoteFile(
        "MNIST/raw/train-labels-idx1-ubyte.gz",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
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
    "sentence-polarity": RemoteFile(
        "vaderSentiment/vaderSentiment-3.3.2.tar.gz",
        "https://files.pythonhosted.org/packages/77/8c/4a48c10a50f750ae565e341e697d74a38075a3e43ff0df6f1ab72e186902/"
        "vaderSentiment-3.3.2.tar.gz",
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    ),
    "reveal.js": RemoteFile(
        "web/reveal.js-5.2.1.tgz",
        "https://registry.npmjs.org/reveal.js/-/reveal.js-5.2.1.tgz",
        "359b575dd51bbda32f89b2fd4c7dc46ad7389a805572158916c29252f7a27333",
    ),
    "mathjax": RemoteFile(
        "web/jupyter_server_mathjax-0.2.6-py3-none-any.whl",
        "https://files.pythonhosted.org/packages/7d/77/6a98cc88f1061c0206b427b602efb6fcb9bc369e958aee11676d5cfc4412/"
        "jupyter_server_mathjax-0.2.6-py3-none-any.whl",
        "416389dde2010df46d5fbbb7adb087a5607111070af65a1445391040f2babb5e",
    ),
}
"""Every file the course may download (the Planetoid graphs' raw files are added below). ``sentence-polarity`` is
the source archive of the PyPI package vaderSentiment 3.3.2 (MIT), which carries Pang & Lee's sentence polarity
data (Hour 07); ``make setup`` fetches it, since it is on PyPI. ``reveal.js`` (the npm package, MIT) and
``mathjax`` (MathJax 2.7 as packaged on PyPI by Jupyter, Apache-2.0) are what ``amla slides`` and ``amla site``
copy next to what they write, so that slides and pages work offline (``amla.course.assets``)."""

PLANETOID_PARTS = ("allx", "ally", "graph", "test.index", "tx", "ty", "x", "y")
"""The raw files of a Planetoid graph (``ind.<name>.<part>``), as PyG's ``read_planetoid_data`` reads them."""
_PLANETOID_SHA256 = {
    ("cora", "Cora"): (
        "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
        "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
        "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
        "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
        "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
        "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
        "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
        "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
    ),
    ("citeseer", "CiteSeer"): (
        "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
        "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
        "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
        "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
        "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
        "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
        "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
        "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
    ),
}
for (_key, _folder), _digests in _PLANETOID_SHA256.items():
    for _part, _sha in zip(PLANETOID_PARTS, _digests):
        REMOTE_FILES[f"planetoid-{_key}-{_part}"] = RemoteFile(
            f"planetoid/{_folder}/raw/ind.{_key}.{_part}",
            f"https://github.com/kimiyoung/planetoid/raw/master/data/ind.{_key}.{_part}",
            _sha,
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _places(remote: RemoteFile, root: Path | None) -> list[Path]:
    """Where ``remote`` may lie: under ``root`` alone if given, else the data directory, then the user's cache
    (CI's data directory is a read-only copy of the test data; what set-up fetches lands in the cache)."""
    if root is not None:
        return [remote.path(root)]
    places = [remote.path(data_dir()), remote.path(user_cache())]
    return places if places[0] != places[1] else places[:1]


def _writable(path: Path) -> bool:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def fetch(name: str, *, root: Path | None = None, download: bool = True, timeout: float = 30.0) -> Path:
    """Path to the verified file ``name`` of ``REMOTE_FILES``, downloading it when absent.

    The file is looked for in the data directory, then in the user's cache (``root``: there only). A present
    file with the wrong sha256 is an error (never silently replaced). A missing file is downloaded into the first
    of those folders that is writable, unless ``download`` is false or ``AMLA_OFFLINE=1`` (the test suite sets
    it: nothing downloads in tests); then ``DataMissing`` says which file, from where, and where to put it.
    """
    if name not in REMOTE_FILES:
        raise KeyError(f"unknown data file {name!r}; known: {', '.join(sorted(REMOTE_FILES))}")
    remote = REMOTE_FILES[name]
    places = _places(remote, root)
    for target in places:
        if target.exists():
            got = sha256_of(target)
            if got != remote.sha256:
                raise ChecksumMismatch(
                    f"{target} has sha256 {got[:12]}..., expected {remote.sha256[:12]}...; delete it to download again"
                )
            return target
    target = next((p for p in places if _writable(p)), places[0])
    how = f"download {remote.url} to {target} (or set {DATA_ENV} to a directory holding {remote.relpath})"
    if not download or os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        why = f" ({OFFLINE_ENV} is set)" if download else ""
        raise DataMissing(f"{name}: {target} is missing{why}; {how}")
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


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format, gzipped): a big-endian header of dimension sizes, then uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist(split: str = "test", *, download: bool = True, timeout: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's ``"train"`` (60,000) or ``"test"`` (10,000) images, ``float32 [N, 28, 28]`` in [0, 1], and labels
    ``int64 [N]``, from the data directory (sha256-verified; downloaded there when absent and ``download``)."""
    if split not in ("train", "test"):
        raise ValueError(f"mnist: split must be 'train' or 'test', got {split!r}")
    images = read_idx(fetch(f"mnist-{split}-images", download=download, timeout=timeout))
    labels = read_idx(fetch(f"mnist-{split}-labels", download=download, timeout=timeout))
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


def status(root: Path | None = None) -> dict[str, str]:
    """For ``amla doctor``: which known data files are present (and verified) in the data directory."""
    result = {}
    for name, remote in REMOTE_FILES.items():
        path = next((p for p in _places(remote, root) if p.exists()), remote.path(root))
        if not path.exists():
            result[name] = "missing (downloaded on first use)"
        else:
            result[name] = "ok" if sha256_of(path) == remote.sha256 else "WRONG sha256"
    return result


SENTENCE_POLARITY_POSITIVE = 5152
"""IDs 1-5152 of the file are the positive sentences of Pang & Lee's data (``rt-polarity.pos``), the rest negative."""


def sentence_polarity(*, download: bool = True) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Pang & Lee's sentence polarity data (Rotten Tomatoes snippets, ACL 2005; 10,605 of its 10,662 sentences, as
    Hutto & Gilbert's VADER study re-segmented them): ``(texts, labels int64 [N] with 1 = positive, ratings
    float32 [N])``, the ratings being the mean of at least 20 human judges on -4..+4. Read from the source
    archive of the PyPI package vaderSentiment 3.3.2 (``additional_resources/hutto_ICWSM_2014.tar.gz``),
    sha256-verified."""
    import tarfile

    archive = fetch("sentence-polarity", download=download)
    with tarfile.open(archive) as outer:
        member = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        if member is None:  # pragma: no cover - the sha256 pins the archive's content
            raise DataMissing(f"{archive} has no hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=member) as inner:
            raw = inner.extractfile("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
            lines = raw.read().decode("utf-8").splitlines() if raw is not None else []
    rows = [line.split("\t") for line in lines if line.strip()]
    texts = [text.strip() for _, _, text in rows]
    labels = np.array([int(int(i) <= SENTENCE_POLARITY_POSITIVE) for i, _, _ in rows], dtype=np.int64)
    ratings = np.array([float(r) for _, r, _ in rows], dtype=np.float32)
    return texts, labels, ratings


def digits8x8() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits ``float32 [N, 8, 8]`` in [0, 1] and labels ``int64 [N]``, read from the CSV
    scikit-learn ships (what ``sklearn.datasets.load_digits`` reads, without importing scikit-learn, which takes
    seconds); where the package keeps it elsewhere, through ``load_digits`` itself."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if path is not None and path.exists():
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels = bunch.images.astype(np.float32), bunch.target.astype(np.int64)
    return images / 16.0, labels


def digits(test_fraction: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits (ships with scikit-learn, no download), as float tensors in [0, 1].

    Returns ``x_train [N, 64], y_train [N], x_test [M, 64], y_test [M]`` from a stratified split.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    from sklearn.model_selection import train_test_split

    images, y = digits8x8()
    x = images.reshape(len(images), 64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te), torch.from_numpy(y_te)
