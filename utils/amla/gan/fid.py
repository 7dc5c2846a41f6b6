"""The Frechet distance and FID (Hour 12), on the features of the course's own digit classifier.

FID (Heusel et al., 2017) fits a Gaussian to the features of real images and one to the features of generated
images and reports the Frechet (2-Wasserstein) distance between them:

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2}).

Papers use the 2048 pool features of an ImageNet Inception-v3; its weights cannot be downloaded offline, so
the course uses ``amla.gan.images.DigitClassifier.features`` (128 features). The numbers measure the same
thing but are **not comparable with published FIDs**.

- ``sqrtm_psd(a)``: the square root of a symmetric positive semi-definite matrix (eigendecomposition, float64)
- ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float``: the reference of Exercise 12.3
- ``feature_stats(features [N, F]) -> (mu [F], sigma [F, F])`` (float64)
- ``classifier_features(images, classifier)``, ``fid(real_images, fake_images, classifier, frechet=...)``
- corruptions for validating FID: ``add_noise``, ``blur``, ``drop_classes``
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.toolkit.train import eval_batches

__all__ = ["add_noise", "blur", "classifier_features", "drop_classes", "feature_stats", "fid", "frechet_distance",
           "sqrtm_psd"]

FrechetFn = Callable[[Tensor, Tensor, Tensor, Tensor], float]


def _as64(x: object, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} should be a tensor (or numpy array), got {type(x).__name__}")
    return x.detach().to("cpu", torch.float64)


def sqrtm_psd(a: Tensor) -> Tensor:
    """The symmetric square root of a symmetric PSD matrix ``a`` [d, d] (float64): Q diag(sqrt(max(l, 0))) Q^T.

    Eigenvalues a little below 0 (rounding, near-singular covariances) are clamped to 0 instead of giving nan."""
    a = _as64(a, "a")
    if a.dim() != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"sqrtm_psd: expected a square matrix [d, d], got {tuple(a.shape)}")
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """The squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), as a Python float.

    ``mu`` [d], ``sigma`` [d, d] (symmetric PSD), any float dtype; computed in float64. The trace term is
    tr((S1^{1/2} S2 S1^{1/2})^{1/2}) = the sum of the square roots of the eigenvalues of the symmetric PSD
    matrix S1^{1/2} S2 S1^{1/2} (the same eigenvalues as S1 S2, which is not symmetric), so no complex
    matrix square root is needed and near-singular covariances stay finite.
    """
    m1, m2, s1, s2 = (_as64(v, n) for v, n in ((mu1, "mu1"), (mu2, "mu2"), (sigma1, "sigma1"), (sigma2, "sigma2")))
    d = m1.shape[0] if m1.dim() == 1 else -1
    if m1.dim() != 1 or m2.shape != m1.shape or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"frechet_distance: expected mu [d] and sigma [d, d] for both Gaussians, got mu1 "
                         f"{tuple(m1.shape)}, sigma1 {tuple(s1.shape)}, mu2 {tuple(m2.shape)}, sigma2 {tuple(s2.shape)}")
    root1 = sqrtm_psd(s1)
    middle = root1 @ s2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt
    return float(value.clamp(min=0))


def feature_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean [F] and covariance [F, F] (unbiased, float64) of ``features`` [N, F], N >= 2."""
    f = _as64(features, "features")
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_stats: expected features [N, F] with N >= 2, got {tuple(f.shape)}")
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


@torch.no_grad()
def classifier_features(images: Tensor, classifier: nn.Module, batch_size: int = 500) -> Tensor:
    """``classifier.features`` of ``images`` [N, 1, H, W] in [-1, 1], in batches, in eval mode: [N, F] on the CPU."""
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"classifier_features: expected images [N, C, H, W], got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    batches = eval_batches(classifier, [images], batch_size)
    return torch.cat([classifier.features(xb.float()).cpu() for (xb,) in batches])


def fid(real_images: Tensor, fake_images: Tensor, classifier: nn.Module,
        frechet: FrechetFn = frechet_distance) -> float:
    """FID between two sets of images on ``classifier``'s features, with ``frechet`` (e.g. the student's
    ``frechet_distance``). Both sets should hold the same number of images (FID is biased upwards for small N)."""
    mu1, s1 = feature_stats(classifier_features(real_images, classifier))
    mu2, s2 = feature_stats(classifier_features(fake_images, classifier))
    return float(frechet(mu1, s1, mu2, s2))


# --- corruptions, to validate FID: each should raise it, more strength more FID -------------------------------

def add_noise(images: Tensor, std: float, seed: int = 0) -> Tensor:
    """Images plus Gaussian noise of ``std``, clamped to [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return (images + std * torch.randn(images.shape, generator=g).to(images)).clamp(-1, 1)


def blur(images: Tensor, sigma: float) -> Tensor:
    """Images blurred by a Gaussian of ``sigma`` pixels (separable, edges padded with the background -1)."""
    if sigma <= 0:
        return images.clone()
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-x**2 / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    padded = F.pad(images + 1, (radius,) * 4) - 1  # pad with -1 (the background)
    out = F.conv2d(padded, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def drop_classes(images: Tensor, labels: Tensor, dropped: Sequence[int], n: int | None = None,
                 seed: int = 0) -> Tensor:
    """``n`` images (default: as many as given) drawn only from the classes not in ``dropped`` (mode dropping:
    each image stays perfect, the set loses diversity)."""
    keep = ~torch.isin(labels, torch.as_tensor(list(dropped), dtype=labels.dtype))
    pool = images[keep]
    if len(pool) == 0:
        raise ValueError(f"drop_classes: dropping {list(dropped)} leaves no image")
    n = len(images) if n is None else n
    g = torch.Generator().manual_seed(seed)
    return pool[torch.randint(len(pool), (n,), generator=g)] if n > len(pool) else pool[torch.randperm(len(pool), generator=g)[:n]]
