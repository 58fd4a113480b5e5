"""dgae: Diffusion-Guided Autoencoders (DGAE, arXiv 2506.09644) in PyTorch."""

from dgae.autoencoder import Autoencoder, build_autoencoder
from dgae.bottleneck import DiagonalGaussian, LatentStats
from dgae.config import AutoencoderConfig, ExperimentConfig, get_preset
from dgae.data.transforms import to_model_range, to_uint8

__version__ = "0.1.0"

__all__ = [
    "Autoencoder",
    "AutoencoderConfig",
    "DiagonalGaussian",
    "ExperimentConfig",
    "LatentStats",
    "build_autoencoder",
    "get_preset",
    "to_model_range",
    "to_uint8",
]
