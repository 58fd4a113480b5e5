"""Seam-free tiled evaluation of a latent-conditioned network over an image of any size.

The image is covered by overlapping tiles (aligned to the latent grid); the network runs on each
tile with the matching crop of the latent (and of any other full-resolution input), and the
outputs are blended by weighted overlap-add: each tile's weight ramps linearly from its borders
to 1 over the overlap, and the blend divides by the summed weights. Inside a diffusion sampler
this runs at every step on the *denoiser's output*, before the single global update (the
MultiDiffusion / mixture-of-diffusers idea), so there is one noise image and one trajectory for
the whole output; memory is bounded by the tile, not the image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``[0, size)`` with at least ``overlap``
    shared pixels between neighbours; the last tile ends at ``size``."""
    if tile >= size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, device: torch.device) -> Tensor:
    """(length,) weights: linear from 1/(overlap+1) at each end to 1 over ``overlap`` pixels."""
    idx = torch.arange(length, device=device, dtype=torch.float32)
    edge = torch.minimum(idx + 1, length - idx)
    return (edge / (overlap + 1)).clamp(max=1.0)


def default_overlap(tile: int, factor: int) -> int:
    """A quarter of the tile, on the latent grid (at least one latent pixel)."""
    return max(factor, tile // 4 // factor * factor)


def tiling_overlap(
    tile: int | None, overlap: int | None, height: int, width: int, factor: int
) -> int | None:
    """The overlap to tile a ``height`` x ``width`` image with, or None when it is not tiled
    (no ``tile``, or one tile covers it); ``overlap`` defaults to :func:`default_overlap`."""
    if tile is None or tile >= max(height, width):
        return None
    return default_overlap(tile, factor) if overlap is None else overlap


def check_tiling(tile: int, overlap: int, factor: int) -> None:
    """A ValueError naming the value unless tiles align to the latent grid and overlap."""
    if tile < factor or tile % factor or overlap % factor or not 0 < overlap < tile:
        raise ValueError(
            f"tile={tile}, overlap={overlap}: expected multiples of the downsampling factor "
            f"{factor} with 0 < overlap < tile"
        )


def tiled(
    network: Callable[[slice, slice], Tensor],
    height: int,
    width: int,
    tile: int,
    overlap: int,
    factor: int,
    out_scale: int = 1,
) -> Tensor:
    """Blend ``network(rows, cols)`` — the output (B, C, h, w) of the tile at pixel slices
    ``rows``, ``cols``, at 1/``out_scale`` of their resolution (f for an encoder, 1 for a
    decoder) — into the full (B, C, height/out_scale, width/out_scale) output."""
    check_tiling(tile, overlap, factor)
    s = out_scale
    out = weight = None
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            rows = slice(top, min(top + tile, height))
            cols = slice(left, min(left + tile, width))
            y = network(rows, cols).float()
            if out is None:
                out = y.new_zeros(*y.shape[:2], height // s, width // s)
                weight = y.new_zeros(1, 1, height // s, width // s)
            ramp = [_ramp(n, max(1, overlap // s), y.device) for n in y.shape[-2:]]
            at = (..., slice(top // s, top // s + y.shape[-2]),
                  slice(left // s, left // s + y.shape[-1]))  # fmt: skip
            out[at] += y * (ramp[0][:, None] * ramp[1])
            weight[at] += ramp[0][:, None] * ramp[1]
    return out / weight


def tiled_from_latent(
    network: Callable[[Tensor], Tensor], z: Tensor, factor: int, tile: int, overlap: int
) -> Tensor:
    """``network`` (latent (B, c, h, w) -> image (B, C, h f, w f)) evaluated on the latent
    crops under overlapping image tiles and blended into (B, C, H, W)."""
    h, w = z.shape[-2] * factor, z.shape[-1] * factor
    return tiled(lambda r, c: network(z[(..., *latent_slices(r, c, factor))]), h, w, tile,
                 overlap, factor)  # fmt: skip


def latent_slices(rows: slice, cols: slice, factor: int) -> tuple[slice, slice]:
    """The latent slices under pixel slices ``rows``, ``cols`` (tiles align to the grid)."""
    return (slice(rows.start // factor, rows.stop // factor),
            slice(cols.start // factor, cols.stop // factor))  # fmt: skip
