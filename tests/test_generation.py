import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import dgae.generation.cache as cache_mod
from dgae import build_autoencoder
from dgae.cli.main import main
from dgae.config import DiTConfig, LDMExperimentConfig, apply_overrides, get_preset
from dgae.generation.cache import LatentDataset, cache_latents
from dgae.generation.dit import DiT, apply_rope, rope_2d
from dgae.generation.ldm import LatentDiffusion, generate_images
from dgae.training.distributed import DistInfo

ONE = DistInfo(0, 1, 0, torch.device("cpu"))


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize("rope", [True, False])
def test_adaln_zero_blocks_are_identity_at_init(rope):
    dit = DiT(DiTConfig(depth=2, hidden=32, heads=2, rope=rope), 4, 8, 10)
    x, t, y = torch.randn(3, 4, 8, 8), torch.rand(3), torch.tensor([0, 5, 10])
    tokens, c = torch.randn(3, 16, 32), torch.randn(3, 32)
    table = rope_2d(4, 4, 16, torch.device("cpu")) if rope else None
    for block in dit.blocks:
        assert torch.equal(block(tokens, c, table), tokens)
    assert torch.equal(dit(x, t, y), torch.zeros_like(x))  # the final layer is zero too


def test_guidance_scale_one_is_the_conditional_model_and_interval_applies():
    dit = DiT(DiTConfig(depth=2, hidden=32, heads=2), 4, 8, 10)
    _randomise(dit)
    x, y = torch.randn(4, 4, 8, 8), torch.tensor([1, 2, 3, 4])
    t = torch.tensor([0.1, 0.4, 0.6, 0.9])
    cond = dit(x, t, y)
    assert torch.allclose(dit.forward_with_guidance(x, t, y, 1.0), cond, atol=1e-6)
    guided = dit.forward_with_guidance(x, t, y, 3.0, interval=(0.3, 0.7))
    outside = torch.tensor([True, False, False, True])
    assert torch.allclose(guided[outside], cond[outside], atol=1e-6)
    assert not torch.allclose(guided[~outside], cond[~outside], atol=1e-3)


