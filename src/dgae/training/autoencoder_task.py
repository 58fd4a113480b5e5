"""Training DGAE or the baseline: the loss modules, the task for the loop, and the export."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from dgae.autoencoder import Autoencoder
from dgae.bottleneck import RunningMoments
from dgae.config import ExperimentConfig
from dgae.data.datasets import Batch, collate
from dgae.data.transforms import to_model_range, to_uint8
from dgae.losses import build_objective
from dgae.losses.adversarial import DiscriminatorLoss, PatchDiscriminator
from dgae.random import generators_from_seeds
from dgae.training.loop import TrainTask
from dgae.training.reporting import save_grid


class AutoencoderLoss(nn.Module):
    """forward(x, generators, step) -> the objective's dict; its parameters are the autoencoder's.

    The objective (with its frozen perceptual network) and the discriminator are held outside
    the module tree, so DDP, EMA and checkpoints see only the autoencoder's weights here.
    """

    def __init__(self, autoencoder: Autoencoder, objective: nn.Module, disc: nn.Module | None):
        super().__init__()
        self.autoencoder = autoencoder
        self._aux = (objective, disc)

    @property
    def ema_target(self) -> Autoencoder:
        return self.autoencoder

    def forward(self, x: Tensor, generators: list, step: int) -> dict[str, Tensor]:
        objective, disc = self._aux
        if disc is None:
            return objective(self.autoencoder, x, generators)
        disc.requires_grad_(False)  # the generator loss must not train the discriminator
        try:
            return objective(self.autoencoder, x, generators, discriminator=disc, step=step)
        finally:
            disc.requires_grad_(True)


def set_gradient_checkpointing(model: Autoencoder, enabled: bool) -> None:
    for m in model.modules():
        if hasattr(m, "gradient_checkpointing"):
            m.gradient_checkpointing = enabled


@torch.no_grad()
def compute_latent_stats(
    model: Autoencoder,
    dataset: Dataset,
    num_images: int,
    device: torch.device,
    batch_size: int = 32,
) -> tuple[Tensor, Tensor]:
    """Per-channel mean/std of the posterior mean over ``num_images`` items spread evenly over
    ``dataset`` (a folder sorted by class would be biased by its first items)."""
    moments = RunningMoments()
    n = min(num_images, len(dataset))
    subset = torch.utils.data.Subset(dataset, [i * len(dataset) // n for i in range(n)])
    for batch in DataLoader(subset, batch_size=batch_size, collate_fn=collate):
        moments.update(model.encode(to_model_range(batch.images.to(device))).mode())
    return moments.result()


def export_model(
    model: Autoencoder, dataset: Dataset, num_images: int, out: Path, device: torch.device
) -> Path:
    """Set latent statistics from ``dataset`` and write the inference artifact to ``out``."""
    model = model.to(device).eval()
    model.latent_stats.set_from(*compute_latent_stats(model, dataset, num_images, device))
    model.save_pretrained(out)
    return out


def build_autoencoder_task(
    cfg: ExperimentConfig,
    model: Autoencoder,
    stats_data: Dataset,
    val_images: Tensor,
    run_dir: Path,
    device: torch.device,
) -> TrainTask:
    """The loop's task for DGAE or the baseline; ``val_images`` (N, 3, R, R) uint8 feed the grids,
    ``stats_data`` (un-augmented training images) the exported latent statistics."""
    set_gradient_checkpointing(model, cfg.train.activation_checkpointing)
    objective = build_objective(cfg.loss, cfg.model.kind).to(device)
    use_gan = cfg.model.kind == "baseline" and cfg.loss.gan_weight > 0
    disc = PatchDiscriminator(cfg.loss.disc_channels, cfg.loss.disc_layers) if use_gan else None
    modules: dict[str, nn.Module] = {"model": AutoencoderLoss(model, objective, disc)}
    lrs = {"model": cfg.train.lr}
    if disc is not None:
        modules["disc"] = DiscriminatorLoss(disc)
        lrs["disc"] = cfg.train.disc_lr
    memory = torch.channels_last if cfg.train.channels_last else torch.contiguous_format

    def compute(wrapped: dict[str, nn.Module], batch: Batch, gens: list, step: int) -> dict:
        x = to_model_range(batch.images.to(device)).contiguous(memory_format=memory)
        out = wrapped["model"](x, gens, step)
        result = {"model": out["loss"], "loss": out["loss"]}
        result.update({f"loss/{k}": v for k, v in out.items() if k not in ("loss", "recon")})
        if "disc" in wrapped:
            d = wrapped["disc"](x, out["recon"])
            # before gan_start_step the discriminator only runs (DDP needs every rank to), weight 0
            result["disc"] = d if step >= cfg.loss.gan_start_step else 0.0 * d
            result["loss/disc"] = d
        return result

    def on_sample(ema_model: nn.Module, step: int) -> None:
        ema_model.eval()
        x = to_model_range(val_images.to(device))
        gens = generators_from_seeds(range(len(x)), device)
        with torch.no_grad():
            rec = ema_model.reconstruct(x, generator=gens)
        rows = torch.cat(
            [val_images, to_uint8(rec).cpu()]
        )  # originals on top, reconstructions below
        upscale = max(1, 128 // val_images.shape[-1])
        save_grid(rows, run_dir / "samples" / f"step_{step:08d}.png", len(val_images), upscale)

    def on_export(ema_model: nn.Module) -> None:
        export_model(ema_model, stats_data, cfg.train.stats_images, run_dir / "model", device)

    return TrainTask(modules, lrs, compute, on_sample, on_export)
