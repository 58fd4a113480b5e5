import pytest
import torch

from dgae.bottleneck import DiagonalGaussian, LatentStats, RunningMoments


def test_kl_of_the_prior_is_zero_and_known_value():
    prior = DiagonalGaussian(torch.zeros(2, 8, 3, 3))  # mean 0, logvar 0
    assert torch.equal(prior.kl(), torch.zeros(2))
    # KL(N(m, s^2) || N(0, 1)) = 0.5 (m^2 + s^2 - 1 - log s^2); m = 1, s^2 = e: 0.5 (e - 1).
    moments = torch.cat([torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2)], dim=1)
    assert torch.allclose(DiagonalGaussian(moments).kl(), torch.tensor([4 * 0.5 * (torch.e - 1)]))


def test_sample_mode_and_determinism():
    moments = torch.randn(3, 4, 2, 2)
    post = DiagonalGaussian(moments)
    assert torch.equal(post.mode(), moments[:, :2])
    a = post.sample(torch.Generator().manual_seed(5))
    b = post.sample(torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, post.mode())
    many = DiagonalGaussian(torch.zeros(20000, 2, 1, 1)).sample(torch.Generator().manual_seed(0))
    assert abs(many.std().item() - 1) < 0.02


def test_latent_statistics_normalise_to_unit_variance():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 3, 4, 4, generator=g) * torch.tensor([2.0, 0.5, 3.0])[None, :, None, None]
    z = z + torch.tensor([1.0, -2.0, 0.0])[None, :, None, None]
    moments = RunningMoments()
    for chunk in z.split(10):
        moments.update(chunk)
    mean, std = moments.result()
    flat = z.transpose(0, 1).flatten(1)
    assert torch.allclose(mean, flat.mean(1), atol=1e-5)
    assert torch.allclose(std, flat.std(1), atol=1e-5)
    stats = LatentStats(3)
    stats.set_from(mean, std)
    n = stats.normalize(z)
    assert torch.allclose(n.transpose(0, 1).flatten(1).std(1), torch.ones(3), atol=1e-4)
    assert torch.allclose(stats.denormalize(n), z, atol=1e-5)
    with pytest.raises(ValueError, match="does not match the 3-channel"):
        stats.normalize(torch.zeros(1, 4, 2, 2))


def test_latent_stats_json_round_trip_and_errors():
    stats = LatentStats.from_dict({"mean": [0.5, -1.0], "std": [2.0, 0.25]}, 2, "x.json")
    assert stats.to_dict() == {"mean": [0.5, -1.0], "std": [2.0, 0.25]}
    z = torch.randn(2, 2, 3, 3)
    assert torch.allclose(stats.normalize(z)[:, 1], (z[:, 1] + 1.0) / 0.25)
    with pytest.raises(ValueError, match="x.json: latent_stats must hold 3 means"):
        LatentStats.from_dict({"mean": [0.5, -1.0], "std": [2.0, 0.25]}, 3, "x.json")
    with pytest.raises(ValueError, match="positive finite stds"):
        LatentStats.from_dict({"mean": [0.0], "std": [0.0]}, 1, "x.json")
    assert "mean" not in LatentStats(2, persistent=False).state_dict()
