"""The latent bottleneck: diagonal Gaussian posterior, its KL, and latent statistics."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dgae.random import Generator, randn


class DiagonalGaussian:
    """q(z|x) = N(mean, diag(exp(logvar))) from encoder moments (B, 2c, h, w)."""

    def __init__(self, moments: Tensor) -> None:
        self.mean, logvar = moments.chunk(2, dim=1)  # each (B, c, h, w)
        self.logvar = logvar.clamp(-30.0, 20.0)  # as in LDM: keeps exp() finite
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: Generator = None) -> Tensor:
        """Reparameterised sample z = mean + std * n: (B, c, h, w)."""
        noise = randn(self.mean.shape, generator, self.mean.device, self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        """The posterior mean (B, c, h, w): the deterministic latent used for encoding."""
        return self.mean

    def kl(self) -> Tensor:
        """KL(q(z|x) || N(0, I)) summed over latent dims: (B,). Zero iff mean=0 and var=1."""
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(dim=1)


class LatentStats(nn.Module):
    """Per-channel mean and std of z over a dataset: ``normalize`` gives unit-variance latents.

    The one type for latent statistics, with the one ``normalize``/``denormalize``. An
    autoencoder stores the statistics of its posterior means on its training images; a latent
    cache computes its own over exactly the latents it holds and records them in ``meta.json``; a
    DiT trained on the cache stores those same numbers in its folder and denormalises its samples
    with them, and a DiT run refuses a cache whose statistics differ from the ones it started on
    (``latents.json``), so what sampling undoes is always what training applied.
    ``persistent=False`` keeps them out of ``state_dict`` where a config file holds them.
    """

    def __init__(self, channels: int, persistent: bool = True) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels), persistent=persistent)
        self.register_buffer("std", torch.ones(channels), persistent=persistent)

    @classmethod
    def from_dict(
        cls, data: object, channels: int, where: str = "latent_stats", persistent: bool = True
    ) -> LatentStats:
        """Statistics from their JSON form ``{"mean": [c floats], "std": [c floats]}``;
        anything else is an error naming ``where``."""
        if (
            not isinstance(data, dict)
            or len(data.get("mean") or []) != channels
            or len(data.get("std") or []) != channels
        ):
            raise ValueError(
                f"{where}: latent_stats must hold {channels} means and {channels} stds"
            )
        try:
            mean, std = torch.tensor(data["mean"]).float(), torch.tensor(data["std"]).float()
        except (TypeError, ValueError):
            raise ValueError(f"{where}: latent_stats must be numbers") from None
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError(
                f"{where}: latent_stats need finite means and positive finite stds; got "
                f"mean={data['mean']}, std={data['std']}"
            )
        stats = cls(channels, persistent)
        stats.set_from(mean, std)
        return stats

    def to_dict(self) -> dict[str, list[float]]:
        """The JSON form read by :meth:`from_dict`."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def _view(self, z: Tensor, stat: Tensor) -> Tensor:
        if z.ndim != 4 or z.shape[1] != stat.numel():
            raise ValueError(
                f"latent of shape {tuple(z.shape)} does not match the {stat.numel()}-channel "
                "statistics; expected (B, c, h, w)"
            )
        return stat.to(z.dtype)[None, :, None, None]

    def normalize(self, z: Tensor) -> Tensor:
        """(B, c, h, w) -> (z - mean) / std per channel."""
        return (z - self._view(z, self.mean)) / self._view(z, self.std)

    def denormalize(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`normalize`."""
        return z * self._view(z, self.std) + self._view(z, self.mean)

    @torch.no_grad()
    def set_from(self, mean: Tensor, std: Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)


class RunningMoments:
    """Exact per-channel mean/std accumulated over batches of latents (float64 sums)."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: Tensor | None = None
        self.sq: Tensor | None = None

    def update(self, z: Tensor) -> None:
        """Add a batch of latents (B, c, h, w)."""
        z = z.detach().double().transpose(0, 1).flatten(1)  # (c, B*h*w)
        s, q = z.sum(dim=1), z.pow(2).sum(dim=1)
        self.sum = s if self.sum is None else self.sum + s
        self.sq = q if self.sq is None else self.sq + q
        self.count += z.shape[1]

    def result(self) -> tuple[Tensor, Tensor]:
        """(mean, std) per channel, float32; std is floored at 1e-6."""
        if self.count < 2 or self.sum is None or self.sq is None:
            raise ValueError("latent statistics need at least two latent values per channel")
        mean = self.sum / self.count
        var = (self.sq / self.count - mean.pow(2)).clamp_min(0.0) * self.count / (self.count - 1)
        return mean.float(), var.sqrt().clamp_min(1e-6).float()
