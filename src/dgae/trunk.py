"""The ``trunk`` diffusion decoder: the prior head's features are shared with the denoiser.

The U-Net decoder pays for the image twice: the prior head is a whole one-pass decoder, and
the U-Net re-encodes its output at every step, the full-resolution levels costing most
(docs/benchmarks.md, "Where a decode spends its time"). Here the head (a one-pass decoder that
stops at 1/p of the image resolution) runs once per decode, independent of t, and emits its
image x_bar(z) with its last features; the only per-step network is a stack of time-modulated
residual blocks on p x p patches of x_t, x_bar and those features (the "less work at full
resolution, adaptive norm driven by t, z injected in every block" of issue 11, SSDD-like in
spirit: the expensive part of the decoder is shared by all steps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgae.baseline import OnePassDecoder
from dgae.config import BaselineDecoderConfig, UNetConfig
from dgae.nn import ResBlock, checkpointed, group_norm, resize_map, timestep_embedding


class TrunkHead(OnePassDecoder):
    """z (B, c, h, w) -> context (B, 3 + C/p^2, H, W): channels 0-2 are the prior image x_bar,
    the rest the head's last features (B, C, H/p, W/p) pixel-shuffled to full resolution, so
    that tiling and cropping treat the whole context as an image."""

    def __init__(
        self, cfg: BaselineDecoderConfig, latent_channels: int, downsample_factor: int, patch: int
    ) -> None:
        super().__init__(cfg, latent_channels, downsample_factor, out_patch=patch)
        self.context_channels = 3 + self.feature_channels // patch**2

    def forward(self, z: Tensor) -> Tensor:
        h = self.features(z)  # (B, C, H/p, W/p)
        return torch.cat([self.to_image(h), F.pixel_shuffle(h, self.patch)], dim=1)


class TrunkDenoiser(nn.Module):
    """(x_t (B, 3, H, W), t (B,), z (B, c, h, w), context (B, 3 + C/p^2, H, W)) -> output
    (B, 3, H, W): ``num_res_blocks`` residual blocks at H/p, adaptive GroupNorm from t, a 1x1
    projection of z added in each (the U-Net's ``inject_z_every_level``). With
    ``full_res_channels`` T > 0 a narrow full-resolution level wraps them, as a two-level
    U-Net: a stem and a block of width T before, and a block over [shuffled output, stem]
    after, so neighbouring pixels are no longer computed by separate weights of one patch site
    (the periodic 2x2 texture of the patch-only output)."""

    def __init__(self, cfg: UNetConfig, latent_channels: int, context_channels: int) -> None:
        super().__init__()
        width, p, full = cfg.base_channels, cfg.patch_size, cfg.full_res_channels
        self.patch, emb_ch = p, 4 * width
        self.time_embed = nn.Sequential(
            nn.Linear(width, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch)
        )
        cond = latent_channels if cfg.inject_z_every_level else 0
        after = cfg.z_injection == "post_norm"

        def block(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, emb_ch, cond, cfg.dropout, True, cond_after_norm=after)

        # x_t's and the context's patches; z (nearest-upsampled) enters through the blocks
        self.conv_in = nn.Conv2d((3 + context_channels) * p * p, width, 3, padding=1)
        self.blocks = nn.ModuleList(block(width, width) for _ in range(cfg.num_res_blocks))
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, (full or 3) * p * p, 3, padding=1)
        self.full = None
        if full:
            self.full = nn.ModuleDict({
                "stem": nn.Conv2d(3 + context_channels, full, 3, padding=1),
                "down": block(full, full),
                "up": block(2 * full, full),
                "norm": group_norm(full),
                "out": nn.Conv2d(full, 3, 3, padding=1),
            })  # fmt: skip
        last = self.conv_out if self.full is None else self.full["out"]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.inject = bool(cond)
        self.gradient_checkpointing = False

    def _cond(self, z: Tensor, h: Tensor) -> Tensor | None:
        """z resized to the map h (B, C, h', w') for the blocks at that resolution, or None."""
        return resize_map(z, tuple(h.shape[-2:])) if self.inject else None

    def _block(self, block: ResBlock, h: Tensor, emb: Tensor, cond: Tensor | None) -> Tensor:
        return checkpointed(block, h, emb, cond, enabled=self.gradient_checkpointing)

    def forward(self, x_t: Tensor, t: Tensor, z: Tensor, context: Tensor) -> Tensor:
        emb = self.time_embed(timestep_embedding(t, self.conv_in.out_channels))  # (B, 4 width)
        z = z.to(x_t.dtype)
        inputs = torch.cat([x_t, context.to(x_t.dtype)], dim=1)  # (B, 3 + C_ctx, H, W)
        h = self.conv_in(F.pixel_unshuffle(inputs, self.patch))  # (B, width, H/p, W/p)
        cond = self._cond(z, h)  # once per resolution, not per block
        for block in self.blocks:
            h = self._block(block, h, emb, cond)
        out = self.conv_out(F.silu(self.norm_out(h)))  # (B, (T or 3) p^2, H/p, W/p)
        out = F.pixel_shuffle(out, self.patch)  # (B, T or 3, H, W)
        if self.full is None:
            return out
        cond = self._cond(z, out)
        skip = self._block(self.full["down"], self.full["stem"](inputs), emb, cond)  # (B, T, H, W)
        out = self._block(self.full["up"], torch.cat([out, skip], dim=1), emb, cond)
        return self.full["out"](F.silu(self.full["norm"](out)))  # (B, 3, H, W)
