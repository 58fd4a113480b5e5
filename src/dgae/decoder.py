"""The diffusion decoder: an ADM-style U-Net denoiser D(x_t, t, z) and few-step decoding.

The latent z (B, c, h, w) is nearest-upsampled to the image size and concatenated with x_t at
the input; with ``inject_z_every_level`` it is also added (1x1 projection, resized to each
level) inside every residual block, so the deep levels see z without relying on the input path.
With ``prior_head`` a one-pass decoder predicts x_bar(z) and the diffusion runs on the residual
x - x_bar (x_bar is a further input of the U-Net); decoding returns x_bar + the sampled residual.
The ``trunk`` architecture (dgae/trunk.py) replaces the U-Net by a light per-step network on the
head's features; both are driven here through the head's *context* (B, 3 + C, H, W): x_bar in
channels 0-2, then any features the denoiser shares.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgae.baseline import OnePassDecoder
from dgae.config import BaselineDecoderConfig, DiffusionConfig, UNetConfig
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
from dgae.tiling import latent_slices, tiled, tiled_from_latent, tiling_overlap
from dgae.trunk import TrunkDenoiser, TrunkHead


class UNet(nn.Module):
    """(x_t (B, 3, H, W), t (B,), z (B, c, h, w)[, prior (B, 3, H, W)]) -> output (B, 3, H, W)."""

    def __init__(self, cfg: UNetConfig, latent_channels: int, out_channels: int = 3) -> None:
        super().__init__()
        base, emb_ch = cfg.base_channels, 4 * cfg.base_channels
        cond = latent_channels if cfg.inject_z_every_level else 0
        self.num_levels = len(cfg.channel_mult)
        self.time_embed = nn.Sequential(
            nn.Linear(base, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch)
        )
        prior = 3 if cfg.prior_head else 0
        self.patch = cfg.patch_size
        inputs = (3 + latent_channels + prior) * self.patch**2
        self.conv_in = nn.Conv2d(inputs, base, 3, padding=1)

        def res(cin: int, cout: int) -> ResBlock:
            after = cfg.z_injection == "post_norm"
            return ResBlock(cin, cout, emb_ch, cond, cfg.dropout, True, cond_after_norm=after)

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
        self.conv_out = nn.Conv2d(ch, out_channels * self.patch**2, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.inject = bool(cond)
        self.gradient_checkpointing = False

    def _block(self, pair: nn.ModuleList, h: Tensor, emb: Tensor, z: Tensor) -> Tensor:
        cond = resize_map(z, tuple(h.shape[-2:])) if self.inject else None
        block, attn = pair
        h = checkpointed(block, h, emb, cond, enabled=self.gradient_checkpointing)
        return attn(h)

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor, prior: Tensor | None = None) -> Tensor:
        emb = self.time_embed(timestep_embedding(t, self.conv_in.out_channels))  # (B, 4*base)
        z = z.to(x_t.dtype)
        inputs = [x_t, resize_map(z, tuple(x_t.shape[-2:]))] + ([] if prior is None else [prior])
        # (B, base, H/p, W/p): p x p patches of the inputs become channels
        h = self.conv_in(F.pixel_unshuffle(torch.cat(inputs, dim=1), self.patch))
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
        out = self.conv_out(F.silu(self.norm_out(h)))  # (B, 3 p^2, H/p, W/p)
        return F.pixel_shuffle(out, self.patch)  # (B, 3, H, W)


class DiffusionDecoder(nn.Module):
    """A U-Net denoiser plus its path and parameterisation; ``decode`` integrates the ODE."""

    is_diffusion = True

    def __init__(
        self,
        unet: UNetConfig,
        diffusion: DiffusionConfig,
        latent_channels: int,
        downsample_factor: int,
        head: BaselineDecoderConfig | None = None,
    ) -> None:
        super().__init__()
        self.cfg = diffusion
        self.path = get_path(diffusion.path)
        self.factor = downsample_factor
        if unet.prior_head and head is None:
            raise ValueError("UNetConfig.prior_head needs the head's BaselineDecoderConfig")
        self.head: OnePassDecoder | None = None
        if unet.architecture == "trunk":
            head_patch = 1 if unet.head_full_resolution else unet.patch_size
            self.head = TrunkHead(head, latent_channels, downsample_factor, head_patch)
            self.unet = TrunkDenoiser(unet, latent_channels, self.head.context_channels)
        else:
            if unet.prior_head:
                self.head = OnePassDecoder(head, latent_channels, downsample_factor)
            self.unet = UNet(unet, latent_channels)

    def context(self, z: Tensor) -> Tensor | None:
        """The head's output (B, 3 + C, H, W): x_bar(z) then shared features; None without a
        head."""
        return None if self.head is None else self.head(z).float()

    def prior(self, z: Tensor) -> Tensor | None:
        """The one-pass head's image x_bar(z) (B, 3, H, W), or None without a head."""
        context = self.context(z)
        return None if context is None else context[:, :3]

    def _network(self, z: Tensor, context: Tensor | None):
        return lambda x_t, t: self.unet(x_t, t, z, context)

    def _tiled_network(self, z: Tensor, context: Tensor | None, tile: int, overlap: int):
        f = self.factor

        def network(x_t: Tensor, t: Tensor) -> Tensor:
            def one(rows: slice, cols: slice) -> Tensor:
                p = None if context is None else context[..., rows, cols]
                return self.unet(
                    x_t[..., rows, cols], t, z[(..., *latent_slices(rows, cols, f))], p
                )

            return tiled(one, x_t.shape[-2], x_t.shape[-1], tile, overlap, f, module=self.unet)

        return network

    def predict(
        self, x_t: Tensor, t: Tensor, z: Tensor, context: Tensor | None = None
    ) -> Prediction:
        """Denoise: x_t (B, 3, H, W), t (B,), z (B, c, h, w) -> (x0_hat, eps_hat); with a head,
        x_t and x0_hat are residuals to the prior image in ``context`` (default: the head's)."""
        if self.head is not None and context is None:
            context = self.context(z)
        return as_denoiser(self._network(z, context), self.cfg, self.path)(x_t, t)

    def denoising_loss(
        self, x: Tensor, z: Tensor, generator: Generator = None
    ) -> tuple[DenoisingLoss, Tensor | None]:
        """The diffusion loss on images x (B, 3, H, W) given latents z (B, c, h, w), and the
        head's x_bar (None without a head). ``pred.x0`` is always the full image estimate."""
        context = self.context(z)
        if context is None:
            return denoising_loss(self._network(z, None), x, self.cfg, self.path, generator), None
        # the residual target does not train the head's image (its own loss does); x0_hat adds
        # it back. Shared features (the trunk's) are trained by the diffusion loss too.
        prior = context[:, :3]
        anchor = prior.detach()
        network = self._network(z, torch.cat([anchor, context[:, 3:]], dim=1))
        res = denoising_loss(network, x - anchor, self.cfg, self.path, generator)
        pred = Prediction(res.pred.x0 + prior, res.pred.eps)
        return DenoisingLoss(res.loss, pred, res.t), prior

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
        tile: int | None = None,
        overlap: int | None = None,
    ) -> Tensor:
        """Latent (B, c, h, w) -> image (B, 3, h*f, w*f) in [-1, 1] with ``num_steps`` NFE.

        ``num_steps=0`` returns the prior head's image x_bar(z) without a denoiser call: a
        one-pass decode at the baseline decoder's cost, of a latent shaped by the diffusion
        loss (docs/benchmarks.md, "The head alone"); models without a head refuse it.

        The starting noise comes from ``generator`` (one generator, a list of one per sample, or
        None); the integration itself is deterministic. ``tile`` (pixels, a multiple of f)
        evaluates the head and every denoiser call on overlapping tiles blended before each
        update (:mod:`dgae.tiling`; ``overlap`` default tile / 4): memory bounded by the tile.
        """
        b, _, h, w = z.shape
        if num_steps == 0 and self.head is None:
            raise ValueError("num_steps=0 decodes with the prior head alone; this model has none "
                             "(model.decoder.prior_head=false): use num_steps >= 1")  # fmt: skip
        overlap = tiling_overlap(tile, overlap, h * self.factor, w * self.factor, self.factor)
        if overlap is None:
            context = self.context(z)
            network = self._network(z, context)
        else:
            context = (None if self.head is None
                       else tiled_from_latent(self.head, z, self.factor, tile, overlap))  # fmt: skip
            network = self._tiled_network(z, context, tile, overlap)
        if num_steps == 0:
            return context[:, :3].clamp(-1.0, 1.0)
        noise = randn((b, 3, h * self.factor, w * self.factor), generator, z.device, torch.float32)
        x = sample(
            as_denoiser(network, self.cfg, self.path),
            noise,
            self.path,
            self.cfg.num_steps if num_steps is None else num_steps,
            sampler or self.cfg.sampler,
            spacing=spacing or self.cfg.spacing,
            shift=self.cfg.sample_shift if shift is None else shift,
            t_max=self.cfg.t_max,
        )
        return (x if context is None else context[:, :3] + x).clamp(-1.0, 1.0)
