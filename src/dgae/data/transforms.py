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
