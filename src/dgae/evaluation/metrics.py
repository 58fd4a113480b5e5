"""Metric maths on uint8 images and feature sets (pure torch, float64 where it matters)."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of uint8 images (N, 3, H, W); identical images give +inf."""
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(255.0**2 / mse)


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Per-image SSIM (Gaussian window 11, sigma 1.5, data range 255) of uint8 (N, 3, H, W)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(
        a.double(), b.double(), data_range=255.0, reduction="none"
    )


def feature_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    f = features.double()
    mu = f.mean(dim=0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix S1^(1/2) S2 S1^(1/2), which has the same spectrum: stable, no complex sqrtm.
    """
    mu1, mu2, s1, s2 = (x.double() for x in (mu1, mu2, sigma1, sigma2))
    evals, evecs = torch.linalg.eigh(s1)
    root1 = evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T
    middle = root1 @ s2 @ root1
    tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)


def kernel_inception_distance(
    real: Tensor,
    fake: Tensor,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: unbiased MMD^2 with the kernel k(x, y) = (x.y / D + 1)^3, averaged over subsets.

    Returns (mean, std) over ``num_subsets`` random subsets of ``min(subset_size, N)`` each.
    """
    real, fake = real.double(), fake.double()
    n = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(num_subsets):
        x = real[torch.randperm(len(real), generator=g)[:n]]
        y = fake[torch.randperm(len(fake), generator=g)[:n]]
        kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
        values.append(off - 2 * kxy.mean())
    v = torch.stack(values)
    return float(v.mean()), float(v.std()) if len(v) > 1 else 0.0
