import json

import pytest
import torch

from dgae import Autoencoder, build_autoencoder
from dgae.autoencoder import Decoder
from dgae.config import ConfigError, DecoderKind, apply_overrides, choices, get_preset
from dgae.losses import build_objective
from dgae.random import generators_from_seeds
from dgae.tiling import tiled_from_latent


@pytest.fixture
def model(tiny_cfg):
    torch.manual_seed(0)
    m = build_autoencoder(tiny_cfg.model).eval()
    with torch.no_grad():  # the U-Net's output conv starts at zero; give it something to say
        m.decoder.unet.conv_out.weight.normal_(0, 0.1)
    return m


@pytest.mark.parametrize("kind", ["dgae", "baseline"])
@pytest.mark.parametrize("f", [4, 8, 16, 32])
def test_shapes_for_every_factor(tiny_cfg, kind, f):
    cfg = apply_overrides(
        tiny_cfg.model, [f"kind={kind}", f"downsample_factor={f}", "latent_channels=3"]
    )
    m = build_autoencoder(cfg)
    x = torch.rand(2, 3, 32, 64) * 2 - 1
    post = m.encode(x)
    assert post.mode().shape == (2, 3, 32 // f, 64 // f)
    with torch.no_grad():
        out = m.decode(post.sample(torch.Generator().manual_seed(0)), num_steps=2)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1


def test_decode_is_deterministic_per_seed_and_batch_independent(model, images):
    z = model.encode(images).mode()
    with torch.no_grad():
        a = model.decode(z, num_steps=3, generator=torch.Generator().manual_seed(1))
        b = model.decode(z, num_steps=3, generator=torch.Generator().manual_seed(1))
        c = model.decode(z, num_steps=3, generator=torch.Generator().manual_seed(2))
        batch = model.decode(z, num_steps=3, generator=generators_from_seeds([10, 11, 12, 13]))
        single = model.decode(z[2:3], num_steps=3, generator=generators_from_seeds([12]))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(batch[2:3], single, atol=1e-5)


@pytest.mark.parametrize("arch", ["unet", "trunk"])
def test_zero_steps_decode_is_the_head_image_without_a_denoiser_call(tiny_cfg, arch):
    trunk = ["decoder.patch_size=2", "decoder.attention_levels=()"] if arch == "trunk" else []
    m = build_autoencoder(apply_overrides(tiny_cfg.model, [f"decoder.architecture={arch}", *trunk]))
    calls = []
    m.decoder.unet.register_forward_hook(lambda *_: calls.append(1))
    z = torch.randn(2, 2, 6, 4) * 3
    with torch.no_grad():
        m.decoder.unet.conv_out.weight.normal_(0, 0.1)  # it starts at zero: the head's image
        head = m.decoder.prior(z).clamp(-1, 1)
        assert torch.equal(m.decode(z, num_steps=0), head)
        tiled = m.decoder.decode(z, num_steps=0, tile=16, overlap=8)
        one = m.decode(z, num_steps=1, generator=generators_from_seeds([0, 1]))
    assert calls == [1]  # only the 1-NFE decode called the denoiser
    assert not torch.equal(one, head)
    with torch.no_grad():  # tiled: the head evaluated tile by tile (dgae.tiling), nothing more
        tiled_head = tiled_from_latent(m.decoder.head, z, 4, 16, 8)[:, :3].clamp(-1, 1)
    assert torch.equal(tiled, tiled_head)
    with pytest.raises(ValueError, match=r"num_steps=-1; expected an integer >= 0"):
        m.decode(z, num_steps=-1)
    headless = build_autoencoder(apply_overrides(tiny_cfg.model, ["decoder.prior_head=false"]))
    with pytest.raises(
        ValueError,
        match=r"num_steps=0 decodes with the prior head alone; this "
        r"model has none \(model.decoder.prior_head=false\)",
    ):
        headless.decode(z, num_steps=0)


@pytest.mark.parametrize("kind", ["dgae", "baseline"])
def test_save_load_gives_bit_identical_decodes(tiny_cfg, images, tmp_path, kind):
    m = build_autoencoder(apply_overrides(tiny_cfg.model, [f"kind={kind}"]))
    m.latent_stats.set_from(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 3.0]))
    m.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = Autoencoder.from_pretrained(tmp_path / "m")
    assert loaded.config == m.config
    assert torch.equal(loaded.latent_stats.std, torch.tensor([2.0, 3.0]))
    m.eval()
    with torch.no_grad():
        for mod in (m, loaded):
            mod.out = mod.reconstruct(
                images, num_steps=2, generator=torch.Generator().manual_seed(3)
            )
    assert torch.equal(m.out, loaded.out)


