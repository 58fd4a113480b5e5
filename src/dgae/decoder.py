"""The diffusion decoder: an ADM-style U-Net denoiser D(x_t, t, z) and few-step decoding.

The latent z (B, c, h, w) is nearest-upsampled to the image size and concatenated with x_t at
the input; with ``inject_z_every_level`` it is also added (1x1 projection, resized to each
level) inside every residual block, so the deep levels see z without relying on the input path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgae.config import DiffusionConfig, UNetConfig
from dgae.diffusion import (
    DenoisingLoss,
    Prediction,
    as_denoiser,
    denoising_loss,
    get_path,
    sample,
    x0_reliability,
)
from dgae.nn import (
    AttentionBlock,
    Downsample,
    ResBlock,
    Upsample,
    checkpointed,
    group_norm,
    resize_map,
    timestep_embedding,
)
from dgae.random import Generator, randn


class UNet(nn.Module):
    """(x_t (B, 3, H, W), t (B,), z (B, c, h, w)) -> network output (B, 3, H, W)."""

    def __init__(self, cfg: UNetConfig, latent_channels: int, out_channels: int = 3) -> None:
        super().__init__()
        base, emb_ch = cfg.base_channels, 4 * cfg.base_channels
        cond = latent_channels if cfg.inject_z_every_level else 0
        self.num_levels = len(cfg.channel_mult)
        self.time_embed = nn.Sequential(
            nn.Linear(base, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch)
        )
        self.conv_in = nn.Conv2d(3 + latent_channels, base, 3, padding=1)

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, emb_ch, cond, cfg.dropout, zero_init=True)

        def attn(ch: int, level: int) -> nn.Module:
            if level in cfg.attention_levels:
                return AttentionBlock(ch, cfg.head_channels, zero_init=True)
            return nn.Identity()

        self.down = nn.ModuleList()  # items: (ResBlock, attention) pairs or Downsample
        skips, ch = [base], base
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                self.down.append(nn.ModuleList([res(ch, base * mult), attn(base * mult, level)]))
                ch = base * mult
                skips.append(ch)
            if level < self.num_levels - 1:
                self.down.append(Downsample(ch))
                skips.append(ch)
        self.mid = nn.ModuleList([res(ch, ch), AttentionBlock(ch, cfg.head_channels), res(ch, ch)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                self.up.append(
                    nn.ModuleList([res(ch + skips.pop(), base * mult), attn(base * mult, level)])
                )
                ch = base * mult
                if level > 0 and i == cfg.num_res_blocks:
                    self.up.append(Upsample(ch))
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.inject = bool(cond)
        self.gradient_checkpointing = False

    def _block(self, pair: nn.ModuleList, h: Tensor, emb: Tensor, z: Tensor) -> Tensor:
        cond = resize_map(z, tuple(h.shape[-2:])) if self.inject else None
        block, attn = pair
        h = checkpointed(block, h, emb, cond, enabled=self.gradient_checkpointing)
        return attn(h)

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor) -> Tensor:
        emb = self.time_embed(timestep_embedding(t, self.conv_in.out_channels))  # (B, 4*base)
        z = z.to(x_t.dtype)
        h = self.conv_in(torch.cat([x_t, resize_map(z, tuple(x_t.shape[-2:]))], dim=1))
        hs = [h]  # skip connections, (B, C_l, H_l, W_l) each
        for layer in self.down:
            h = layer(h) if isinstance(layer, Downsample) else self._block(layer, h, emb, z)
            hs.append(h)
        h = self.mid[0](h, emb, resize_map(z, tuple(h.shape[-2:])) if self.inject else None)
        h = self.mid[1](h)
        h = self.mid[2](h, emb, resize_map(z, tuple(h.shape[-2:])) if self.inject else None)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h)
            else:
                h = self._block(layer, torch.cat([h, hs.pop()], dim=1), emb, z)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 3, H, W)


class DiffusionDecoder(nn.Module):
    """A U-Net denoiser plus its path and parameterisation; ``decode`` integrates the ODE."""

    def __init__(
        self,
        unet: UNetConfig,
        diffusion: DiffusionConfig,
        latent_channels: int,
        downsample_factor: int,
    ) -> None:
        super().__init__()
        self.cfg = diffusion
        self.path = get_path(diffusion.path)
        self.factor = downsample_factor
        self.unet = UNet(unet, latent_channels)

    def predict(self, x_t: Tensor, t: Tensor, z: Tensor) -> Prediction:
        """Denoise: x_t (B, 3, H, W), t (B,), z (B, c, h, w) -> (x0_hat, eps_hat)."""
        return as_denoiser(lambda x, s: self.unet(x, s, z), self.cfg, self.path)(x_t, t)

    def denoising_loss(self, x: Tensor, z: Tensor, generator: Generator = None) -> DenoisingLoss:
        """The diffusion loss on images x (B, 3, H, W) given latents z (B, c, h, w)."""
        return denoising_loss(
            lambda x_t, t: self.unet(x_t, t, z), x, self.cfg, self.path, generator
        )

    def x0_weight(self, t: Tensor) -> Tensor | None:
        """Per-sample weight (B,) for a loss on x0_hat at times t (None: no weighting needed)."""
        return x0_reliability(self.cfg, self.path, t)

    def decode(
        self,
        z: Tensor,
        num_steps: int | None = None,
        generator: Generator = None,
        sampler: str | None = None,
        spacing: str | None = None,
        shift: float | None = None,
    ) -> Tensor:
        """Latent (B, c, h, w) -> image (B, 3, h*f, w*f) in [-1, 1] with ``num_steps`` NFE.

        The starting noise comes from ``generator`` (one generator, a list of one per sample, or
        None); the integration itself is deterministic.
        """
        b, _, h, w = z.shape
        noise = randn((b, 3, h * self.factor, w * self.factor), generator, z.device, torch.float32)
        x = sample(
            lambda x_t, t: self.predict(x_t, t, z),
            noise,
            self.path,
            self.cfg.num_steps if num_steps is None else num_steps,
            sampler or self.cfg.sampler,
            spacing or self.cfg.spacing,
            self.cfg.sample_shift if shift is None else shift,
            self.cfg.t_max,
        )
        return x.clamp(-1.0, 1.0)
