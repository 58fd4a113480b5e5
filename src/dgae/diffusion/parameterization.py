"""Exact conversions between what a network predicts: eps, x0, or the ODE velocity v.

For a path x_t = a x0 + s eps, the velocity is v = dx_t/dt = a' x0 + s' eps. Given x_t and one of
(eps, x0, v) the pair (x0, eps) is determined:
  from x0:  eps = (x_t - a x0) / s
  from eps: x0  = (x_t - s eps) / a
  from v:   solve [a s; a' s'] [x0; eps] = [x_t; v], det = a s' - s a' (1 for flow, pi/2 for VP)
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from dgae.config import PredictionName, check_choice
from dgae.diffusion.schedule import NoisePath

_TINY = 1e-12  # guards a = 0 (eps -> x0 at t = 1) and s = 0 (x0 -> eps at t = 0) only


class Prediction(NamedTuple):
    """A denoiser's output expressed as the clean-image and noise estimates (B, C, H, W) each."""

    x0: Tensor
    eps: Tensor


def _check_kind(kind: str) -> None:
    check_choice("diffusion.prediction", kind, PredictionName)


def to_x0_eps(pred: Tensor, kind: str, x_t: Tensor, t: Tensor, path: NoisePath) -> Prediction:
    """Network output ``pred`` of ``kind`` at (x_t, t) -> (x0_hat, eps_hat)."""
    _check_kind(kind)
    a, s, da, ds = path.coefficients(t, x_t.ndim)
    if kind == "x0":
        return Prediction(pred, (x_t - a * pred) / s.clamp_min(_TINY))
    if kind == "eps":
        return Prediction((x_t - s * pred) / a.clamp_min(_TINY), pred)
    det = a * ds - s * da
    return Prediction((ds * x_t - s * pred) / det, (a * pred - da * x_t) / det)


def from_x0_eps(x0: Tensor, eps: Tensor, kind: str, t: Tensor, path: NoisePath) -> Tensor:
    """(x0, eps) at time t -> the quantity of ``kind`` (the training target in that space)."""
    _check_kind(kind)
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    _, _, da, ds = path.coefficients(t, x0.ndim)
    return da * x0 + ds * eps


def convert(pred: Tensor, src: str, dst: str, x_t: Tensor, t: Tensor, path: NoisePath) -> Tensor:
    """Re-express a prediction of kind ``src`` as kind ``dst`` at (x_t, t)."""
    x0, eps = to_x0_eps(pred, src, x_t, t, path)
    return from_x0_eps(x0, eps, dst, t, path)


def velocity(prediction: Prediction, t: Tensor, path: NoisePath) -> Tensor:
    """ODE velocity dx_t/dt = a'(t) x0_hat + s'(t) eps_hat: (B, C, H, W)."""
    return from_x0_eps(prediction.x0, prediction.eps, "v", t, path)
