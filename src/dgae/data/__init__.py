"""Image data: transforms (the only uint8 <-> [-1, 1] conversions), datasets and loaders."""

from dgae.data.transforms import check_images, to_model_range, to_uint8

__all__ = ["check_images", "to_model_range", "to_uint8"]
