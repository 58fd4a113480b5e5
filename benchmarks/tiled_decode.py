"""Tiled vs untiled decoding on a real photograph: agreement, seams and time.

Reconstructs a centre crop of an image with a trained model, from the same noise: untiled;
tiled with the blended denoiser (``decode(..., tile=T, overlap=O)``) and whole-image GroupNorm
statistics (the default); the same with each tile's own statistics (``NORM_PASSES = 0``); tiled
encoding and decoding (what ``dgae reconstruct --tile`` does); and naively (each tile decoded
alone and pasted, no overlap). Reports PSNR of each against the original and against the
untiled decode, and seam scores (:func:`dgae.tiling.seam_score`: the mean absolute step across
tile borders over the mean step elsewhere, 1 = no seam) at the borders of the blended tiles and
at those of the naive tiles.

Usage: python benchmarks/tiled_decode.py --model RUN/model --image photo.png --size 256 --tile 64
"""

from __future__ import annotations

import argparse
import time

import torch

import dgae.tiling
from dgae import Autoencoder, to_model_range, to_uint8
from dgae.data.images import load_image
from dgae.data.transforms import center_crop
from dgae.evaluation.metrics import psnr
from dgae.random import item_generators
from dgae.tiling import seam_score, tile_borders


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
        gen = lambda: item_generators(args.seed, [0])  # noqa: E731
        tiling = dict(tile=args.tile, overlap=args.overlap)

        def tile_local():
            dgae.tiling.NORM_PASSES = 0
            try:
                return model.decode(z, args.steps, gen(), **tiling)
            finally:
                dgae.tiling.NORM_PASSES = None

        runs = {
            "untiled": lambda: model.decode(z, args.steps, gen()),
            f"tiled {args.tile}/{args.overlap}": lambda: model.decode(
                z, args.steps, gen(), **tiling
            ),
            f"tiled {args.tile}/{args.overlap}, tile-local norms": tile_local,
            f"tiled encode + decode {args.tile}/{args.overlap}": lambda: model.decode(
                model.encode(x, **tiling).mode(), args.steps, gen(), **tiling
            ),
            f"naive {args.tile}": lambda: naive(model, z, args.tile, args.steps, args.seed),
        }
        outs = {}
        for name, fn in runs.items():
            t0 = time.perf_counter()
            outs[name] = to_uint8(fn())[0]
            rows.append((name, time.perf_counter() - t0))
    ref = outs["untiled"]
    blended = tile_borders(args.size, args.tile, args.overlap)
    pasted = list(range(args.tile, args.size, args.tile))
    print(f"{args.image}, {args.size}x{args.size}, {args.steps} NFE\n")
    print("| decode | PSNR vs original | PSNR vs untiled | seam, blended borders | "
          "seam, naive borders | seconds |\n|---|---|---|---|---|---|")  # fmt: skip
    for name, secs in rows:
        out = outs[name]
        vs_ref = "–" if name == "untiled" else f"{psnr(out[None], ref[None]).item():.2f}"
        print(f"| {name} | {psnr(out[None], image[None]).item():.2f} | {vs_ref} | "
              f"{seam_score(out, blended, blended):.3f} | {seam_score(out, pasted, pasted):.3f} "
              f"| {secs:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
