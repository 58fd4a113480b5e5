"""Training DGAE or the baseline with the generic trainer: the loss modules, the task for the
loop, the run-folder checks, :func:`train_autoencoder` and the export."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from dgae.autoencoder import Autoencoder
from dgae.bottleneck import RunningMoments
from dgae.config import AutoencoderConfig, ExperimentConfig, load_json, resolved, save_json, to_dict
from dgae.data.datasets import Batch, collate
from dgae.data.loader import build_dataset
from dgae.data.transforms import to_model_range, to_uint8
from dgae.losses import build_objective
from dgae.losses.adversarial import DiscriminatorLoss, PatchDiscriminator
from dgae.random import item_generators
from dgae.training.checkpoint import latest_checkpoint, load_checkpoint
from dgae.training.distributed import DistInfo, barrier, init_distributed
from dgae.training.lock import run_lock
from dgae.training.loop import Trainer, TrainTask
from dgae.training.reporting import save_grid
from dgae.training.run import run_task

NUM_GRID_IMAGES = 8


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
        gens = item_generators(0, range(len(x)), device=device)
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


def check_resume_config(run_dir: Path, cfg: ExperimentConfig, force: bool = False) -> None:
    """A run folder may only be resumed with the same model (never) and the same training data
    (unless ``force``: the earlier record is then kept as ``config.until_step_N.json``)."""
    path = run_dir / "config.json"
    if not path.exists():
        return
    recorded = json.loads(path.read_text())
    old = resolved(AutoencoderConfig, recorded.get("model", {}))
    new = to_dict(cfg)["model"]
    diff = sorted(f"model.{k}" for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise ValueError(
            f"{run_dir} holds a run with a different model ({', '.join(diff)} differ); "
            "use a new --out folder or the original settings"
        )
    old_data = recorded.get("data", {}).get("spec")
    if old_data is not None and old_data != cfg.data.spec:
        if not force:
            raise ValueError(
                f"{run_dir} was trained on --data {old_data!r}, not {cfg.data.spec!r}; pass "
                "--force to continue it on the new data (the original record is kept)"
            )
        checkpoint = latest_checkpoint(run_dir)
        step = int(checkpoint.stem.split("_")[-1]) if checkpoint else 0
        path.replace(run_dir / f"config.until_step_{step}.json")


def training_data(cfg: ExperimentConfig) -> tuple[Dataset, Tensor]:
    """The augmented training set of ``cfg.data`` and the validation images of the sample
    grids: (N, 3, R, R) uint8, spread evenly over the validation split."""
    d = cfg.data
    train = build_dataset(d.spec, d.resolution, "train", cfg.train.seed, d.hflip, d.color_augment)
    val = build_dataset(d.spec, d.resolution, "val")
    n = min(NUM_GRID_IMAGES, len(val))
    return train, torch.stack([val[i * len(val) // n][0] for i in range(n)])


def train_autoencoder(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    dist: DistInfo | None = None,
    progress: bool = True,
    force: bool = False,
) -> Trainer:
    """Train (or resume) DGAE / the baseline in ``run_dir``; export the EMA model at the end.

    Returns the trainer (``trainer.status`` is 'done' or 'interrupted'). Works in one process
    or under ``torchrun``.
    """
    cfg.validate()
    dist = dist or init_distributed()
    run_dir = Path(run_dir)
    with run_lock(run_dir, dist.is_main):  # one trainer per run folder
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            check_resume_config(run_dir, cfg, force)
            save_json(cfg, run_dir / "config.json")
        barrier(dist)
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        train_data, val_images = training_data(cfg)
        model = Autoencoder(cfg.model)
        task = build_autoencoder_task(
            cfg, model, stats_dataset(cfg), val_images, run_dir, dist.device
        )
        return run_task(task, cfg.train, train_data, run_dir, dist, progress, cfg.data.num_workers)


def export_run(run_dir: Path, out: Path | None = None, device: torch.device | None = None) -> Path:
    """Export the EMA autoencoder of ``run_dir``'s latest checkpoint (``out`` default RUN/model)."""
    path = latest_checkpoint(run_dir)
    if path is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint (looked in {run_dir}/checkpoints)")
    cfg = load_json(ExperimentConfig, run_dir / "config.json")
    device = device or torch.device("cpu")
    model = Autoencoder(cfg.model)
    ema = load_checkpoint(path)["ema"]
    model.load_state_dict({k[len("model.") :]: v for k, v in ema.items() if k.startswith("model.")})
    return export_model(
        model, stats_dataset(cfg), cfg.train.stats_images, out or run_dir / "model", device
    )


def stats_dataset(cfg: ExperimentConfig) -> Dataset:
    """The training images without augmentation (no flips, no colour changes, centre crops of
    files): latent statistics describe the data, not its augmented copies."""
    return build_dataset(cfg.data.spec, cfg.data.resolution, "train", cfg.train.seed, augment=False)
