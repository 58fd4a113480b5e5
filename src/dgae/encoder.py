"""SD-VAE/LDM convolutional encoder: images -> diagonal Gaussian posterior parameters."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from dgae.config import EncoderConfig, level_channels
from dgae.nn import AttentionBlock, Downsample, ResBlock, checkpointed, group_norm


class Encoder(nn.Module):
    """x (B, 3, H, W) in [-1, 1] -> moments (B, 2c, H/f, W/f): mean and log-variance of q(z|x)."""

    def __init__(self, cfg: EncoderConfig, latent_channels: int, downsample_factor: int) -> None:
        super().__init__()
        levels = int(math.log2(downsample_factor)) + 1
        chans = level_channels(cfg.base_channels, cfg.channel_mult, levels)
        self.conv_in = nn.Conv2d(3, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        prev = chans[0]
        for i, ch in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(prev, ch, dropout=cfg.dropout))
                prev = ch
            stage = nn.Module()
            stage.blocks = blocks
            stage.downsample = Downsample(ch) if i < levels - 1 else nn.Identity()
            self.down.append(stage)
        self.mid1 = ResBlock(prev, prev, dropout=cfg.dropout)
        self.mid_attn = AttentionBlock(prev) if cfg.mid_attention else nn.Identity()
        self.mid2 = ResBlock(prev, prev, dropout=cfg.dropout)
        self.norm_out = group_norm(prev)
        self.conv_out = nn.Conv2d(prev, 2 * latent_channels, 3, padding=1)
        self.gradient_checkpointing = False

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)  # (B, C0, H, W)
        for stage in self.down:
            for block in stage.blocks:
                h = checkpointed(block, h, enabled=self.gradient_checkpointing)
            h = stage.downsample(h)  # halves H, W except at the last level
        h = self.mid2(self.mid_attn(self.mid1(h)))  # (B, C_last, h, w)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 2c, h, w)
