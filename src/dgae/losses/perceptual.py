"""LPIPS-style perceptual distances in plain torch, loaded from local weight files.

- ST-LPIPS (Ghildyal & Liu, ECCV 2022): anti-aliased VGG16/AlexNet trunks (stride-1 max-pool then
  a reflect-padded [1, 2, 1]^2 blur with stride 2) and linear heads; the offline default. It is
  not LPIPS and is reported under its own name.
- LPIPS-VGG (Zhang et al., 2018), the paper's loss: torchvision's ImageNet VGG16 (user-supplied
  file) + the LPIPS v0.1 linear heads.

distance(x, y) = sum_l mean_hw || w_l * (phi_l(x)/|phi_l(x)| - phi_l(y)/|phi_l(y)|)^2 ||_1
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgae.config import PerceptualName, check_choice
from dgae.weights import weight_path

VGG_CHANNELS = [64, 128, 256, 512, 512]
ALEX_CHANNELS = [64, 192, 384, 256, 256]


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect pad 2, depthwise [1, 2, 1]^2 / 16 filter."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1]
        )


def _pool(ch: int, shift_tolerant: bool, kernel: int) -> list[nn.Module]:
    if shift_tolerant:
        return [nn.MaxPool2d(kernel, stride=1), BlurDownsample(ch)]
    return [nn.MaxPool2d(kernel, stride=2)]


def vgg16_trunk(shift_tolerant: bool) -> tuple[nn.Sequential, list[int]]:
    """VGG16 ``features`` (torchvision indices when not shift tolerant) and the indices after
    relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""
    layers: list[nn.Module] = []
    ends, ch = [], 3
    for stage, (width, convs) in enumerate(zip(VGG_CHANNELS, (2, 2, 3, 3, 3), strict=True)):
        if stage:
            layers += _pool(ch, shift_tolerant, 2)
        for _ in range(convs):
            layers += [nn.Conv2d(ch, width, 3, padding=1), nn.ReLU()]
            ch = width
        ends.append(len(layers))
    return nn.Sequential(*layers), ends


def alexnet_trunk(shift_tolerant: bool) -> tuple[nn.Sequential, list[int]]:
    """AlexNet ``features`` and the indices after relu1..relu5 (ST variant: stride-1 first conv
    followed by a blur-downsample, as in the ST-LPIPS release)."""
    if shift_tolerant:
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 11, stride=1, padding=2), BlurDownsample(64), nn.ReLU(),
            nn.MaxPool2d(3, stride=1), BlurDownsample(64), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, stride=1), BlurDownsample(192), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        ]  # fmt: skip
        ends = [3, 7, 11]
    else:
        layers = [
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, stride=2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, stride=2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        ]  # fmt: skip
        ends = [2, 5, 8]
    layers += [
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
    ]
    return nn.Sequential(*layers), ends + [ends[-1] + 2, ends[-1] + 4]


class LPIPS(nn.Module):
    """Frozen perceptual distance: images (B, 3, H, W) in [-1, 1] x2 -> distances (B,).

    Differentiable with respect to its inputs; its own parameters never train.
    """

    def __init__(self, features: nn.Sequential, ends: list[int], channels: list[int], name: str):
        super().__init__()
        self.name = name
        self.features = features
        self.ends = ends
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        # LPIPS v0.1 input scaling (ImageNet statistics expressed in [-1, 1]).
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:  # always eval: no dropout, frozen
        return super().train(False)

    def _taps(self, x: Tensor) -> list[Tensor]:
        taps, h, start = [], (x - self.shift) / self.scale, 0
        for end in self.ends:
            h = self.features[start:end](h)
            taps.append(h)
            start = end
        return taps

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.against(x, y)[0]

    def against(self, x: Tensor, *ys: Tensor) -> list[Tensor]:
        """Distances (B,) of each image batch in ``ys`` to the reference ``x``, from one pass of
        the network over all of them (the reference's features are computed once)."""
        feats = self._taps(torch.cat([x, *ys]))  # each ((1 + len(ys)) B, C_l, H_l, W_l)
        totals = [x.new_zeros(x.shape[0]) for _ in ys]
        for head, f in zip(self.heads, feats, strict=True):
            fx, *fys = (f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)).chunk(1 + len(ys))
            for k, fy in enumerate(fys):
                totals[k] = totals[k] + head((fx - fy).pow(2)).mean(dim=(1, 2, 3))
        return totals


def _load(path) -> dict[str, Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)  # never executes pickled code


def _heads(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    return {
        f"heads.{m.group(1)}.weight": v
        for k, v in sd.items()
        if (m := re.match(r"lin(\d)\.model\.1\.weight", k))
    }


def load_st_lpips(net: str = "vgg") -> LPIPS:
    """ST-LPIPS with the VGG16 (``net='vgg'``) or AlexNet (``'alex'``) trunk from the cache."""
    if net not in ("vgg", "alex"):
        raise ValueError(f"ST-LPIPS net={net!r}; expected 'vgg' or 'alex'")
    features, ends = vgg16_trunk(True) if net == "vgg" else alexnet_trunk(True)
    model = LPIPS(
        features, ends, VGG_CHANNELS if net == "vgg" else ALEX_CHANNELS, f"ST-LPIPS-{net}"
    )
    sd = _load(weight_path(f"st-lpips-{net}"))
    state = _heads(sd)
    for k, v in sd.items():
        if m := re.match(r"net\.slice\d\.(\d+)\.(weight|bias|filt)$", k):
            state[f"features.{m.group(1)}.{m.group(2)}"] = v
    state.update(shift=model.shift, scale=model.scale)
    model.load_state_dict(state, strict=True)
    return model


def load_lpips_vgg() -> LPIPS:
    """LPIPS-VGG v0.1 (the paper's loss): user-supplied torchvision VGG16 + the LPIPS heads."""
    features, ends = vgg16_trunk(False)
    model = LPIPS(features, ends, VGG_CHANNELS, "LPIPS-VGG")
    vgg = _load(weight_path("vgg16-imagenet"))
    state = {k: v for k, v in vgg.items() if k.startswith("features.")}
    state.update(
        _heads(_load(weight_path("lpips-vgg-heads"))), shift=model.shift, scale=model.scale
    )
    model.load_state_dict(state, strict=True)
    return model


def tiny_random_lpips(seed: int = 0, width: int = 8) -> LPIPS:
    """A small randomly initialised LPIPS (3 taps) so the loss maths is testable without weights."""
    g = torch.Generator().manual_seed(seed)
    features = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
    )  # fmt: skip
    model = LPIPS(features, [2, 4, 6], [width, 2 * width, 2 * width], "tiny-random-LPIPS")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(
                torch.rand(p.shape, generator=g) - (0.0 if p.ndim == 4 and p.shape[0] == 1 else 0.5)
            )
    return model


def build_perceptual(kind: str) -> LPIPS | None:
    """The perceptual network named ``kind`` (one of ``config.PerceptualName``); None for none."""
    check_choice("loss.perceptual", kind, PerceptualName)
    if kind == "none":
        return None
    if kind in ("st-lpips-vgg", "st-lpips-alex"):
        return load_st_lpips(kind.rsplit("-", 1)[1])
    if kind == "lpips-vgg":
        return load_lpips_vgg()
    return tiny_random_lpips()
