"""Probability-flow ODE samplers from t = 1 (noise) to t = 0 (data), one signature for all.

A sampler is ``fn(denoiser, x, times, path) -> x0`` where ``denoiser(x_t, t) -> Prediction`` and
``times`` is a decreasing grid (N + 1,) from 1 to 0; N is the number of denoiser evaluations
(NFE) for Euler and DDIM; Heun uses 2N - 1 (no correction on the final step to t = 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dgae.diffusion.parameterization import Prediction, velocity
from dgae.diffusion.schedule import Path, shift_time

Denoiser = Callable[[Tensor, Tensor], Prediction]
Sampler = Callable[[Denoiser, Tensor, Tensor, Path], Tensor]


def sampling_times(
    num_steps: int, spacing: str = "linear", shift: float = 1.0, device: torch.device | str = "cpu"
) -> Tensor:
    """Decreasing time grid (num_steps + 1,) from 1 to 0.

    ``linear``: uniform in t. ``quadratic``: t_i = (i/N)^2, finer steps near the data. ``shift``
    applies s t / (1 + (s - 1) t), which spends more steps at high noise when s > 1.
    """
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"num_steps={num_steps!r}; expected an integer >= 1")
    u = torch.linspace(1.0, 0.0, num_steps + 1, device=device, dtype=torch.float64)
    if spacing == "quadratic":
        u = u.pow(2)
    elif spacing != "linear":
        raise ValueError(f"unknown spacing {spacing!r}; expected 'linear' or 'quadratic'")
    return shift_time(u, shift).float()


def _times(t: Tensor, x: Tensor) -> Tensor:
    return t.expand(x.shape[0]).to(x.dtype)


def euler(denoiser: Denoiser, x: Tensor, times: Tensor, path: Path) -> Tensor:
    """First-order Euler on dx/dt = v(x, t)."""
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        tb = _times(t, x)
        x = x + (t_next - t) * velocity(denoiser(x, tb), tb, path)
    return x


def heun(denoiser: Denoiser, x: Tensor, times: Tensor, path: Path) -> Tensor:
    """Second-order Heun (EDM's Algorithm 1 without churn); Euler on the last step to t = 0."""
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        tb = _times(t, x)
        v = velocity(denoiser(x, tb), tb, path)
        x_euler = x + (t_next - t) * v
        if t_next > 0:
            tn = _times(t_next, x)
            v_next = velocity(denoiser(x_euler, tn), tn, path)
            x = x + (t_next - t) * 0.5 * (v + v_next)
        else:
            x = x_euler
    return x


def ddim(denoiser: Denoiser, x: Tensor, times: Tensor, path: Path) -> Tensor:
    """Deterministic DDIM: x_next = alpha(t_next) x0_hat + sigma(t_next) eps_hat.

    Exact for any path whose denoiser is exact; on the flow path it coincides with Euler.
    """
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        pred = denoiser(x, _times(t, x))
        a, s, _, _ = path.coefficients(_times(t_next, x), x.ndim)
        x = a * pred.x0 + s * pred.eps
    return x


SAMPLERS: dict[str, Sampler] = {"euler": euler, "heun": heun, "ddim": ddim}


def sample(
    denoiser: Denoiser,
    noise: Tensor,
    path: Path,
    num_steps: int,
    sampler: str = "euler",
    spacing: str = "linear",
    shift: float = 1.0,
) -> Tensor:
    """Integrate from ``noise`` (B, ...) at t = 1 to t = 0 with the named sampler."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {sorted(SAMPLERS)}")
    times = sampling_times(num_steps, spacing, shift, device=noise.device)
    return SAMPLERS[sampler](denoiser, noise, times, path)
