"""The denoising loss shared by the DGAE decoder and the latent DiT.

One draw of (t, eps) per sample, x_t = alpha(t) x0 + sigma(t) eps, the network's output of kind
``cfg.prediction`` converted to (x0_hat, eps_hat), and the MSE in ``cfg.loss_space``. Both
models call this, so every ``DiffusionConfig`` option means the same in both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

from dgae.config import DiffusionConfig
from dgae.diffusion.parameterization import Prediction, from_x0_eps, to_x0_eps
from dgae.diffusion.samplers import Denoiser
from dgae.diffusion.schedule import NoisePath, sample_time
from dgae.random import Generator, randn

Network = Callable[[Tensor, Tensor], Tensor]  # (x_t (B, ...), t (B,)) -> raw output (B, ...)


class DenoisingLoss(NamedTuple):
    loss: Tensor  # scalar MSE in the loss space
    pred: Prediction  # the network's (x0_hat, eps_hat), (B, ...) each
    t: Tensor  # the sampled times (B,)


def denoising_loss(
    network: Network, x0: Tensor, cfg: DiffusionConfig, path: NoisePath, generator: Generator = None
) -> DenoisingLoss:
    """Diffusion loss of ``network`` on clean data ``x0`` (B, ...)."""
    t = sample_time(x0.shape[0], cfg, generator, x0.device)  # (B,)
    eps = randn(x0.shape, generator, x0.device, x0.dtype)
    x_t = path.interpolate(x0, eps, t)
    out = network(x_t, t).float()  # (B, ...), the raw prediction
    pred = to_x0_eps(out, cfg.prediction, x_t, t, path)
    space = cfg.loss_space or cfg.prediction
    target = from_x0_eps(x0, eps, space, t, path)
    guess = out if space == cfg.prediction else from_x0_eps(pred.x0, pred.eps, space, t, path)
    return DenoisingLoss(F.mse_loss(guess, target), pred, t)


def as_denoiser(network: Network, cfg: DiffusionConfig, path: NoisePath) -> Denoiser:
    """Wrap a raw network into the samplers' ``denoiser(x_t, t) -> Prediction``."""

    def denoise(x_t: Tensor, t: Tensor) -> Prediction:
        return to_x0_eps(network(x_t, t).float(), cfg.prediction, x_t.float(), t.float(), path)

    return denoise


def x0_reliability(cfg: DiffusionConfig, path: NoisePath, t: Tensor) -> Tensor | None:
    """Per-sample weight (B,) for losses on x0_hat, or None when x0_hat is well conditioned.

    With eps-prediction, x0_hat = (x_t - sigma eps_hat) / alpha multiplies the network's error by
    sigma / alpha (> 100x for t > 0.99 on the flow path); weighting by alpha^2 / (alpha^2 +
    sigma^2) bounds that amplification by 1/2. x0- and v-prediction need no weight.
    """
    if cfg.prediction != "eps":
        return None
    a, s = path.alpha(t), path.sigma(t)
    return a.pow(2) / (a.pow(2) + s.pow(2))
