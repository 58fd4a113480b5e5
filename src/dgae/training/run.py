"""Run a training task in a run folder: resume, feed the data from where it stopped, export."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from dgae.config import TrainConfig
from dgae.data.loader import ResumableSampler, build_loader
from dgae.training.distributed import DistInfo, barrier
from dgae.training.loop import Trainer, TrainTask
from dgae.training.reporting import MetricsWriter


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
