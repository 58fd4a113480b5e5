"""The adversarial terms of the GAN-guided baseline (LDM's recipe): a PatchGAN discriminator,
hinge losses, the adaptive weight that balances the GAN gradient against the reconstruction's,
and the discriminator's training loss as a module for the trainer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgae.nn import group_norm


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


class DiscriminatorLoss(nn.Module):
    """forward(x, recon) -> PatchGAN hinge loss on real images and detached reconstructions."""

    def __init__(self, disc: PatchDiscriminator) -> None:
        super().__init__()
        self.disc = disc

    def forward(self, x: Tensor, recon: Tensor) -> Tensor:
        return hinge_d_loss(self.disc(x), self.disc(recon.detach()))
