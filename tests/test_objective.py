import pytest
import torch
from torch import nn

from dgae import build_autoencoder
from dgae.config import ConfigError, DiffusionConfig, apply_overrides, get_preset
from dgae.losses import BaselineObjective, DGAEObjective
from dgae.losses.adversarial import (
    DiscriminatorLoss,
    PatchDiscriminator,
    adaptive_gan_weight,
    hinge_d_loss,
    hinge_g_loss,
)
from dgae.losses.perceptual import tiny_random_lpips


class FixedUNet(nn.Module):
    """Predicts target + offset and records the times it was asked about."""

    def __init__(self, target, offset):
        super().__init__()
        self.target, self.offset, self.t = target, offset, None

    def forward(self, x_t, t, z, prior=None):
        self.t = t
        return self.target + self.offset + 0 * z.mean()


def _dgae(tiny_cfg, overrides=()):
    # the diffusion terms on their own (the prior head's residual is tested in test_autoencoder):
    # the U-Net decoder without its head (the trunk decoder needs the head)
    cfg = apply_overrides(
        get_preset("dgae-unet-tiny"), ["model.decoder.prior_head=false", *overrides]
    )
    return cfg, build_autoencoder(cfg.model)


def test_dgae_terms_on_known_predictions(tiny_cfg, images):
    cfg, m = _dgae(tiny_cfg, ["model.diffusion.prediction=x0", "loss.kl_weight=0.5"])
    lp = tiny_random_lpips()
    m.decoder.unet = FixedUNet(images, 0.1)
    out = DGAEObjective(cfg.loss, lp)(m, images, torch.Generator().manual_seed(0))
    assert torch.allclose(out["diffusion"], torch.tensor(0.01), atol=1e-6)  # x0-space MSE
    assert torch.allclose(out["perceptual"], lp(images, images + 0.1).mean(), atol=1e-6)
    kl = m.encode(images).kl().mean() / images[0].numel()  # LDM units: summed KL / (3 H W)
    assert torch.allclose(out["kl"], kl, atol=1e-7)
    expected = out["diffusion"] + cfg.loss.perceptual_weight * out["perceptual"] + 0.5 * out["kl"]
    assert torch.allclose(out["loss"], expected)


def test_dgae_loss_in_another_space_and_time_weight(tiny_cfg, images):
    cfg, m = _dgae(
        tiny_cfg,
        ["model.diffusion.prediction=x0", "model.diffusion.loss_space=eps",
         "loss.perceptual_time_weight=one_minus_t"],
    )  # fmt: skip
    lp = tiny_random_lpips()
    unet = m.decoder.unet = FixedUNet(images, 0.1)
    out = DGAEObjective(cfg.loss, lp)(m, images, torch.Generator().manual_seed(0))
    t = unet.t  # flow path: eps_hat - eps = -(1 - t) / t * 0.1
    expected = (((1 - t) / t * 0.1) ** 2).mean()
    assert torch.allclose(out["diffusion"], expected, rtol=1e-4)
    assert torch.allclose(out["perceptual"], ((1 - t) * lp(images, images + 0.1)).mean(), rtol=1e-5)


def test_dgae_exact_velocity_gives_zero_diffusion_loss(tiny_cfg, images):
    cfg, m = _dgae(
        tiny_cfg,
        ["model.diffusion.prediction=v", "loss.perceptual=none", "loss.perceptual_weight=0"],
    )

    class ExactV(nn.Module):  # knows x0, so v = (x_t - x0) / t on the flow path
        def forward(self, x_t, t, z, prior=None):
            return (x_t - images) / t[:, None, None, None]

    m.decoder.unet = ExactV()
    out = DGAEObjective(cfg.loss, None)(m, images, torch.Generator().manual_seed(0))
    assert out["diffusion"].item() < 1e-8 and out["perceptual"].item() == 0


def test_baseline_pixel_terms(tiny_baseline_cfg, images):
    for pixel, expected in (("l1", 0.1), ("l2", 0.01)):
        cfg = apply_overrides(tiny_baseline_cfg, [f"loss.pixel_loss={pixel}", "loss.kl_weight=0"])
        m = build_autoencoder(cfg.model)
        m.decoder.forward = lambda z: images + 0.1 + 0 * z.mean()
        out = BaselineObjective(cfg.loss, tiny_random_lpips())(m, images)
        assert torch.allclose(out["pixel"], torch.tensor(expected), atol=1e-6)
        assert out["gan"].item() == 0


