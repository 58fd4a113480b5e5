"""Map-style image datasets returning (uint8 image (3, R, R), label, skipped paths).

Indices are *keys*: ``key % len`` picks the item and the whole key seeds its augmentation, so a
resumable sampler that passes ``epoch * len + index`` gets fresh, reproducible crops each epoch.
Unreadable files never crash a run: the item falls through to the next readable file and the
skipped path travels with the batch so the trainer can count and list it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dgae.data.images import UnreadableImage, find_images, load_image
from dgae.data.transforms import maybe_color_augment, prepare, to_chw_tensor
from dgae.folders import check_header

Item = tuple[Tensor, int, tuple[str, ...], int]  # image, label, skipped paths, key


@dataclass
class Batch:
    """A collated batch: images (B, 3, R, R) uint8, labels (B,) int64, skipped file paths, and
    the sampler keys (B,) that seed each sample's training noise (rank- and batch-independent)."""

    images: Tensor
    labels: Tensor
    skipped: list[str]
    keys: list[int]


def collate(items: list[Item]) -> Batch:
    return Batch(
        torch.stack([i[0] for i in items]),
        torch.tensor([i[1] for i in items], dtype=torch.int64),
        [p for i in items for p in i[2]],
        [i[3] for i in items],
    )


def item_rng(seed: int, key: int) -> np.random.Generator:
    return np.random.default_rng([seed, key])


class FileDataset(Dataset):
    """Images from a list of files with labels; resize + (random|centre) crop + optional flip
    and colour change (training only)."""

    def __init__(
        self,
        paths: list[Path],
        labels: list[int],
        classes: list[str],
        resolution: int,
        source: str,
        train: bool = True,
        hflip: bool = True,
        seed: int = 0,
        color: bool = False,
    ) -> None:
        if not paths:
            raise ValueError(f"{source}: no image files found")
        self.paths, self.labels, self.classes = paths, labels, classes
        self.resolution, self.source, self.train, self.hflip, self.seed, self.color = (
            resolution, source, train, hflip, seed, color,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int) -> Item:
        n, skipped = len(self.paths), []
        for offset in range(n):
            idx = (key + offset) % n
            try:
                image = load_image(self.paths[idx])
            except UnreadableImage:
                skipped.append(str(self.paths[idx]))
                continue
            if min(image.shape[:2]) < 1:
                skipped.append(str(self.paths[idx]))
                continue
            rng = item_rng(self.seed, key) if self.train else None
            image = prepare(image, self.resolution, rng, self.hflip)
            if rng is not None and self.color:
                image = maybe_color_augment(image, rng)
            return to_chw_tensor(image), self.labels[idx], tuple(skipped), key
        raise ValueError(f"{self.source}: none of its {n} image files could be read")


def folder_dataset(root: str | Path, resolution: int, **kw) -> FileDataset:
    """All images under ``root``; first-level sub-folders are classes (ImageNet layout)."""
    root = Path(root)
    paths = find_images(root)
    if not paths:
        raise ValueError(f"{root}: no image files found (looked recursively for common extensions)")
    names = [
        p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "" for p in paths
    ]
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return FileDataset(paths, [index[c] for c in names], classes, resolution, str(root), **kw)


def list_dataset(list_file: str | Path, resolution: int, **kw) -> FileDataset:
    """A text file with one ``path [label]`` per line (relative paths are relative to the file)."""
    list_file = Path(list_file)
    paths, labels = [], []
    for line in list_file.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        label = 0
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            line, label = parts[0], int(parts[1])
        path = Path(line) if Path(line).is_absolute() else list_file.parent / line
        paths.append(path)
        labels.append(label)
    if not paths:
        raise ValueError(f"{list_file}: lists no image paths")
    classes = [str(c) for c in range(max(labels) + 1)]
    return FileDataset(paths, labels, classes, resolution, str(list_file), **kw)


class ArrayDataset(Dataset):
    """Fixed-resolution uint8 images (N, R, R, 3) in memory or memory-mapped, with labels."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: list[str],
        source: str,
        train: bool = True,
        hflip: bool = True,
        seed: int = 0,
        color: bool = False,
    ) -> None:
        if len(images) == 0:
            raise ValueError(f"{source}: holds no images")
        self.images, self.labels, self.classes = images, labels, classes
        self.source, self.train, self.hflip, self.seed = source, train, hflip, seed
        self.color = color
        self.resolution = images.shape[1]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int) -> Item:
        idx = key % len(self.images)
        image = np.asarray(self.images[idx])
        if self.train:
            rng = item_rng(self.seed, key)
            if self.hflip and rng.random() < 0.5:
                image = image[:, ::-1]
            if self.color:
                image = maybe_color_augment(np.ascontiguousarray(image), rng)
        return to_chw_tensor(image), int(self.labels[idx]), (), key


def packed_dataset(path: str | Path, resolution: int | None = None, **kw) -> ArrayDataset:
    """A pack written by ``dgae prepare-data`` (memory-mapped ``images.npy`` + ``labels.npy``)."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise ValueError(
            f"{path}: not a dgae pack (no meta.json); write one with dgae prepare-data"
        )
    meta = json.loads(meta_path.read_text())
    check_header(meta, "dgae-pack", meta_path)
    if not meta.get("complete"):
        raise ValueError(f"{path}: pack is incomplete ({meta.get('done')} of {meta.get('total')}); "
                         "rerun dgae prepare-data to finish it")  # fmt: skip
    if resolution is not None and resolution != meta["resolution"]:
        raise ValueError(
            f"{path}: packed at resolution {meta['resolution']}, but {resolution} was requested"
        )
    count = meta["count"]
    images = np.load(path / "images.npy", mmap_mode="r")[:count]
    labels = np.load(path / "labels.npy", mmap_mode="r")[:count]
    return ArrayDataset(images, labels, meta["classes"], str(path), **kw)


def content_key(dataset: Dataset, n: int) -> str:
    """A sha256 that changes when the first ``n`` items' content may have changed: file paths
    with sizes and modification times for files and memory-mapped packs, the pixel bytes for
    in-memory arrays (so a cache keyed by it is never stale for edited or other data)."""
    digest = hashlib.sha256(f"{type(dataset).__name__}|{n}".encode())
    images = getattr(dataset, "images", None)
    files = getattr(dataset, "paths", None)
    if isinstance(images, np.memmap):
        files = [images.filename]
    if files is not None:
        for path in files[:n] if len(files) > 1 else files:
            st = os.stat(path)
            digest.update(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    elif images is not None:
        digest.update(np.ascontiguousarray(images[:n]).tobytes())
    else:
        raise TypeError(f"cannot fingerprint a {type(dataset).__name__}; give it .paths or .images")
    return digest.hexdigest()
