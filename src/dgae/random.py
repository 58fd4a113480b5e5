"""Seeded noise: one generator for the batch, or one per sample so results ignore batching.

Every per-item seed in the package comes from :func:`item_seed` (a run seed, an item index and a
named stream), so an item's noise never depends on the batch, rank or order it is processed in,
and two uses of randomness never share seeds by accident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

Generator = torch.Generator | Sequence[torch.Generator] | None


# What each stream seeds. "noise" is the default: the per-item noise of decoding, evaluation,
# training samples and DiT sampling (its seeds are seed * 1_000_003 + index, the formula
# docs/evaluation.md states; kept so published numbers reproduce). Every other stream hashes
# (seed, stream, index) into [2**63, 2**64), a range the "noise" stream never reaches for
# seeds below 9e12, so streams cannot collide whatever the index.
STREAMS = {
    "noise": "per-item noise: decoder/DiT sampling, evaluation, training samples (and the "
    "loader's permutation of epoch = index, kept on this stream so training runs reproduce)",
    "decoder": "the decoder noise of a generated sample (its DiT noise is the noise stream)",
    "posterior": "a cached latent sampled from the posterior",
    "posterior_flipped": "the posterior sample of a cached horizontally flipped image",
    "dropout": "the global RNG during one training micro-step (index from step, micro, rank)",
}
_NOISE_STRIDE = 1_000_003
_HIGH = 1 << 63


def item_seed(seed: int, index: int | tuple[int, ...], stream: str = "noise") -> int:
    """The seed of item ``index`` of run ``seed`` in ``stream`` (one of :data:`STREAMS`); a
    tuple index (e.g. step, micro-step, rank) names one item of a hashed stream."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; expected one of {sorted(STREAMS)}")
    if stream == "noise":
        if not isinstance(index, int):
            raise TypeError(f"the noise stream takes an integer index, got {index!r}")
        return seed * _NOISE_STRIDE + index
    digest = hashlib.blake2b(f"{seed}/{stream}/{index}".encode(), digest_size=8).digest()
    return _HIGH | int.from_bytes(digest, "little")


def item_generators(
    seed: int, indices: Sequence[int], stream: str = "noise", device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """One generator per item of ``indices``, seeded by :func:`item_seed`."""
    return generators_from_seeds([item_seed(seed, int(i), stream) for i in indices], device)


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
