"""The models shipped in ``models/``: present, made by the recorded recipe, and working out of
the box (Python API and ``dgae reconstruct``) with no training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgae import Autoencoder, to_model_range, to_uint8
from dgae.cli.main import main
from dgae.config import to_dict
from dgae.data.loader import build_dataset
from dgae.evaluation.metrics import psnr
from dgae.experiments.shipped import RESOLUTION, SHIPPED, shipped_config
from dgae.random import generators_from_seeds

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def val_tiles() -> torch.Tensor:
    val = build_dataset("photos", RESOLUTION, split="val")
    return torch.stack([val[i * len(val) // 8][0] for i in range(8)])  # (8, 3, 64, 64) uint8


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda m: m.name)
def test_shipped_model_reconstructs_held_out_photos(shipped, val_tiles):
    folder = MODELS / shipped.name
    model = Autoencoder.from_pretrained(folder)
    recipe = to_dict(shipped_config(shipped, 1))["model"]
    assert to_dict(model.config) == recipe  # the folder is what the recorded recipe trains
    with torch.no_grad():
        rec = model.reconstruct(
            to_model_range(val_tiles), num_steps=1, generator=generators_from_seeds(range(8))
        )
    # a trained model, not a blob: above 19 dB on these tiles (measured 25.5-27.7 dB), and its
    # recorded evaluation is the protocol's on the 195 held-out 64px tiles
    assert psnr(to_uint8(rec), val_tiles).mean() > 19.0
    recorded = json.loads((folder / "eval.json").read_text())
    assert recorded["num_images"] == 195 and recorded["settings"]["resolution"] == RESOLUTION


def test_reconstruct_cli_on_a_shipped_model(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((72, 100, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    args = ["reconstruct", "--model", str(MODELS / "dgae-f4c2"), str(tmp_path / "a.png"),
            "--steps", "1", "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(args) == 0
    assert Image.open(tmp_path / "r" / "a.png").size == (100, 72)


def test_tiled_decode_of_the_shipped_trunk_matches_its_untiled_decode():
    # the trained trunk decoder at the tiling defaults (measured: 40 dB on coffee at 256²)
    model = Autoencoder.from_pretrained(MODELS / "dgae-trunk-f4c2")
    crop = build_dataset("photos", 128, split="val")[0][0][None]  # (1, 3, 128, 128) uint8
    with torch.no_grad():
        z = model.encode(to_model_range(crop)).mode()
        whole = model.decode(z, num_steps=2, generator=generators_from_seeds([0]))
        tiled = model.decode(z, num_steps=2, generator=generators_from_seeds([0]), tile=64,
                             overlap=16)  # fmt: skip
    assert 10 * torch.log10(4 / (tiled - whole).square().mean()) > 35
