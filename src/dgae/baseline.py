"""The comparison baseline: a one-pass SD-VAE decoder (its optional PatchGAN is in
:mod:`dgae.losses.adversarial`).

Built from the same blocks as the DGAE encoder, so every comparison is at equal encoder, latent
size and training budget; only the decoder (and its loss) differ.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from dgae.config import BaselineDecoderConfig, level_channels
from dgae.nn import AttentionBlock, ResBlock, Upsample, checkpointed, group_norm
from dgae.tiling import tiled_from_latent, tiling_overlap


class OnePassDecoder(nn.Module):
    """z (B, c, h, w) -> image (B, 3, h*f, w*f) in one forward pass (the "Gaussian" decoder)."""

    is_diffusion = False

    def __init__(
        self,
        cfg: BaselineDecoderConfig,
        latent_channels: int,
        downsample_factor: int,
        out_patch: int = 1,
    ) -> None:
        super().__init__()
        levels = int(math.log2(downsample_factor)) + 1
        self.factor, self.patch = downsample_factor, out_patch
        # out_patch p > 1 stops at 1/p resolution (the finest log2 p levels are left out) and
        # emits each p x p patch of the image as channels (the trunk of dgae/trunk.py)
        first = int(math.log2(out_patch))
        chans = level_channels(cfg.base_channels, cfg.channel_mult, levels)
        ch = chans[-1]
        self.conv_in = nn.Conv2d(latent_channels, ch, 3, padding=1)
        self.mid = nn.Sequential(
            ResBlock(ch, ch),
            AttentionBlock(ch) if cfg.mid_attention else nn.Identity(),
            ResBlock(ch, ch),
        )
        self.up = nn.ModuleList()
        for i in reversed(range(first, levels)):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(ResBlock(ch, chans[i]))
                ch = chans[i]
            if i > first:
                self.up.append(Upsample(ch))
        self.feature_channels = ch
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, 3 * out_patch**2, 3, padding=1)
        self.gradient_checkpointing = False

    @property
    def last_layer(self) -> Tensor:
        """Weight of the output conv: the adaptive GAN weight balances gradients here."""
        return self.conv_out.weight

    def features(self, z: Tensor) -> Tensor:
        """z (B, c, h, w) -> the last features (B, feature_channels, H/p, W/p)."""
        h = self.mid(self.conv_in(z))  # (B, C_last, h, w)
        for layer in self.up:
            h = checkpointed(layer, h, enabled=self.gradient_checkpointing)
        return h

    def to_image(self, h: Tensor) -> Tensor:
        """Features (B, feature_channels, H/p, W/p) -> image (B, 3, H, W)."""
        return F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), self.patch)

    def forward(self, z: Tensor) -> Tensor:
        return self.to_image(self.features(z))  # (B, 3, H, W)

    def decode(
        self,
        z: Tensor,
        num_steps: int | None = None,
        generator=None,
        tile: int | None = None,
        overlap: int | None = None,
        **_: object,
    ) -> Tensor:
        """Same signature as the diffusion decoder; ``num_steps`` and noise are unused (NFE 1);
        ``tile`` decodes overlapping tiles blended seam-free (:mod:`dgae.tiling`)."""
        f = self.factor
        overlap = tiling_overlap(tile, overlap, z.shape[-2] * f, z.shape[-1] * f, f)
        out = self(z) if overlap is None else tiled_from_latent(self, z, f, tile, overlap)
        return out.clamp(-1.0, 1.0)
