"""Typed configuration: one dataclass per component, a preset registry, overrides, JSON round-trip.

The dataclasses are the single source of truth for every option. Presets are plain Python
functions registered by name; the CLI maps ``key=value`` overrides onto them with
:func:`apply_overrides`, which rejects unknown keys and values that do not fit the field's type.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# eps-prediction needs alpha(t) >= this over the trained and sampled times (x0 error <= 50x eps error)
EPS_MIN_ALPHA = 0.02


class ConfigError(ValueError):
    """A configuration value, key or preset is invalid; the message names it and what fits."""


def _choice(where: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{where}={value!r} is not valid; expected one of {sorted(allowed)}")


@dataclass
class EncoderConfig:
    """SD-VAE/LDM convolutional encoder.

    ``channel_mult`` gives the width multiplier per level; the encoder has ``log2(f) + 1`` levels
    and repeats the last multiplier when the tuple is shorter than that.
    """

    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    mid_attention: bool = True
    dropout: float = 0.0


@dataclass
class UNetConfig:
    """ADM-style U-Net denoiser D(x_t, t, z) (the diffusion decoder).

    ``z_injection``: where each residual block adds its projection of z, ``pre_norm`` (before
    its second GroupNorm, which removes the part that is constant over a group and the image:
    global colour) or ``post_norm`` (after the norm and the time modulation).

    ``prior_head``: a one-pass decoder (configured by ``model.baseline_decoder``) predicts an
    image x_bar(z), trained like the baseline; the diffusion then models only the residual
    x - x_bar given z and x_bar, so one decoder evaluation from pure noise starts where a
    one-pass decoder ends and further steps add the detail z does not carry.
    """

    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (3, 4)  # level indices (0 = full resolution)
    head_channels: int = 64
    dropout: float = 0.0
    inject_z_every_level: bool = True
    z_injection: str = "pre_norm"
    prior_head: bool = False


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

    path: str = "flow"
    prediction: str = "v"
    loss_space: str = ""
    time_sampling: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    uniform_fraction: float = 0.0
    time_shift: float = 1.0
    t_max: float = 1.0
    sampler: str = "euler"
    num_steps: int = 4
    spacing: str = "linear"
    sample_shift: float = 1.0

    def validate(self) -> None:
        _choice("diffusion.path", self.path, ("flow", "vp"))
        _choice("diffusion.prediction", self.prediction, ("v", "x0", "eps"))
        _choice("diffusion.loss_space", self.loss_space, ("", "v", "x0", "eps"))
        _choice("diffusion.time_sampling", self.time_sampling, ("logit_normal", "uniform"))
        _choice("diffusion.sampler", self.sampler, ("euler", "heun", "ddim"))
        _choice("diffusion.spacing", self.spacing, ("linear", "quadratic"))
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

    kind: str = "dgae"
    latent_channels: int = 4
    downsample_factor: int = 8
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: UNetConfig = field(default_factory=UNetConfig)
    baseline_decoder: BaselineDecoderConfig = field(default_factory=BaselineDecoderConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def validate(self) -> None:
        _choice("model.kind", self.kind, ("dgae", "baseline"))
        if self.downsample_factor not in (4, 8, 16, 32):
            raise ConfigError(
                f"model.downsample_factor={self.downsample_factor}; expected one of 4, 8, 16, 32"
            )
        if self.latent_channels < 1:
            raise ConfigError(f"model.latent_channels={self.latent_channels}; expected >= 1")
        _choice("model.decoder.z_injection", self.decoder.z_injection, ("pre_norm", "post_norm"))
        levels = len(self.decoder.channel_mult)
        bad = [lvl for lvl in self.decoder.attention_levels if not 0 <= lvl < levels]
        if bad:
            raise ConfigError(
                f"model.decoder.attention_levels has {bad}; expected level indices in [0, {levels})"
            )
        self.diffusion.validate()


@dataclass
class LossConfig:
    """The objective: L = L_diff + lambda_P L_perc + lambda_KL KL (+ baseline pixel/GAN terms).

    Units follow LDM: the diffusion, pixel and perceptual terms are per-element means and the KL
    is summed over the latent and divided by the image's element count 3 H W (LDM sums both,
    which is the same loss times 3 H W), so ``kl_weight`` means what it means in LDM/VA-VAE.
    """

    perceptual: str = "st-lpips-vgg"
    perceptual_weight: float = 1.0
    perceptual_time_weight: str = "none"
    kl_weight: float = 1e-6
    pixel_loss: str = "l1"
    pixel_weight: float = 1.0
    gan_weight: float = 0.0
    gan_start_step: int = 0
    disc_channels: int = 64
    disc_layers: int = 3

    def validate(self) -> None:
        _choice(
            "loss.perceptual",
            self.perceptual,
            ("st-lpips-vgg", "st-lpips-alex", "lpips-vgg", "tiny-random", "none"),
        )
        _choice("loss.perceptual_time_weight", self.perceptual_time_weight, ("none", "one_minus_t"))
        _choice("loss.pixel_loss", self.pixel_loss, ("l1", "l2"))


@dataclass
class DataConfig:
    """Training data: ``spec`` is ``photos``, ``fashion-mnist``, a folder, a list file or a pack."""

    spec: str = "photos"
    resolution: int = 32
    random_crop: bool = True
    hflip: bool = True
    color_augment: bool = True
    num_workers: int = 0

    def validate(self) -> None:
        if self.resolution < 1:
            raise ConfigError(f"data.resolution={self.resolution}; expected a size >= 1 pixel")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers={self.num_workers}; expected >= 0")


@dataclass
class TrainConfig:
    """Optimisation and run control. Training length is ``total_images`` or ``total_steps``."""

    batch_size: int = 16
    grad_accum: int = 1
    total_steps: int = 1000
    total_images: int = 0
    lr: float = 2e-4
    disc_lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, ...] = (0.9, 0.99)
    warmup_steps: int = 100
    lr_schedule: str = "constant"
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    precision: str = "fp32"
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
        _choice("train.lr_schedule", self.lr_schedule, ("constant", "cosine"))
        _choice("train.precision", self.precision, ("fp32", "bf16"))
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


# ----------------------------------------------------------------------------- dict / JSON


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return from_dict(tp, value, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}={value!r}: expected true or false")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}={value!r}: expected a number")
        try:
            number = float(value) if tp is float else int(str(value), 0)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{where}={value!r}: expected {tp.__name__}") from None
            if tp is int and not number.is_integer():
                raise ConfigError(f"{where}={value!r}: expected an integer") from None
            number = tp(number)
        return number
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error listing the valid ones."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; valid keys: {names}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n")


def load_json(cls: type[T], path: str | Path) -> T:
    return from_dict(cls, json.loads(Path(path).read_text()))


def valid_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key an override may set, e.g. ``model.decoder.base_channels``."""
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        name = f"{prefix}{f.name}"
        keys += valid_keys(value, name + ".") if dataclasses.is_dataclass(value) else [name]
    return keys


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied (types are checked)."""
    cfg = json_copy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        *parents, leaf = key.strip().split(".")
        node = cfg
        for part in parents:
            if not dataclasses.is_dataclass(node) or not hasattr(node, part):
                raise ConfigError(f"unknown override key {key!r}; valid keys: {valid_keys(cfg)}")
            node = getattr(node, part)
        fields = (
            {f.name for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else ()
        )
        if leaf not in fields or dataclasses.is_dataclass(getattr(node, leaf)):
            raise ConfigError(f"unknown override key {key!r}; valid keys: {valid_keys(cfg)}")
        setattr(node, leaf, _coerce(raw, typing.get_type_hints(type(node))[leaf], key))
    return cfg


def json_copy(cfg: T) -> T:
    """Deep copy through the JSON form (also proves the config round-trips)."""
    return from_dict(type(cfg), to_dict(cfg))


# ----------------------------------------------------------------------------- presets

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
    from dgae import presets  # noqa: F401  (registers the presets)

    known = sorted(n for n, fn in PRESETS.items() if isinstance(fn(), kind))
    if name not in known:
        raise ConfigError(f"unknown preset {name!r}; known presets: {known}")
    cfg = PRESETS[name]()
    cfg.validate()
    return cfg
