"""Any autoencoder folder -> one reconstruction interface, so every model meets one protocol.

Accepted: a dgae model folder (DGAE or baseline, ``save_pretrained`` format) and a local
diffusers ``AutoencoderKL`` folder (e.g. a downloaded ``stabilityai/sd-vae-ft-ema``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from dgae.autoencoder import Autoencoder
from dgae.folders import is_format
from dgae.random import Generator


class EvalModel(Protocol):
    name: str
    downsample_factor: int
    is_diffusion: bool

    def reconstruct(self, x: Tensor, num_steps: int, generator: Generator) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 3, H, W) in [-1, 1]."""


class DgaeModel:
    """A dgae folder (DGAE or baseline); reconstructs from the posterior mean."""

    def __init__(self, path: Path, device: torch.device, sampler: str | None = None) -> None:
        self.model = Autoencoder.from_pretrained(path, device=device)
        cfg = self.model.config
        self.name = f"{cfg.kind} f{cfg.downsample_factor}c{cfg.latent_channels} ({path.name})"
        self.downsample_factor = cfg.downsample_factor
        self.is_diffusion = self.model.is_diffusion
        self.sampler = sampler or cfg.diffusion.sampler

    @torch.no_grad()
    def reconstruct(self, x: Tensor, num_steps: int, generator: Generator) -> Tensor:
        kw = {"sampler": self.sampler} if self.is_diffusion else {}
        return self.model.reconstruct(x, num_steps=num_steps, generator=generator, **kw)


class DiffusersVAE:
    """A diffusers ``AutoencoderKL`` folder; reconstructs from the posterior mode (one pass)."""

    is_diffusion = False

    def __init__(self, path: Path, device: torch.device) -> None:
        try:
            from diffusers import AutoencoderKL
        except ImportError as err:
            raise ImportError(
                f"{path} is a diffusers AutoencoderKL; pip install diffusers"
            ) from err
        self.vae = (
            AutoencoderKL.from_pretrained(str(path), local_files_only=True, low_cpu_mem_usage=False)
            .to(device)
            .eval()
        )
        cfg = self.vae.config
        self.downsample_factor = 2 ** (len(cfg.block_out_channels) - 1)
        self.name = f"AutoencoderKL f{self.downsample_factor}c{cfg.latent_channels} ({path.name})"

    @torch.no_grad()
    def reconstruct(self, x: Tensor, num_steps: int, generator: Generator) -> Tensor:
        z = self.vae.encode(x).latent_dist.mode()
        return self.vae.decode(z).sample.clamp(-1, 1)


def load_for_eval(path: str | Path, device: torch.device, sampler: str | None = None) -> EvalModel:
    """The right adapter for the folder at ``path`` (errors name what is missing)."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(
            f"{cfg_path} is missing; expected a dgae model folder or a diffusers AutoencoderKL folder"
        )
    meta = json.loads(cfg_path.read_text())
    if meta.get("_class_name") == "AutoencoderKL":
        return DiffusersVAE(path, device)
    if is_format(meta, "dgae-autoencoder"):
        return DgaeModel(path, device, sampler)
    raise ValueError(
        f"{cfg_path} is neither a dgae model config (format dgae-autoencoder) nor a diffusers "
        f"AutoencoderKL config (_class_name); found keys {sorted(meta)[:8]}"
    )
