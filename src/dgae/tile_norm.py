"""Whole-image GroupNorm statistics for a network evaluated on tiles.

A GroupNorm layer normalises by the mean and variance of what it sees. Run on a tile, it sees
the tile: a near-uniform patch of sky gets its small variations blown up to unit variance, and
the tiled output no longer matches the untiled one (the decoders lost 3.5 dB to this). Here
each GroupNorm of a module instead uses the moments of its input over the *whole image*,
accumulated over the tiles without ever holding the image's activations:

* every tile owns a disjoint part of the image (the overlap split at its midpoint), and a
  recording pass sums x and x^2 of each GroupNorm input per (sample, group) over the owned part
  only (scaled to the layer's resolution), so the sums count each image position once;
* the next pass normalises with those moments. The first GroupNorm's input does not depend on
  any normalisation, so its moments are exact after one pass; pass k makes the first k layers'
  moments exact, and the rest converge quickly (measured in docs/benchmarks.md).

Layers are matched by call order within one forward of the module, which is the same on every
tile. What stays tile-local is attention and each tile's border context (the overlap covers it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def owned_spans(starts: list[int], tile: int, size: int) -> list[tuple[int, int]]:
    """Disjoint [begin, end) pixel spans covering [0, size), one per tile start: neighbours
    split their overlap at its midpoint."""
    cuts = [0] + [(b + a + tile) // 2 for a, b in pairwise(starts)] + [size]
    return list(pairwise(cuts))


class WholeImageNorms:
    """Replaces the forward of every ``nn.GroupNorm`` in a module while active (a context
    manager from :meth:`active`); :meth:`tile` says which tile runs next and what it owns."""

    def __init__(self, module: nn.Module) -> None:
        self.norms = [m for m in module.modules() if isinstance(m, nn.GroupNorm)]
        self.moments: list[Tensor] = []  # per call: (3, B, G) sums of 1, x, x^2 (float64)
        self.recorded: list[Tensor] = []
        self.recording = False
        self.calls = 0
        # the current tile: top, left, owned rows [r0, r1), owned cols [c0, c1), height, width
        self.where: tuple[int, ...] = (0, 0, 0, 0, 0, 0, 1, 1)

    @contextmanager
    def active(self) -> Iterator[WholeImageNorms]:
        """Patch the GroupNorm layers for the duration of the block, restore them after."""
        for norm in self.norms:
            norm.forward = self._forward_of(norm)  # an instance attribute shadows the class's
        try:
            yield self
        finally:
            for norm in self.norms:
                del norm.forward

    def start_pass(self) -> None:
        """Begin a recording pass over all tiles: it accumulates moments for the next pass."""
        self.recording = True
        self.recorded = []

    def end_pass(self) -> float:
        """The moments recorded in this pass become the ones the next pass normalises with;
        returns how far they moved: the largest change of any group's mean or standard
        deviation, in units of its standard deviation (inf on the first pass)."""
        change = float("inf")
        if len(self.moments) == len(self.recorded):
            change = max(
                float(((m0 - m1).abs() / s1).max().maximum(((s0 - s1).abs() / s1).max()))
                for (m0, s0), (m1, s1) in zip(
                    map(_mean_std, self.moments), map(_mean_std, self.recorded), strict=True
                )
            )
        self.moments, self.recorded = self.recorded, []
        self.recording = False
        return change

    def tile(self, rows: slice, cols: slice, own_rows: tuple[int, int], own_cols: tuple[int, int]):
        """The next forward runs on the tile at pixel ``rows`` x ``cols``, which owns the pixel
        spans ``own_rows`` x ``own_cols`` of the image."""
        self.calls = 0
        self.where = (rows.start, cols.start, *own_rows, *own_cols,
                      rows.stop - rows.start, cols.stop - cols.start)  # fmt: skip

    def _owned(self, x: Tensor) -> Tensor:
        """The part of a (B, C, h, w) activation of the current tile that the tile owns."""
        top, left, r0, r1, c0, c1, th, tw = self.where
        sy, sx = x.shape[-2] / th, x.shape[-1] / tw  # the layer's scale against pixels

        def span(a: int, b: int, origin: int, s: float) -> slice:
            # round global positions, then shift: neighbouring tiles cut at the same place
            return slice(round(a * s) - round(origin * s), round(b * s) - round(origin * s))

        return x[..., span(r0, r1, top, sy), span(c0, c1, left, sx)]

    def _forward_of(self, norm: nn.GroupNorm):
        def forward(x: Tensor) -> Tensor:
            index = self.calls
            self.calls += 1
            g = norm.num_groups
            if self.recording:
                part = self._owned(x).double().flatten(2)  # (B, C, n)
                part = part.reshape(x.shape[0], g, -1)  # (B, G, C/G * n)
                sums = torch.stack([torch.full_like(part[..., 0], part.shape[-1]),
                                    part.sum(-1), part.square().sum(-1)])  # fmt: skip
                if index == len(self.recorded):
                    self.recorded.append(sums)
                else:
                    self.recorded[index] += sums
            if index >= len(self.moments):  # nothing recorded yet: the tile's own statistics
                return F.group_norm(x, g, norm.weight, norm.bias, norm.eps)
            mean, std = _mean_std(self.moments[index], norm.eps)  # (B, G)
            rstd = 1 / std
            xg = x.float().reshape(x.shape[0], g, -1)
            y = ((xg - mean[..., None].float()) * rstd[..., None].float()).reshape(x.shape)
            if norm.affine:
                y = y * norm.weight.float().view(1, -1, 1, 1) + norm.bias.float().view(1, -1, 1, 1)
            return y.to(x.dtype)

        return forward


def _mean_std(moments: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """(3, B, G) sums of 1, x, x^2 -> mean and sqrt(var + eps), each (B, G)."""
    n, s1, s2 = moments
    mean = s1 / n
    return mean, ((s2 / n - mean.square()).clamp(min=0) + eps).sqrt()
