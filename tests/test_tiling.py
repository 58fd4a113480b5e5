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


def test_owned_spans_partition_the_image():
    from dgae.tile_norm import owned_spans

    for size, tile, overlap in [(96, 32, 8), (100, 40, 12), (32, 64, 8)]:
        starts = tile_starts(size, tile, overlap)
        spans = owned_spans(starts, tile, size)
        assert spans[0][0] == 0 and spans[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        assert all(s <= a < b <= s + tile for s, (a, b) in zip(starts, spans, strict=True))


def _norm_network() -> torch.nn.Module:
    """Pointwise layers and GroupNorms at full and half resolution: tiled with whole-image
    statistics it must equal the untiled network (no border context to miss)."""
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.GroupNorm(2, 8), nn.SiLU(), nn.AvgPool2d(2),
        nn.Conv2d(8, 8, 1), nn.GroupNorm(4, 8), nn.SiLU(), nn.Upsample(scale_factor=2),
        nn.Conv2d(8, 3, 1), nn.GroupNorm(1, 3),
    )  # fmt: skip


def test_whole_image_statistics_make_tiled_groupnorm_exact():
    net = _norm_network()
    # a brightness ramp: each tile's own mean and variance differ from the image's
    x = torch.randn(2, 3, 48, 40) + torch.linspace(-3, 3, 48)[:, None]
    with torch.no_grad():
        whole = net(x)
        run = lambda r, c: net(x[..., r, c])  # noqa: E731
        local = tiled(run, 48, 40, tile=16, overlap=8, factor=4)
        shared = tiled(run, 48, 40, tile=16, overlap=8, factor=4, module=net)
        one_pass = tiled(run, 48, 40, 16, 8, 4, module=net, norm_passes=1)
    assert (local - whole).abs().max() > 0.3  # tile statistics: visibly wrong
    assert (one_pass - whole).abs().max() > 1e-3  # one pass only fixes the first layer
    assert torch.allclose(shared, whole, atol=1e-4)  # three layers, converged: exact
    assert all(type(m).forward is m.forward.__func__ for m in net if hasattr(m, "num_groups"))


def _tiny_tiled(family: str, monkeypatch, tolerance: float | None = None):
    """(untiled, tiled 64/32, tile-local-statistics) decodes of a random tiny ``family`` model
    at 128x96, 2 NFE, and the PSNR of a decode against the untiled one."""
    import dgae.tiling

    torch.manual_seed(0)
    model = build_autoencoder(get_preset(f"{family}-tiny").model).eval()
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 128, 96) * 2 - 1, 5, 1, 2)

    def decode(**tiling):
        return model.decode(z, num_steps=2, generator=generators_from_seeds([0]), **tiling)

    with torch.no_grad():
        z = model.encode(x).mode()
        whole = decode()
        with monkeypatch.context() as patch:
            if tolerance is not None:
                patch.setattr(dgae.tiling, "NORM_TOLERANCE", tolerance)
            tiles = decode(tile=64, overlap=32)
            patch.setattr(dgae.tiling, "NORM_PASSES", 0)
            local = decode(tile=64, overlap=32)
    return whole, tiles, local, lambda y: float(10 * torch.log10(4 / (y - whole).square().mean()))


@pytest.mark.parametrize("family", ["dgae", "baseline"])
def test_tiled_decode_matches_untiled_within_tolerance_without_seams(family, monkeypatch):
    """Random tiny models at 128x96, tiles 64/32: tiled within 30 dB of the untiled decode (the
    tolerance docs/benchmarks.md states; a trained model reaches 35 dB at 64/16), better than
    tiles with their own GroupNorm statistics, and seams within 0.05 of the untiled decode's
    own score at the same borders."""
    from dgae.tiling import seam_score, tile_borders

    whole, tiles, local, db = _tiny_tiled(family, monkeypatch)
    rows, cols = tile_borders(128, 64, 32), tile_borders(96, 64, 32)
    assert db(tiles) > 30 and db(tiles) > db(local) + 2
    assert seam_score(tiles[0], rows, cols) < seam_score(whole[0], rows, cols) + 0.05


def test_tiled_trunk_decode_converges_to_the_untiled_one(monkeypatch):
    # the random tiny trunk amplifies what the 0.1-std stopping rule leaves of its early
    # layers' statistics (28 dB, below tile-local statistics' 32 dB on this random network);
    # passes to convergence beat both, and the trained shipped trunk reaches 40 dB at the
    # default rule (tests/test_shipped_models.py; tile-local statistics there: 15 dB)
    _, tiles, local, db = _tiny_tiled("dgae-trunk", monkeypatch)
    assert db(tiles) > 25
    _, exact, local, db = _tiny_tiled("dgae-trunk", monkeypatch, tolerance=0.0)
    assert db(exact) > 33 and db(exact) > db(local) + 1


def test_seam_score_finds_a_seam():
    from dgae.tiling import seam_score

    smooth = torch.linspace(0, 1, 32).expand(3, 32, 32).clone()
    assert abs(seam_score(smooth, [16], [16]) - 1) < 1e-5
    stepped = smooth.clone()
    stepped[..., 16:] += 0.5
    assert seam_score(stepped, [], [16]) > 10