def test_hinge_losses_and_adaptive_weight():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    assert torch.allclose(hinge_d_loss(real, fake), torch.tensor(0.625))
    assert torch.allclose(hinge_g_loss(fake), torch.tensor(0.75))
    w = torch.ones(3, requires_grad=True)
    a, b = torch.tensor([3.0, 0.0, 4.0]), torch.tensor([0.0, 1.0, 0.0])
    weight = adaptive_gan_weight((w * a).sum(), (w * b).sum(), w)
    assert torch.allclose(weight, torch.tensor(5.0 / (1.0 + 1e-4)))


def test_baseline_gan_term_switches_on_at_start_step(tiny_baseline_cfg, images):
    cfg = apply_overrides(tiny_baseline_cfg, ["loss.gan_weight=0.5", "loss.gan_start_step=10"])
    m = build_autoencoder(cfg.model)
    disc = PatchDiscriminator(channels=8, num_layers=2)
    obj = BaselineObjective(cfg.loss, tiny_random_lpips())
    before = obj(m, images, discriminator=disc, step=9)
    after = obj(m, images, discriminator=disc, step=10)
    assert before["gan_weight"].item() == 0 and after["gan_weight"].item() > 0
    after["loss"].backward()
    d_loss = DiscriminatorLoss(disc)(images, after["recon"])
    assert torch.allclose(d_loss, hinge_d_loss(disc(images), disc(after["recon"])))
    assert d_loss.item() > 0 and disc(images).shape[1] == 1


def test_objective_refuses_missing_perceptual_network(tiny_cfg):
    with pytest.raises(ValueError, match="needs a perceptual network"):
        DGAEObjective(tiny_cfg.loss, None)


def test_kl_weight_is_in_ldm_units(tiny_baseline_cfg, images):
    # LDM sums |x - x_hat| over pixels and the KL over the latent; our loss must be LDM's / (3HW),
    # so that kl_weight=1e-6 weighs the KL against the reconstruction exactly as LDM's does.
    cfg = apply_overrides(tiny_baseline_cfg, ["loss.perceptual=none", "loss.perceptual_weight=0",
                                              "loss.kl_weight=1e-6"])  # fmt: skip
    m = build_autoencoder(cfg.model)
    out = BaselineObjective(cfg.loss, None)(m, images, torch.Generator().manual_seed(0))
    posterior = m.encode(images)
    rec = m.decoder(posterior.sample(torch.Generator().manual_seed(0)))
    ldm = (rec - images).abs().flatten(1).sum(1).mean() + 1e-6 * posterior.kl().mean()
    assert torch.allclose(out["loss"] * images[0].numel(), ldm, rtol=1e-5)


def test_eps_prediction_needs_t_max_below_one():
    with pytest.raises(ConfigError, match="t_max"):
        DiffusionConfig(prediction="eps").validate()
    with pytest.raises(ConfigError, match="t_max"):
        DiffusionConfig(prediction="eps", path="vp", t_max=0.999).validate()
    DiffusionConfig(prediction="eps", t_max=0.98).validate()
    DiffusionConfig(prediction="eps", path="vp", t_max=0.98).validate()


@pytest.mark.parametrize("path", ["flow", "vp"])
def test_eps_prediction_keeps_x0_losses_bounded(tiny_cfg, images, path):
    cfg, m = _dgae(tiny_cfg, [f"model.diffusion.path={path}", "model.diffusion.prediction=eps",
                              "model.diffusion.t_max=0.98", "model.diffusion.uniform_fraction=1"])  # fmt: skip
    t = torch.linspace(0.0, 0.98, 99)
    a, s = m.decoder.path.alpha(t), m.decoder.path.sigma(t)
    weight = m.decoder.x0_weight(t)
    # x0_hat error = (sigma / alpha) * eps error: the weighted amplification stays <= 1/2
    assert (weight * s / a).max() <= 0.5 + 1e-6
    # training times stay below t_max; the perceptual gradient reaching the network is tamed
    offset = torch.full_like(images, 0.1, requires_grad=True)
    unet = m.decoder.unet = FixedUNet(torch.zeros_like(images), offset)

    class MSEDistance:  # a non-saturating stand-in for LPIPS: per-image MSE (B,) to x
        def against(self, x, *ys):
            return [(x - y).pow(2).flatten(1).mean(1) for y in ys]

    lp = MSEDistance()

    def perceptual_grad():
        out = DGAEObjective(cfg.loss, lp)(m, images, torch.Generator().manual_seed(0))
        assert unet.t.max() <= 0.98 and torch.isfinite(out["loss"])
        (grad,) = torch.autograd.grad(out["perceptual"], offset)
        return grad.norm()

    weighted = perceptual_grad()
    m.decoder.x0_weight = lambda t: None  # the same draws without the weight
    assert weighted < 0.1 * perceptual_grad()
