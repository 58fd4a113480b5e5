"""The trained models shipped in the repository's ``models/`` folder, and how they were made.

Four autoencoders on 64² crops of the built-in ``photos`` with the same encoder and budget, in
the setting where the compression study found the paper's claim to hold (f4): DGAE with 2
latent channels (the default U-Net decoder, and the fast trunk option), the one-pass baseline
with the same latent, and the baseline with twice the channels.
``python -m dgae.experiments.shipped`` trains them (resumable: rerun the same command after an
interruption), copies each exported EMA model to ``models/NAME`` and writes its
measured table (``models/NAME/eval.md``, the evaluation protocol on the held-out photos).
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from dgae.config import ExperimentConfig, apply_overrides, get_preset

RESOLUTION = 64  # training crops and evaluation tiles (pixels)
NFES = (1, 2, 4)  # DGAE decoder NFEs evaluated


@dataclass(frozen=True)
class Shipped:
    """One shipped model: its folder name, preset and overrides."""

    name: str
    preset: str
    overrides: tuple[str, ...] = ()


SHIPPED = (
    Shipped("dgae-f4c2", "dgae-small"),
    Shipped("dgae-trunk-f4c2", "dgae-trunk-small"),
    Shipped("baseline-f4c2", "baseline-small"),
    Shipped("baseline-f4c4", "baseline-small", ("model.latent_channels=4",)),
)


def shipped_config(m: Shipped, steps: int) -> ExperimentConfig:
    """The training config of ``m``: its preset on ``photos`` at RESOLUTION, batch 16."""
    return apply_overrides(
        get_preset(m.preset),
        ["data.spec=photos", f"data.resolution={RESOLUTION}", *m.overrides,
         "train.batch_size=16", f"train.total_steps={steps}", "train.checkpoint_every=100",
         "train.sample_every=500", "train.keep_checkpoints=2"],
    )  # fmt: skip


def train_shipped(runs: Path, models: Path, steps: int, names: list[str] | None = None) -> None:
    """Train (or resume) each shipped model in ``runs/NAME``, copy its exported model to
    ``models/NAME`` and evaluate it there (``eval.md``, ``eval.json``)."""
    from dgae.autoencoder_training import train_autoencoder
    from dgae.data.loader import build_dataset
    from dgae.evaluation.models import DgaeModel
    from dgae.evaluation.protocol import EvalSettings, evaluate
    from dgae.evaluation.report import write_eval
    from dgae.experiments.common import protocol_networks, start_application

    dist = start_application(models)
    val = build_dataset("photos", RESOLUTION, split="val")
    inception, perceptual = protocol_networks()
    for m in SHIPPED:
        if names and m.name not in names:
            continue
        trainer = train_autoencoder(shipped_config(m, steps), runs / m.name, dist)
        if trainer.status != "done":
            raise SystemExit(f"{m.name}: training was interrupted; rerun the same command")
        target = models / m.name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(runs / m.name / "model", target)
        model = DgaeModel(target, torch.device("cpu"))
        settings = EvalSettings(RESOLUTION, NFES, batch_size=32)
        write_eval(evaluate(model, val, "photos", settings, dist, inception, perceptual), target)
        (target / "quality_vs_nfe.png").unlink(missing_ok=True)  # a table is enough here


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs/ship", help="run folders (resumed when present)")
    p.add_argument("--out", default="models", help="where the exported models go")
    p.add_argument("--steps", type=int, default=2000, help="training steps (batch 16)")
    p.add_argument("--only", nargs="*", help="names to (re)make; default all")
    args = p.parse_args(argv)
    train_shipped(Path(args.runs), Path(args.out), args.steps, args.only)


if __name__ == "__main__":
    main()
