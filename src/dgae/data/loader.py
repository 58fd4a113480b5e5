"""Dataset specs -> datasets, and the rank-aware, resumable sampler the trainer uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dgae.data.builtin import PhotoCrops, fashion_mnist, photo_tiles
from dgae.data.datasets import collate, folder_dataset, list_dataset, packed_dataset
from dgae.random import item_generators

SPEC_HELP = "'photos', 'fashion-mnist', an image folder, a text file of image paths, or a pack"


def build_dataset(
    spec: str,
    resolution: int,
    split: str = "train",
    seed: int = 0,
    hflip: bool = True,
    color_augment: bool = True,
    augment: bool | None = None,
) -> Dataset:
    """Dataset for ``spec`` (see ``SPEC_HELP``). ``split='val'`` selects the held-out split of
    the built-in data. ``augment`` (default: on for 'train') enables random crops, flips (with
    ``hflip``) and colour changes (with ``color_augment``; every source but the grey
    fashion-mnist); off, files are centre-cropped."""
    train = split == "train"
    augment = train if augment is None else augment
    if spec == "photos":
        if train:
            return PhotoCrops(
                resolution, hflip=hflip and augment, color=color_augment and augment, seed=seed
            )
        return photo_tiles(resolution)
    if spec == "fashion-mnist":
        if resolution != 32:
            raise ValueError(f"fashion-mnist is 32x32 (padded); got resolution={resolution}")
        return fashion_mnist(split, hflip=hflip, seed=seed, train=augment)
    path = Path(spec)
    kw = dict(train=augment, hflip=hflip, seed=seed, color=color_augment)
    if path.is_dir() and (path / "meta.json").exists():
        return packed_dataset(path, resolution, **kw)
    if path.is_dir():
        return folder_dataset(path, resolution, **kw)
    if path.is_file():
        return list_dataset(path, resolution, **kw)
    raise ValueError(f"data spec {spec!r} is not {SPEC_HELP} (no such file or folder)")


class ResumableSampler(Sampler[int]):
    """Infinite stream of keys ``epoch * N + index`` for one rank, resumable at any position.

    Each epoch is a seeded permutation (identical on every rank) cut into ``world`` disjoint
    strided shares (the tail that does not divide evenly is dropped). ``start`` is how many keys
    this rank has already consumed, so a resumed run continues with exactly the next one.
    """

    def __init__(
        self,
        length: int,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        start: int = 0,
    ) -> None:
        self.length, self.rank, self.world, self.seed, self.shuffle = (
            length,
            rank,
            world,
            seed,
            shuffle,
        )
        self.per_rank = length // world
        if self.per_rank == 0:
            raise ValueError(f"dataset of {length} items is smaller than the world size {world}")
        self.start = start

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            if self.shuffle:
                g = item_generators(self.seed, [epoch])[0]
                order = torch.randperm(self.length, generator=g)
            else:
                order = torch.arange(self.length)
            share = order[: self.per_rank * self.world][self.rank :: self.world]
            for index in share[offset:].tolist():
                yield epoch * self.length + index
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:  # one epoch's share; the stream itself is endless
        return self.per_rank


def build_loader(
    dataset: Dataset,
    batch_size: int,
    sampler: Sampler | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader yielding :class:`~dgae.data.datasets.Batch` objects."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        persistent_workers=num_workers > 0,
        drop_last=sampler is None,
    )
