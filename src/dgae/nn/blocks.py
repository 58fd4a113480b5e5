"""Convolutional building blocks shared by the encoder, the U-Net decoder and the baseline."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn


def num_groups(channels: int, max_groups: int = 32, min_group_size: int = 4) -> int:
    """Largest divisor of ``channels`` that is <= ``max_groups`` and leaves >= ``min_group_size``
    channels per group. At SD-VAE widths (>= 128) this is the usual 32; narrow layers would
    otherwise get one channel per group, i.e. InstanceNorm, which erases each channel's spatial
    mean (global colour and brightness) at every normalisation."""
    limit = max(1, min(max_groups, channels // min_group_size))
    return next(g for g in range(limit, 0, -1) if channels % g == 0)


def group_norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups(channels), channels, eps=1e-6, affine=affine)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of times ``t`` in [0, 1]: (B,) -> (B, dim).

    ``t`` is scaled by 1000 so the frequencies cover the same range as DDPM's integer steps.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def zero_(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters so a residual branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block.

    With ``emb_channels`` the second norm is adaptive (ADM's scale/shift from the time embedding);
    with ``cond_channels`` a 1x1 projection of a conditioning map (the latent z at this
    resolution) is added after the first convolution: before the second norm (``pre_norm``) or
    after it and its modulation (``post_norm``). Before the norm, the part of the projection
    that is constant over a norm group and the image (global colour, brightness) is subtracted
    again by GroupNorm; after it, it reaches the block's output intact.
    """

    fsdp_unit = True  # a separate FSDP2 shard unit (training/fsdp.py)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_channels: int = 0,
        cond_channels: int = 0,
        dropout: float = 0.0,
        zero_init: bool = False,
        cond_after_norm: bool = False,
    ) -> None:
        super().__init__()
        self.cond_after_norm = cond_after_norm
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.cond = nn.Conv2d(cond_channels, out_channels, 1) if cond_channels else None
        self.emb = nn.Linear(emb_channels, 2 * out_channels) if emb_channels else None
        self.norm2 = group_norm(out_channels, affine=not emb_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if zero_init:
            zero_(self.conv2)
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor, emb: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        if self.cond is not None and not self.cond_after_norm:
            h = h + self.cond(cond)
        h = self.norm2(h)
        if self.emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(
                2, dim=1
            )  # (B, C_out, 1, 1)
            h = h * (1 + scale) + shift
        if self.cond is not None and self.cond_after_norm:
            h = h + self.cond(cond)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Spatial self-attention over the H*W positions with ``F.scaled_dot_product_attention``."""

    fsdp_unit = True  # a separate FSDP2 shard unit (training/fsdp.py)

    def __init__(self, channels: int, head_channels: int = 64, zero_init: bool = False) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        if zero_init:
            zero_(self.proj)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        # contiguous inputs let SDPA pick a memory-efficient kernel (linear in H*W): strided
        # ones fall back to the math path, which materialises (H*W)^2 scores (34 GB at 512^2)
        q, k, v = (t.contiguous() for t in qkv.transpose(-1, -2).unbind(1))  # (B, heads, HW, C/h)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, H*W, C/heads)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Stride-2 3x3 convolution: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest x2 then 3x3 convolution: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def resize_map(z: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a latent map to ``size``: nearest when enlarging, area-average when shrinking."""
    if z.shape[-2:] == size:
        return z
    if size[0] >= z.shape[-2]:
        return F.interpolate(z, size=size, mode="nearest")
    return F.adaptive_avg_pool2d(z, size)


def checkpointed(block: nn.Module, *args: Tensor, enabled: bool) -> Tensor:
    """Run ``block`` under activation checkpointing when ``enabled`` and gradients are on."""
    if enabled and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
    return block(*args)
