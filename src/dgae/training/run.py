"""One call that trains an autoencoder from an :class:`ExperimentConfig` into a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from dgae.autoencoder import Autoencoder
from dgae.config import ExperimentConfig, TrainConfig, load_json, save_json, to_dict
from dgae.data.loader import ResumableSampler, build_dataset, build_loader
from dgae.training.autoencoder_task import build_autoencoder_task, export_model
from dgae.training.checkpoint import latest_checkpoint, load_checkpoint
from dgae.training.distributed import DistInfo, barrier, init_distributed
from dgae.training.lock import run_lock
from dgae.training.loop import Trainer, TrainTask
from dgae.training.reporting import MetricsWriter

NUM_GRID_IMAGES = 8


def check_resume_config(run_dir: Path, cfg: ExperimentConfig, force: bool = False) -> None:
    """A run folder may only be resumed with the same model (never) and the same training data
    (unless ``force``: the earlier record is then kept as ``config.until_step_N.json``)."""
    path = run_dir / "config.json"
    if not path.exists():
        return
    recorded = json.loads(path.read_text())
    old, new = recorded.get("model", {}), to_dict(cfg)["model"]
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
        d = cfg.data
        train_data = build_dataset(
            d.spec, d.resolution, "train", cfg.train.seed, d.hflip, d.color_augment
        )
        val_data = build_dataset(d.spec, d.resolution, "val")
        n_grid = min(NUM_GRID_IMAGES, len(val_data))
        val_images = torch.stack([val_data[i * len(val_data) // n_grid][0] for i in range(n_grid)])
        model = Autoencoder(cfg.model)
        task = build_autoencoder_task(
            cfg, model, stats_dataset(cfg), val_images, run_dir, dist.device
        )
        return run_task(task, cfg.train, train_data, run_dir, dist, progress, d.num_workers)


def run_task(
    task: TrainTask,
    cfg: TrainConfig,
    data: Dataset,
    run_dir: Path,
    dist: DistInfo,
    progress: bool = True,
    num_workers: int = 0,
) -> Trainer:
    """Resume ``task`` from ``run_dir`` if it holds a checkpoint, feed it ``data`` from exactly
    where it stopped, train to the end and export on the main process."""
    trainer = Trainer(task, cfg, run_dir, dist, progress)
    trainer.resume()
    consumed = trainer.step * trainer.micro * cfg.grad_accum  # keys this rank already used
    sampler = ResumableSampler(len(data), dist.rank, dist.world, cfg.seed, start=consumed)
    loader = build_loader(data, trainer.micro, sampler, num_workers)
    metrics = MetricsWriter(run_dir, cfg.tensorboard) if dist.is_main else None
    trainer.fit(iter(loader), metrics)
    if trainer.status == "done" and dist.is_main and task.on_export is not None:
        task.on_export(trainer.ema.model)
    barrier(dist)
    return trainer


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
