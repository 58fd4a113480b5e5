"""Schedules, conversions and samplers against closed forms."""

import math

import pytest
import torch

from dgae.config import DiffusionConfig
from dgae.diffusion import (
    FlowPath,
    Prediction,
    VPPath,
    convert,
    from_x0_eps,
    network_evaluations,
    sample,
    sample_time,
    sampling_times,
    to_x0_eps,
)
from dgae.random import generators_from_seeds, randn

PATHS = [FlowPath(), VPPath()]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_boundaries_and_derivatives(path):
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(path.alpha(t), torch.tensor([1.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(path.sigma(t), torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-12)
    tt = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    for f, df in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
        fd = (f(tt + h) - f(tt - h)) / (2 * h)
        assert torch.allclose(df(tt), fd, atol=1e-7)


def test_vp_is_variance_preserving():
    t = torch.rand(100, dtype=torch.float64)
    p = VPPath()
    assert torch.allclose(p.alpha(t) ** 2 + p.sigma(t) ** 2, torch.ones_like(t))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
@pytest.mark.parametrize("src", ["v", "x0", "eps"])
@pytest.mark.parametrize("dst", ["v", "x0", "eps"])
def test_conversions_round_trip_float64(path, src, dst):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99], dtype=torch.float64)
    x_t = path.interpolate(x0, eps, t)
    pred = from_x0_eps(x0, eps, src, t, path)
    back = convert(convert(pred, src, dst, x_t, t, path), dst, src, x_t, t, path)
    assert torch.allclose(back, pred, atol=1e-9)
    rec = to_x0_eps(pred, src, x_t, t, path)
    assert torch.allclose(rec.x0, x0, atol=1e-9) and torch.allclose(rec.eps, eps, atol=1e-9)


def test_flow_velocity_is_eps_minus_x0():
    x0, eps, t = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2), torch.rand(2)
    assert torch.allclose(from_x0_eps(x0, eps, "v", t, FlowPath()), eps - x0)


def test_time_sampling_range_and_mixture():
    g = torch.Generator().manual_seed(0)
    t = sample_time(20000, DiffusionConfig(), g)
    assert t.min() > 0 and t.max() <= 1
    assert abs(t.mean().item() - 0.5) < 0.01  # logit-normal(0, 1) is symmetric around 0.5
    frac_high = (t > 0.95).float().mean().item()
    mixed = sample_time(20000, DiffusionConfig(uniform_fraction=0.5), g)
    assert (mixed > 0.95).float().mean().item() > frac_high + 0.015  # uniform adds ~2.5 % there
    shifted = sample_time(20000, DiffusionConfig(time_shift=3.0), g)
    assert shifted.mean() > t.mean() + 0.1


