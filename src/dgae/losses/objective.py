"""Training objectives. Each returns the total loss and every named term (all scalars).

DGAE (no discriminator):  L = L_diff + lambda_P * w(t) * P(x, x0_hat) + lambda_KL * KL(q(z|x) || N(0, I))
  L_diff: MSE in the configured space (v, x0 or eps) between the decoder's prediction at
  x_t = alpha(t) x + sigma(t) eps, given z ~ q(z|x), and the true value; x0_hat is the decoder's
  one-step clean estimate at that t, w(t) = 1 or (1 - t).
Baseline ("Gaussian" decoder):  L = |x - D(z)|_1 (or squared) + lambda_P P(x, D(z)) + lambda_KL KL
  (+ adaptive-weight hinge GAN term when a discriminator is given; the "GAN-guided" baseline).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dgae.baseline import adaptive_gan_weight, hinge_d_loss, hinge_g_loss
from dgae.config import LossConfig
from dgae.diffusion import from_x0_eps, sample_time, to_x0_eps
from dgae.losses.perceptual import LPIPS, build_perceptual
from dgae.random import Generator, randn


class _Objective(nn.Module):
    def __init__(self, cfg: LossConfig, perceptual: LPIPS | None) -> None:
        super().__init__()
        if cfg.perceptual_weight > 0 and perceptual is None and cfg.perceptual != "none":
            raise ValueError(f"loss.perceptual={cfg.perceptual!r} needs a perceptual network")
        self.cfg = cfg
        self.perceptual = perceptual

    def perceptual_term(self, x: Tensor, x_hat: Tensor, weight: Tensor | None = None) -> Tensor:
        """Mean of (optionally per-sample weighted) perceptual distances; 0 when disabled."""
        if self.perceptual is None or self.cfg.perceptual_weight == 0:
            return x.new_zeros(())
        d = self.perceptual(x.float(), x_hat.float())  # (B,)
        return (d if weight is None else weight * d).mean()


class DGAEObjective(_Objective):
    """The DGAE loss for an :class:`~dgae.autoencoder.Autoencoder` with a diffusion decoder."""

    def forward(self, model: nn.Module, x: Tensor, generator: Generator = None) -> dict:
        """x (B, 3, H, W) in [-1, 1] -> {"loss", "diffusion", "perceptual", "kl"}."""
        dec = model.decoder
        dcfg, path = dec.cfg, dec.path
        posterior = model.encode(x)
        z = posterior.sample(generator)  # (B, c, h, w); gradients reach the encoder through z
        t = sample_time(x.shape[0], dcfg, generator, x.device)  # (B,)
        eps = randn(x.shape, generator, x.device, x.dtype)
        x_t = path.interpolate(x, eps, t)
        out = dec.unet(x_t, t, z).float()  # (B, 3, H, W), the raw prediction
        pred = to_x0_eps(out, dcfg.prediction, x_t, t, path)
        space = dcfg.loss_space or dcfg.prediction
        target = from_x0_eps(x, eps, space, t, path)
        guess = out if space == dcfg.prediction else from_x0_eps(pred.x0, pred.eps, space, t, path)
        diffusion = F.mse_loss(guess, target)
        weight = (1.0 - t) if self.cfg.perceptual_time_weight == "one_minus_t" else None
        perceptual = self.perceptual_term(x, pred.x0, weight)
        kl = posterior.kl().mean()
        loss = diffusion + self.cfg.perceptual_weight * perceptual + self.cfg.kl_weight * kl
        return {"loss": loss, "diffusion": diffusion, "perceptual": perceptual, "kl": kl}


class BaselineObjective(_Objective):
    """Pixel + perceptual + KL (+ GAN) loss for the one-pass baseline autoencoder."""

    def forward(
        self,
        model: nn.Module,
        x: Tensor,
        generator: Generator = None,
        discriminator: nn.Module | None = None,
        step: int = 0,
    ) -> dict:
        """x (B, 3, H, W) -> {"loss", "pixel", "perceptual", "kl", "gan", "gan_weight", "recon"}."""
        posterior = model.encode(x)
        rec = model.decoder(posterior.sample(generator)).float()  # (B, 3, H, W)
        diff = rec - x
        pixel = diff.abs().mean() if self.cfg.pixel_loss == "l1" else diff.pow(2).mean()
        perceptual = self.perceptual_term(x, rec)
        kl = posterior.kl().mean()
        rec_loss = self.cfg.pixel_weight * pixel + self.cfg.perceptual_weight * perceptual
        loss = rec_loss + self.cfg.kl_weight * kl
        gan = gan_weight = x.new_zeros(())
        if self.use_gan(discriminator, step):
            gan = hinge_g_loss(discriminator(rec))
            gan_weight = self.cfg.gan_weight * adaptive_gan_weight(
                rec_loss, gan, model.decoder.last_layer
            )
            loss = loss + gan_weight * gan
        return {
            "loss": loss,
            "pixel": pixel,
            "perceptual": perceptual,
            "kl": kl,
            "gan": gan,
            "gan_weight": gan_weight,
            "recon": rec.detach(),
        }

    def use_gan(self, discriminator: nn.Module | None, step: int) -> bool:
        return (
            discriminator is not None
            and self.cfg.gan_weight > 0
            and step >= self.cfg.gan_start_step
        )

    @staticmethod
    def discriminator_loss(discriminator: nn.Module, x: Tensor, recon: Tensor) -> Tensor:
        """Hinge loss of the PatchGAN on real ``x`` and detached reconstructions."""
        return hinge_d_loss(discriminator(x), discriminator(recon.detach()))


def build_objective(loss: LossConfig, kind: str, perceptual: LPIPS | None = None) -> _Objective:
    """The objective for model ``kind`` ('dgae' or 'baseline'); loads the perceptual network
    named by ``loss.perceptual`` unless one is given."""
    if perceptual is None and loss.perceptual_weight > 0:
        perceptual = build_perceptual(loss.perceptual)
    cls = DGAEObjective if kind == "dgae" else BaselineObjective
    return cls(loss, perceptual)
