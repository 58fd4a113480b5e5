"""The trunk decoder: the head's features shared with a light per-step denoiser."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dgae import build_autoencoder
from dgae.baseline import OnePassDecoder
from dgae.config import ConfigError, apply_overrides, get_preset
from dgae.losses import DGAEObjective
from dgae.losses.perceptual import tiny_random_lpips
from dgae.random import generators_from_seeds
from dgae.trunk import TrunkDenoiser, TrunkHead

TRUNK = ["decoder.architecture=trunk", "decoder.patch_size=2", "decoder.attention_levels=()",
         "decoder.prior_head=true"]  # fmt: skip


def trunk_model(extra: tuple[str, ...] = ()):
    cfg = apply_overrides(get_preset("dgae-unet-tiny").model, [*TRUNK, *extra])
    cfg.validate()
    torch.manual_seed(0)
    model = build_autoencoder(cfg).eval()
    with torch.no_grad():  # the denoiser's output conv starts at zero; give it something to say
        model.decoder.unet.conv_out.weight.normal_(0, 0.1)
    return model


def test_context_is_the_prior_image_then_the_features_at_full_resolution():
    model = trunk_model()
    head = model.decoder.head
    assert isinstance(head, TrunkHead) and isinstance(model.decoder.unet, TrunkDenoiser)
    z = torch.randn(2, 2, 3, 5)
    with torch.no_grad():
        context = head(z)
        features = head.features(z)
    # tiny head: widths (8, 16, 16) over f4's three levels; the trunk stops at 1/2 (16 wide)
    # (the U-Net preset with the trunk switched on: a denoiser of width 8)
    assert features.shape == (2, 16, 6, 10)
    assert context.shape == (2, 3 + 16 // 4, 12, 20)
    assert torch.equal(context[:, :3], head.to_image(features))
    assert torch.equal(torch.nn.functional.pixel_unshuffle(context[:, 3:], 2), features)


def test_the_head_runs_once_per_decode_and_the_denoiser_once_per_step():
    model = trunk_model()
    calls = {"head": 0, "unet": 0}
    model.decoder.head.register_forward_hook(
        lambda *_: calls.__setitem__("head", calls["head"] + 1)
    )
    model.decoder.unet.register_forward_hook(
        lambda *_: calls.__setitem__("unet", calls["unet"] + 1)
    )
    with torch.no_grad():
        out = model.decode(torch.randn(2, 2, 4, 4), num_steps=3)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    assert calls == {"head": 1, "unet": 3}


def test_zero_denoiser_decodes_exactly_the_head_image():
    model = trunk_model()
    with torch.no_grad():
        model.decoder.unet.conv_out.weight.zero_()
        z = torch.randn(2, 2, 4, 4)
        for nfe in (1, 2):
            assert torch.allclose(model.decode(z, num_steps=nfe),
                                  model.decoder.prior(z).clamp(-1, 1), atol=1e-6)  # fmt: skip


def test_diffusion_loss_trains_the_shared_features_but_not_the_head_image(images):
    model = trunk_model().train()
    z = model.encode(images).mode().detach()
    (loss, _, _), _ = model.decoder.denoising_loss(images, z, torch.Generator().manual_seed(0))
    loss.backward()
    head = model.decoder.head
    # the residual target is relative to the detached head image: its output conv gets nothing
    assert head.conv_out.weight.grad is None or not head.conv_out.weight.grad.any()
    # the features the denoiser reads are trained by its loss (the point of sharing them)
    assert head.up[-1].conv2.weight.grad.abs().sum() > 0


def test_the_objective_scores_head_and_x0_in_one_perceptual_pass(images):
    model = trunk_model().train()
    lp = tiny_random_lpips()
    objective = DGAEObjective(get_preset("dgae-tiny").loss, lp)
    passes = []
    hook = lp.features[0].register_forward_hook(lambda m, args, out: passes.append(len(args[0])))
    out = objective(model, images, torch.Generator().manual_seed(0))
    hook.remove()
    assert passes == [3 * len(images)]  # x, x0_hat and the head image in one batch
    posterior = model.encode(images)
    rec = model.decoder.prior(posterior.sample(torch.Generator().manual_seed(0)))
    weight = get_preset("dgae-tiny").loss.perceptual_weight
    expected = (rec - images).abs().mean() + weight * lp(images, rec).mean()
    assert torch.allclose(out["head"], expected, atol=1e-6)


def test_trunk_decode_costs_fewer_flops_than_the_baseline_decoder():
    # the point of the architecture (issue 11): a 1-NFE decode of the small preset's trunk
    # costs less than the one-pass baseline decoder of the same preset; the U-Net costs 2.6x
    def flops(model):
        z = torch.randn(1, 2, 8, 8)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.decode(z, num_steps=1)
        return counter.get_total_flops()

    def model(preset):
        return build_autoencoder(get_preset(preset).model).eval()

    baseline = flops(model("baseline-small"))
    assert flops(model("dgae-trunk-small")) < 0.85 * baseline
    assert flops(model("dgae-small")) > 2 * baseline  # the default: the U-Net


def test_tiled_trunk_decode_agrees_with_the_untiled_decode():
    model = trunk_model()
    z = torch.randn(1, 2, 24, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model.decode(z, num_steps=2, generator=generators_from_seeds([0]))
        tiled = model.decoder.decode(z, num_steps=2, generator=generators_from_seeds([0]),
                                     tile=64, overlap=32)  # fmt: skip
    psnr = 10 * torch.log10(4 / (tiled - whole).pow(2).mean())
    assert psnr > 30, psnr


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["decoder.prior_head=false"], "architecture=trunk denoises on the prior head"),
        (["decoder.patch_size=3"], "patch_size=3; the trunk architecture needs a power of two"),
        (["decoder.patch_size=8"], "patch_size=8; the trunk architecture needs a power of two"),
        (["decoder.patch_size=4", "baseline_decoder.base_channels=6"],
         r"width at 1/4 resolution \(12\) must be a multiple of patch_size\*\*2=16"),
    ],
)  # fmt: skip
def test_bad_trunk_configs_are_named(overrides, message):
    cfg = apply_overrides(get_preset("dgae-unet-tiny").model, [*TRUNK, *overrides])
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_full_resolution_level_starts_as_the_head_image_and_trains():
    # ``full_res_channels``: the blocks wrapped in a narrow full-resolution level (study arm
    # dgae-trunk-full); its last conv starts at zero, so the decode is the head image, and the
    # level's stem receives gradients from the diffusion loss
    model = trunk_model(("decoder.full_res_channels=4",))
    full = model.decoder.unet.full
    assert full["stem"].out_channels == 4 and full["out"].out_channels == 3
    z = torch.randn(2, 2, 4, 4)
    with torch.no_grad():
        assert torch.allclose(model.decode(z, num_steps=2), model.decoder.prior(z).clamp(-1, 1),
                              atol=1e-6)  # fmt: skip
        full["out"].weight.normal_(0, 0.1)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    (loss, _, _), _ = model.train().decoder.denoising_loss(x, z, torch.Generator().manual_seed(0))
    loss.backward()
    assert full["stem"].weight.grad.abs().sum() > 0


def test_whole_head_shares_its_full_resolution_features_as_patches():
    # ``head_full_resolution``: the head is a whole one-pass decoder (its image is exactly
    # OnePassDecoder's with the same weights) and its last, full-resolution features reach the
    # denoiser, whose blocks still run on 2x2 patches; the patched head's width rule is moot
    model = trunk_model(("decoder.head_full_resolution=true",))
    head, z = model.decoder.head, torch.randn(2, 2, 3, 5)
    with torch.no_grad():
        context, features = head(z), head.features(z)
    assert features.shape == (2, 8, 12, 20)  # the tiny head's full-resolution width
    assert context.shape == (2, 3 + 8, 12, 20)
    assert torch.equal(context[:, :3], OnePassDecoder.forward(head, z))  # a whole decoder's image
    assert torch.equal(context[:, 3:], features)
    assert model.decoder.unet.conv_in.in_channels == (3 + 3 + 8) * 4
    with torch.no_grad():
        out = model.decode(torch.randn(2, 2, 4, 4), num_steps=2)
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
    cfg = apply_overrides(get_preset("dgae-unet-tiny").model,
                          [*TRUNK, "decoder.head_full_resolution=true", "decoder.patch_size=4",
                           "baseline_decoder.base_channels=6"])  # fmt: skip
    cfg.validate()  # width 12 at 1/4 is no longer pixel-shuffled: valid