def test_sampling_times():
    ts = sampling_times(4)
    assert torch.allclose(ts, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    assert torch.allclose(sampling_times(2, "quadratic"), torch.tensor([1.0, 0.25, 0.0]))
    assert sampling_times(4, shift=3.0)[1] > 0.75
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_steps"):
            sampling_times(bad)


# A Gaussian data distribution N(mu, sd^2) has a closed-form optimal denoiser, and its exact
# probability-flow ODE maps the noise eps to mu + sd * eps.
MU, SD = 0.7, 0.4


def gaussian_denoiser(path):
    def denoise(x_t, t):
        a, s, _, _ = path.coefficients(t, x_t.ndim)
        x0 = MU + a * SD**2 / (a**2 * SD**2 + s**2) * (x_t - a * MU)
        return Prediction(x0, (x_t - a * x0) / s)

    return denoise


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
@pytest.mark.parametrize("sampler", ["euler", "heun", "ddim"])
def test_samplers_on_gaussian(path, sampler):
    noise = torch.randn(
        20000, 1, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    exact = MU + SD * noise
    errors = []
    for n in (1, 2, 4, 8, 32):
        out = sample(gaussian_denoiser(path), noise, path, n, sampler)
        errors.append((out - exact).abs().max().item())
    assert all(b <= a * 1.0001 + 1e-12 for a, b in zip(errors, errors[1:], strict=False)), errors
    out = sample(gaussian_denoiser(path), noise, path, 64, sampler)
    assert abs(out.mean().item() - MU) < 0.01 and abs(out.std().item() - SD) < 0.01
    assert errors[-1] < 0.1 and errors[-1] < errors[0] / 15  # at least first-order convergence


def test_heun_is_more_accurate_than_euler():
    path = FlowPath()
    noise = torch.randn(1000, 1, 1, 1, dtype=torch.float64)
    exact = MU + SD * noise
    err = {
        s: (sample(gaussian_denoiser(path), noise, path, 8, s) - exact).abs().max().item()
        for s in ("euler", "heun")
    }
    assert err["heun"] < 0.25 * err["euler"]


def test_per_sample_generators_ignore_batching():
    gens = generators_from_seeds([3, 4, 5])
    full = randn((3, 2, 4, 4), gens)
    alone = randn((1, 2, 4, 4), generators_from_seeds([4]))
    assert torch.equal(full[1:2], alone)
    with pytest.raises(ValueError, match="3 generators for a batch of 2"):
        randn((2, 2), generators_from_seeds([1, 2, 3]))


def test_vp_sigma_derivative_matches_salimans_v():
    # On the cosine VP path the ODE velocity is pi/2 times v = alpha eps - sigma x0.
    p, t = VPPath(), torch.rand(4, dtype=torch.float64)
    x0, eps = torch.randn(4, 1, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    v = from_x0_eps(x0, eps, "v", t, p)
    a, s = p.alpha(t)[:, None], p.sigma(t)[:, None]
    assert torch.allclose(v, math.pi / 2 * (a * eps - s * x0))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
@pytest.mark.parametrize("sampler", ["euler", "heun", "ddim"])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_samplers_with_an_x0_oracle_land_on_x0(path, sampler, steps):
    # a single data point: the exact denoiser knows x0, so every sampler must return it at any
    # NFE on every path (Euler in x_t on VP returned x_1 + (pi/2) x0 in one step)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64)

    def oracle(x_t, t):
        a, s, _, _ = path.coefficients(t, x_t.ndim)
        return Prediction(x0, (x_t - a * x0) / s)

    out = sample(oracle, noise, path, steps, sampler)
    assert torch.allclose(out, x0, atol=1e-9), (out - x0).abs().max()


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_eps_oracle_below_t_max_lands_on_x0(path):
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    noise = torch.randn(2, 3, 4, 4, dtype=torch.float64)

    def eps_oracle(x_t, t):
        a, s, _, _ = path.coefficients(t, x_t.ndim)
        eps = (x_t - a * x0) / s
        return Prediction((x_t - s * eps) / a, eps)  # the eps-parameterised x0_hat

    out = sample(eps_oracle, noise, path, 1, "euler", t_max=0.98)
    assert torch.allclose(out, x0, atol=1e-8)
    assert torch.allclose(sampling_times(2, t_max=0.98), torch.tensor([0.98, 0.49, 0.0]))
    t = sample_time(5000, DiffusionConfig(t_max=0.98, uniform_fraction=1.0))
    assert t.max() <= 0.98 and t.max() > 0.97


@pytest.mark.parametrize("sampler", ["euler", "heun", "ddim"])
@pytest.mark.parametrize("steps", [1, 3])
def test_network_evaluations_counts_real_denoiser_calls(sampler, steps):
    calls = []
    path = FlowPath()

    def counting(x_t, t):
        calls.append(1)
        return gaussian_denoiser(path)(x_t, t)

    sample(counting, torch.randn(2, 1, 1, 1), path, steps, sampler)
    assert len(calls) == network_evaluations(sampler, steps)
    assert network_evaluations(sampler, 0) == 0  # a decode by the prior head alone
