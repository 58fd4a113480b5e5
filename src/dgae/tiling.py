"""Seam-free tiled evaluation of a latent-conditioned network over an image of any size.

The image is covered by overlapping tiles (aligned to the latent grid); the network runs on each
tile with the matching crop of the latent (and of any other full-resolution input), and the
outputs are blended by weighted overlap-add: each tile's weight ramps from near zero at its
borders to 1 over the overlap, and the blend divides by the summed weights. The tiles' GroupNorm
layers use the whole image's statistics (:mod:`dgae.tile_norm`), so a tile computes what the
untiled network computes there, up to its border context and tile-local attention. Inside a
diffusion sampler this runs at every step on the *denoiser's output*, before the single global
update (the MultiDiffusion / mixture-of-diffusers idea), so there is one noise image and one
trajectory for the whole output; memory is bounded by the tile, not the image.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from dgae.tile_norm import WholeImageNorms, owned_spans

# recording passes over the tiles stop once no GroupNorm's statistics move by more than this
# many of their standard deviations (dgae.tile_norm; measured in docs/benchmarks.md)
NORM_TOLERANCE = 0.1
# at most this many passes (None: one per GroupNorm layer; 0: each tile's own statistics)
NORM_PASSES: int | None = None


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``[0, size)`` with at least ``overlap``
    shared pixels between neighbours; the last tile ends at ``size``."""
    if tile >= size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, device: torch.device) -> Tensor:
    """(length,) blend weights of a tile: near zero on the outer quarter of the overlap, where
    the tile's zero padding corrupts its output most, then linear up to 1 at ``overlap`` pixels
    from each end (a plain linear ramp left seams: seam score 1.18 where the untiled decode
    scores 1.15; this ramp 1.11, docs/benchmarks.md)."""
    idx = torch.arange(length, device=device, dtype=torch.float32)
    edge = torch.minimum(idx + 1, length - idx)
    margin = max(1, overlap // 4)
    return ((edge - margin) / (overlap + 1 - margin)).clamp(min=1e-3, max=1.0)


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
    module: nn.Module | None = None,
    norm_passes: int | None = None,
    norm_tolerance: float | None = None,
) -> Tensor:
    """Blend ``network(rows, cols)`` — the output (B, C, h, w) of the tile at pixel slices
    ``rows``, ``cols``, at 1/``out_scale`` of their resolution (f for an encoder, 1 for a
    decoder) — into the full (B, C, height/out_scale, width/out_scale) output.

    With ``module`` (the network's module), its GroupNorm layers use whole-image statistics
    gathered in recording passes over the tiles first (:mod:`dgae.tile_norm`): until they move
    by less than ``norm_tolerance`` (default ``NORM_TOLERANCE``) standard deviations, at most
    ``norm_passes`` (default ``NORM_PASSES``; None: one per GroupNorm layer, after which every
    layer's statistics are the whole image's). Each pass costs one more evaluation of every
    tile."""
    check_tiling(tile, overlap, factor)
    tolerance = NORM_TOLERANCE if norm_tolerance is None else norm_tolerance
    norm_passes = NORM_PASSES if norm_passes is None else norm_passes
    row_starts, col_starts = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    tiles = [
        (slice(top, min(top + tile, height)), slice(left, min(left + tile, width)), own_r, own_c)
        for top, own_r in zip(row_starts, owned_spans(row_starts, tile, height), strict=True)
        for left, own_c in zip(col_starts, owned_spans(col_starts, tile, width), strict=True)
    ]
    norms = None if module is None or norm_passes == 0 else WholeImageNorms(module)
    with norms.active() if norms else nullcontext():
        for _ in range(0 if norms is None else norm_passes or len(norms.norms)):
            norms.start_pass()
            for t in tiles:
                norms.tile(*t)
                network(*t[:2])
            if norms.end_pass() < tolerance:
                break
        s = out_scale
        out = weight = None
        for rows, cols, *owned in tiles:
            if norms:
                norms.tile(rows, cols, *owned)
            y = network(rows, cols).float()
            if out is None:
                out = y.new_zeros(*y.shape[:2], height // s, width // s)
                weight = y.new_zeros(1, 1, height // s, width // s)
            ramp_y, ramp_x = (_ramp(n, max(1, overlap // s), y.device) for n in y.shape[-2:])
            w = ramp_y[:, None] * ramp_x
            at = (..., slice(rows.start // s, rows.start // s + y.shape[-2]),
                  slice(cols.start // s, cols.start // s + y.shape[-1]))  # fmt: skip
            out[at] += y * w
            weight[at] += w
    return out / weight


def tiled_from_latent(
    network: nn.Module, z: Tensor, factor: int, tile: int, overlap: int
) -> Tensor:
    """``network`` (latent (B, c, h, w) -> image (B, C, h f, w f)) evaluated on the latent
    crops under overlapping image tiles (whole-image GroupNorm statistics) and blended into
    (B, C, H, W)."""
    h, w = z.shape[-2] * factor, z.shape[-1] * factor
    return tiled(lambda r, c: network(z[(..., *latent_slices(r, c, factor))]), h, w, tile,
                 overlap, factor, module=network)  # fmt: skip


def latent_slices(rows: slice, cols: slice, factor: int) -> tuple[slice, slice]:
    """The latent slices under pixel slices ``rows``, ``cols`` (tiles align to the grid)."""
    return (slice(rows.start // factor, rows.stop // factor),
            slice(cols.start // factor, cols.stop // factor))  # fmt: skip


def tile_borders(size: int, tile: int, overlap: int) -> list[int]:
    """Pixel positions p (0 < p < size) where a tile starts or ends: the steps between p - 1 and
    p are where a tiled output could show a seam."""
    starts = tile_starts(size, tile, overlap)
    return sorted({s for s in starts if s > 0} | {s + tile for s in starts if s + tile < size})


def seam_score(image: Tensor, rows: list[int], cols: list[int]) -> float:
    """(C, H, W) image: the mean absolute step between neighbouring pixels across the given
    borders (a step between p - 1 and p for p in ``rows`` / ``cols``) over the mean step
    everywhere else; 1 means the borders look like the rest of the image."""
    x = image.float()
    dx, dy = (x[..., :, 1:] - x[..., :, :-1]).abs(), (x[..., 1:, :] - x[..., :-1, :]).abs()
    on_x = torch.zeros(dx.shape[-1], dtype=torch.bool)
    on_x[[c - 1 for c in cols]] = True
    on_y = torch.zeros(dy.shape[-2], dtype=torch.bool)
    on_y[[r - 1 for r in rows]] = True
    border = torch.cat([dx[..., on_x].flatten(), dy[..., on_y, :].flatten()]).mean()
    other = torch.cat([dx[..., ~on_x].flatten(), dy[..., ~on_y, :].flatten()]).mean()
    return float(border / other)
