"""A DGAE decoder trained on the frozen latents of an existing diffusers AutoencoderKL."""

from __future__ import annotations

import json

import torch

from dgae import Autoencoder
from dgae.cli.main import main


def _kl_vae(path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 8, 16), layers_per_block=1, latent_channels=2, norm_num_groups=8,
    )  # fmt: skip
    vae.save_pretrained(path)
    return vae


def test_train_a_decoder_for_a_frozen_vae_and_evaluate_both(tmp_path):
    vae = _kl_vae(tmp_path / "vae")
    run = tmp_path / "run"
    args = ["train", "--preset", "dgae-tiny", "--data", "photos", "--out", str(run), "--no-progress",
            f"model.encoder.frozen={tmp_path / 'vae'}", "train.total_steps=3",
            "train.checkpoint_every=3", "train.sample_every=3"]  # fmt: skip
    assert main(args) == 0
    model = Autoencoder.from_pretrained(run / "model")
    # the encoder is the VAE's, bit for bit, after training: only the decoder learnt
    ours = dict(model.encoder.encoder.named_parameters())
    for name, p in vae.encoder.named_parameters():
        assert torch.equal(ours[name], p), name
    assert torch.equal(model.encoder.quant_conv.weight, vae.quant_conv.weight)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.encode(x).mode(), vae.encode(x).latent_dist.mode())
    # the trained folder stands alone: its config records the VAE's architecture
    record = json.loads((run / "model" / "config.json").read_text())["model"]["encoder"]
    assert json.loads(record["frozen_config"])["latent_channels"] == 2
    # one protocol for both decoders of these latents: ours and the VAE's own
    for name, model_dir in (("dgae", run / "model"), ("vae", tmp_path / "vae")):
        assert main(["eval", "--model", str(model_dir), "--data", "photos", "--steps", "1",
                     "--resolution", "16", "--num-images", "8", "--perceptual", "none",
                     "--out", str(tmp_path / f"eval-{name}"), "--no-progress"]) == 0  # fmt: skip
        assert (tmp_path / f"eval-{name}" / "eval.json").exists()
    (tmp_path / "vae" / "config.json").unlink()
    Autoencoder.from_pretrained(run / "model")


def test_a_frozen_vae_of_another_geometry_is_a_clear_error(tmp_path, capsys):
    _kl_vae(tmp_path / "vae")
    args = ["train", "--preset", "dgae-tiny", "--data", "photos", "--out", str(tmp_path / "r"),
            f"model.encoder.frozen={tmp_path / 'vae'}", "model.latent_channels=4"]  # fmt: skip
    assert main(args) == 2
    assert "encodes to 2 channels at f4; set model.latent_channels=2" in capsys.readouterr().err
