"""Tiled decoding: tiles cover the image on the latent grid, the blend is exact for pointwise
networks, and a tile at least as large as the image is the untiled decode."""

from __future__ import annotations

import pytest
import torch

from dgae import build_autoencoder, get_preset
from dgae.config import apply_overrides
from dgae.random import generators_from_seeds
from dgae.tiling import check_tiling, tile_starts, tiled


@pytest.mark.parametrize("size, tile, overlap", [(96, 32, 8), (100, 40, 12), (32, 64, 8)])
def test_tiles_cover_the_image_with_the_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and min(starts[-1] + tile, size) == size
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_blend_is_exact_for_a_pointwise_network():
    x = torch.randn(2, 3, 48, 40)
    out = tiled(lambda r, c: 2 * x[..., r, c], 48, 40, tile=16, overlap=8, factor=4)
    assert torch.allclose(out, 2 * x, atol=1e-6)  # weights are normalised everywhere
    with pytest.raises(ValueError, match="tile=18, overlap=8: expected multiples"):
        check_tiling(18, 8, 4)


@pytest.mark.parametrize("kind", ["dgae", "baseline"])
def test_tiled_decode_shapes_and_the_untiled_limit(kind):
    torch.manual_seed(0)
    model = build_autoencoder(apply_overrides(get_preset("dgae-tiny").model, [f"kind={kind}"]))
    model.eval()
    z = torch.randn(1, 2, 12, 10)
    kw = dict(num_steps=2, generator=generators_from_seeds([0]))
    with torch.no_grad():
        whole = model.decode(z, **kw)
        big = model.decode(z, tile=64, **{**kw, "generator": generators_from_seeds([0])})
        tiles = model.decode(
            z, tile=16, overlap=8, **{**kw, "generator": generators_from_seeds([0])}
        )
    assert torch.equal(whole, big)
    assert tiles.shape == whole.shape == (1, 3, 48, 40) and torch.isfinite(tiles).all()


def test_reconstruct_cli_tiles_and_checks_its_flags(tmp_path):
    import numpy as np
    from PIL import Image

    from dgae.cli.main import main

    torch.manual_seed(0)
    build_autoencoder(get_preset("dgae-tiny").model).save_pretrained(tmp_path / "m")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 36, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    args = ["reconstruct", "--model", str(tmp_path / "m"), str(tmp_path / "a.png"), "--steps", "1"]
    assert main([*args, "--tile", "16", "--overlap", "8", "--out", str(tmp_path / "r")]) == 0
    assert Image.open(tmp_path / "r" / "a.png").size == (36, 40)
    assert main([*args, "--overlap", "8", "--out", str(tmp_path / "s")]) == 2  # needs --tile
    assert main([*args, "--tile", "18", "--out", str(tmp_path / "t")]) == 2  # off the grid


def test_tiled_encoding_blends_moments_on_the_latent_grid():
    import torch.nn.functional as F

    x = torch.randn(1, 3, 48, 40)
    pooled = tiled(lambda r, c: F.avg_pool2d(x[..., r, c], 4), 48, 40, 16, 8, 4, out_scale=4)
    assert torch.allclose(pooled, F.avg_pool2d(x, 4), atol=1e-6)  # exact for grid-local maps
    torch.manual_seed(0)
    model = build_autoencoder(get_preset("dgae-tiny").model).eval()
    x = torch.rand(2, 3, 48, 40) * 2 - 1
    with torch.no_grad():
        whole = model.encode(x).mode()
        assert torch.equal(model.encode(x, tile=64).mode(), whole)
        tiles = model.encode(x, tile=16, overlap=8)
    assert tiles.mode().shape == whole.shape == (2, 2, 12, 10)
    assert torch.isfinite(tiles.mode()).all() and torch.isfinite(tiles.logvar).all()
