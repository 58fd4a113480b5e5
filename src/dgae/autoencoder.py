"""The autoencoder: encoder + Gaussian bottleneck + decoder (diffusion or one-pass baseline).

Public API (diffusers-like): ``encode(x) -> DiagonalGaussian``, ``decode(z, num_steps=...,
generator=...)``, ``reconstruct(x)``, ``save_pretrained(dir)`` / ``from_pretrained(dir)``, and
``normalize_latents`` / ``denormalize_latents`` with per-channel statistics stored in the config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from dgae.baseline import OnePassDecoder
from dgae.bottleneck import DiagonalGaussian, LatentStats
from dgae.config import AutoencoderConfig, from_dict, to_dict
from dgae.data.transforms import check_images
from dgae.decoder import DiffusionDecoder
from dgae.diffusion import check_num_steps
from dgae.encoder import Encoder
from dgae.folders import atomic_path, check_header, header
from dgae.frozen_encoder import FrozenKLEncoder
from dgae.hub import local_or_hub
from dgae.random import Generator
from dgae.tiling import tiled, tiling_overlap

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")


@runtime_checkable
class Decoder(Protocol):
    """What :class:`Autoencoder` needs of a decoder: the one-pass baseline
    (:class:`~dgae.baseline.OnePassDecoder`) and the diffusion decoder
    (:class:`~dgae.decoder.DiffusionDecoder`) both provide it."""

    is_diffusion: bool  # False: one pass (``num_steps`` and noise unused)

    def decode(
        self, z: Tensor, num_steps: int | None = None, generator: Generator = None, **sampling: Any
    ) -> Tensor:
        """Latent (B, c, h, w) -> image (B, 3, h*f, w*f) in [-1, 1]."""
        ...


def _slices(n: int, max_batch: int | None, where: str) -> list[slice]:
    """Consecutive slices of at most ``max_batch`` items covering ``n`` (one when None)."""
    if max_batch is None:
        return [slice(0, n)]
    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1:
        raise ValueError(f"{where}: max_batch={max_batch!r}; expected an integer >= 1")
    return [slice(i, i + max_batch) for i in range(0, n, max_batch)]


def _sliced(generator: Generator, part: slice) -> Generator:
    """The generators of the items in ``part``: per-image lists are sliced, one generator (or
    None) is shared, so its stream is drawn in order across the slices."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return generator[part]


def _read_record(directory: str | Path) -> tuple[Path, dict]:
    """(the folder, its checked config.json) of a dgae model folder or Hub repository; every
    problem is an error naming the file and what was expected."""
    directory = local_or_hub(directory, (CONFIG_NAME, WEIGHTS_NAME))
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if directory.is_file():
        raise ValueError(
            f"{directory} is a file; expected a model folder holding {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} (e.g. RUN/model)"
        )
    if not directory.is_dir():
        raise FileNotFoundError(f"model folder {directory} does not exist")
    if not w_path.exists():
        pickled = [p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES]
        hint = (
            f"; found {pickled}, which would need pickle execution to load and is refused"
            if pickled
            else ""
        )
        raise FileNotFoundError(f"{w_path} is missing{hint}")
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} is missing")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{cfg_path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{cfg_path}: expected a JSON object, got {type(meta).__name__}")
    check_header(meta, "dgae-autoencoder", cfg_path)
    if "model" not in meta:
        raise ValueError(f"{cfg_path} has no 'model' entry (is this a dgae model folder?)")
    if not isinstance(meta["model"], dict):
        raise ValueError(f"{cfg_path}: 'model' must be an object, got {meta['model']!r}")
    return directory, meta


def build_decoder(cfg: AutoencoderConfig) -> Decoder:
    """The decoder ``cfg.kind`` names (one of ``config.DecoderKind``)."""
    c, f = cfg.latent_channels, cfg.downsample_factor
    if cfg.kind == "dgae":
        return DiffusionDecoder(cfg.decoder, cfg.diffusion, c, f, cfg.baseline_decoder)
    return OnePassDecoder(cfg.baseline_decoder, c, f)


