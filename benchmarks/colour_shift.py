"""Does the diffusion decoder keep z's global colour? Train DGAE variants briefly and measure the
per-tile mean-colour error of 1- and 2-NFE reconstructions on the validation photos.

    python benchmarks/colour_shift.py --out runs/colour [--steps 300] [key=value ...] \
        --variant pre=model.decoder.z_injection=pre_norm --variant post=model.decoder.z_injection=post_norm

Prints, per variant and NFE: PSNR, and the mean over tiles of |mean RGB(rec) - mean RGB(x)|
in uint8 levels (0 = no global colour shift).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dgae.autoencoder import Autoencoder
from dgae.autoencoder_training import train_autoencoder
from dgae.config import apply_overrides, get_preset
from dgae.data.loader import build_dataset
from dgae.data.transforms import to_model_range, to_uint8
from dgae.evaluation.metrics import psnr
from dgae.random import generators_from_seeds
from dgae.training.distributed import init_distributed


def colour_error(real: torch.Tensor, rec: torch.Tensor) -> float:
    """Mean over images of the L1 distance between mean RGB colours, uint8 levels."""
    return float((real.float().mean((2, 3)) - rec.float().mean((2, 3))).abs().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/colour")
    p.add_argument("--preset", default="dgae-small")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--variant", action="append", required=True, help="NAME=key=value[,key=value]")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    dist = init_distributed("cpu")
    val = build_dataset("photos", args.resolution, split="val")
    real = torch.stack([val[i][0] for i in range(len(val))])
    rows = {}
    for spec in args.variant:
        name, _, extra = spec.partition("=")
        cfg = apply_overrides(get_preset(args.preset), [
            f"data.resolution={args.resolution}", "model.downsample_factor=8",
            "model.latent_channels=4", f"train.total_steps={args.steps}",
            "train.batch_size=16", f"train.checkpoint_every={args.steps}",
            f"train.sample_every={args.steps}", *args.overrides,
            *[e for e in extra.split(",") if e]])  # fmt: skip
        train_autoencoder(cfg, Path(args.out) / name, dist)
        model = Autoencoder.from_pretrained(Path(args.out) / name / "model")
        x = to_model_range(real)
        for nfe in (1, 2):
            with torch.no_grad():
                rec = to_uint8(model.reconstruct(x, nfe, generators_from_seeds(range(len(x)))))
            rows[f"{name}@{nfe}"] = {"psnr": float(psnr(real, rec).mean()),
                                     "colour_error": colour_error(real, rec)}  # fmt: skip
            print(name, nfe, rows[f"{name}@{nfe}"], flush=True)
    (Path(args.out) / "colour.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
