"""The web assets slides and pages need, unpacked from their packages so that nothing loads from a CDN.

- ``reveal.js``: the npm package reveal.js 5.2.1 (MIT): ``dist/`` (the script, its style sheets and themes with
  their fonts) and the speaker-notes plugin;
- ``mathjax``: MathJax 2.7, as Jupyter packages it on PyPI (``jupyter_server_mathjax`` 0.2.6, Apache-2.0): the
  version nbconvert's templates are written for.

Both archives come from ``amla.toolkit.data.fetch`` (sha256-verified; ``make setup`` fetches them), and
``unpack(name, dest)`` copies the parts a page loads into ``dest/<name>/`` with the package's licence. Pages
then refer to them by relative URLs (``REVEAL_PREFIX``, ``MATHJAX_URL``), so a folder of slides or a built site
opens from disk, with no server and no network.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from nbformat import NotebookNode

from amla.toolkit.data import fetch, sha256_of
from amla.views.base import WIDGET_VIEW_MIMETYPE

WIDGET_STATE_MIMETYPE = "application/vnd.jupyter.widget-state+json"

ASSETS = "assets"
"""The folder, next to the pages, that holds the unpacked packages."""
REVEAL_PREFIX = f"{ASSETS}/reveal.js"
MATHJAX_URL = f"{ASSETS}/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
"""MathJax's entry point with the configuration that package ships (TeX input, HTML-CSS / MathML output)."""
MATHJAX_FONTS = {"HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None}}
"""What a page must tell MathJax (``window.MathJax = ...`` before MathJax.js loads): the package keeps only the
STIX-Web web fonts, and MathJax's default (its TeX fonts) would be a missing file, as in Jupyter's own pages."""

_PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name: (the prefix inside the archive, the paths under it that pages load)
    "reveal.js": ("package/", ("dist/", "plugin/notes/", "LICENSE")),
    "mathjax": ("jupyter_server_mathjax/static/", ("",)),
}


def _members(name: str, archive: Path) -> list[tuple[str, bytes]]:
    prefix, keep = _PARTS[name]
    out: list[tuple[str, bytes]] = []
    if name == "reveal.js":
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                rel = member.name.removeprefix(prefix)
                if member.isfile() and member.name.startswith(prefix) and rel.startswith(keep):
                    data = tar.extractfile(member)
                    assert data is not None  # a regular file
                    out.append((rel, data.read()))
    else:
        with zipfile.ZipFile(archive) as whl:
            for info in whl.infolist():
                rel = info.filename.removeprefix(prefix)
                if not info.is_dir() and info.filename.startswith(prefix) and rel.startswith(keep):
                    out.append((rel, whl.read(info)))
    return out


def unpack(name: str, dest: Path, *, download: bool = True) -> Path:
    """``dest/<name>/`` holding the parts of the package ``name`` (``"reveal.js"`` or ``"mathjax"``) that pages
    load; done once per archive (a stamp file records its sha256), so calling it again is cheap."""
    if name not in _PARTS:
        raise ValueError(f"unknown web asset {name!r}; expected one of {', '.join(sorted(_PARTS))}")
    archive = fetch(name, download=download)
    target = Path(dest) / name
    stamp = target / ".amla-sha256"
    digest = sha256_of(archive)
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return target
    members = _members(name, archive)
    if not members:
        raise ValueError(f"{archive} holds none of {name}'s files; is it the right archive?")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        staged = Path(tmp) / name
        for rel, data in members:
            path = PurePosixPath(rel)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(f"{archive}: member {rel!r} would leave the asset folder")
            out = staged.joinpath(*path.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        (staged / ".amla-sha256").write_text(digest + "\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)  # the folder appears whole or not at all
    return target


def static_outputs(nb: NotebookNode) -> NotebookNode:
    """``nb`` (changed in place) as a static page shows it: no widget state and no widget views, so no page
    fetches a widget manager from a CDN; each view's output keeps the picture (and text) every course view leaves
    beside its widget."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            data.pop(WIDGET_VIEW_MIMETYPE, None)
            data.pop(WIDGET_STATE_MIMETYPE, None)
    return nb


def install(dest: Path, names: tuple[str, ...] = ("reveal.js", "mathjax"), *, download: bool = True) -> Path:
    """``dest/assets/`` with the packages ``names`` unpacked in it; returns that folder."""
    folder = Path(dest) / ASSETS
    for name in names:
        unpack(name, folder, download=download)
    return folder
