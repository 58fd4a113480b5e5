"""Run a DiT training on cached latents with the generic trainer."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dgae.config import LDMExperimentConfig, save_json
from dgae.generation.cache import LatentDataset
from dgae.generation.ldm import build_ldm, build_ldm_task
from dgae.training.distributed import DistInfo, barrier, init_distributed
from dgae.training.lock import run_lock
from dgae.training.loop import Trainer
from dgae.training.run import run_task


def check_latents_match(run_dir: Path, data: LatentDataset) -> None:
    """A run folder keeps one latent source: refuse another shape, autoencoder or normalisation
    (the cache's statistics, which the exported DiT denormalises with), naming both."""
    record = {k: data.meta[k] for k in ("latent_shape", "autoencoder", "stats")}
    path = run_dir / "latents.json"
    if path.exists():
        old = json.loads(path.read_text())
        for key in record:
            if key in old and old[key] != record[key]:  # older run folders lack "stats"
                raise ValueError(f"{run_dir} was trained on latents with {key}={old[key]}, "
                                 f"but these have {key}={record[key]}")  # fmt: skip
    path.write_text(json.dumps(record, indent=2))


def train_ldm(
    cfg: LDMExperimentConfig,
    latents: str | Path,
    run_dir: str | Path,
    dist: DistInfo | None = None,
    progress: bool = True,
    extra_eval=None,
) -> Trainer:
    """Train (or resume) a DiT on the cache at ``latents``; exports ``RUN/model`` when done."""
    cfg.validate()
    dist = dist or init_distributed()
    run_dir = Path(run_dir)
    with run_lock(run_dir, dist.is_main):  # one trainer per run folder
        data = LatentDataset(latents)
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            check_latents_match(run_dir, data)
            save_json(cfg, run_dir / "config.json")
        barrier(dist)
        torch.manual_seed(cfg.train.seed)
        ldm = build_ldm(cfg, data)
        task = build_ldm_task(cfg, ldm, run_dir, dist.device, extra_eval)
        return run_task(task, cfg.train, data, run_dir, dist, progress)
