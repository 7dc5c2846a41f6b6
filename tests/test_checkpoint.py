import os
import random
from unittest import mock

import numpy as np
import pytest
import torch

from amla.toolkit.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_roundtrip_with_weights_only(tmp_path):
    state = {"w": torch.arange(4.0), "step": 3, "nested": {"a": [1, 2.5, "x"]}, "rng": rng_state()}
    path = save_checkpoint(tmp_path / "sub" / "c.pt", state)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 3 and loaded["nested"] == state["nested"]
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temporary file left


def test_rng_state_restores_every_generator():
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_truncated_checkpoint_is_a_clear_error_and_the_previous_one_survives(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.ones(1000), "step": 1})
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(64)
        raise OSError("disk full")

    with mock.patch("torch.save", crash_midway), pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.zeros(1000), "step": 2})
    assert load_checkpoint(path)["step"] == 1  # the previous good checkpoint still loads
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]

    copy = tmp_path / "copied.pt"
    copy.write_bytes(path.read_bytes()[:300])  # e.g. a copy cut off halfway
    with pytest.raises(CheckpointError, match=r"copied.pt \(300 bytes\) is truncated"):
        load_checkpoint(copy)
    assert load_checkpoint(path)["step"] == 1


def test_damaged_inside_and_foreign_files(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(10_000)})
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = b"\0" * 2000  # damage inside a valid-looking zip
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="must be a dict"):
        save_checkpoint(tmp_path / "x.pt", [1, 2])
