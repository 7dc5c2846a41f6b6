"""The shared pieces of the GAN hours: the 2-D mixtures and their mode metric, the digit images, the classifier."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from amla.gan import images, toy
from amla.toolkit.data import DATA_ENV, DataMissing


# --- the 2-D mixtures -----------------------------------------------------------------------------


def test_ring_has_eight_distinct_modes_on_the_unit_circle() -> None:
    ring = toy.ring()
    assert ring.modes.shape == (8, 2) and ring.modes.dtype == torch.float32 and ring.std == 0.01
    assert torch.allclose(ring.modes.norm(dim=1), torch.ones(8))
    gaps = torch.cdist(ring.modes, ring.modes) + 10 * torch.eye(8)
    assert gaps.min() > 0.76  # neighbours 2 sin(pi / 8) = 0.765 apart: no mode counted twice
    assert torch.allclose(ring.modes[0], torch.tensor([1.0, 0.0]))


def test_grid_is_five_by_five_two_apart() -> None:
    grid = toy.grid()
    assert grid.modes.shape == (25, 2) and grid.std == 0.05
    assert sorted(set(grid.modes[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(m) for m in grid.modes.tolist()}) == 25


def test_samples_lie_around_the_modes() -> None:
    ring = toy.ring()
    x = ring.sample(4000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4000, 2) and x.dtype == torch.float32
    nearest = torch.cdist(x, ring.modes).min(dim=1).values
    assert nearest.max() < 6 * ring.std
    assert abs(float((x - ring.modes[torch.cdist(x, ring.modes).argmin(1)]).std()) - ring.std) < 0.001
    assert ring.coverage(x) == (8, pytest.approx(1.0, abs=0.02))
    again = ring.sample(4000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_log_density_is_the_mixture_density() -> None:
    mix = toy.Mixture(torch.tensor([[0.0, 0.0], [3.0, 0.0]]), 0.5)
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)

    def normal(point: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((point - mean) ** 2).sum() / (2 * 0.25)) / (2 * math.pi * 0.25)

    expected = torch.stack([torch.log(0.5 * normal(p, mix.modes[0].double()) + 0.5 * normal(p, mix.modes[1].double()))
                            for p in x])
    got = mix.log_density(x)
    assert got.dtype == torch.float64 and torch.allclose(got, expected)


def test_mode_coverage_counts_high_quality_samples_and_captured_modes() -> None:
    ring = toy.ring()
    modes = ring.modes.clone()
    exact = modes.repeat(3, 1)
    assert toy.mode_coverage(exact, modes, ring.std) == (8, 1.0)
    assert torch.equal(modes, ring.modes)  # inputs untouched
    one_mode = modes[:1] + torch.tensor([[0.02, 0.0]])  # 2 std away: high quality
    assert toy.mode_coverage(one_mode.repeat(10, 1), modes, ring.std) == (1, 1.0)
    on_the_edge = modes[:1] + torch.tensor([[0.03, 0.0]])  # exactly 3 std: counts
    assert toy.mode_coverage(on_the_edge, modes.double(), ring.std)[0] == 1
    between = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    assert toy.mode_coverage(between, modes, ring.std) == (0, 0.0)
    half = torch.cat([modes[:2], torch.zeros(2, 2)])
    captured, quality = toy.mode_coverage(half, modes, ring.std)
    assert (captured, quality) == (2, 0.5) and type(captured) is int and type(quality) is float


@pytest.mark.parametrize("samples, modes, std, message", [
    (torch.zeros(0, 2), torch.zeros(3, 2), 0.1, "samples must be a non-empty tensor"),
    (torch.zeros(4, 3), torch.zeros(3, 2), 0.1, r"samples must be .* got \(4, 3\)"),
    (torch.zeros(4, 2), torch.zeros(3), 0.1, "modes must be a non-empty tensor"),
    (torch.zeros(4, 2), torch.zeros(3, 2), 0.0, "std must be a positive number"),
])
def test_mode_coverage_bad_input(samples, modes, std, message) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=message):
        toy.mode_coverage(samples, modes, std)


def test_mean_sem() -> None:
    assert toy.mean_sem([8, 8, 8]) == (8.0, 0.0)
    mean, sem = toy.mean_sem([6, 8])
    assert mean == 7.0 and sem == pytest.approx(1.0)
    assert toy.mean_sem([3.5]) == (3.5, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        toy.mean_sem([])


# --- digit images ---------------------------------------------------------------------------------


def test_digits8x8_split_is_disjoint_stratified_and_in_range() -> None:
    d = images.digit_images("digits8x8")
    assert d.name == "digits8x8" and d.size == 8
    assert d.gan_x.shape[1:] == (1, 8, 8) and d.gan_x.dtype == torch.float32 and d.gan_y.dtype == torch.int64
    assert len(d.gan_x) + len(d.held_x) == 1797
    assert d.gan_x.min() == -1.0 and d.gan_x.max() == 1.0
    assert (torch.bincount(d.gan_y) - torch.bincount(d.held_y)).abs().max() <= 1  # stratified halves
    gan_rows = {tuple(r) for r in d.gan_x.flatten(1).tolist()}
    assert sum(tuple(r) in gan_rows for r in d.held_x.flatten(1).tolist()) < 20  # the few true duplicates only
    assert "digits8x8: 8x8 images" in d.describe()


@pytest.mark.skipif(not (Path(__import__("os").environ.get(DATA_ENV, "/nonexistent")) / "MNIST/raw").is_dir(),
                    reason="MNIST's test set is not in the data directory")
def test_mnist_test_set_from_the_data_directory() -> None:
    d = images.digit_images("auto", download=False)
    assert d.name == "mnist" and d.size == 28 and len(d.gan_x) == len(d.held_x) == 5000
    assert d.gan_x.shape[1:] == (1, 28, 28) and -1.0 == d.gan_x.min() and d.gan_x.max() == 1.0
    mnist_test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # MNIST's published test set
    assert (torch.bincount(d.gan_y) + torch.bincount(d.held_y)).tolist() == mnist_test_counts
    assert (torch.bincount(d.gan_y) - torch.bincount(d.held_y)).abs().max() <= 1  # stratified halves


def test_missing_mnist_falls_back_or_says_where_to_put_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(DataMissing, match="t10k-images-idx3-ubyte.gz is missing"):
        images.digit_images("mnist", download=False)
    d = images.digit_images("auto", download=False)
    assert d.name == "digits8x8" and "MNIST not available" in d.note
    with pytest.raises(ValueError, match="source must be one of auto, mnist, digits8x8"):
        images.digit_images("cifar")


# --- the classifier -------------------------------------------------------------------------------


def test_classifier_shapes_and_bad_input() -> None:
    for size in (28, 8):
        model = images.DigitClassifier(size).eval()
        x = torch.rand(3, 1, size, size) * 2 - 1
        assert model(x).shape == (3, 10) and model.features(x).shape == (3, 128)
        assert (model.features(x) >= 0).all()
    with pytest.raises(ValueError, match=r"expected images \[N, 1, 28, 28\], got \(3, 28, 28\)"):
        images.DigitClassifier(28)(torch.zeros(3, 28, 28))
    with pytest.raises(ValueError, match="divisible by 4"):
        images.DigitClassifier(10)


def test_shift_moves_images_by_whole_pixels() -> None:
    x = -torch.ones(50, 1, 8, 8)
    x[:, :, 3, 4] = 1.0
    moved = images._shift(x, 1, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and (moved == 1.0).sum(dim=(1, 2, 3)).eq(1).all()
    rows, cols = torch.nonzero(moved[:, 0] == 1.0)[:, 1], torch.nonzero(moved[:, 0] == 1.0)[:, 2]
    assert set(rows.tolist()) == {2, 3, 4} and set(cols.tolist()) == {3, 4, 5}


def test_classifier_learns_and_is_cached(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = images.digit_images("digits8x8")
    first = images.classifier_for(d, steps=150, cache_dir=tmp_path)
    assert "trained (150 steps) and saved" in capsys.readouterr().out
    assert images.accuracy(first, d.gan_x, d.gan_y) > 0.75  # 0.88-0.89 here after a few seconds; the hours train longer
    again = images.classifier_for(d, steps=150, cache_dir=tmp_path)
    assert "loaded from" in capsys.readouterr().out
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    per_class = images.per_class_accuracy(again, d.gan_x, d.gan_y)
    counts = torch.bincount(d.gan_y, minlength=10).tolist()
    weighted = sum(a * n for a, n in zip(per_class, counts)) / sum(counts)
    assert len(per_class) == 10 and all(0.0 <= a <= 1.0 for a in per_class)
    assert weighted == pytest.approx(images.accuracy(again, d.gan_x, d.gan_y))  # the classes add up to the whole
    next(tmp_path.glob("*.pt")).write_bytes(b"truncated")
    images.classifier_for(d, steps=150, cache_dir=tmp_path)
    assert "could not be used" in capsys.readouterr().out
