import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from PIL import Image

from dgae.cli.main import main
from dgae.config import get_preset
from dgae.data.loader import build_dataset
from dgae.evaluation.metrics import (
    feature_stats,
    frechet_distance,
    kernel_inception_distance,
    psnr,
    ssim,
)
from dgae.evaluation.models import DgaeModel
from dgae.evaluation.protocol import EvalSettings, evaluate, parse_steps
from dgae.losses.perceptual import tiny_random_lpips
from dgae.training.distributed import DistInfo

ONE = DistInfo(0, 1, 0, torch.device("cpu"))


def pooled_features(images):  # a cheap deterministic stand-in for Inception
    return F.adaptive_avg_pool2d(images.double(), 4).flatten(1)


def test_psnr_and_ssim_on_known_inputs():
    a = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    b = a + 10
    assert torch.isinf(psnr(a, a)).all()
    assert torch.allclose(
        psnr(a, b), torch.full((2,), 10 * np.log10(255**2 / 100), dtype=torch.float64)
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    # constant images: SSIM reduces to the luminance term (2 mx my + C1) / (mx^2 + my^2 + C1)
    c1 = (0.01 * 255) ** 2
    flat_a, flat_b = torch.full_like(x, 100), torch.full_like(x, 150)
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    assert torch.allclose(ssim(flat_a, flat_b), torch.full((2,), expected, dtype=torch.float64))


def test_frechet_distance_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 16, generator=g, dtype=torch.float64)
    b = (
        torch.randn(500, 16, generator=g, dtype=torch.float64)
        @ torch.randn(16, 16, generator=g, dtype=torch.float64)
        * 0.5
        + 0.3
    )
    mu1, s1 = feature_stats(a)
    mu2, s2 = feature_stats(b)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    ref = ((mu1 - mu2) ** 2).sum().item() + np.trace(s1.numpy() + s2.numpy() - 2 * covmean)
    assert abs(frechet_distance(mu1, s1, mu2, s2) - ref) < 1e-6 * max(1.0, ref)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-8
    assert np.allclose(s1.numpy(), np.cov(a.numpy(), rowvar=False))


def test_kid_is_zero_for_same_distribution_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 8, generator=g)
    b = torch.randn(400, 8, generator=g)
    same, _ = kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
    shifted, _ = kernel_inception_distance(a, b + 1.0, num_subsets=20, subset_size=200)
    assert abs(same) < 0.02 and shifted > 0.2


def test_parse_steps():
    assert parse_steps("1, 2,4,2") == (1, 2, 4)
    assert parse_steps("0,1") == (0, 1)  # 0: the prior head's image alone
    for bad in ("1,x", "-1", "1.5", ""):
        with pytest.raises(ValueError, match="is not an NFE"):
            parse_steps(bad)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from dgae import build_autoencoder

    torch.manual_seed(0)
    model = build_autoencoder(get_preset("dgae-tiny").model)
    with torch.no_grad():
        model.decoder.unet.conv_out.weight.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("m") / "model"
    model.save_pretrained(path)
    return path


def _eval(model_dir, batch_size, steps=(1, 2)):
    model = DgaeModel(model_dir, torch.device("cpu"))
    data = build_dataset("photos", 16, split="val")
    settings = EvalSettings(16, steps, num_images=10, batch_size=batch_size)
    return evaluate(
        model, data, "photos", settings, ONE, pooled_features, tiny_random_lpips(), False
    )


def test_protocol_is_deterministic_and_batch_size_free(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DGAE_HOME", str(tmp_path))  # fresh reference-feature cache
    first = _eval(tiny_model_dir, 7)
    again = _eval(tiny_model_dir, 7)
    single = _eval(tiny_model_dir, 1)
    keys = ["psnr", "ssim", "perceptual", "rfid", "kid"]
    for a, b, c in zip(first["results"], again["results"], single["results"], strict=True):
        assert all(a[k] == b[k] for k in keys)
        # another batch size changes the float reduction order inside convolutions, which can
        # flip a uint8 rounding of a pixel: equal to 5e-5 relative, far below reported digits
        assert all(abs(a[k] - c[k]) <= 5e-5 * max(1.0, abs(a[k])) for k in keys), (a, c)
    assert [r["nfe"] for r in first["results"]] == [1, 2]
    assert first["complete"] and "strongly biased" in first["warnings"][0]


def test_small_images_are_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(folder / "a.png")
    model = DgaeModel(tiny_model_dir, torch.device("cpu"))
    data = build_dataset(str(folder), 16, split="val")
    with pytest.raises(
        ValueError, match=r"smaller than the evaluation resolution 16, e\.g\. .*a\.png \(12x10\)"
    ):
        evaluate(
            model, data, str(folder), EvalSettings(16, (1,)), ONE, pooled_features, None, False
        )


def test_eval_cli_end_to_end(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "--model", str(tiny_model_dir), "--data", "photos", "--resolution", "16",
            "--num-images", "12", "--out", str(out), "--perceptual", "none", "--no-progress"]  # fmt: skip
    assert main(args + ["--steps", "0,1,2"]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["complete"] and [r["nfe"] for r in result["results"]] == [0, 1, 2]
    assert result["fid_network"] == "inception-2015-12-05"
    assert (out / "eval.md").exists() and (out / "quality_vs_nfe.png").exists()
    assert main(args + ["--steps", "x,2"]) == 2
    assert "'x' is not an NFE" in capsys.readouterr().err
    assert main(args[:2] + [str(tmp_path)] + args[3:] + ["--steps", "1"]) == 2
    assert "config.json is missing" in capsys.readouterr().err
    assert not (out / "eval.json").exists()  # the failed run removed the old result first
    too_small = [a if a != "none" else "st-lpips-alex" for a in args]  # AlexNet pools below 16 px
    assert main(too_small + ["--steps", "1"]) == 2
    assert "'ST-LPIPS-alex' cannot run at 16px" in capsys.readouterr().err


def test_eval_accepts_a_diffusers_autoencoder(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 8), layers_per_block=1, latent_channels=2, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )  # fmt: skip
    vae.save_pretrained(tmp_path / "vae")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tmp_path / "vae"), "--data", "photos", "--resolution", "16",
                 "--num-images", "8", "--out", str(out), "--steps", "1,4", "--perceptual", "none",
                 "--no-progress"]) == 0  # fmt: skip
    result = json.loads((out / "eval.json").read_text())
    assert result["model"].startswith("AutoencoderKL f2c2")
    assert [r["nfe"] for r in result["results"]] == [1]  # one-pass decoder: NFE list collapses


