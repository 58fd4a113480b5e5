"""Losses: perceptual distances (LPIPS, ST-LPIPS) and the DGAE / baseline objectives."""

from dgae.losses.objective import BaselineObjective, DGAEObjective, build_objective
from dgae.losses.perceptual import LPIPS, build_perceptual, load_lpips_vgg, load_st_lpips

__all__ = [
    "LPIPS",
    "BaselineObjective",
    "DGAEObjective",
    "build_objective",
    "build_perceptual",
    "load_lpips_vgg",
    "load_st_lpips",
]
