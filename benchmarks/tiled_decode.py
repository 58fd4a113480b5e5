"""Tiled vs untiled decoding on a real photograph: agreement, seams and time.

Reconstructs a centre crop of an image with a trained model three ways, from the same noise:
untiled; tiled with the blended denoiser (``decode(..., tile=T, overlap=O)``); and naively
(each tile decoded alone and pasted, no overlap). Reports PSNR of each against the original and
against the untiled decode, and a seam score: the mean absolute pixel difference across the
naive tiles' borders divided by the same mean over all other neighbouring pixels (1 = no seam).

Usage: python benchmarks/tiled_decode.py --model RUN/model --image photo.png --size 256 --tile 64
"""

from __future__ import annotations

import argparse
import time

import torch

from dgae import Autoencoder, to_model_range, to_uint8
from dgae.data.images import load_image
from dgae.data.transforms import center_crop
from dgae.evaluation.metrics import psnr
from dgae.random import item_generators


def seam_score(image: torch.Tensor, tile: int) -> float:
    """(3, H, W) uint8: mean |step| across the columns and rows where naive tiles meet over the
    mean |step| between all other neighbouring pixels."""
    x = image.float()
    dx, dy = (x[:, :, 1:] - x[:, :, :-1]).abs(), (x[:, 1:] - x[:, :-1]).abs()
    on_x = torch.zeros(dx.shape[-1], dtype=torch.bool)
    on_x[tile - 1 :: tile] = True
    on_y = torch.zeros(dy.shape[-2], dtype=torch.bool)
    on_y[tile - 1 :: tile] = True
    border = torch.cat([dx[:, :, on_x].flatten(), dy[:, on_y].flatten()]).mean()
    other = torch.cat([dx[:, :, ~on_x].flatten(), dy[:, ~on_y].flatten()]).mean()
    return float(border / other)


def naive(model: Autoencoder, z: torch.Tensor, tile: int, steps: int, seed: int) -> torch.Tensor:
    """Each tile decoded on its own (its own noise) and pasted: what tiling without blending
    does."""
    f = model.downsample_factor
    h, w = z.shape[-2] * f, z.shape[-1] * f
    out = torch.zeros(1, 3, h, w)
    k = 0
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            zt = z[..., top // f : (top + tile) // f, left // f : (left + tile) // f]
            out[..., top : top + tile, left : left + tile] = model.decode(
                zt, steps, item_generators(seed, [k])
            )
            k += 1
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--tile", type=int, default=64)
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    model = Autoencoder.from_pretrained(args.model)
    image = torch.from_numpy(
        center_crop(load_image(args.image), args.size).transpose(2, 0, 1).copy()
    )
    x = to_model_range(image[None])
    rows = []
    with torch.no_grad():
        z = model.encode(x).mode()
        runs = {
            "untiled": lambda: model.decode(z, args.steps, item_generators(args.seed, [0])),
            f"tiled {args.tile}/{args.overlap}": lambda: model.decode(
                z, args.steps, item_generators(args.seed, [0]), tile=args.tile, overlap=args.overlap
            ),
            f"naive {args.tile}": lambda: naive(model, z, args.tile, args.steps, args.seed),
        }
        outs = {}
        for name, fn in runs.items():
            t0 = time.perf_counter()
            outs[name] = to_uint8(fn())[0]
            rows.append((name, time.perf_counter() - t0))
    ref = outs["untiled"]
    print(f"{args.image}, {args.size}x{args.size}, {args.steps} NFE\n")
    print("| decode | PSNR vs original | PSNR vs untiled | seam score | seconds |")
    print("|---|---|---|---|---|")
    for name, secs in rows:
        out = outs[name]
        vs_ref = "–" if name == "untiled" else f"{psnr(out[None], ref[None]).item():.2f}"
        print(f"| {name} | {psnr(out[None], image[None]).item():.2f} | {vs_ref} | "
              f"{seam_score(out, args.tile):.3f} | {secs:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