def test_two_process_eval_matches_one(tiny_model_dir, tmp_path):
    common = ["-m", "dgae", "eval", "--model", str(tiny_model_dir), "--data", "photos",
              "--resolution", "16", "--num-images", "10", "--steps", "1,2", "--perceptual", "none",
              "--no-progress", "--batch-size", "3"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, *common, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", *common,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "eval.json").read_text())["results"]
    b = json.loads((tmp_path / "two" / "eval.json").read_text())["results"]
    for ra, rb in zip(a, b, strict=True):
        for k in ("psnr", "ssim", "rfid", "kid"):
            assert abs(ra[k] - rb[k]) <= 5e-5 * max(1.0, abs(ra[k])), (k, ra[k], rb[k])


def test_bench_report_math_and_cli(tmp_path, capsys):
    from dgae.evaluation.bench import Timing, format_report

    dgae = {"encode": Timing(100.0, 1e10), "decode@2": Timing(50.0, 4e10)}
    base = {"encode": Timing(200.0), "decode": Timing(500.0), "decode (vs decode@2)": Timing(400.0)}
    table = format_report(dgae, base, peak=10.0)
    # ratio 100/200; 1e10 FLOP/img * 100 img/s = 1 TFLOP/s = 10 % of a 10 TFLOP/s peak
    assert "| encode | 100.0 | 200.0 | 0.500 | 1.0 | 10.0% |" in table
    assert "| decode@2 | 50.0 | 400.0 | 0.125 | 2.0 | 20.0% |" in table  # its interleaved baseline
    base["decode (vs peer)"] = Timing(480.0)
    table = format_report(dgae, base, peak=10.0, peer={"decode": Timing(240.0)})
    assert "| diffusers AutoencoderKL decode | 240.0 | 480.0 | 2.000 |" in table
    assert main(["bench", "--size", "tiny", "--steps", "1,2", "--repeats", "1", "--iters", "1",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    record = json.loads((tmp_path / "bench.json").read_text())
    assert set(record["results"]["dgae"]) == {"encode", "decode@1", "decode@2", "train_step"}
    assert record["results"]["peer"]["decode"]["images_per_s"] > 0  # diffusers' decoder ran
    assert "DGAE / baseline" in capsys.readouterr().out
    assert main(["bench", "--size", "tiny", "--steps", "1", "--repeats", "1", "--iters", "1",
                 "--channels-last", "--no-peer"]) == 0  # fmt: skip
    assert "channels-last" in capsys.readouterr().out


def test_reference_feature_cache_is_keyed_by_content(tmp_path, monkeypatch):
    # the same --data string for another folder, or edited files, must not reuse old features
    import os

    from dgae.data.loader import build_dataset
    from dgae.evaluation.protocol import EvalSettings, feature_cache_path

    def folder(name, colour):
        d = tmp_path / name / "val"
        d.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), (colour, i * 50, 0)).save(d / f"{i}.png")
        return d

    settings = EvalSettings(16)
    a, b = folder("a", 10), folder("b", 200)
    monkeypatch.chdir(a.parent)
    key_a = feature_cache_path(build_dataset("val", 16, "val"), settings, 3, "net")
    monkeypatch.chdir(b.parent)
    key_b = feature_cache_path(build_dataset("val", 16, "val"), settings, 3, "net")
    assert key_a != key_b
    Image.new("RGB", (20, 20), (1, 2, 3)).save(b / "1.png")
    os.utime(b / "1.png", ns=(1, 1))
    assert feature_cache_path(build_dataset("val", 16, "val"), settings, 3, "net") != key_b
    tiles = build_dataset("photos", 32, "val")
    assert feature_cache_path(tiles, settings, 8, "net") != feature_cache_path(
        tiles, settings, 9, "net"
    )


def test_decoder_profile_covers_the_whole_decode():
    import importlib.util
    from pathlib import Path

    from torch.utils.flop_counter import FlopCounterMode

    from dgae import build_autoencoder, get_preset

    path = Path(__file__).parents[1] / "benchmarks" / "profile_decoder.py"
    spec = importlib.util.spec_from_file_location("profile_decoder", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for family, stage in (("dgae", "| mid | 8x8 |"), ("dgae-trunk", "| blocks | 8x8 |")):
        table = mod.profile(f"{family}-tiny", 16, 2, 1, "cpu")
        assert "| head | 16x16 |" in table and stage in table, table
        total = float(table.splitlines()[-1].split("|")[3])  # GFLOP/img of the stages together
        torch.manual_seed(0)
        model = build_autoencoder(get_preset(f"{family}-tiny").model).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.decode(torch.zeros(1, 2, 4, 4), num_steps=1)
        # the stages hold every FLOP of a decode but the time embedding's few
        assert abs(total - counter.get_total_flops() / 1e9) <= 0.02 * total + 1e-3
