"""The encoder of an existing diffusers ``AutoencoderKL``, frozen, as a DGAE encoder.

Trains a diffusion decoder for latents people already have (SD-VAE-style KL autoencoders): the
VAE's ``encoder`` and ``quant_conv`` produce the posterior moments (B, 2c, h, w) exactly as in
diffusers, with every parameter frozen and the module kept in eval mode.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor, nn

from dgae.config import AutoencoderConfig, ConfigError


def kl_geometry(kl_config: dict) -> tuple[int, int]:
    """(latent channels, downsampling factor) of an AutoencoderKL config."""
    return int(kl_config["latent_channels"]), 2 ** (len(kl_config["block_out_channels"]) - 1)


class FrozenKLEncoder(nn.Module):
    """x (B, 3, H, W) in [-1, 1] -> moments (B, 2c, H/f, W/f) of a frozen AutoencoderKL."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        enc = cfg.encoder
        fresh = not enc.frozen_config
        if fresh:  # first build: read the VAE folder and record its architecture
            path = Path(enc.frozen) / "config.json"
            if not path.exists():
                raise ConfigError(
                    f"model.encoder.frozen={enc.frozen!r}: {path} is missing; expected a local "
                    "diffusers AutoencoderKL folder"
                )
            enc.frozen_config = path.read_text()
        kl_config = json.loads(enc.frozen_config)
        c, f = kl_geometry(kl_config)
        if (c, f) != (cfg.latent_channels, cfg.downsample_factor):
            raise ConfigError(
                f"model.encoder.frozen={enc.frozen!r} encodes to {c} channels at f{f}; set "
                f"model.latent_channels={c} model.downsample_factor={f}"
            )
        # low_cpu_mem_usage=False: without `accelerate` diffusers would warn on every load
        vae = (AutoencoderKL.from_pretrained(enc.frozen, low_cpu_mem_usage=False) if fresh
               else AutoencoderKL.from_config(kl_config))  # fmt: skip
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenKLEncoder:
        return super().train(False)  # frozen: never in training mode

    def forward(self, x: Tensor) -> Tensor:
        h = self.encoder(x)
        return self.quant_conv(h) if self.quant_conv is not None else h
