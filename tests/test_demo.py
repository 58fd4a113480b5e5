"""The demo: claims computed from the tables, and the whole command end to end on tiny models
standing in for the shipped ones."""

from __future__ import annotations

import torch

from dgae import build_autoencoder, get_preset
from dgae.cli.main import main
from dgae.config import apply_overrides
from dgae.experiments.demo_report import claims, compare


def _eval(name: str, rows: list[tuple]) -> dict:
    keys = ("nfe", "psnr", "ssim", "perceptual", "rfid", "kid", "seconds_per_image")
    return {"model": name, "results": [dict(zip(keys, r, strict=True)) for r in rows]}


def test_claims_follow_the_table():
    dgae = _eval("dgae", [(1, 20.0, 0.5, 0.30, 100.0, 0.10, 0.02),
                          (2, 19.0, 0.4, 0.25, 110.0, 0.12, 0.04)])  # fmt: skip
    same = _eval("base-c2", [(1, 19.5, 0.45, 0.35, 105.0, 0.11, 0.01)])
    wide = _eval("base-c4", [(1, 18.0, 0.30, 0.40, 120.0, 0.20, 0.01)])
    best, wins, losses = compare(dgae, same)
    assert best["nfe"] == 2  # the best perceptual distance picks the row
    assert wins == ["perceptual"] and losses == ["psnr", "ssim", "rfid", "kid"]
    text = claims([dgae, same, wide])
    assert "dgae beats the one-pass decoder on the same latent: **holds in part**" in text
    assert "2x larger latent: **holds** (better on psnr, ssim, perceptual, rfid, kid" in text
    assert "dgae at 1 NFE takes 2.00x the same-latent baseline's evaluation time" in text
    assert "no claim checked" in claims([dgae])
    # every DGAE model before the two baselines gets its own claims
    unet = _eval("dgae-unet", [(1, 21.0, 0.6, 0.20, 90.0, 0.05, 0.03)])
    text = claims([dgae, unet, same, wide])
    assert "dgae-unet beats the one-pass decoder on the same latent: **holds**" in text
    assert "dgae-unet at 1 NFE takes 3.00x" in text


def test_demo_end_to_end(tmp_path):
    models = tmp_path / "models"
    for name, preset, over in (("dgae-f4c2", "dgae-tiny", []),
                               ("dgae-trunk-f4c2", "dgae-trunk-tiny", []),
                               ("baseline-f4c2", "baseline-tiny", []),
                               ("baseline-f4c4", "baseline-tiny", ["latent_channels=4"])):  # fmt: skip
        torch.manual_seed(0)
        build_autoencoder(apply_overrides(get_preset(preset).model, over)).save_pretrained(
            models / name
        )
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--train-steps", "2", "--nfe", "1", "--eval-images", "4"]
    assert main([*args, "--models", str(models)]) == 0
    report = (out / "report.md").read_text()
    assert "| dgae-f4c2 | 1 | 1 |" in report and "| baseline-c2 | 1 | 1 |" in report
    assert "dgae-f4c2 matches the one-pass decoder with a 2x larger latent: **" in report
    assert "dgae-trunk-f4c2 beats the one-pass decoder on the same latent: **" in report
    assert (out / "shipped_reconstructions.png").exists() and (out / "reconstructions.png").exists()
    # without the shipped models the fresh pair still runs (resumed here) and the report says so
    assert main([*args, "--models", str(tmp_path / "nowhere")]) == 0
    assert "Not found: skipped." in (out / "report.md").read_text()
