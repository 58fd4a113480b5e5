"""Every CLI command end to end in a temp folder (in-process, tiny model)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from dgae import Autoencoder
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
    assert main(args + ["--seed", "3"]) == 2  # existing outputs are kept...
    assert main(args + ["--seed", "3", "--overwrite"]) == 0  # ...unless asked
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


def _hashes(folder):
    import hashlib

    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_outputs_never_overwrite_inputs_or_leave_out(trained, tmp_path, capsys):
    model = str(trained / "model")
    work = tmp_path / "work"
    work.mkdir()
    photo = _image(work / "photo.png", 16, 16)
    other = _image(work / "x.png", 16, 16)
    clash = _image(work / "x_compare.png", 16, 16)
    before = _hashes(work)
    for args, why in (
        (["reconstruct", "--model", model, str(photo), "--out", str(work), "--overwrite"],
         "refusing to overwrite"),
        (["reconstruct", "--model", model, str(other), str(clash), "--out", str(work)],
         "refusing to overwrite"),
        (["encode", "--model", model, str(photo), "--out", str(photo)], "refusing to overwrite"),
        (["encode", "--model", model, str(photo), "--out", str(work / "z.png")],
         "expected a .safetensors"),
    ):  # fmt: skip
        assert main(args) == 2, args
        assert why in capsys.readouterr().err
    assert _hashes(work) == before  # nothing was written or changed
    z = tmp_path / "z.safetensors"
    assert main(["encode", "--model", model, str(photo), "--out", str(z)]) == 0
    assert main(["decode", "--model", model, str(z), "--out", str(work)]) == 2  # photo.png exists
    assert _hashes(work) == before


def test_decode_confines_names_and_refuses_non_finite_latents(trained, tmp_path, capsys):
    from safetensors.torch import save_file

    model = str(trained / "model")
    names = ["../../escape", "/abs/evil", "..", "ok"]
    entries = [
        {"key": f"{i:06d}", "name": n, "height": 16, "width": 16} for i, n in enumerate(names)
    ]
    tensors = {e["key"]: torch.zeros(2, 4, 4) for e in entries}
    shared = tmp_path / "shared.safetensors"
    save_file(tensors, str(shared), metadata={"images": json.dumps(entries)})
    out = tmp_path / "deep" / "out"
    assert main(["decode", "--model", model, str(shared), "--out", str(out), "--steps", "1"]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    assert len(written) == 4 and all(w.startswith("deep/out/") for w in written), written
    tensors["000003"][0, 0, 0] = float("nan")
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"images": json.dumps(entries)})
    assert main(["decode", "--model", model, str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "'000003' (ok) holds NaN" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="NaN or Inf"):
        Autoencoder.from_pretrained(trained / "model").decode(
            torch.full((1, 2, 4, 4), float("inf"))
        )


def test_large_images_run_in_bounded_memory_or_fail_before_work(trained, tmp_path, capsys,
                                                                  monkeypatch):  # fmt: skip
    import subprocess
    import sys

    import dgae.cli.common as common

    big = _image(tmp_path / "big.png", 256, 256)
    args = ["reconstruct", "--model", str(trained / "model"), str(big), "--steps", "1"]
    # in a fresh process: full attention over the 128x128 U-Net level would need 1 GiB for the
    # scores and as much for their softmax (> 2.3 GiB in all, measured); the memory-efficient
    # kernel keeps the whole process (torch itself included) under 1.6 GiB
    code = ("import resource, sys; from dgae.cli.main import main; "
            f"assert main({[*args, '--out', str(tmp_path / 'out')]!r}) == 0; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert int(res.stdout.split()[-1]) * 1024 < 1.6 * 2**30, res.stdout
    monkeypatch.setattr(common, "available_bytes", lambda device: 2**20)  # 1 MiB free
    assert main([*args, "--out", str(tmp_path / "none")]) == 2
    assert "needs about" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_bad_files_and_values_are_clear_errors(trained, tmp_path, capsys):
    import shutil

    model = trained / "model"
    img = _image(tmp_path / "a.png", 16, 16)

    def broken(name, edit):
        folder = tmp_path / name
        shutil.copytree(model, folder)
        edit(folder)
        return str(folder)

    cfg = json.loads((model / "config.json").read_text())
    cases = {
        "truncated weights": (broken("trunc", lambda d: (d / "model.safetensors").write_bytes(
            (d / "model.safetensors").read_bytes()[:100])), "damaged, truncated"),
        "empty weights": (broken("empty", lambda d: (d / "model.safetensors").write_bytes(b"")),
                          "damaged, truncated"),
        "config is a list": (broken("list", lambda d: (d / "config.json").write_text("[1]")),
                             "expected a JSON object"),
        "null section": (broken("null", lambda d: (d / "config.json").write_text(json.dumps(
            {**cfg, "model": {**cfg["model"], "encoder": None}}))), "expected an object"),
        "zero std": (broken("std", lambda d: (d / "config.json").write_text(json.dumps(
            {**cfg, "latent_stats": {"mean": [0, 0], "std": [0, 1]}}))), "positive finite stds"),
        "model is a file": (str(model / "config.json"), "is a file; expected a model folder"),
    }  # fmt: skip
    for what, (path, message) in cases.items():
        out = tmp_path / "out" / what.replace(" ", "_")
        assert main(["reconstruct", "--model", path, str(img), "--out", str(out)]) == 2, what
        assert message in capsys.readouterr().err, what
    z = tmp_path / "z.safetensors"
    for content, message in ((b"", "not a readable safetensors"), (b"\x00" * 40, "not a readable")):
        z.write_bytes(content)
        assert main(["decode", "--model", str(model), str(z), "--out", str(tmp_path / "d")]) == 2
        assert message in capsys.readouterr().err
    args = ["reconstruct", "--model", str(model), str(img), "--out", str(tmp_path / "s")]
    assert main([*args, "--steps", "100000"]) == 2
    assert "expected a decoder NFE in [0, 1000]" in capsys.readouterr().err


def test_training_falls_back_past_a_truncated_checkpoint(tmp_path, capsys):
    from dgae.autoencoder_training import train_autoencoder
    from dgae.config import apply_overrides, get_preset
    from dgae.training.checkpoint import list_checkpoints

    cfg = apply_overrides(get_preset("dgae-tiny"), ["train.total_steps=4", "train.checkpoint_every=2",
                                                    "train.stats_images=4"])  # fmt: skip
    train_autoencoder(cfg, tmp_path, progress=False)
    first, last = list_checkpoints(tmp_path)
    last.write_bytes(last.read_bytes()[:1000])  # a crash while copying the run folder
    cfg = apply_overrides(cfg, ["train.total_steps=6"])
    assert train_autoencoder(cfg, tmp_path, progress=False).status == "done"
    assert f"checkpoint {last} is damaged" in capsys.readouterr().out


def test_version_and_help_texts(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("dgae ")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "dgae-small" in capsys.readouterr().out  # the presets are listed
    assert main(["weights", "nope"]) == 2
    assert "unknown weight(s) ['nope']" in capsys.readouterr().err


def test_every_option_has_help():
    from dgae.cli.main import build_parser

    _, commands = build_parser()
    missing = [f"{name} {a.option_strings or a.dest}" for name, cmd in commands.items()
               for a in cmd.options.values() if not a.help]  # fmt: skip
    assert not missing, missing
    assert len(commands) >= 14 and all("-h" in cmd.options for cmd in commands.values())


def _corpus(folder):
    """Odd and broken image files: sizes, modes, truncations, random bytes, wrong extensions."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    good = (rng.random((24, 30, 3)) * 255).astype(np.uint8)
    for mode in ("1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F"):
        Image.fromarray(good).convert(mode if mode not in ("I;16",) else "I").save(
            folder
            / f"mode_{mode.replace(';', '')}.{'tif' if mode in ('I;16', 'I', 'F', 'CMYK') else 'png'}"
        )
    for h, w in ((1, 1), (1, 40), (40, 2), (5, 3)):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(
            folder / f"size_{h}x{w}.png"
        )
    data = (folder / "mode_L.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    Image.fromarray(good).save(folder / "full.jpg", quality=90)
    jpg = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (folder / "random.png").write_bytes(rng.bytes(500))
    (folder / "random.jpg").write_bytes(b"\xff\xd8" + rng.bytes(300))
    (folder / "empty.webp").write_bytes(b"")
    (folder / "text.bmp").write_text("not an image")
    return sorted(folder.iterdir())  # fmt: skip


def test_fuzz_corpus_gives_clear_errors_or_counted_skips_and_changes_no_input(trained, tmp_path,
                                                                              capsys):  # fmt: skip
    corpus = _corpus(tmp_path / "corpus")
    before = _hashes(tmp_path / "corpus")
    model = str(trained / "model")
    for k, path in enumerate(corpus):  # each file alone: a result or a clear error, never a crash
        code = main(["reconstruct", "--model", model, str(path), "--steps", "1",
                     "--out", str(tmp_path / "rec" / str(k))])  # fmt: skip
        err = capsys.readouterr().err
        assert code in (0, 2), path
        assert code == 0 or ("error:" in err and str(path.name) in err), (path, err)
    run = tmp_path / "run"
    assert main(["train", "--preset", "dgae-tiny", "--data", str(tmp_path / "corpus"), "--out",
                 str(run), "--no-progress", "train.total_steps=3", "train.stats_images=4"]) == 0  # fmt: skip
    skipped = {Path(p).name for p in (run / "skipped_images.txt").read_text().splitlines()}
    assert {"truncated.png", "truncated.jpg", "random.png", "empty.webp", "text.bmp"} <= skipped
    assert _hashes(tmp_path / "corpus") == before  # no input file changed