def test_loading_refuses_pickle_and_mismatches(tiny_cfg, tmp_path, model):
    folder = tmp_path / "pickled"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "model.pt")
    with pytest.raises(FileNotFoundError, match="pickle execution"):
        Autoencoder.from_pretrained(folder)
    model.save_pretrained(tmp_path / "ok")
    meta = json.loads((tmp_path / "ok" / "config.json").read_text())
    meta["model"]["decoder"]["base_channels"] += 8
    (tmp_path / "ok" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        Autoencoder.from_pretrained(tmp_path / "ok")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Autoencoder.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.zeros(2, 16, 16), r"expected shape \(B, 3, H, W\)"),
        (torch.zeros(2, 1, 16, 16), r"expected shape \(B, 3, H, W\)"),
        (torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "dtype torch.uint8"),
        (torch.full((2, 3, 16, 16), 200.0), r"values span \[200, 200\]; expected \[-1, 1\]"),
        (torch.zeros(2, 3, 18, 16), "18x16 is not divisible by the downsampling factor 4"),
    ],
)
def test_bad_images_are_named(model, x, message):
    with pytest.raises((ValueError, TypeError), match=message):
        model.encode(x)


def test_bad_latents_and_steps_are_named(model):
    with pytest.raises(
        ValueError, match=r"expected a latent of shape \(B, 2, h, w\), got \(1, 5, 4, 4\)"
    ):
        model.decode(torch.zeros(1, 5, 4, 4))
    for bad in (-2, 1.5):  # 0 is the head alone
        with pytest.raises(ValueError, match=f"num_steps={bad}"):
            model.decode(torch.zeros(1, 2, 4, 4), num_steps=bad)


