"""Training objectives. Each returns the total loss and every named term (all scalars).

DGAE (no discriminator):  L = L_diff + lambda_P * w(t) * P(x, x0_hat) + lambda_KL * KL(q(z|x) || N(0, I))
  L_diff: MSE in the configured space (v, x0 or eps) between the decoder's prediction at
  x_t = alpha(t) x + sigma(t) eps, given z ~ q(z|x), and the true value; x0_hat is the decoder's
  one-step clean estimate at that t, w(t) = 1 or (1 - t) (times alpha^2 / (alpha^2 + sigma^2)
  under eps-prediction, where x0_hat amplifies errors). KL in LDM's units (kl_per_element).
Baseline ("Gaussian" decoder):  L = |x - D(z)|_1 (or squared) + lambda_P P(x, D(z)) + lambda_KL KL
  (+ adaptive-weight hinge GAN term when a discriminator is given; the "GAN-guided" baseline).
"""

from __future__ import annotations

from torch import Tensor, nn

from dgae.bottleneck import DiagonalGaussian
from dgae.config import LossConfig
from dgae.losses.adversarial import adaptive_gan_weight, hinge_g_loss
from dgae.losses.perceptual import LPIPS, build_perceptual
from dgae.random import Generator


def kl_per_element(posterior: DiagonalGaussian, x: Tensor) -> Tensor:
    """KL(q(z|x) || N(0, I)) summed over the latent, divided by the image's element count 3 H W,
    averaged over the batch: a scalar.

    LDM/VA-VAE sum the reconstruction terms over pixels and the KL over the latent; our pixel,
    perceptual and diffusion terms are per-element means, so dividing that sum by 3 H W keeps
    the whole loss LDM's divided by 3 H W, and ``kl_weight=1e-6`` means what it means there.
    """
    return posterior.kl().mean() / x[0].numel()


class _Objective(nn.Module):
    def __init__(self, cfg: LossConfig, perceptual: LPIPS | None) -> None:
        super().__init__()
        if cfg.perceptual_weight > 0 and perceptual is None and cfg.perceptual != "none":
            raise ValueError(f"loss.perceptual={cfg.perceptual!r} needs a perceptual network")
        self.cfg = cfg
        self.perceptual = perceptual

    def pixel_term(self, x: Tensor, rec: Tensor) -> Tensor:
        """Mean |x - rec| (``l1``) or squared error (``l2``) over all elements."""
        diff = rec - x
        return diff.abs().mean() if self.cfg.pixel_loss == "l1" else diff.pow(2).mean()

    def reconstruction_term(self, x: Tensor, rec: Tensor, perceptual: Tensor) -> Tensor:
        """The one-pass reconstruction loss lambda_pix pixel + lambda_P P (the baseline's), with
        the perceptual distance P of ``rec`` already computed (a scalar)."""
        return (
            self.cfg.pixel_weight * self.pixel_term(x, rec)
            + self.cfg.perceptual_weight * perceptual
        )

    def perceptual_terms(
        self, x: Tensor, *x_hats: Tensor, weight: Tensor | None = None
    ) -> list[Tensor]:
        """Mean perceptual distance of each of ``x_hats`` to ``x`` (the first weighted per sample
        by ``weight``), one pass of the perceptual network over all; 0 when disabled."""
        if self.perceptual is None or self.cfg.perceptual_weight == 0:
            return [x.new_zeros(()) for _ in x_hats]
        ds = self.perceptual.against(x.float(), *(y.float() for y in x_hats))  # each (B,)
        if weight is not None:
            ds[0] = weight * ds[0]
        return [d.mean() for d in ds]

    def perceptual_term(self, x: Tensor, x_hat: Tensor, weight: Tensor | None = None) -> Tensor:
        """Mean of (optionally per-sample weighted) perceptual distances; 0 when disabled."""
        return self.perceptual_terms(x, x_hat, weight=weight)[0]


class DGAEObjective(_Objective):
    """The DGAE loss for an :class:`~dgae.autoencoder.Autoencoder` with a diffusion decoder."""

    def forward(self, model: nn.Module, x: Tensor, generator: Generator = None) -> dict:
        """x (B, 3, H, W) in [-1, 1] -> {"loss", "diffusion", "perceptual", "kl"}."""
        posterior = model.encode(x)
        z = posterior.sample(generator)  # (B, c, h, w); gradients reach the encoder through z
        (diffusion, pred, t), prior = model.decoder.denoising_loss(x, z, generator)
        weight = (1.0 - t) if self.cfg.perceptual_time_weight == "one_minus_t" else None
        reliability = model.decoder.x0_weight(t)  # eps-prediction: x0_hat amplifies errors
        if reliability is not None:
            weight = reliability if weight is None else weight * reliability
        # the head's perceptual term shares the perceptual network's pass over x and x0_hat
        perceptual, *head = self.perceptual_terms(x, pred.x0, *([] if prior is None else [prior]),
                                                  weight=weight)  # fmt: skip
        kl = kl_per_element(posterior, x)
        loss = diffusion + self.cfg.perceptual_weight * perceptual + self.cfg.kl_weight * kl
        terms = {"diffusion": diffusion, "perceptual": perceptual, "kl": kl}
        if prior is not None:  # the one-pass head is trained like the baseline decoder
            terms["head"] = self.reconstruction_term(x, prior, head[0])
            loss = loss + terms["head"]
        return {"loss": loss, **terms}


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
        pixel = self.pixel_term(x, rec)
        perceptual = self.perceptual_term(x, rec)
        kl = kl_per_element(posterior, x)
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


def build_objective(loss: LossConfig, kind: str, perceptual: LPIPS | None = None) -> _Objective:
    """The objective for model ``kind`` ('dgae' or 'baseline'); loads the perceptual network
    named by ``loss.perceptual`` unless one is given."""
    if perceptual is None and loss.perceptual_weight > 0:
        perceptual = build_perceptual(loss.perceptual)
    cls = DGAEObjective if kind == "dgae" else BaselineObjective
    return cls(loss, perceptual)