class Autoencoder(nn.Module):
    """DGAE (``cfg.kind == "dgae"``) or the one-pass baseline (``"baseline"``), same encoder."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        c, f = cfg.latent_channels, cfg.downsample_factor
        # an existing VAE's frozen encoder, or our own (trained with the decoder)
        self.encoder = FrozenKLEncoder(cfg) if cfg.encoder.frozen else Encoder(cfg.encoder, c, f)
        self.decoder = build_decoder(cfg)
        self.latent_stats = LatentStats(c)

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    @property
    def is_diffusion(self) -> bool:
        return self.decoder.is_diffusion

    def encode(
        self, x: Tensor, tile: int | None = None, overlap: int | None = None
    ) -> DiagonalGaussian:
        """Images (B, 3, H, W) in [-1, 1], H and W divisible by f -> posterior over (B, c, H/f, W/f).

        ``tile`` (pixels, a multiple of f) encodes overlapping tiles and blends their moments
        (:mod:`dgae.tiling`; ``overlap`` default tile / 4): memory bounded by the tile.
        """
        f = self.downsample_factor
        check_images(x, f, "encode(x)")
        h, w = x.shape[-2:]
        overlap = tiling_overlap(tile, overlap, h, w, f)
        if overlap is None:
            return DiagonalGaussian(self.encoder(x))
        moments = tiled(
            lambda r, c: self.encoder(x[..., r, c]), h, w, tile, overlap, f, f, module=self.encoder
        )
        return DiagonalGaussian(moments)

    def check_latents(self, z: Tensor, where: str = "decode(z)") -> None:
        c = self.config.latent_channels
        if not isinstance(z, Tensor) or z.ndim != 4 or z.shape[1] != c:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"{where}: expected a latent of shape (B, {c}, h, w), got {shape}")
        if not z.is_floating_point():
            raise TypeError(f"{where}: expected a float latent, got dtype {z.dtype}")
        if not torch.isfinite(z).all():
            raise ValueError(f"{where}: the latent holds NaN or Inf values")

    def decode(
        self,
        z: Tensor,
        num_steps: int | None = None,
        generator: Generator = None,
        max_batch: int | None = None,
        **sampling: object,
    ) -> Tensor:
        """Latent (B, c, h, w) -> images (B, 3, h*f, w*f) in [-1, 1].

        For DGAE ``num_steps`` is the NFE (>= 1; default from the config; 0: the prior head's
        image alone, a one-pass decode) and ``sampling`` may set ``sampler``, ``spacing`` and
        ``shift``. The baseline ignores them (one pass).
        ``max_batch`` decodes at most that many latents at a time (memory bounded by it, not by
        B); the result is the same as one pass with per-image generators, and with one CPU
        generator too (its stream is drawn in order).
        """
        self.check_latents(z)
        if num_steps is not None:  # checked here for both decoders (the baseline ignores it)
            check_num_steps(num_steps, "decode: num_steps", minimum=0)
        parts = [
            self.decoder.decode(
                z[part], num_steps=num_steps, generator=_sliced(generator, part), **sampling
            )  # fmt: skip
            for part in _slices(len(z), max_batch, "decode")
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def reconstruct(
        self,
        x: Tensor,
        num_steps: int | None = None,
        generator: Generator = None,
        sample_posterior: bool = False,
        max_batch: int | None = None,
        **sampling: object,
    ) -> Tensor:
        """encode -> (posterior mean, or a sample) -> decode: (B, 3, H, W) -> (B, 3, H, W);
        ``max_batch`` bounds the images encoded and decoded at a time."""
        tiling = {k: sampling[k] for k in ("tile", "overlap") if k in sampling}
        posteriors = [(self.encode(x[part], **tiling), part)
                      for part in _slices(len(x), max_batch, "reconstruct")]  # fmt: skip
        z = torch.cat([p.sample(_sliced(generator, part)) if sample_posterior else p.mode()
                       for p, part in posteriors])  # fmt: skip
        return self.decode(z, num_steps=num_steps, generator=generator, max_batch=max_batch,
                           **sampling)  # fmt: skip

    def normalize_latents(self, z: Tensor) -> Tensor:
        """(z - mean) / std per channel, with the statistics stored in this model."""
        return self.latent_stats.normalize(z)

    def denormalize_latents(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`normalize_latents`; apply before :meth:`decode`."""
        return self.latent_stats.denormalize(z)

    # ------------------------------------------------------------------ persistence

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` (model config, latent statistics, format version) and
        ``model.safetensors``; files are written to temporaries and renamed (atomic)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            **header("dgae-autoencoder"),
            "model": to_dict(self.config),
            "latent_stats": self.latent_stats.to_dict(),
        }
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("latent_stats.")  # stored once, in config.json
        }
        with atomic_path(directory / CONFIG_NAME) as tmp_c:
            with atomic_path(directory / WEIGHTS_NAME) as tmp_w:  # renamed first
                save_file(state, str(tmp_w), metadata={"format": "pt"})
            tmp_c.write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def read_config(cls, directory: str | Path) -> AutoencoderConfig:
        """The model config of a folder :meth:`from_pretrained` would load, without its weights."""
        return from_dict(AutoencoderConfig, _read_record(directory)[1]["model"], "model")

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu"
    ) -> Autoencoder:
        """Load a folder written by :meth:`save_pretrained` (safetensors only, never pickle),
        or the Hub repository ``org/name`` holding one (:func:`dgae.hub.local_or_hub`)."""
        directory, meta = _read_record(directory)
        cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        model = cls(from_dict(AutoencoderConfig, meta["model"], "model"))
        try:
            state = load_file(str(w_path), device=str(device))
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise ValueError(f"{w_path} is damaged, truncated or not safetensors: {err}") from None
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shape mismatches
            raise ValueError(f"{w_path} does not match {cfg_path}: {err}") from None
        missing = [k for k in missing if not k.startswith("latent_stats.")]
        if missing or unexpected:
            raise ValueError(
                f"{w_path} does not match {cfg_path}: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        stats = LatentStats.from_dict(
            meta.get("latent_stats"), model.config.latent_channels, str(cfg_path)
        )
        model.latent_stats.set_from(stats.mean, stats.std)
        return model.to(device).eval()


def build_autoencoder(cfg: AutoencoderConfig) -> Autoencoder:
    """A freshly initialised autoencoder for ``cfg``."""
    return Autoencoder(cfg)