@pytest.mark.parametrize("kind", ["dgae", "baseline"])
def test_tiny_model_overfits_one_batch(tiny_cfg, images, kind):
    torch.manual_seed(0)
    cfg = apply_overrides(tiny_cfg, [f"model.kind={kind}"])
    m = build_autoencoder(cfg.model)
    objective = build_objective(cfg.loss, kind)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)

    def fixed_loss() -> float:
        with torch.no_grad():
            return objective(m, images, torch.Generator().manual_seed(12345))["loss"].item()

    before = fixed_loss()
    for step in range(120):
        loss = objective(m, images, torch.Generator().manual_seed(step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fixed_loss() < before / 8


def test_prior_head_decodes_head_plus_residual_and_trains_like_the_baseline(tiny_cfg, images):
    from dgae.losses import DGAEObjective
    from dgae.losses.perceptual import tiny_random_lpips

    cfg = apply_overrides(tiny_cfg, ["model.decoder.prior_head=true"])
    model = build_autoencoder(cfg.model).eval()
    z = model.encode(images).mode()
    head = model.decoder.prior(z)
    assert head.shape == images.shape
    # the U-Net's output layer starts at zero: x0-prediction of a zero residual at any NFE
    # returns exactly the head's one-pass image
    for nfe in (1, 3):
        assert torch.allclose(model.decode(z, num_steps=nfe), head.clamp(-1, 1), atol=1e-6)
    lp = tiny_random_lpips()
    objective = DGAEObjective(cfg.loss, lp)
    out = objective(model, images, torch.Generator().manual_seed(0))
    posterior = model.encode(images)
    rec = model.decoder.prior(posterior.sample(torch.Generator().manual_seed(0)))
    expected = (rec - images).abs().mean() + cfg.loss.perceptual_weight * lp(images, rec).mean()
    assert torch.allclose(out["head"], expected, atol=1e-6)
    assert torch.allclose(out["loss"], out["diffusion"] + out["perceptual"] * cfg.loss.perceptual_weight
                          + cfg.loss.kl_weight * out["kl"] + out["head"])  # fmt: skip


@pytest.mark.parametrize("kind", choices(DecoderKind))
def test_every_decoder_kind_meets_the_decoder_contract(kind):
    cfg = apply_overrides(get_preset("dgae-tiny").model, [f"kind={kind}"])
    model = build_autoencoder(cfg)
    assert isinstance(model.decoder, Decoder)
    assert model.is_diffusion == (kind == "dgae")
    z = torch.zeros(1, cfg.latent_channels, 2, 2)
    assert model.decode(z, num_steps=1).shape == (1, 3, 8, 8)
    for bad in (-1, 1.5, True):  # validated once, for both decoders
        with pytest.raises(ValueError, match=f"decode: num_steps={bad!r}; expected an integer"):
            model.decode(z, num_steps=bad)


def test_sliced_decoding_equals_one_pass(model):
    z = torch.randn(5, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    gens = lambda: generators_from_seeds(range(5))  # noqa: E731
    with torch.no_grad():
        whole = model.decode(z, num_steps=2, generator=gens())
        assert torch.allclose(model.decode(z, num_steps=2, generator=gens(), max_batch=2), whole,
                              atol=1e-5)  # fmt: skip
        one = lambda: torch.Generator().manual_seed(3)  # noqa: E731
        whole = model.decode(z, num_steps=2, generator=one())
        assert torch.allclose(model.decode(z, num_steps=2, generator=one(), max_batch=3), whole,
                              atol=1e-5)  # fmt: skip
        x = torch.rand(5, 3, 16, 16) * 2 - 1
        kw = dict(num_steps=1, sample_posterior=True)
        assert torch.allclose(model.reconstruct(x, generator=one(), max_batch=2, **kw),
                              model.reconstruct(x, generator=one(), **kw), atol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="decode: max_batch=0; expected an integer >= 1"):
        model.decode(z, max_batch=0)


@pytest.mark.parametrize("family", ["dgae", "dgae-trunk"])  # the U-Net default and the trunk
@pytest.mark.parametrize("size", ["tiny", "small", "S", "B"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_decode_is_finite_and_close_on_the_ladder(family, size, dtype):
    cfg = get_preset(f"{family}-{size}").model
    torch.manual_seed(0)
    model = build_autoencoder(cfg).eval()
    with torch.no_grad():  # random weights everywhere (zero-initialised layers included)
        for p in model.decoder.parameters():
            p.add_(0.02 * torch.randn_like(p))
    z = 3 * torch.randn(2, cfg.latent_channels, 2, 2)  # latents a few std out
    with torch.no_grad():
        ref = model.decode(z, num_steps=2, generator=generators_from_seeds([0, 1]))
        with torch.autocast("cpu", dtype=dtype):
            low = model.decode(z, num_steps=2, generator=generators_from_seeds([0, 1]))
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - ref).abs().mean() < 0.05, (low - ref).abs().mean()


def test_patchified_unet_decodes_every_size_and_refuses_what_cannot_fit():
    cfg = apply_overrides(get_preset("dgae-unet-tiny").model,
                          ["decoder.patch_size=2", "decoder.channel_mult=(2,)",
                           "decoder.attention_levels=(0,)"])  # fmt: skip
    model = build_autoencoder(cfg).eval()
    with torch.no_grad():
        model.decoder.unet.conv_out.weight.normal_(0, 0.1)
        out = model.decode(torch.randn(2, 2, 3, 5), num_steps=2)
    assert out.shape == (2, 3, 12, 20) and torch.isfinite(out).all()
    # a pixel shuffle of the prediction: neighbouring output pixels come from one U-Net site
    assert model.decoder.unet.conv_out.out_channels == 3 * 4
    with pytest.raises(ConfigError, match="patch_size=4 with 2 U-Net levels downsamples by 8"):
        apply_overrides(get_preset("dgae-unet-tiny").model, ["decoder.patch_size=4"]).validate()


def test_compiled_decode_equals_eager_decode():
    # the network evaluated at every NFE compiled (docs/benchmarks.md: 1.5x on CPU)
    torch.manual_seed(0)
    model = build_autoencoder(get_preset("dgae-tiny").model).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
        z = torch.randn(2, 2, 4, 4)
        eager = model.decode(z, num_steps=2, generator=generators_from_seeds([0, 1]))
        model.decoder.unet.compile()
        compiled = model.decode(z, num_steps=2, generator=generators_from_seeds([0, 1]))
    assert torch.allclose(compiled, eager, atol=1e-4)
