import os
import urllib.error

import numpy as np

import pytest
import torch

import amla
from amla.toolkit import data
from amla.toolkit.report import read_report


def test_data_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AMLA_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv("AMLA_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_dir() == tmp_path / "cache" / "amla"


def test_fetch_verifies_the_real_shared_file():
    """The shared test data (CI points AMLA_DATA at ../shared/data) passes the real sha256 check."""
    if not data.REMOTE_FILES["tinyshakespeare"].path().exists():
        pytest.skip("tiny Shakespeare is not in AMLA_DATA; CI sets AMLA_DATA=../shared/data")
    path = data.fetch("tinyshakespeare", download=False)
    assert path.read_text()[:9] == "First Cit"


@pytest.fixture
def online(monkeypatch):
    """The suite forbids downloads (AMLA_OFFLINE=1, conftest.py); these tests fake the network instead."""
    monkeypatch.delenv("AMLA_OFFLINE", raising=False)


def _offline(*args, **kwargs):
    raise urllib.error.URLError("no network")


def test_fetch_offline_names_the_missing_file(monkeypatch, tmp_path, online):
    monkeypatch.setattr(data.urllib.request, "urlopen", _offline)
    with pytest.raises(data.DataMissing) as err:
        data.fetch("tinyshakespeare", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "tinyshakespeare" / "input.txt") in message
    assert data.REMOTE_FILES["tinyshakespeare"].url in message and "AMLA_DATA" in message
    assert not any(tmp_path.rglob("*.part"))  # no half-written file left behind


class _FakeResponse:
    def __init__(self, payload: bytes):
        self.payload = payload

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, n=-1):
        chunk, self.payload = self.payload, b""
        return chunk


def test_fetch_downloads_and_rejects_wrong_checksum(monkeypatch, tmp_path, online):
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(b"not shakespeare"))
    with pytest.raises(data.ChecksumMismatch, match="expected 86c4e6aa9db7"):
        data.fetch("tinyshakespeare", root=tmp_path)
    assert not (tmp_path / "tinyshakespeare" / "input.txt").exists()
    # a corrupt file already in place is reported, never silently used
    target = tmp_path / "tinyshakespeare" / "input.txt"
    target.write_text("corrupt")
    with pytest.raises(data.ChecksumMismatch, match="delete it"):
        data.fetch("tinyshakespeare", root=tmp_path)


def _demo(monkeypatch, payload=b"hello course"):
    import hashlib

    remote = data.RemoteFile("demo/hello.txt", "https://example.invalid/hello.txt", hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(data.REMOTE_FILES, "demo", remote)
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(payload))
    return payload


def test_fetch_downloads_a_verified_file(monkeypatch, tmp_path, online):
    payload = _demo(monkeypatch)
    assert data.fetch("demo", root=tmp_path).read_bytes() == payload
    with pytest.raises(KeyError, match="unknown data file 'nope'"):
        data.fetch("nope")


def test_fetch_never_downloads_under_amla_offline(monkeypatch, tmp_path):
    _demo(monkeypatch)
    monkeypatch.setenv("AMLA_OFFLINE", "1")
    with pytest.raises(data.DataMissing, match="AMLA_OFFLINE is set") as err:
        data.fetch("demo", root=tmp_path)
    assert "\n" not in str(err.value) and not (tmp_path / "demo").exists()


def test_fetch_reads_the_cache_when_the_data_dir_lacks_a_file_and_downloads_where_it_can_write(
        monkeypatch, tmp_path, online):
    payload = _demo(monkeypatch)
    shared, cache = tmp_path / "shared", tmp_path / "cache"
    shared.mkdir()
    monkeypatch.setenv("AMLA_DATA", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    (cache / "amla" / "demo").mkdir(parents=True)
    (cache / "amla" / "demo" / "hello.txt").write_bytes(payload)
    assert data.fetch("demo", download=False) == cache / "amla" / "demo" / "hello.txt"
    (cache / "amla" / "demo" / "hello.txt").unlink()
    monkeypatch.setattr(data.os, "access", lambda path, mode: not str(path).startswith(str(shared)))
    assert data.fetch("demo") == cache / "amla" / "demo" / "hello.txt", "a read-only data dir: into the cache"
    assert data.status()["demo"] == "ok"


def test_sentence_polarity_is_pang_and_lees_data_from_the_vader_sdist():
    """Hour 07's labelled sentences: `make setup` fetches them (tests never download)."""
    try:
        texts, labels, ratings = data.sentence_polarity(download=False)
    except data.DataMissing as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"run `make data` (amla fetch sentence-polarity) first: {err}")
    assert len(texts) == len(labels) == len(ratings) == 10_605 and int(labels.sum()) == 5_152
    assert texts[0].startswith("The Rock is destined to be the 21st Century's new")
    assert texts[5_152].startswith("Simplistic, silly and tedious.")
    assert labels.dtype == np.int64 and ratings.dtype == np.float32 and -4 <= ratings.min() < 0 < ratings.max() <= 4
    assert (ratings[labels == 1] > 0).mean() > 0.95 and (ratings[labels == 0] < 0).mean() > 0.9
    assert all("\r" not in t and t == t.strip() for t in texts)


def test_digits_split():
    x_tr, y_tr, x_te, y_te = data.digits(test_fraction=0.25)
    assert x_tr.shape == (1347, 64) and x_te.shape == (450, 64)
    assert x_tr.dtype == torch.float32 and 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    assert set(y_te.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="between 0 and 1"):
        data.digits(test_fraction=1.5)


def test_report_prints_and_merges_into_the_bench_file(monkeypatch, tmp_path, capsys):
    target = tmp_path / "report.json"
    monkeypatch.setenv("AMLA_REPORT", str(target))
    amla.report(test_accuracy=torch.tensor(0.975), steps=10)
    amla.report(resume_identical=True)
    assert read_report(target) == {"test_accuracy": pytest.approx(0.975), "steps": 10, "resume_identical": True}
    assert "[amla report] test_accuracy=0.975, steps=10" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not a finite number"):
        amla.report(loss=float("nan"))
    with pytest.raises(TypeError, match="must be a number"):
        amla.report(model=object())
    with pytest.raises(ValueError, match="at least one"):
        amla.report()
