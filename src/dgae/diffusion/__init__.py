"""Diffusion paths, parameterisation conversions and samplers (t = 0 data, t = 1 noise)."""

from dgae.diffusion.loss import DenoisingLoss, as_denoiser, denoising_loss, x0_reliability
from dgae.diffusion.parameterization import Prediction, convert, from_x0_eps, to_x0_eps
from dgae.diffusion.samplers import (
    SAMPLERS,
    check_num_steps,
    network_evaluations,
    sample,
    sampling_times,
)
from dgae.diffusion.schedule import PATHS, FlowPath, NoisePath, VPPath, get_path, sample_time

__all__ = [
    "PATHS",
    "as_denoiser",
    "denoising_loss",
    "x0_reliability",
    "SAMPLERS",
    "DenoisingLoss",
    "FlowPath",
    "NoisePath",
    "Prediction",
    "VPPath",
    "convert",
    "from_x0_eps",
    "get_path",
    "check_num_steps",
    "network_evaluations",
    "sample",
    "sample_time",
    "sampling_times",
    "to_x0_eps",
]
