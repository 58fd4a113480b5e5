"""Named presets: DGAE and the equal-encoder baseline at every size.

Sizes differ by the decoder's width (the paper scales the decoder, not the encoder): ``tiny`` for
tests, ``small`` for CPU runs on 32-64 px crops, and ``S``/``B``/``L``/``XL`` for 256x256
ImageNet-class training at f16. Three families per size: ``dgae-*`` (the default DGAE decoder,
``DEFAULT_ARCHITECTURE``), ``dgae-unet-*`` / ``dgae-trunk-*`` (the same DGAE with the named
decoder architecture; the default's own name is an alias) and ``baseline-*`` (same encoder and
latent size, the one-pass decoder of the same width).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from dgae.config.schema import (
    AutoencoderConfig,
    BaselineDecoderConfig,
    ConfigError,
    DataConfig,
    DenoiserName,
    DiffusionConfig,
    DiTConfig,
    EncoderConfig,
    ExperimentConfig,
    LDMExperimentConfig,
    LossConfig,
    TrainConfig,
    UNetConfig,
    choices,
)

PRESETS: dict[str, Callable[[], Any]] = {}


def register_preset(name: str) -> Callable[[Callable[[], Any]], Callable]:
    """Decorator: register a function returning an experiment config under ``name``."""

    def wrap(fn: Callable[[], Any]) -> Callable[[], Any]:
        PRESETS[name] = fn
        return fn

    return wrap


def get_preset(name: str, kind: type = ExperimentConfig) -> Any:
    """The named preset's config (validated). ``kind`` is the config class the caller needs
    (autoencoder presets by default, :class:`LDMExperimentConfig` for DiT presets)."""
    known = sorted(n for n, fn in PRESETS.items() if isinstance(fn(), kind))
    if name not in known:
        raise ConfigError(f"unknown preset {name!r}; known presets: {known}")
    cfg = PRESETS[name]()
    cfg.validate()
    return cfg


# x0-prediction with an x0-MSE loss and uniform time mixed in decoded best in few steps in our
# CPU prototype (see README); the velocity default of DiffusionConfig is one override away.
FEW_STEP_DIFFUSION = dict(prediction="x0", uniform_fraction=0.3, num_steps=2)
# The one-pass prior head won the compression study at f8 (README, docs/results/study): at equal
# steps x batch, DGAE without it lost 1.1 dB PSNR and 40 rFID to the one-pass baseline.
DGAE_PRIOR_HEAD = True
# The decoder architecture of the ``dgae-*`` presets (README, "Fast decoding"): ``unet``, the
# paper's full U-Net. ``trunk`` decodes at 1 NFE faster than the one-pass baseline but did not
# win the compression study (ST-LPIPS/rFID/KID worse at f4 and far worse at f8, 600 steps; with
# its head kept whole, ``head_full_resolution``, still behind at 0.75x the baseline's speed), so
# it is the ``dgae-trunk-*`` option.
DEFAULT_ARCHITECTURE = "unet"


def trunk_denoiser(unet: UNetConfig, head: BaselineDecoderConfig) -> UNetConfig:
    """The trunk architecture of a preset (dgae/trunk.py): two residual blocks on 2x2 patches,
    twice the head's base width."""
    return dataclasses.replace(unet, architecture="trunk", patch_size=2, num_res_blocks=2,
                               base_channels=2 * head.base_channels, attention_levels=())  # fmt: skip


def _experiment(
    kind: str,
    architecture: str,
    encoder: EncoderConfig,
    unet: UNetConfig,
    baseline: BaselineDecoderConfig,
    latent_channels: int,
    factor: int,
    data: DataConfig,
    train: TrainConfig,
    perceptual: str = "st-lpips-vgg",
) -> ExperimentConfig:
    unet = dataclasses.replace(unet, prior_head=DGAE_PRIOR_HEAD and kind == "dgae")
    model = AutoencoderConfig(
        kind=kind,
        latent_channels=latent_channels,
        downsample_factor=factor,
        encoder=encoder,
        decoder=trunk_denoiser(unet, baseline) if architecture == "trunk" else unet,
        baseline_decoder=baseline,
        diffusion=DiffusionConfig(**FEW_STEP_DIFFUSION),
    )
    return ExperimentConfig(model, LossConfig(perceptual=perceptual), data, train)


