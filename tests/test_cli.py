"""Every CLI command end to end in a temp folder (in-process, tiny model)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from dgae.cli.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--preset", "dgae-tiny", "--data", "photos", "--out", str(out),
                 "--no-progress", "train.total_steps=4", "train.stats_images=8"]) == 0  # fmt: skip
    return out


def _image(path, h, w, mode="RGB"):
    arr = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def test_train_dry_run_prints_resolved_config(capsys, tmp_path):
    code = main(["train", "--preset", "baseline-small", "--out", str(tmp_path / "x"), "--dry-run",
                 "--resolution", "64", "model.latent_channels=8"])  # fmt: skip
    cfg = json.loads(capsys.readouterr().out)
    assert code == 0 and cfg["model"]["kind"] == "baseline"
    assert cfg["model"]["latent_channels"] == 8 and cfg["data"]["resolution"] == 64
    assert not (tmp_path / "x").exists()


def test_unknown_flags_and_keys_list_the_valid_ones(capsys, tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["train", "--preset", "dgae-tiny", "--out", str(tmp_path), "--bogus"])
    assert err.value.code == 2
    assert "valid options: --data, --device" in capsys.readouterr().err
    assert main(["train", "--preset", "dgae-tiny", "--out", str(tmp_path), "model.bogus=1"]) == 2
    message = capsys.readouterr().err
    assert "unknown override key 'model.bogus'" in message and "model.latent_channels" in message
    assert main(["train", "--preset", "nope", "--out", str(tmp_path)]) == 2
    assert "known presets" in capsys.readouterr().err


def test_train_writes_a_run(trained):
    for name in ["config.json", "metrics.jsonl", "model/config.json", "model/model.safetensors"]:
        assert (trained / name).exists(), name


def test_reconstruct_any_size(trained, tmp_path):
    odd = _image(tmp_path / "odd.png", 21, 30)
    grey = _image(tmp_path / "grey.png", 16, 16, "L")
    out = tmp_path / "rec"
    args = [
        "reconstruct",
        "--model",
        str(trained / "model"),
        str(odd),
        str(grey),
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    assert main(args + ["--seed", "3"]) == 0
    assert Image.open(out / "odd.png").size == (30, 21)
    assert Image.open(out / "odd_compare.png").size == (64, 21)
    first = np.asarray(Image.open(out / "odd.png"))
    assert main(args + ["--seed", "3"]) == 0
    assert np.array_equal(first, np.asarray(Image.open(out / "odd.png")))  # --seed fixes the noise


def test_encode_decode_round_trip(trained, tmp_path):
    img = _image(tmp_path / "a.png", 20, 16)
    z = tmp_path / "z.safetensors"
    assert main(["encode", "--model", str(trained / "model"), str(img), "--out", str(z)]) == 0
    with safe_open(str(z), "pt") as fh:
        assert fh.get_tensor("000000").shape == (2, 5, 4)
        assert json.loads(fh.metadata()["images"])[0]["height"] == 20
    out = tmp_path / "dec"
    assert (
        main(
            ["decode", "--model", str(trained / "model"), str(z), "--steps", "1", "--out", str(out)]
        )
        == 0
    )
    assert Image.open(out / "a.png").size == (16, 20)


def test_export_and_prepare_data(trained, tmp_path, capsys):
    assert main(["export", "--run", str(trained), "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "model.safetensors").exists()
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        _image(src / f"{i}.png", 24, 20 + i)
    (src / "broken.png").write_text("x")
    assert (
        main(
            [
                "prepare-data",
                str(src),
                "--resolution",
                "16",
                "--out",
                str(tmp_path / "pack"),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "packed 3 images (1 unreadable" in capsys.readouterr().out
    from dgae.data.loader import build_dataset

    packed = build_dataset(str(tmp_path / "pack"), 16)
    assert len(packed) == 3 and packed[0][0].shape == (3, 16, 16)


def test_model_errors_are_clear(tmp_path, capsys):
    assert (
        main(["reconstruct", "--model", str(tmp_path / "none"), "x.png", "--out", str(tmp_path)])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    torch.save({}, tmp_path / "model.pt")
    assert main(["reconstruct", "--model", str(tmp_path), "x.png", "--out", str(tmp_path)]) == 2
    assert "pickle execution" in capsys.readouterr().err


def test_study_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["study", "--out", str(out), "--size", "tiny", "--cells", "dgae-head-f4c2",
            "--resolution", "32", "--train-steps", "2", "--batch-size", "2", "--nfe", "1",
            "--eval-images", "3", "train.stats_images=4"]  # fmt: skip
    assert main(args) == 0
    assert "| dgae-head | 4 | 2 | 128 |" in (out / "report.md").read_text()
    assert main(["study", "--out", str(out), "--report-only"]) == 0
    assert main(["study", "--out", str(out), "--cells", "vq-f8c4"]) == 2
    assert "ARM-fFcC" in capsys.readouterr().err
