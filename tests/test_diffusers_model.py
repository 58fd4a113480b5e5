"""AutoencoderDGAE: a dgae model as a diffusers VAE, converted both ways bit for bit, and
working inside a real diffusers pipeline built offline from small random components."""

from __future__ import annotations

import numpy as np
import torch

from dgae import Autoencoder, build_autoencoder, get_preset
from dgae.diffusers_model import AutoencoderDGAE
from dgae.random import item_generators


def _model() -> Autoencoder:
    torch.manual_seed(0)
    model = build_autoencoder(get_preset("dgae-tiny").model).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.latent_stats.set_from(torch.tensor([0.5, -0.2]), torch.tensor([2.0, 0.7]))
    return model


def test_conversion_both_ways_is_bit_identical(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "dgae")
    vae = AutoencoderDGAE.from_dgae(tmp_path / "dgae")
    vae.save_pretrained(tmp_path / "repo" / "vae")  # a pipeline folder's vae/ subfolder
    again = AutoencoderDGAE.from_pretrained(tmp_path / "repo", subfolder="vae")
    back = again.to_dgae()
    back.save_pretrained(tmp_path / "back")
    assert (tmp_path / "back" / "model.safetensors").read_bytes() == (
        tmp_path / "dgae" / "model.safetensors"
    ).read_bytes()
    assert torch.equal(back.latent_stats.std, model.latent_stats.std)
    cfg = again.config
    assert 2 ** (len(cfg.block_out_channels) - 1) == model.downsample_factor
    assert np.allclose(cfg.latents_mean, [0.5, -0.2]) and abs(cfg.shift_factor - 0.15) < 1e-6
    assert abs(cfg.scaling_factor - 1 / np.sqrt((4.0 + 0.49) / 2)) < 1e-6


def test_encode_and_decode_follow_diffusers_and_dgae():
    model = _model()
    vae = AutoencoderDGAE.from_dgae(model)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = torch.randn(2, 2, 4, 4)
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
        assert torch.equal(dist.mode(), model.encode(x).mode())
        assert dist.sample(torch.Generator().manual_seed(0)).shape == (2, 2, 4, 4)
        ours = model.decode(z, num_steps=3, generator=item_generators(0, range(2)))
        assert torch.equal(vae.decode(z, num_inference_steps=3).sample, ours)  # no generator
        (image,) = vae.decode(z, generator=item_generators(5, range(2)), return_dict=False)
        assert torch.equal(image, model.decode(z, generator=item_generators(5, range(2))))


def test_inside_a_diffusers_dit_pipeline():
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    model = _model()
    vae = AutoencoderDGAE.from_dgae(model)
    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=2, out_channels=2,
        num_layers=1, sample_size=4, patch_size=2, num_embeds_ada_norm=10,
    )  # fmt: skip
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler())
    seen = []
    decode = vae.decode
    vae.decode = lambda z, *a, **k: (seen.append(z.clone()), decode(z, *a, **k))[1]
    out = pipe(class_labels=[1, 3], num_inference_steps=2, guidance_scale=1.0, output_type="np",
               generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    assert out.shape == (2, 16, 16, 3) and np.isfinite(out).all()
    with torch.no_grad():
        ours = model.decode(seen[0], generator=item_generators(0, range(2)))
    expected = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert np.allclose(out, expected, atol=1e-6)


def test_convert_cli_both_ways(tmp_path):
    from dgae.cli.main import main

    _model().save_pretrained(tmp_path / "dgae")
    assert main(["convert", "--model", str(tmp_path / "dgae"), "--out", str(tmp_path / "hf")]) == 0
    assert AutoencoderDGAE.from_pretrained(tmp_path / "hf").config.latent_channels == 2
    assert main(["convert", "--model", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back" / "model.safetensors").read_bytes() == (
        tmp_path / "dgae" / "model.safetensors"
    ).read_bytes()
    assert main(["convert", "--model", str(tmp_path / "hf"), "--out", str(tmp_path / "back")]) == 2
