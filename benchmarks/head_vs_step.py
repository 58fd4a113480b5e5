"""Where a DGAE decoder's quality comes from: its one-pass head's image x_bar(z) against its
1-NFE decode, on the validation photos (the compression study's 195 tiles at 64 px).

    python benchmarks/head_vs_step.py runs/study/dgae-head-f8c4/run/model runs/study/dgae-trunk-f8c4/run/model

Prints, per model: PSNR and ST-LPIPS (VGG) of the head image and of the 1-NFE decode from the
posterior mean, with the study's per-image noise seeds. A per-step network that earns its cost
makes the second better than the first; otherwise the head alone is the decoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dgae.autoencoder import Autoencoder
from dgae.data.loader import build_dataset
from dgae.data.transforms import to_model_range, to_uint8
from dgae.evaluation.metrics import psnr
from dgae.losses.perceptual import build_perceptual
from dgae.random import item_generators


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path, help="DGAE model folders with a prior head")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=65)
    args = p.parse_args()
    val = build_dataset("photos", args.resolution, split="val")
    real = torch.stack([val[i][0] for i in range(len(val))])  # (N, 3, R, R) uint8
    lpips = build_perceptual("st-lpips-vgg")
    print("| model | decode | PSNR | ST-LPIPS-vgg |\n|---|---|---|---|")
    for folder in args.models:
        model = Autoencoder.from_pretrained(folder).eval()
        if model.decoder.head is None:
            raise SystemExit(f"{folder}: no prior head (model.decoder.prior_head=false)")
        outs: dict[str, list[torch.Tensor]] = {"head image": [], "1 NFE": []}
        for start in range(0, len(real), args.batch_size):
            idx = list(range(start, min(start + args.batch_size, len(real))))
            with torch.no_grad():
                z = model.encode(to_model_range(real[idx])).mean
                outs["head image"].append(model.decode(z, num_steps=0))
                gens = item_generators(0, idx, "noise", z.device)
                outs["1 NFE"].append(model.decode(z, num_steps=1, generator=gens))
        for name, parts in outs.items():
            rec = to_uint8(torch.cat(parts))
            with torch.no_grad():
                d = lpips(to_model_range(real), to_model_range(rec))
            print(f"| {folder} | {name} | {psnr(real, rec).mean():.2f} | {d.mean():.4f} |")


if __name__ == "__main__":
    main()
