"""Probability-flow ODE samplers from t = 1 (noise) to t = 0 (data), one signature for all.

A sampler is ``fn(denoiser, x, times, path) -> x0`` where ``denoiser(x_t, t) -> Prediction`` and
``times`` is a decreasing grid (N + 1,) from 1 to 0. :func:`network_evaluations` gives the real
number of denoiser calls: N for Euler and DDIM, 2N - 1 for Heun (no correction on the last step).

Euler and Heun integrate the ODE in the *flow-equivalent* coordinates of the path: for any
x_t = a x0 + s eps, y = x_t / (a + s) lies on the rectified flow y = (1 - tau) x0 + tau eps at
tau = s / (a + s), where dy/dtau = eps - x0 is constant along a straight trajectory. A first step
from pure noise with a perfect x0 estimate therefore lands exactly on x0 on every path (on the
curved VP path, Euler in x_t itself would return x_1 + (pi/2) x0). On the flow path y = x_t and
tau = t, so nothing changes there; on VP, Euler in these coordinates is exactly DDIM.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dgae.config import SamplerName, SpacingName, check_choice
from dgae.diffusion.parameterization import Prediction
from dgae.diffusion.schedule import NoisePath, shift_time

Denoiser = Callable[[Tensor, Tensor], Prediction]
Sampler = Callable[[Denoiser, Tensor, Tensor, NoisePath], Tensor]


def check_num_steps(num_steps: object, where: str = "num_steps", minimum: int = 1) -> None:
    """A ValueError naming ``where`` unless ``num_steps`` is an integer >= ``minimum`` (None is
    not)."""
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < minimum:
        raise ValueError(f"{where}={num_steps!r}; expected an integer >= {minimum}")


def sampling_times(
    num_steps: int,
    spacing: str = "linear",
    shift: float = 1.0,
    device: torch.device | str = "cpu",
    t_max: float = 1.0,
) -> Tensor:
    """Decreasing time grid (num_steps + 1,) from ``t_max`` (1 = pure noise) to 0.

    ``linear``: uniform in t. ``quadratic``: t_i = (i/N)^2, finer steps near the data. ``shift``
    applies s t / (1 + (s - 1) t), which spends more steps at high noise when s > 1.
    """
    check_num_steps(num_steps)
    check_choice("diffusion.spacing", spacing, SpacingName)
    u = torch.linspace(1.0, 0.0, num_steps + 1, device=device, dtype=torch.float64)
    if spacing == "quadratic":
        u = u.pow(2)
    return (shift_time(u, shift) * t_max).float()


def _times(t: Tensor, x: Tensor) -> Tensor:
    return t.expand(x.shape[0]).to(x.dtype)


def _flow_coordinates(t: Tensor, x: Tensor, path: NoisePath) -> tuple[Tensor, Tensor]:
    """(scale a + s, tau = s / (a + s)) at times (B,), each (B, 1, ..., 1)."""
    a, s, _, _ = path.coefficients(t, x.ndim)
    return a + s, s / (a + s)


def _step(
    denoiser: Denoiser, x: Tensor, t: Tensor, t_next: Tensor, path: NoisePath, second_order: bool
) -> Tensor:
    """One Euler (or Heun) step from t to t_next in flow-equivalent coordinates: (B, ...)."""
    tb, tn = _times(t, x), _times(t_next, x)
    scale, tau = _flow_coordinates(tb, x, path)
    scale_n, tau_n = _flow_coordinates(tn, x, path)
    pred = denoiser(x, tb)
    slope = pred.eps - pred.x0  # dy/dtau, (B, ...)
    y_next = x / scale + (tau_n - tau) * slope
    if second_order and t_next > 0:
        pred_n = denoiser(y_next * scale_n, tn)
        y_next = x / scale + (tau_n - tau) * 0.5 * (slope + pred_n.eps - pred_n.x0)
    return y_next * scale_n


def euler(denoiser: Denoiser, x: Tensor, times: Tensor, path: NoisePath) -> Tensor:
    """First-order Euler on the probability-flow ODE (flow-equivalent coordinates)."""
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        x = _step(denoiser, x, t, t_next, path, second_order=False)
    return x


def heun(denoiser: Denoiser, x: Tensor, times: Tensor, path: NoisePath) -> Tensor:
    """Second-order Heun (EDM's Algorithm 1 without churn); Euler on the last step to t = 0."""
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        x = _step(denoiser, x, t, t_next, path, second_order=True)
    return x


def ddim(denoiser: Denoiser, x: Tensor, times: Tensor, path: NoisePath) -> Tensor:
    """Deterministic DDIM: x_next = alpha(t_next) x0_hat + sigma(t_next) eps_hat.

    Exact for any path whose denoiser is exact; it coincides with :func:`euler` on every path.
    """
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        pred = denoiser(x, _times(t, x))
        a, s, _, _ = path.coefficients(_times(t_next, x), x.ndim)
        x = a * pred.x0 + s * pred.eps
    return x


# the implementations of config.SamplerName's choices (a test checks the two agree)
SAMPLERS: dict[str, Sampler] = {"euler": euler, "heun": heun, "ddim": ddim}


def network_evaluations(sampler: str, num_steps: int) -> int:
    """Denoiser calls (NFE) ``sample`` makes for ``num_steps`` steps of ``sampler`` (0 for 0:
    a decode by the prior head alone)."""
    check_choice("diffusion.sampler", sampler, SamplerName)
    return 2 * num_steps - 1 if sampler == "heun" and num_steps else num_steps


def sample(
    denoiser: Denoiser,
    noise: Tensor,
    path: NoisePath,
    num_steps: int,
    sampler: str = "euler",
    *,
    spacing: str = "linear",
    shift: float = 1.0,
    t_max: float = 1.0,
) -> Tensor:
    """Integrate from ``noise`` (B, ...) at t = ``t_max`` to t = 0 with the named sampler.

    Below t_max = 1 the start is sigma(t_max) * noise (the alpha(t_max) x0 part is unknown).
    """
    check_choice("diffusion.sampler", sampler, SamplerName)
    times = sampling_times(num_steps, spacing, shift, noise.device, t_max)
    start = noise if t_max == 1.0 else path.sigma(times[:1].double()).item() * noise
    return SAMPLERS[sampler](denoiser, start, times, path)
