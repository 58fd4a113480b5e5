"""Seeded noise: one generator for the batch, or one per sample so results ignore batching."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Generator = torch.Generator | Sequence[torch.Generator] | None


def generators_from_seeds(seeds: Sequence[int], device: torch.device | str = "cpu") -> list:
    """One ``torch.Generator`` per seed, on ``device``."""
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def _draw(fn, shape, generator, device, dtype) -> Tensor:
    if generator is None or isinstance(generator, torch.Generator):
        return fn(tuple(shape), generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(
            f"got {len(generator)} generators for a batch of {shape[0]}; need one each"
        )
    return torch.stack(
        [fn(tuple(shape[1:]), generator=g, device=device, dtype=dtype) for g in generator]
    )


def rand(
    shape: Sequence[int],
    generator: Generator = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Uniform [0, 1) noise of ``shape`` (B, ...); ``generator`` as in :func:`randn`."""
    return _draw(torch.rand, shape, generator, device, dtype)


def randn(
    shape: Sequence[int],
    generator: Generator = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal noise of ``shape`` (B, ...).

    ``generator`` may be a list of B generators: sample i then depends only on generator i, so an
    image decodes the same whatever batch it is in (evaluation uses one seed per image).
    """
    return _draw(torch.randn, shape, generator, device, dtype)
