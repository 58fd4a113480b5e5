"""The one place that converts between uint8 images and the models' float [-1, 1] range."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_model_range(images: Tensor | np.ndarray) -> Tensor:
    """uint8 images (B, 3, H, W) or (3, H, W) in [0, 255] -> float32 in [-1, 1]."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got dtype {images.dtype}")
    return images.float() / 127.5 - 1.0


def to_uint8(images: Tensor) -> Tensor:
    """float images in [-1, 1] (any shape) -> uint8 in [0, 255], rounded, values clamped."""
    return ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def check_images(x: Tensor, multiple: int = 1, where: str = "images") -> None:
    """Raise a ValueError naming the problem unless ``x`` is a float (B, 3, H, W) batch in [-1, 1]
    whose H and W are divisible by ``multiple``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{where}: expected shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(
            f"{where}: expected a float tensor in [-1, 1], got dtype {x.dtype} "
            "(convert uint8 images with dgae.data.to_model_range)"
        )
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"{where}: size {h}x{w} is not divisible by the downsampling factor {multiple}"
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.001 or hi > 1.001:
        raise ValueError(
            f"{where}: values span [{lo:.3g}, {hi:.3g}]; expected [-1, 1] "
            "(images in [0, 1] or [0, 255] must be converted first)"
        )


# ----------------------------------------------------------------------------- geometry (uint8 HWC)


def resize_shorter_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 so its shorter side is ``size`` (bicubic; antialiased when shrinking)."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if new == (w, h):
        return image
    resample = Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(image).resize(new, resample))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Central ``size`` x ``size`` crop of (H, W, 3)."""
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly placed ``size`` x ``size`` crop of (H, W, 3)."""
    h, w = image.shape[:2]
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return image[top : top + size, left : left + size]


def color_augment(
    image: np.ndarray, rng: np.random.Generator, max_hue: float = np.pi
) -> np.ndarray:
    """Random RGB channel permutation and hue rotation (in YIQ) of (H, W, 3) uint8.

    Small photo collections lack some colours (few saturated greens in scikit-image's photos);
    without this the models learn to grey them out.
    """
    out = image[..., rng.permutation(3)].astype(np.float32)
    angle = rng.uniform(-max_hue, max_hue)
    yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    m = np.linalg.inv(yiq) @ rot @ yiq
    return np.clip(out @ m.T.astype(np.float32), 0, 255).round().astype(np.uint8)


def maybe_color_augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`color_augment` with probability 1/2 (``DataConfig.color_augment``'s policy)."""
    return color_augment(image, rng) if rng.random() < 0.5 else image


def to_chw_tensor(image: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 array -> (3, H, W) uint8 tensor (contiguous copy)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def prepare(
    image: np.ndarray,
    resolution: int,
    rng: np.random.Generator | None = None,
    hflip: bool = False,
) -> np.ndarray:
    """The dataset transform: shorter side -> ``resolution``, then a random crop (when ``rng``)
    or the centre crop, then a random horizontal flip (when ``hflip`` and ``rng``)."""
    image = resize_shorter_side(image, resolution)
    image = (
        random_crop(image, resolution, rng) if rng is not None else center_crop(image, resolution)
    )
    if hflip and rng is not None and rng.random() < 0.5:
        image = image[:, ::-1]
    return image
