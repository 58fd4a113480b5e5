"""``AutoencoderDGAE``: a DGAE as a diffusers model, usable as the ``vae=`` of a pipeline.

A diffusers ``ModelMixin`` + ``ConfigMixin`` around :class:`~dgae.autoencoder.Autoencoder`:
``encode(x)`` returns an ``AutoencoderKLOutput`` whose ``latent_dist`` has ``sample(generator)``
and ``mode()``; ``decode(z, generator=None, num_inference_steps=None, return_dict=True)``
returns a ``DecoderOutput``; ``save_pretrained``/``from_pretrained`` use diffusers' folder
layout (``config.json`` + ``diffusion_pytorch_model.safetensors``, ``subfolder=``). The config
carries what pipelines read: ``scaling_factor`` and ``shift_factor`` (scalars from the model's
per-channel latent statistics), the per-channel ``latents_mean``/``latents_std`` themselves, and
``block_out_channels`` whose length gives the VAE scale factor f = 2^(len - 1).

Pipelines call ``vae.decode(latents)`` without a generator; the decoder's noise then comes from
per-image generators seeded with ``decode_seed`` (default 0), so a pipeline's output is
reproducible from its own seed, and equal to ``Autoencoder.decode(z,
generator=item_generators(decode_seed, range(B)))``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

from dgae.autoencoder import Autoencoder
from dgae.config import AutoencoderConfig, from_dict, to_dict
from dgae.random import Generator, item_generators


class AutoencoderDGAE(ModelMixin, ConfigMixin):
    """A DGAE (or the one-pass baseline) with diffusers' VAE interface; weights live in
    ``self.dgae`` exactly as in a dgae folder."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        dgae_config: dict[str, Any] | None = None,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
        scaling_factor: float = 1.0,
        shift_factor: float = 0.0,
        block_out_channels: list[int] | None = None,
        latent_channels: int = 4,
        decode_seed: int = 0,
    ) -> None:
        super().__init__()
        cfg = from_dict(AutoencoderConfig, dgae_config or {})
        self.dgae = Autoencoder(cfg)
        if latents_mean is not None and latents_std is not None:
            self.dgae.latent_stats.set_from(torch.tensor(latents_mean), torch.tensor(latents_std))

    @classmethod
    def from_dgae(cls, model: Autoencoder | str | Path) -> AutoencoderDGAE:
        """The diffusers model of a dgae :class:`Autoencoder` (or model folder); weights and
        statistics are copied bit for bit."""
        if not isinstance(model, Autoencoder):
            model = Autoencoder.from_pretrained(model)
        mean, std = model.latent_stats.mean, model.latent_stats.std
        f, c = model.downsample_factor, model.config.latent_channels
        out = cls(
            dgae_config=to_dict(model.config),
            latents_mean=mean.tolist(),
            latents_std=std.tolist(),
            # diffusers' convention: latents_for_diffusion = (z - shift_factor) * scaling_factor
            scaling_factor=float(1.0 / std.pow(2).mean().sqrt()),
            shift_factor=float(mean.mean()),
            block_out_channels=[model.config.decoder.base_channels] * (int(math.log2(f)) + 1),
            latent_channels=c,
        )
        out.dgae.load_state_dict(model.state_dict())
        return out.eval()

    def to_dgae(self) -> Autoencoder:
        """A plain dgae :class:`Autoencoder` with these weights (``save_pretrained`` of it
        writes a dgae model folder)."""
        model = Autoencoder(self.dgae.config)
        model.load_state_dict(self.dgae.state_dict())
        return model.eval()

    def encode(self, x: Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        """Images (B, 3, H, W) in [-1, 1] -> the posterior over (B, c, H/f, W/f)."""
        post = self.dgae.encode(x)  # with the dgae API's input checks
        dist = DiagonalGaussianDistribution(torch.cat([post.mean, post.logvar], dim=1))
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(
        self,
        z: Tensor,
        generator: Generator = None,
        num_inference_steps: int | None = None,
        return_dict: bool = True,
        **sampling: Any,
    ) -> DecoderOutput | tuple:
        """Latents (B, c, h, w) -> images (B, 3, h*f, w*f) in [-1, 1] with
        ``num_inference_steps`` decoder NFE (default: the model's); without a generator the
        noise is per image, seeded by ``config.decode_seed``."""
        if generator is None:
            generator = item_generators(self.config.decode_seed, range(len(z)), device=z.device)
        image = self.dgae.decode(z, num_steps=num_inference_steps, generator=generator, **sampling)
        return DecoderOutput(sample=image) if return_dict else (image,)

    def forward(self, sample: Tensor, generator: Generator = None) -> DecoderOutput:
        """Reconstruct ``sample`` (B, 3, H, W) from its posterior mean."""
        return self.decode(self.encode(sample).latent_dist.mode(), generator=generator)
