"""The configuration schema: one dataclass per component, each option typed and documented.

Every set of named choices is a ``Literal`` type here, stated once: config validation, the
override parser (:mod:`dgae.config.io`), the CLI's ``choices`` and the registries that implement
the choices (samplers, perceptual networks) all derive from it, and a test checks they agree.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

PathName = Literal["flow", "vp"]
PredictionName = Literal["v", "x0", "eps"]
LossSpaceName = Literal["", "v", "x0", "eps"]  # "" = the prediction's own space
TimeSamplingName = Literal["logit_normal", "uniform"]
SamplerName = Literal["euler", "heun", "ddim"]
SpacingName = Literal["linear", "quadratic"]
DecoderKind = Literal["dgae", "baseline"]
ZInjectionName = Literal["pre_norm", "post_norm"]
DenoiserName = Literal["unet", "trunk"]
PerceptualName = Literal["st-lpips-vgg", "st-lpips-alex", "lpips-vgg", "tiny-random", "none"]
PerceptualTimeWeight = Literal["none", "one_minus_t"]
PixelLossName = Literal["l1", "l2"]
LRScheduleName = Literal["constant", "cosine"]
PrecisionName = Literal["fp32", "bf16"]

# eps-prediction needs alpha(t) >= this over the trained and sampled times (x0 error <= 50x eps error)
EPS_MIN_ALPHA = 0.02


class ConfigError(ValueError):
    """A configuration value, key or preset is invalid; the message names it and what fits."""


def choices(literal: Any) -> tuple[str, ...]:
    """The names a ``Literal`` choice type allows, e.g. ``choices(SamplerName)``."""
    return typing.get_args(literal)


def check_choice(where: str, value: Any, literal: Any) -> None:
    """A :class:`ConfigError` naming ``where`` unless ``value`` is one of ``literal``'s names."""
    if value not in choices(literal):
        raise ConfigError(
            f"{where}={value!r} is not valid; expected one of {sorted(choices(literal))}"
        )


