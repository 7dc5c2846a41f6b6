import random

import numpy as np
import pytest
import torch

import amla
from amla.toolkit import env


def test_seed_everything_repeats_python_numpy_torch():
    env.seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(2))
    env.seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


@pytest.mark.parametrize("bad", [-1, 1.5, "0"])
def test_seed_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        env.seed_everything(bad)


def test_pick_device_order_and_override(monkeypatch):
    monkeypatch.delenv("AMLA_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert env.pick_device().type == expected
    monkeypatch.setenv("AMLA_DEVICE", "cpu")
    assert env.pick_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            env.pick_device("cuda")


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("AMLA_PROFILE", "CPU")
    assert env.profile() == "cpu"
    monkeypatch.setenv("AMLA_PROFILE", "huge")
    with pytest.raises(ValueError, match="expected one of smoke, cpu, gpu"):
        env.profile()
    monkeypatch.delenv("AMLA_PROFILE")
    assert env.profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_per_profile_picks_and_validates(monkeypatch):
    monkeypatch.setenv("AMLA_PROFILE", "smoke")
    s = env.per_profile(smoke=dict(steps=2, width=8), cpu=dict(steps=200, width=64))
    assert (s.steps, s.width) == (2, 8)
    monkeypatch.setenv("AMLA_PROFILE", "gpu")
    assert env.per_profile(smoke=dict(steps=2), cpu=dict(steps=200)).steps == 200  # gpu falls back to cpu
    with pytest.raises(ValueError, match=r"missing \['width'\]"):
        env.per_profile(smoke=dict(steps=2), cpu=dict(steps=200, width=64))
    with pytest.raises(ValueError, match="unknown profile"):
        env.per_profile(smoke={}, cpu={}, laptop={})
    with pytest.raises(ValueError, match="needs a 'cpu' entry"):
        env.per_profile(smoke={})


def test_env_report_and_setup(capsys, monkeypatch):
    monkeypatch.setenv("AMLA_PROFILE", "smoke")
    report = amla.env_report()
    for key in ("python", "torch", "device", "bf16", "ipywidgets", "colab", "profile"):
        assert report[key]
    assert report["colab"] == "no" and report["profile"] == "smoke"
    device = amla.setup(hour=1, seed=5)
    out = capsys.readouterr().out
    assert "Hour 01" in out and "profile: smoke" in out and f"device: {device}" in out