def _register_pair(name: str, make) -> None:
    """``dgae-NAME`` (the default architecture), ``dgae-ARCH-NAME`` for each architecture and
    ``baseline-NAME``; ``make(kind, architecture)`` builds one."""
    register_preset(f"dgae-{name}")(lambda: make("dgae", DEFAULT_ARCHITECTURE))
    for arch in choices(DenoiserName):
        register_preset(f"dgae-{arch}-{name}")(lambda arch=arch: make("dgae", arch))
    register_preset(f"baseline-{name}")(lambda: make("baseline", "unet"))


def _tiny(kind: str, architecture: str) -> ExperimentConfig:
    return _experiment(
        kind,
        architecture,
        EncoderConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1),
        UNetConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), head_channels=8),
        BaselineDecoderConfig(base_channels=8, channel_mult=(1, 2), num_res_blocks=1),
        latent_channels=2,
        factor=4,
        data=DataConfig(resolution=16, color_augment=True),
        train=TrainConfig(batch_size=4, total_steps=20, warmup_steps=0, log_every=5,
                          sample_every=10, checkpoint_every=10, stats_images=16),
        perceptual="tiny-random",
    )  # fmt: skip


def _small(kind: str, architecture: str) -> ExperimentConfig:
    """CPU-sized: f4 c2 on 32x32 crops (~1 M parameters per decoder)."""
    return _experiment(
        kind,
        architecture,
        EncoderConfig(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1),
        UNetConfig(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_levels=(2,), head_channels=32),
        BaselineDecoderConfig(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1),
        latent_channels=2,
        factor=4,
        data=DataConfig(spec="photos", resolution=32, color_augment=True),
        train=TrainConfig(batch_size=32, total_steps=1500, lr=1e-3, warmup_steps=50,
                          ema_decay=0.995, sample_every=250, checkpoint_every=250,
                          stats_images=256),
        perceptual="st-lpips-alex",
    )  # fmt: skip


_register_pair("tiny", _tiny)
_register_pair("small", _small)

# 256x256, f16, c16: the decoder ladder by base width (encoder fixed, as in the paper's Fig. 1b).
DECODER_WIDTHS = {"S": 64, "B": 128, "L": 192, "XL": 256}


def _imagenet(kind: str, architecture: str, width: int) -> ExperimentConfig:
    return _experiment(
        kind,
        architecture,
        EncoderConfig(base_channels=128, channel_mult=(1, 1, 2, 2, 4), num_res_blocks=2),
        UNetConfig(base_channels=width, channel_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attention_levels=(3, 4)),
        BaselineDecoderConfig(base_channels=width, channel_mult=(1, 1, 2, 2, 4), num_res_blocks=2),
        latent_channels=16,
        factor=16,
        data=DataConfig(spec="photos", resolution=256),
        train=TrainConfig(batch_size=32, total_images=50_000_000, lr=1e-4, warmup_steps=5000,
                          precision="bf16", ema_decay=0.9999, sample_every=5000,
                          checkpoint_every=5000, stats_images=10_000),
    )  # fmt: skip


for _size, _width in DECODER_WIDTHS.items():
    _register_pair(_size, lambda kind, arch, w=_width: _imagenet(kind, arch, w))


# Latent DiTs (DiT-paper sizes); ``dit-tiny`` is for tests and CPU experiments.
DIT_SIZES = {
    "tiny": (4, 128, 4),
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1024, 16),
    "XL": (28, 1152, 16),
}


def _dit(depth: int, hidden: int, heads: int) -> LDMExperimentConfig:
    small = hidden <= 128
    return LDMExperimentConfig(
        dit=DiTConfig(depth=depth, hidden=hidden, heads=heads),
        train=TrainConfig(batch_size=128 if small else 256, total_steps=2000 if small else 400_000,
                          lr=5e-4 if small else 1e-4, warmup_steps=100 if small else 1000,
                          ema_decay=0.999 if small else 0.9999, betas=(0.9, 0.95),
                          sample_every=500 if small else 20_000,
                          checkpoint_every=500 if small else 20_000),
    )  # fmt: skip


for _size, (_d, _h, _n) in DIT_SIZES.items():
    register_preset(f"dit-{_size}")(lambda d=_d, h=_h, n=_n: _dit(d, h, n))
