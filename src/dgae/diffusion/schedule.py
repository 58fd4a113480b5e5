"""Diffusion paths x_t = alpha(t) x0 + sigma(t) eps and the training-time distribution of t.

Every path uses t in [0, 1] with t = 0 clean data and t = 1 pure noise.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dgae.config import DiffusionConfig, PathName, check_choice
from dgae.random import Generator, rand


class NoisePath:
    """A path x_t = alpha(t) x0 + sigma(t) eps with known derivatives (for the ODE velocity)."""

    name = "base"

    def alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def d_alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def d_sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def coefficients(self, t: Tensor, ndim: int = 4) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(alpha, sigma, d_alpha, d_sigma) at times (B,), each shaped (B, 1, ..., 1) for ``ndim``."""
        view = (-1,) + (1,) * (ndim - 1)
        return tuple(
            f(t).reshape(view) for f in (self.alpha, self.sigma, self.d_alpha, self.d_sigma)
        )

    def interpolate(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """x_t for clean x0 (B, ...) and noise eps (B, ...) at times t (B,)."""
        a, s, _, _ = self.coefficients(t, x0.ndim)
        return a * x0 + s * eps


class FlowPath(NoisePath):
    """Rectified flow: alpha = 1 - t, sigma = t; velocity dx_t/dt = eps - x0."""

    name = "flow"

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def d_alpha(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


class VPPath(NoisePath):
    """Variance preserving (cosine): alpha = cos(pi t / 2), sigma = sin(pi t / 2).

    alpha^2 + sigma^2 = 1 at every t. Its velocity dx_t/dt is pi/2 times Salimans & Ho's v.
    """

    name = "vp"

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def d_alpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)


# the implementations of config.PathName's choices (a test checks the two agree)
PATHS: dict[str, type[NoisePath]] = {"flow": FlowPath, "vp": VPPath}


def get_path(name: str) -> NoisePath:
    """The path named ``name`` (one of ``config.PathName``)."""
    check_choice("diffusion.path", name, PathName)
    return PATHS[name]()


def shift_time(t: Tensor, shift: float) -> Tensor:
    """Resolution shift t' = s t / (1 + (s - 1) t) (SD3); s > 1 moves mass toward noise."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_time(
    batch: int,
    cfg: DiffusionConfig,
    generator: Generator = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Training times (B,) in (0, t_max]: logit-normal or uniform, optionally mixed and shifted,
    then scaled by ``cfg.t_max`` (the sampler starts there too).

    ``uniform_fraction`` of the batch is drawn uniformly: logit-normal alone puts ~0.2 % of the
    mass above t = 0.95, where a few-step sampler's first step from pure noise lives.
    """
    draws = rand((batch, 3), generator, device)  # one row per sample: per-sample generators work
    u, pick = draws[:, 0], draws[:, 1] < cfg.uniform_fraction
    if cfg.time_sampling == "logit_normal":
        # inverse-CDF normal from the third uniform keeps every draw in the same row
        n = torch.special.ndtri(draws[:, 2].clamp(1e-7, 1 - 1e-7))
        t = torch.sigmoid(cfg.logit_mean + cfg.logit_std * n)
    else:
        t = u
    t = torch.where(pick, u, t)
    t = shift_time(t, cfg.time_shift) * cfg.t_max
    return t.clamp(1e-5, cfg.t_max)