def test_rope_is_a_rotation():
    cos, sin = rope_2d(3, 3, 8, torch.device("cpu"))
    q = torch.randn(2, 1, 9, 8)
    assert torch.allclose(apply_rope(q, cos, sin).norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    assert torch.allclose(apply_rope(q, cos, sin)[:, :, 0], q[:, :, 0])  # position (0, 0): no turn


@pytest.fixture(scope="module")
def ae_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = build_autoencoder(get_preset("dgae-tiny").model)
    with torch.no_grad():  # the zero-initialised output would decode every latent to grey
        model.decoder.unet.conv_out.weight.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("ae") / "model"
    model.save_pretrained(path)
    return path


def test_resumed_cache_is_identical(ae_dir, tmp_path, monkeypatch):
    args = dict(spec="photos", resolution=16, dist=ONE, sample=True, flip=True, shard_size=8,
                num_items=20, progress=False)  # fmt: skip
    cache_latents(ae_dir, out=tmp_path / "straight", **args)
    real, calls = cache_mod.save_file, {"n": 0}

    def crash_on_second(tensors, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(tensors, path)

    monkeypatch.setattr(cache_mod, "save_file", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        cache_latents(ae_dir, out=tmp_path / "resumed", **args)
    with pytest.raises(ValueError, match="incomplete"):
        LatentDataset(tmp_path / "resumed")
    monkeypatch.setattr(cache_mod, "save_file", real)
    meta = cache_latents(ae_dir, out=tmp_path / "resumed", **args)
    assert meta["complete"] and meta["num_shards"] == 3

    for i in range(3):
        a = load_file(str(tmp_path / "straight" / f"shard_{i:05d}.safetensors"))
        b = load_file(str(tmp_path / "resumed" / f"shard_{i:05d}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    data = LatentDataset(tmp_path / "straight")
    both = torch.cat(data.views)
    assert torch.allclose(both.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(both.std(dim=(0, 2, 3)), torch.ones(2), atol=1e-3)
    with pytest.raises(ValueError, match="other settings"):
        cache_latents(ae_dir, out=tmp_path / "straight", **{**args, "sample": False})


def test_cache_train_sample_end_to_end(ae_dir, tmp_path):
    cache, run, samples = tmp_path / "cache", tmp_path / "run", tmp_path / "samples"
    assert main(["cache-latents", "--model", str(ae_dir), "--data", "photos", "--resolution", "16",
                 "--num-images", "32", "--out", str(cache)]) == 0  # fmt: skip
    assert main(["ldm-train", "--latents", str(cache), "--preset", "dit-tiny", "--out", str(run),
                 "--no-progress", "train.total_steps=4", "train.batch_size=8",
                 "train.sample_every=2"]) == 0  # fmt: skip
    assert (run / "model" / "model.safetensors").exists() and (run / "samples").is_dir()
    record = json.loads((run / "model" / "config.json").read_text())
    assert record["autoencoder"]["path"] == str(ae_dir.resolve())
    assert main(["ldm-sample", "--ldm", str(run / "model"), "--num", "6", "--sampling-steps", "3",
                 "--cfg", "2.0", "--out", str(samples), "--fid-data", "photos"]) == 0  # fmt: skip
    npz = np.load(samples / "samples.npz")
    assert npz["images"].shape == (6, 16, 16, 3) and npz["images"].dtype == np.uint8
    assert json.loads((samples / "scores.json").read_text())["num_samples"] == 6


def _tiny_ldm(ae_dir):
    cfg = get_preset("dit-tiny", LDMExperimentConfig)
    cfg = apply_overrides(cfg, ["dit.depth=1", "dit.hidden=32", "dit.heads=2"])
    from dgae.generation.cache import fingerprint

    record = {"path": str(ae_dir), "fingerprint": fingerprint(ae_dir)}
    ldm = LatentDiffusion(cfg, [2, 4, 4], 3, record, {"mean": [0.0, 0.0], "std": [1.0, 1.0]})
    _randomise(ldm.dit)
    return ldm


def test_sampling_is_deterministic_per_seed_regardless_of_batch(ae_dir):
    ldm = _tiny_ldm(ae_dir)
    ae = ldm.load_autoencoder()
    a = generate_images(ldm, ae, 5, num_steps=3, cfg_scale=2.0, seed=1, batch_size=5, ae_steps=1)
    b = generate_images(ldm, ae, 5, num_steps=3, cfg_scale=2.0, seed=1, batch_size=2, ae_steps=1)
    c = generate_images(ldm, ae, 1, num_steps=3, cfg_scale=2.0, seed=1, start=3, ae_steps=1)
    assert (a.int() - b.int()).abs().max() <= 1 and (a[3:4].int() - c.int()).abs().max() <= 1
    assert not torch.equal(a[0], a[1])


def test_bad_inputs_name_both_sides(ae_dir, tmp_path):
    ldm = _tiny_ldm(ae_dir)
    with pytest.raises(ValueError, match=r"class label 3 is out of range \[0, 3\)"):
        ldm.sample_latents(torch.tensor([0, 3]), 2, 1.0, None)
    other = tmp_path / "other"
    torch.manual_seed(1)
    build_autoencoder(get_preset("dgae-tiny").model).save_pretrained(other)
    with pytest.raises(ValueError, match="is not the one these latents came from"):
        ldm.load_autoencoder(other)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "meta.json").write_text(
        json.dumps({"format": "dgae-latent-cache", "version": 1, "complete": True})
    )
    with pytest.raises(ValueError, match="no statistics"):
        LatentDataset(tmp_path / "c")


def test_training_on_other_latents_is_refused(ae_dir, tmp_path):
    args = dict(spec="photos", resolution=16, dist=ONE, shard_size=16, num_items=16, progress=False)
    cache_latents(ae_dir, out=tmp_path / "a", **args)
    cache_latents(ae_dir, out=tmp_path / "b", **{**args, "resolution": 32})
    from dgae.generation.train import train_ldm

    cfg = apply_overrides(get_preset("dit-tiny", LDMExperimentConfig),
                          ["train.total_steps=1", "train.batch_size=4", "dit.depth=1"])  # fmt: skip
    train_ldm(cfg, tmp_path / "a", tmp_path / "run", ONE, progress=False)
    with pytest.raises(
        ValueError, match=r"latent_shape=\[2, 4, 4\], but these have latent_shape=\[2, 8, 8\]"
    ):
        train_ldm(cfg, tmp_path / "b", tmp_path / "run", ONE, progress=False)
    # the same latents normalised with other statistics (a rebuilt cache): the exported DiT
    # would denormalise with numbers it was not trained on
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    meta["stats"]["std"] = [2 * s for s in meta["stats"]["std"]]
    (tmp_path / "a" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="was trained on latents with stats="):
        train_ldm(cfg, tmp_path / "a", tmp_path / "run", ONE, progress=False)


def test_dit_denormalises_with_the_statistics_it_was_trained_on(ae_dir, tmp_path):
    args = dict(spec="photos", resolution=16, dist=ONE, shard_size=16, num_items=16, progress=False)
    meta = cache_latents(ae_dir, out=tmp_path / "cache", **args)
    data = LatentDataset(tmp_path / "cache")
    raw = load_file(str(tmp_path / "cache" / "shard_00000.safetensors"))["latents"]
    ldm = LatentDiffusion(get_preset("dit-tiny", LDMExperimentConfig), meta["latent_shape"], 1,
                          meta["autoencoder"], meta["stats"])  # fmt: skip
    assert torch.allclose(ldm.denormalize(torch.stack([data[i][0] for i in range(16)])), raw,
                          atol=1e-5)  # fmt: skip
    assert not any("latent_stats" in k for k in ldm.state_dict())  # kept in config.json only
    ldm.save_pretrained(tmp_path / "dit")
    again = LatentDiffusion.from_pretrained(tmp_path / "dit")
    assert again.latent_stats.to_dict() == meta["stats"]


def test_ldm_experiment_cli_end_to_end(tmp_path):
    out = tmp_path / "exp"
    assert main(["ldm-experiment", "--data", "photos", "--resolution", "16", "--size", "tiny",
                 "--out", str(out), "--ae-train-steps", "2", "--dit-train-steps", "2", "--eval-every", "1",
                 "--fid-samples", "4", "--ref-images", "8", "--cache-images", "32"]) == 0  # fmt: skip
    report = (out / "report.md").read_text()
    assert "| dgae-unet-c2 | 2 |" in report and "| baseline-c4 | 1 |" in report
    assert (out / "fid_vs_steps.png").exists() and (out / "samples-dgae-unet-c2.png").exists()
    floor = json.loads((out / "ae-dgae-unet-c2" / "recon_fid.json").read_text())
    assert floor["num"] == 4 and f"| {floor['gfid']:.2f} |" in report  # the decoder's floor


def test_two_process_cache_equals_one(ae_dir, tmp_path):
    import os
    import subprocess
    import sys

    common = ["-m", "dgae", "cache-latents", "--model", str(ae_dir), "--data", "photos",
              "--resolution", "16", "--num-images", "20", "--shard-size", "6", "--sample"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for out, launcher in (
        ("one", []),
        ("two", ["-m", "torch.distributed.run", "--nproc_per_node=2"]),
    ):
        cmd = [sys.executable, *launcher, *common, "--out", str(tmp_path / out)]
        if launcher:
            cmd = [
                sys.executable,
                *launcher,
                "-m",
                "dgae",
                *common[2:],
                "--out",
                str(tmp_path / out),
            ]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-2000:]

    for i in range(4):
        a = load_file(str(tmp_path / "one" / f"shard_{i:05d}.safetensors"))
        b = load_file(str(tmp_path / "two" / f"shard_{i:05d}.safetensors"))
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    one = json.loads((tmp_path / "one" / "meta.json").read_text())["stats"]
    two = json.loads((tmp_path / "two" / "meta.json").read_text())["stats"]
    assert one == two


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_dit_uses_the_configured_prediction_and_sampler(ae_dir, prediction):
    # the DiT shares the decoder's loss and samplers: a network that outputs the exact target
    # of the configured kind has zero loss, and sampling calls it as the configured sampler says
    from dgae.diffusion import from_x0_eps, network_evaluations
    from dgae.generation.ldm import DiTLoss

    ldm = _tiny_ldm(ae_dir)
    ldm.cfg = apply_overrides(ldm.cfg, [f"diffusion.prediction={prediction}",
                                        "diffusion.sampler=heun", "dit.class_dropout=0"])  # fmt: skip
    z = torch.randn(3, 2, 4, 4)

    class Exact(torch.nn.Module):
        calls = 0

        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(1))  # sampling reads the device here

        def forward(self, z_t, t, y):
            Exact.calls += 1
            x0 = z if z_t.shape[0] == 3 else torch.zeros_like(z_t)
            eps = (z_t - (1 - t)[:, None, None, None] * x0) / t[:, None, None, None]
            return from_x0_eps(x0, eps, prediction, t, ldm.path)

    ldm.dit = Exact()
    loss = DiTLoss(ldm)(z, torch.tensor([0, 1, 2]), torch.Generator().manual_seed(0))["loss"]
    assert loss.item() < 1e-10
    Exact.calls = 0
    ldm.sample_latents(torch.tensor([0]), num_steps=3, cfg_scale=1.0, generator=None)
    assert Exact.calls == network_evaluations("heun", 3) == 5
