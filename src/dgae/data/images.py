"""Reading image files of any common mode into (H, W, 3) uint8 RGB arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class UnreadableImage(ValueError):
    """An image file that cannot be decoded (corrupt, truncated, or not an image)."""


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0  # 16-bit data, or 'I' holding 8-bit values
        grey = np.clip(arr / peak * 255.0, 0, 255).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        grey = ((arr - lo) / (hi - lo if hi > lo else 1.0) * 255).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))  # transparency -> white
    return np.asarray(img.convert("RGB"))


def load_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` to (H, W, 3) uint8 RGB, upright as its EXIF orientation says (phone
    photos). Grey, RGBA, palette, CMYK and 16-bit are converted; anything that fails to decode
    fully raises :class:`UnreadableImage` naming the file."""
    try:
        with Image.open(path) as img:
            img.load()  # force a full decode: truncated files fail here, not later
            return _to_rgb(ImageOps.exif_transpose(img))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise UnreadableImage(f"{path}: {err}") from None


def find_images(root: str | Path) -> list[Path]:
    """All image files under ``root`` (recursive, sorted for a stable order)."""
    return sorted(
        p for p in Path(root).rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
    )
