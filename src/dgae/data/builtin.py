"""Built-in real data that needs no download.

``photos``: CC0/public-domain photographs shipped inside scikit-image, plus (when fetched, see
:mod:`dgae.data.debian_photos`) twelve GPL-2+ nature photographs of Debian's mate-backgrounds;
seeded random crops with random scale, flips and colour augmentation. The train/validation split is by source photograph,
so no crop of a validation photo is ever seen in training. Validation items are the
non-overlapping tiles of the validation photos (shorter side resized to max(256, min(8 R, own))).

``fashion-mnist``: Debian's ``dataset-fashion-mnist`` (70k 28x28 grey, 10 classes), replicated
to RGB and padded to 32x32.
"""

from __future__ import annotations

import gzip
import os
import warnings
from functools import cache
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from dgae.data.datasets import ArrayDataset, Item, item_rng
from dgae.data.debian_photos import cached_photos
from dgae.data.images import load_image
from dgae.data.transforms import maybe_color_augment, resize_shorter_side, to_chw_tensor

TRAIN_PHOTOS = (
    "astronaut", "chelsea", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
    "colorwheel", "camera", "coins", "moon", "grass", "brick", "clock",
)  # fmt: skip
VAL_PHOTOS = ("coffee", "stereo_motorcycle", "gravel")
EXTRA_PHOTO_SIDE = 512  # the Debian photographs' shorter side, like most scikit-image photos
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
]  # fmt: skip


@cache
def load_photo(name: str) -> np.ndarray:
    """One scikit-image photo as (H, W, 3) uint8 (grey replicated; stereo pairs: left view)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):
        image = image[0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


@cache
def load_extra_photo(path: Path) -> np.ndarray:
    """A fetched photograph as (H, W, 3) uint8 with its shorter side at ``EXTRA_PHOTO_SIDE``."""
    return resize_shorter_side(load_image(path), EXTRA_PHOTO_SIDE)


def training_photos() -> list[str]:
    """Names of the training photographs: the scikit-image ones, then the fetched Debian ones
    (absent, with a warning, when they have not been fetched: ``python -m dgae weights``)."""
    extra = cached_photos()
    if extra is None:
        warnings.warn(
            "photos: the mate-backgrounds photographs are not in the cache (fetch them with "
            "`python -m dgae weights`); training on the 13 scikit-image photographs only",
            stacklevel=2,
        )
        return list(TRAIN_PHOTOS)
    return list(TRAIN_PHOTOS) + [str(p) for p in extra]


def _load_training_photo(name: str) -> np.ndarray:
    return load_photo(name) if name in TRAIN_PHOTOS else load_extra_photo(Path(name))


class PhotoCrops(Dataset):
    """Training crops of the training photos; ``length`` is the virtual epoch size."""

    classes = ["photo"]

    def __init__(
        self,
        resolution: int,
        length: int = 100_000,
        hflip: bool = True,
        color: bool = True,
        seed: int = 0,
    ) -> None:
        self.resolution, self.length, self.hflip, self.color, self.seed = (
            resolution, length, hflip, color, seed,
        )  # fmt: skip
        self.source = "photos"
        self.names = training_photos()
        self.photos = [_load_training_photo(n) for n in self.names]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int) -> Item:
        rng = item_rng(self.seed, key)
        photo = self.photos[rng.integers(len(self.photos))]
        r, (h, w) = self.resolution, photo.shape[:2]
        lo, hi = max(r, 128), max(r, min(h, w))
        size = np.exp(rng.uniform(np.log(lo), np.log(hi))) if hi > lo else lo
        # crop the window that maps to an r x r crop at shorter side `size`, then resize only it
        win = min(h, w, max(1, round(r * min(h, w) / size)))
        top, left = rng.integers(0, h - win + 1), rng.integers(0, w - win + 1)
        image = resize_shorter_side(photo[top : top + win, left : left + win], r)
        if self.hflip and rng.random() < 0.5:
            image = image[:, ::-1]
        if self.color:
            image = maybe_color_augment(image, rng)
        return to_chw_tensor(image), 0, (), key


def photo_tiles(resolution: int) -> ArrayDataset:
    """Validation: every non-overlapping R x R tile of the validation photos, each photo's
    shorter side resized to max(256, min(8 R, its own)): 248 tiles at 32 px, 195 at 64 px."""
    tiles = []
    for name in VAL_PHOTOS:
        photo = load_photo(name)
        image = resize_shorter_side(photo, max(256, min(8 * resolution, min(photo.shape[:2]))))
        h, w = (s // resolution * resolution for s in image.shape[:2])
        grid = image[:h, :w].reshape(h // resolution, resolution, w // resolution, resolution, 3)
        tiles.append(grid.transpose(0, 2, 1, 3, 4).reshape(-1, resolution, resolution, 3))
    images = np.concatenate(tiles)
    return ArrayDataset(
        images, np.zeros(len(images), np.int64), ["photo"], "photos:val", train=False
    )


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str = "train", **kw) -> ArrayDataset:
    """Fashion-MNIST from Debian's package as (N, 32, 32, 3) uint8 (``split``: train | val)."""
    root = Path(os.environ.get("DGAE_FASHION_MNIST_DIR", FASHION_DIR))
    prefix = "train" if split == "train" else "t10k"
    img_path, lbl_path = (
        root / f"{prefix}-images-idx3-ubyte.gz",
        root / f"{prefix}-labels-idx1-ubyte.gz",
    )
    if not img_path.exists() or not lbl_path.exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {root} (looked for {img_path.name}); install it with: "
            "sudo apt-get install -y dataset-fashion-mnist"
        )
    images = np.pad(_read_idx(img_path), ((0, 0), (2, 2), (2, 2)))  # (N, 32, 32)
    images = np.repeat(images[..., None], 3, axis=3)
    labels = _read_idx(lbl_path).astype(np.int64)
    return ArrayDataset(images, labels, FASHION_CLASSES, f"fashion-mnist:{split}", **kw)
