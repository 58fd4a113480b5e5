"""What every application starts with: its output folder, its process group, and the
evaluation protocol's networks (docs/evaluation.md)."""

from __future__ import annotations

from pathlib import Path

from dgae.evaluation.inception import InceptionFeatures
from dgae.losses.perceptual import LPIPS, build_perceptual
from dgae.training.distributed import DistInfo, init_distributed


def start_application(out: str | Path) -> DistInfo:
    """Create the output folder ``out`` (a file there is an error naming it) and the process
    group the application runs in: one CPU process (``dgae train`` is the torchrun entry)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder for the outputs")
    out.mkdir(parents=True, exist_ok=True)
    return init_distributed("cpu")


def protocol_networks() -> tuple[InceptionFeatures, LPIPS]:
    """(Inception features for rFID/KID, ST-LPIPS-VGG): the networks the reports score with."""
    return InceptionFeatures(), build_perceptual("st-lpips-vgg")
