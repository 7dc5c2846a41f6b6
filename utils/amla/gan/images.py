"""Digit images for the image GANs of Hours 11-12, and the independent classifier that judges them.

``digit_images()`` loads MNIST's test set (10,000 images of 28x28, sha256-verified, from the course's data
directory, downloaded there when online) or, when it is not there and cannot be fetched, scikit-learn's 8x8
digits (1,797 images, shipped with scikit-learn). Either is split once, stratified by class, into

- a **GAN part** (``gan_x``, ``gan_y``): what the GANs train on, and
- a **held-out part** (``held_x``, ``held_y``): what the classifier trains on.

``DigitClassifier`` is a small CNN trained on the held-out part only; its accuracy is measured on the GAN part
(real images it never saw). It never sees a generated image while training, so it is an independent judge: it
tells which class a generated digit looks like (Hour 11) and its penultimate layer gives FID's features (Hour 12).
Images are ``float32 [N, 1, H, W]`` in [-1, 1] (the range of a tanh generator); labels ``int64 [N]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.toolkit.data import DataMissing, digits8x8, mnist, user_cache
from amla.toolkit.train import eval_batches

__all__ = ["DigitClassifier", "DigitImages", "accuracy", "classifier_for", "digit_images", "per_class_accuracy",
           "train_classifier"]

SOURCES = ("auto", "mnist", "digits8x8")


@dataclass(frozen=True)
class DigitImages:
    """Digits split for GAN work; ``name`` says which data it is, ``size`` the image side (28 or 8)."""

    name: str
    size: int
    gan_x: Tensor
    gan_y: Tensor
    held_x: Tensor
    held_y: Tensor
    note: str = ""

    def describe(self) -> str:
        return (f"{self.name}: {self.size}x{self.size} images, {len(self.gan_x):,} for the GAN and "
                f"{len(self.held_x):,} held out for the classifier{(' (' + self.note + ')') if self.note else ''}")


def _mnist_test(download: bool) -> tuple[np.ndarray, np.ndarray]:
    return mnist("test", download=download)


def digit_images(source: str = "auto", held_fraction: float = 0.5, seed: int = 0,
                 download: bool = True) -> DigitImages:
    """Digits as ``DigitImages`` (see the module docstring). ``source``: "mnist", "digits8x8" or "auto" (MNIST
    when it is in the data directory or can be downloaded, else the 8x8 digits, with the reason in ``note``)."""
    if source not in SOURCES:
        raise ValueError(f"digit_images: source must be one of {', '.join(SOURCES)}, got {source!r}")
    if not 0.0 < held_fraction < 1.0:
        raise ValueError(f"digit_images: held_fraction must be between 0 and 1, got {held_fraction}")
    note = ""
    if source == "digits8x8":
        x, y = digits8x8()
        name = "digits8x8"
    else:
        try:
            x, y = _mnist_test(download)
            name = "mnist"
            note = "MNIST's test set"
        except DataMissing as err:
            if source == "mnist":
                raise
            x, y = digits8x8()
            name = "digits8x8"
            note = f"MNIST not available: {err}"
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    gan_idx, held_idx = train_test_split(idx, test_size=held_fraction, random_state=seed, stratify=y)
    images = torch.from_numpy(x * 2.0 - 1.0).unsqueeze(1)  # [N, 1, H, W] in [-1, 1]
    labels = torch.from_numpy(y)
    gan_idx, held_idx = torch.from_numpy(np.sort(gan_idx)), torch.from_numpy(np.sort(held_idx))
    return DigitImages(name, int(x.shape[-1]), images[gan_idx].contiguous(), labels[gan_idx].contiguous(),
                       images[held_idx].contiguous(), labels[held_idx].contiguous(), note)


class DigitClassifier(nn.Module):
    """LeNet-like: two blocks of a 5x5 convolution, ReLU and 2x2 max-pool, a 128-unit hidden layer, 10 logits.

    ``features(x)`` is the 128-unit hidden layer (after its ReLU): the embedding FID compares. Works for any
    square size divisible by 4 (28 for MNIST, 8 for the 8x8 digits)."""

    def __init__(self, image_size: int = 28, n_classes: int = 10, width: int = 16, n_features: int = 128) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"DigitClassifier: image_size must be divisible by 4 (28 or 8), got {image_size}")
        self.image_size = image_size
        self.conv = nn.Sequential(
            nn.Conv2d(1, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.hidden = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(2 * width * side * side, n_features),
                                    nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(n_features, n_classes))

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(f"DigitClassifier: expected images [N, 1, {self.image_size}, {self.image_size}], "
                             f"got {tuple(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        """The 128-unit embedding [N, 128] of images [N, 1, H, W] in [-1, 1]."""
        self._check(x)
        return self.hidden(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each image moved by up to ``max_shift`` pixels in each direction (background -1 fills the gap)."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, 1, h, w + 2 * max_shift)
    taken = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, 1, h, w)
    return taken.gather(3, cols)


def train_classifier(x: Tensor, y: Tensor, *, steps: int = 800, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                     device: torch.device | str = "cpu", max_shift: int | None = None) -> DigitClassifier:
    """A ``DigitClassifier`` trained on ``x [N, 1, H, W], y [N]`` with Adam, a cosine learning rate and random
    shifts of up to ``max_shift`` pixels (default 2 for 28x28 images, 1 for 8x8). Returned in eval mode."""
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"train_classifier: expected x [N, 1, H, W] and y [N], got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    size = x.shape[-1]
    if max_shift is None:
        max_shift = 2 if size >= 16 else 1
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=generator)
        xb = _shift(x[idx], max_shift, generator).to(device)
        loss = F.cross_entropy(model(xb), y[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


CLASSIFIER_VERSION = 1
"""Part of the cache key of ``classifier_for``: raise it whenever ``DigitClassifier`` or its training changes."""


def classifier_for(data: DigitImages, *, steps: int = 800, batch_size: int = 64, seed: int = 0,
                   device: torch.device | str = "cpu", cache_dir: str | Path | None = None) -> DigitClassifier:
    """The classifier of ``train_classifier`` on ``data``'s held-out part, trained once and then cached.

    Hours 11 and 12 use the same classifier; the first to run trains it (deterministically, from ``seed``) and
    saves its weights atomically under ``cache_dir`` (default: the user's cache, ``~/.cache/amla/models``), the
    other loads them (``weights_only=True``). Prints which of the two happened."""
    from amla.toolkit.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    root = Path(cache_dir) if cache_dir is not None else user_cache() / "models"
    key = f"digit_classifier_v{CLASSIFIER_VERSION}_{data.name}_{len(data.held_x)}_s{seed}_{steps}x{batch_size}.pt"
    path = root / key
    model = DigitClassifier(data.size)
    if path.exists():
        try:
            model.load_state_dict(load_checkpoint(path)["model"])
            print(f"digit classifier: loaded from {path}")
            return model.to(device).eval()
        except (CheckpointError, KeyError, RuntimeError) as err:
            print(f"digit classifier: the cached copy could not be used ({err}); training again")
    model = train_classifier(data.held_x, data.held_y, steps=steps, batch_size=batch_size, seed=seed, device=device)
    try:
        save_checkpoint(path, {"model": {k: v.cpu() for k, v in model.state_dict().items()}})
        print(f"digit classifier: trained ({steps} steps) and saved to {path}")
    except OSError as err:
        print(f"digit classifier: trained ({steps} steps); not cached ({err})")
    return model


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Predicted classes [N] (on the CPU) of images ``x``, in batches, with the model in eval mode meanwhile."""
    return torch.cat([model(xb).argmax(1).cpu() for (xb,) in eval_batches(model, [x], batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of ``x`` the model classifies as ``y``."""
    return float((predict(model, x) == y.cpu()).double().mean())


def per_class_accuracy(model: nn.Module, x: Tensor, y: Tensor, n_classes: int = 10) -> list[float]:
    """Accuracy on the images of each class (``nan`` for a class with no image)."""
    pred, y = predict(model, x), y.cpu()
    return [float((pred[y == c] == c).double().mean()) if (y == c).any() else float("nan") for c in range(n_classes)]