def check_choices(cfg: Any, where: str) -> None:
    """:func:`check_choice` for every ``Literal``-typed field of dataclass ``cfg``."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if typing.get_origin(hints[f.name]) is Literal:
            check_choice(f"{where}.{f.name}", getattr(cfg, f.name), hints[f.name])


@dataclass
class EncoderConfig:
    """SD-VAE/LDM convolutional encoder.

    ``channel_mult`` gives the width multiplier per level; the encoder has ``log2(f) + 1`` levels
    and repeats the last multiplier when the tuple is shorter than that.

    ``frozen``: a local diffusers ``AutoencoderKL`` folder whose encoder (and ``quant_conv``)
    replaces this one, frozen: only the decoder trains, so the latents stay that VAE's and a
    latent diffusion model trained on them keeps working with the new decoder. Its
    architecture is recorded in ``frozen_config`` (filled in when the model is built) and its
    weights are saved with the model, so a trained folder does not need the VAE folder again.
    """

    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    mid_attention: bool = True
    dropout: float = 0.0
    frozen: str = ""
    frozen_config: str = ""  # the AutoencoderKL's config.json text (set when built)


@dataclass
class UNetConfig:
    """ADM-style U-Net denoiser D(x_t, t, z) (the diffusion decoder).

    ``z_injection``: where each residual block adds its projection of z, ``pre_norm`` (before
    its second GroupNorm, which removes the part that is constant over a group and the image:
    global colour) or ``post_norm`` (after the norm and the time modulation).

    ``patch_size``: p > 1 pixel-unshuffles the U-Net's input (x_t, z and the prior, each p x p
    patch to channels) and pixel-shuffles its output, so its first level runs at 1/p of the
    image resolution: the full-resolution convolutions, the largest cost of a decode
    (docs/benchmarks.md), are gone. ``p * 2**(len(channel_mult) - 1)`` must divide f.

    ``prior_head``: a one-pass decoder (configured by ``model.baseline_decoder``) predicts an
    image x_bar(z), trained like the baseline; the diffusion then models only the residual
    x - x_bar given z and x_bar, so one decoder evaluation from pure noise starts where a
    one-pass decoder ends and further steps add the detail z does not carry.

    ``architecture``: ``unet`` is the ADM U-Net above, a full network over the image at every
    step. ``trunk`` shares the prior head's work instead (it needs ``prior_head``): the head
    stops at 1/``patch_size`` of the image resolution, where its features (computed once per
    decode, independent of t) and its image x_bar feed ``num_res_blocks`` time-modulated
    residual blocks of width ``base_channels`` on p x p patches of x_t, the only per-step
    network; ``channel_mult`` and ``attention_levels`` do not apply (dgae/trunk.py).
    ``full_res_channels`` T > 0 wraps them in a full-resolution level of width T.
    ``head_full_resolution``: the trunk's head keeps its full-resolution levels (a whole
    one-pass decoder, still run once per decode) and its last features reach the per-step
    blocks as p x p patches like x_t (study arm ``dgae-trunk-wholehead``: better than the
    patched head at f8, not at f4; docs/benchmarks.md, "the head alone").
    """

    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (3, 4)  # level indices (0 = full resolution)
    head_channels: int = 64
    dropout: float = 0.0
    inject_z_every_level: bool = True
    z_injection: ZInjectionName = "pre_norm"
    prior_head: bool = False
    patch_size: int = 1
    architecture: DenoiserName = "unet"
    full_res_channels: int = 0
    head_full_resolution: bool = False


def level_channels(base: int, mult: tuple[int, ...], levels: int) -> list[int]:
    """Width of each of ``levels`` levels (0 = full resolution) of the encoder and the one-pass
    decoder; the last multiplier repeats when ``mult`` is short."""
    return [base * mult[min(i, len(mult) - 1)] for i in range(levels)]


@dataclass
class BaselineDecoderConfig:
    """One-pass SD-VAE-style convolutional decoder (the "Gaussian" decoder of the comparisons)."""

    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    mid_attention: bool = True


@dataclass
class DiffusionConfig:
    """Diffusion path, network parameterisation, training-time distribution and sampler defaults.

    ``path``: ``flow`` (rectified flow x_t = (1-t) x + t eps) or ``vp`` (cosine variance-preserving
    x_t = cos(pi t / 2) x + sin(pi t / 2) eps). ``prediction``: what the network outputs (``v`` is
    the ODE velocity dx_t/dt, ``x0`` the clean image, ``eps`` the noise). ``loss_space``: the
    quantity whose MSE is the diffusion loss (empty = same as ``prediction``). ``t_max``: the
    largest time trained on and the sampler's starting time (1 = pure noise). eps-prediction
    cannot recover x0 where alpha(t) ~ 0 (x0 = (x_t - sigma eps) / alpha), so it needs
    alpha(t_max) >= EPS_MIN_ALPHA, e.g. ``t_max=0.98`` on the flow path.
    """

    path: PathName = "flow"
    prediction: PredictionName = "v"
    loss_space: LossSpaceName = ""
    time_sampling: TimeSamplingName = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    uniform_fraction: float = 0.0
    time_shift: float = 1.0
    t_max: float = 1.0
    sampler: SamplerName = "euler"
    num_steps: int = 4
    spacing: SpacingName = "linear"
    sample_shift: float = 1.0

    def validate(self) -> None:
        check_choices(self, "diffusion")
        if not 0.0 <= self.uniform_fraction <= 1.0:
            raise ConfigError(f"diffusion.uniform_fraction={self.uniform_fraction} not in [0, 1]")
        if self.time_shift <= 0 or self.sample_shift <= 0:
            raise ConfigError("diffusion.time_shift and diffusion.sample_shift must be > 0")
        if self.num_steps < 1:
            raise ConfigError(f"diffusion.num_steps={self.num_steps}; expected an integer >= 1")
        if not 0.5 <= self.t_max <= 1.0:
            raise ConfigError(f"diffusion.t_max={self.t_max}; expected a time in [0.5, 1]")
        alpha = 1.0 - self.t_max if self.path == "flow" else math.cos(0.5 * math.pi * self.t_max)
        if self.prediction == "eps" and alpha < EPS_MIN_ALPHA:
            largest = (
                1.0 - EPS_MIN_ALPHA
                if self.path == "flow"
                else 2 / math.pi * math.acos(EPS_MIN_ALPHA)
            )
            raise ConfigError(
                f"diffusion.prediction=eps with diffusion.t_max={self.t_max}: alpha(t_max)"
                f"={alpha:.3g} < {EPS_MIN_ALPHA}, where x0 = (x_t - sigma eps) / alpha explodes; "
                f"set diffusion.t_max <= {largest:.4f} or use prediction x0 or v"
            )


@dataclass
class AutoencoderConfig:
    """The whole autoencoder: ``kind`` selects the diffusion decoder or the one-pass baseline."""

    kind: DecoderKind = "dgae"
    latent_channels: int = 4
    downsample_factor: int = 8
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: UNetConfig = field(default_factory=UNetConfig)
    baseline_decoder: BaselineDecoderConfig = field(default_factory=BaselineDecoderConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def validate(self) -> None:
        check_choices(self, "model")
        if self.downsample_factor not in (4, 8, 16, 32):
            raise ConfigError(
                f"model.downsample_factor={self.downsample_factor}; expected one of 4, 8, 16, 32"
            )
        if self.latent_channels < 1:
            raise ConfigError(f"model.latent_channels={self.latent_channels}; expected >= 1")
        check_choices(self.decoder, "model.decoder")
        if self.decoder.architecture == "trunk":
            self._validate_trunk()
        else:
            self._validate_unet()
        self.diffusion.validate()

    def _validate_unet(self) -> None:
        reach = self.decoder.patch_size * 2 ** (len(self.decoder.channel_mult) - 1)
        if self.decoder.patch_size < 1 or self.downsample_factor % reach:
            raise ConfigError(
                f"model.decoder.patch_size={self.decoder.patch_size} with "
                f"{len(self.decoder.channel_mult)} U-Net levels downsamples by {reach}, which "
                f"must divide model.downsample_factor={self.downsample_factor} (so every "
                "decodable image fits the U-Net)"
            )
        levels = len(self.decoder.channel_mult)
        bad = [lvl for lvl in self.decoder.attention_levels if not 0 <= lvl < levels]
        if bad:
            raise ConfigError(
                f"model.decoder.attention_levels has {bad}; expected level indices in [0, {levels})"
            )

    def _validate_trunk(self) -> None:
        d, p = self.decoder, self.decoder.patch_size
        if not d.prior_head:
            raise ConfigError(
                "model.decoder.architecture=trunk denoises on the prior head's features; "
                "set model.decoder.prior_head=true"
            )
        if p < 1 or p & (p - 1) or self.downsample_factor % p:
            raise ConfigError(
                f"model.decoder.patch_size={p}; the trunk architecture needs a power of two "
                f"dividing model.downsample_factor={self.downsample_factor}"
            )
        if d.head_full_resolution:
            return
        head = self.baseline_decoder
        levels = self.downsample_factor.bit_length()  # log2(f) + 1
        width = level_channels(head.base_channels, head.channel_mult, levels)[p.bit_length() - 1]
        if width % (p * p):
            raise ConfigError(
                f"model.baseline_decoder's width at 1/{p} resolution ({width}) must be a "
                f"multiple of patch_size**2={p * p} (its features are pixel-shuffled)"
            )


@dataclass
class LossConfig:
    """The objective: L = L_diff + lambda_P L_perc + lambda_KL KL (+ baseline pixel/GAN terms).

    Units follow LDM: the diffusion, pixel and perceptual terms are per-element means and the KL
    is summed over the latent and divided by the image's element count 3 H W (LDM sums both,
    which is the same loss times 3 H W), so ``kl_weight`` means what it means in LDM/VA-VAE.
    """

    perceptual: PerceptualName = "st-lpips-vgg"
    perceptual_weight: float = 1.0
    perceptual_time_weight: PerceptualTimeWeight = "none"
    kl_weight: float = 1e-6
    pixel_loss: PixelLossName = "l1"
    pixel_weight: float = 1.0
    gan_weight: float = 0.0
    gan_start_step: int = 0
    disc_channels: int = 64
    disc_layers: int = 3

    def validate(self) -> None:
        check_choices(self, "loss")


@dataclass
class DataConfig:
    """Training data: ``spec`` is ``photos``, ``fashion-mnist``, a folder, a list file or a pack.

    Training images are random crops, flipped with ``hflip``. ``color_augment`` randomly
    permutes the RGB channels and rotates the hue of half the training images, from any source:
    it helps small collections that lack some colours (the built-in photos' presets turn it on),
    and costs colour fidelity at short budgets, so it is off by default.
    """

    spec: str = "photos"
    resolution: int = 32
    hflip: bool = True
    color_augment: bool = False
    num_workers: int = 0

    # keys of earlier releases that run folders may still hold; read and ignored
    REMOVED = ("random_crop",)  # always on for training since 0.1; its flag did nothing

    def validate(self) -> None:
        if self.resolution < 1:
            raise ConfigError(f"data.resolution={self.resolution}; expected a size >= 1 pixel")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers={self.num_workers}; expected >= 0")


@dataclass
class TrainConfig:
    """Optimisation and run control. Training length is ``total_images`` (when > 0) or
    ``total_steps``; an override of ``total_steps`` clears ``total_images`` (``OVERRIDE_RESETS``),
    so ``train.total_steps=60`` on a preset measured in images means 60 steps."""

    OVERRIDE_RESETS: typing.ClassVar[dict[str, tuple[str, Any]]] = {
        "total_steps": ("total_images", 0)
    }

    batch_size: int = 16
    grad_accum: int = 1
    total_steps: int = 1000
    total_images: int = 0
    lr: float = 2e-4
    disc_lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, ...] = (0.9, 0.99)
    warmup_steps: int = 100
    lr_schedule: LRScheduleName = "constant"
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    precision: PrecisionName = "fp32"
    compile: bool = False
    channels_last: bool = False
    activation_checkpointing: bool = False
    fsdp: bool = False
    seed: int = 0
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    max_bad_steps: int = 20
    stats_images: int = 512
    tensorboard: bool = False

    def validate(self) -> None:
        check_choices(self, "train")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("train.batch_size and train.grad_accum must be >= 1")
        positive = ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints",
                    "stats_images")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self, name)}; expected an integer >= 1")
        if self.total_steps < 1 and self.total_images < 1:
            raise ConfigError(
                f"train.total_steps={self.total_steps} and train.total_images="
                f"{self.total_images}: one of them must be >= 1 (an untrained model is not exported)"
            )
        if self.lr <= 0 or self.max_bad_steps < 0 or not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(
                f"train.lr={self.lr} (> 0), train.max_bad_steps={self.max_bad_steps} (>= 0), "
                f"train.ema_decay={self.ema_decay} (in [0, 1)): one is out of range"
            )


@dataclass
class ExperimentConfig:
    """Everything one training run needs; written as ``config.json`` next to its outputs."""

    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        self.model.validate()
        self.loss.validate()
        self.data.validate()
        self.train.validate()


@dataclass
class DiTConfig:
    """Class-conditional DiT over normalised latents (adaLN-zero; LightningDiT refinements)."""

    depth: int = 12
    hidden: int = 384
    heads: int = 6
    patch_size: int = 2
    mlp_ratio: float = 4.0
    class_dropout: float = 0.1
    rmsnorm: bool = True
    swiglu: bool = True
    qk_norm: bool = True
    rope: bool = True

    def validate(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(
                f"dit.hidden={self.hidden} is not divisible by dit.heads={self.heads}"
            )
        if self.patch_size not in (1, 2):
            raise ConfigError(f"dit.patch_size={self.patch_size}; expected 1 or 2")
        if self.rope and (self.hidden // self.heads) % 4:
            raise ConfigError("dit.rope needs a head width (hidden / heads) divisible by 4")


@dataclass
class LDMExperimentConfig:
    """A latent diffusion run: the DiT, its flow-matching set-up, sampling defaults, training."""

    dit: DiTConfig = field(default_factory=DiTConfig)
    diffusion: DiffusionConfig = field(
        default_factory=lambda: DiffusionConfig(prediction="v", num_steps=50)
    )
    cfg_scale: float = 1.5
    guidance_interval: tuple[float, ...] = (0.0, 1.0)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        self.dit.validate()
        self.diffusion.validate()
        self.train.validate()
        lo, hi = (tuple(self.guidance_interval) + (0.0, 1.0))[:2]
        if len(self.guidance_interval) != 2 or not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(
                f"guidance_interval={self.guidance_interval}; expected two times 0 <= lo <= hi <= 1"
            )
