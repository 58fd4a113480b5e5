"""The comparison baseline: a one-pass SD-VAE decoder and an optional PatchGAN discriminator.

Built from the same blocks as the DGAE encoder, so every comparison is at equal encoder, latent
size and training budget; only the decoder (and its loss) differ.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgae.config import BaselineDecoderConfig
from dgae.encoder import level_channels
from dgae.nn import AttentionBlock, ResBlock, Upsample, checkpointed, group_norm


class OnePassDecoder(nn.Module):
    """z (B, c, h, w) -> image (B, 3, h*f, w*f) in one forward pass (the "Gaussian" decoder)."""

    def __init__(
        self, cfg: BaselineDecoderConfig, latent_channels: int, downsample_factor: int
    ) -> None:
        super().__init__()
        levels = int(math.log2(downsample_factor)) + 1
        chans = level_channels(cfg.base_channels, cfg.channel_mult, levels)
        ch = chans[-1]
        self.conv_in = nn.Conv2d(latent_channels, ch, 3, padding=1)
        self.mid = nn.Sequential(
            ResBlock(ch, ch),
            AttentionBlock(ch) if cfg.mid_attention else nn.Identity(),
            ResBlock(ch, ch),
        )
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(ResBlock(ch, chans[i]))
                ch = chans[i]
            if i > 0:
                self.up.append(Upsample(ch))
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, 3, 3, padding=1)
        self.gradient_checkpointing = False

    @property
    def last_layer(self) -> Tensor:
        """Weight of the output conv: the adaptive GAN weight balances gradients here."""
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))  # (B, C_last, h, w)
        for layer in self.up:
            h = checkpointed(layer, h, enabled=self.gradient_checkpointing)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 3, H, W)

    def decode(
        self, z: Tensor, num_steps: int | None = None, generator=None, **_: object
    ) -> Tensor:
        """Same signature as the diffusion decoder; ``num_steps`` and noise are unused (NFE 1)."""
        return self(z).clamp(-1.0, 1.0)


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix/LDM NLayerDiscriminator): image (B, 3, H, W) -> logits (B, 1, H', W')."""

    def __init__(self, channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = channels
        for i in range(1, num_layers + 1):
            out = channels * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            layers += [
                nn.Conv2d(ch, out, 4, stride, 1, bias=False),
                group_norm(out),  # GroupNorm instead of BatchNorm: no cross-rank statistics
                nn.LeakyReLU(0.2),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator hinge loss: mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))), halved."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """Generator hinge loss: -mean(D(x_hat))."""
    return -fake_logits.mean()


def adaptive_gan_weight(rec_loss: Tensor, g_loss: Tensor, last_layer: Tensor) -> Tensor:
    """LDM's balance: ||grad rec|| / (||grad g|| + 1e-4) at the decoder's last layer, in [0, 1e4]."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()
