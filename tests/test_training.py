import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import dgae.autoencoder_training as run_mod
from dgae import Autoencoder
from dgae.autoencoder_training import compute_latent_stats, train_autoencoder
from dgae.config import apply_overrides, get_preset, to_dict
from dgae.data.loader import build_dataset
from dgae.data.transforms import to_model_range
from dgae.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from dgae.training.loop import NonFiniteLossError
from dgae.training.reporting import read_metrics

TESTS = Path(__file__).parent
FAST = ["train.total_steps=8", "train.batch_size=4", "train.log_every=1", "train.stats_images=8"]


def cfg(*overrides):
    return apply_overrides(get_preset("dgae-tiny"), [*FAST, *overrides])


def losses(run_dir):
    return [r["loss"] for r in read_metrics(Path(run_dir) / "metrics.jsonl")]


def test_tiny_run_trains_and_exports(tmp_path):
    c = cfg("train.sample_every=4", "train.checkpoint_every=4", "train.keep_checkpoints=1")
    assert train_autoencoder(c, tmp_path, progress=False).status == "done"
    for name in ["config.json", "metrics.jsonl", "loss_curve.png", "samples/step_00000008.png"]:
        assert (tmp_path / name).exists(), name
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000008.pt"]  # keep-last-1
    model = Autoencoder.from_pretrained(tmp_path / "model")
    assert not torch.equal(model.latent_stats.std, torch.ones(2))  # statistics were computed
    # ... on the un-augmented training images (no flips or colour changes), not the augmented
    plain = build_dataset("photos", 16, "train", c.train.seed, augment=False)
    expected = compute_latent_stats(model, plain, c.train.stats_images, torch.device("cpu"))
    assert torch.allclose(model.latent_stats.mean, expected[0], atol=1e-6)
    assert torch.allclose(model.latent_stats.std, expected[1], atol=1e-6)
    x = torch.zeros(1, 3, 16, 16)
    assert model.reconstruct(x, num_steps=1).shape == x.shape
    assert len(losses(tmp_path)) == 8


@pytest.mark.parametrize(
    "extra", [[], ["model.decoder.dropout=0.1", "model.encoder.dropout=0.1"]], ids=["", "dropout"]
)
def test_kill_and_resume_equals_uninterrupted(tmp_path, monkeypatch, extra):
    c = cfg("train.sample_every=4", "train.checkpoint_every=100", *extra)
    train_autoencoder(c, tmp_path / "straight", progress=False)

    real = run_mod.build_autoencoder_task

    def killing_task(*args, **kw):
        task = real(*args, **kw)
        sample = task.on_sample

        def on_sample(model, step):
            sample(model, step)
            if step == 4:
                os.kill(os.getpid(), signal.SIGTERM)  # a real signal, caught by the loop

        task.on_sample = on_sample
        return task

    monkeypatch.setattr(run_mod, "build_autoencoder_task", killing_task)
    assert train_autoencoder(c, tmp_path / "resumed", progress=False).status == "interrupted"
    (ckpt,) = list_checkpoints(tmp_path / "resumed")  # saved at the end of the step in flight
    assert 4 <= load_checkpoint(ckpt)["step"] < 8
    monkeypatch.setattr(run_mod, "build_autoencoder_task", real)
    assert train_autoencoder(c, tmp_path / "resumed", progress=False).status == "done"
    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")
    a = load_checkpoint(latest_checkpoint(tmp_path / "straight"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "resumed"))
    for key in ("modules", "ema"):
        sa, sb = (a[key]["model"], b[key]["model"]) if key == "modules" else (a[key], b[key])
        assert all(torch.equal(sa[k], sb[k]) for k in sa), key


def test_sigterm_leaves_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "dgae", "train", "--preset", "dgae-tiny", "--data", "photos",
           "--out", str(out), "--no-progress", "train.total_steps=100000",
           "train.checkpoint_every=100000", "train.log_every=2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "interrupted: checkpoint saved" in output
    state = load_checkpoint(latest_checkpoint(out))
    assert state["step"] >= 2
    assert not list((out / "checkpoints").glob("*.tmp"))
    from dgae.autoencoder_training import export_run

    export_run(out, tmp_path / "exported")
    Autoencoder.from_pretrained(tmp_path / "exported")


def _worker(out, *overrides, nproc=1):
    import socket
    import warnings

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(3):
        # two retries, from an empty folder: now and then a two-process run aborts within
        # seconds of its start with only "terminate called without an active exception" from
        # one rank (gloo on this CPU VM; seen twice in a row in one full-suite run, and once in
        # about 15 runs of the test alone); a real divergence still fails the parameter
        # checks, and three failed runs fail here
        with socket.socket() as sock:  # a free port: the default 29500 may still be held by an
            sock.bind(("127.0.0.1", 0))  # earlier two-process test of the suite
            port = sock.getsockname()[1]
        base = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                f"--master_port={port}"]  # fmt: skip
        cmd = (base if nproc > 1 else [sys.executable]) + [
            str(TESTS / "dist_worker.py"),
            str(out),
            *overrides,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        log = res.stdout[-4000:] + res.stderr[-12000:]  # the ranks' output precedes torchrun's
        if res.returncode == 0:
            break
        warnings.warn(f"two-process worker attempt {attempt + 1} failed:\n{log}", stacklevel=2)
        print(log)  # shown by pytest when the test fails
        shutil.rmtree(out, ignore_errors=True)
    assert res.returncode == 0, log
    return torch.load(out / "params.pt"), json.loads((out / "ranks.json").read_text())


@pytest.mark.parametrize("extra", [[], ["train.fsdp=true"]], ids=["ddp", "fsdp2"])
def test_two_process_run_matches_single_process(tmp_path, extra):
    single, _ = _worker(tmp_path / "single")
    multi, ranks = _worker(tmp_path / "multi", *extra, nproc=2)
    assert ranks == {"world": 2, "max_rank_spread": 0.0}  # identical parameters on both ranks
    assert (multi - single).abs().max() < 1e-4


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    one, _ = _worker(tmp_path / "one")
    accum, _ = _worker(tmp_path / "accum", "train.grad_accum=2")
    assert (one - accum).abs().max() < 1e-4
    with pytest.raises(
        ValueError, match="batch_size=8 is not divisible by world size 1 x train.grad_accum=3"
    ):
        train_autoencoder(
            cfg("train.batch_size=8", "train.grad_accum=3"), tmp_path / "x", progress=False
        )


def test_nan_guard_skips_counts_and_stops(tmp_path, monkeypatch):
    real = run_mod.build_autoencoder_task

    def nan_after_two(*args, **kw):
        task = real(*args, **kw)
        compute = task.compute

        def poisoned(wrapped, batch, gens, step):
            out = compute(wrapped, batch, gens, step)
            if step >= 2:
                out["model"] = out["loss"] = out["model"] * float("nan")
            return out

        task.compute = poisoned
        return task

    monkeypatch.setattr(run_mod, "build_autoencoder_task", nan_after_two)
    c = cfg("train.checkpoint_every=2", "train.max_bad_steps=3", "train.keep_checkpoints=5")
    with pytest.raises(
        NonFiniteLossError, match="4 consecutive steps had a non-finite loss"
    ) as err:
        train_autoencoder(c, tmp_path, progress=False)
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 2 and str(latest_checkpoint(tmp_path)) in str(err.value)
    assert all(torch.isfinite(v).all() for v in state["modules"]["model"].values())
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[-1]["bad_steps"] >= 1 and rows[-1]["loss"] is None  # NaN is written as null
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    # before any checkpoint exists the message says so instead of naming a missing folder
    c = cfg("train.checkpoint_every=50", "train.max_bad_steps=3")
    with pytest.raises(NonFiniteLossError, match="No checkpoint had been written yet"):
        train_autoencoder(c, tmp_path / "early", progress=False)


def test_metrics_survive_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    assert read_metrics(path) == [{"step": 1, "loss": 0.5}]
    path.write_text('{"step": 1, "lo\n{"step": 2, "loss": 0.5}\n')
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        read_metrics(path)


def test_one_trainer_per_run_folder(tmp_path):
    from dgae.training.lock import RunFolderBusy, run_lock

    with run_lock(tmp_path):  # another live trainer holds the folder
        with pytest.raises(RunFolderBusy, match="in use by process"):
            train_autoencoder(cfg(), tmp_path, progress=False)
    assert not (tmp_path / "config.json").exists()  # the holder's record was not touched
    # a lock left by a process that died is free: the kernel released it with the process
    code = (f"from pathlib import Path; from dgae.training.lock import run_lock; "
            f"run_lock(Path({str(tmp_path)!r})).__enter__()")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
    assert train_autoencoder(cfg("train.total_steps=1"), tmp_path, progress=False).status == "done"


@pytest.mark.parametrize(
    "option",
    ["train.precision=bf16", "train.channels_last=true", "train.activation_checkpointing=true",
     "train.lr_schedule=cosine", "model.kind=baseline", "loss.gan_weight=0.5"],
)  # fmt: skip
def test_training_options_run(tmp_path, option):
    gan = ["model.kind=baseline", "loss.disc_layers=2", "loss.disc_channels=8"]
    extra = gan if option.startswith("loss.gan") else []
    c = cfg("train.total_steps=2", "train.sample_every=2", option, *extra)
    assert train_autoencoder(c, tmp_path, progress=False).status == "done"
    assert all(torch.isfinite(torch.tensor(v)) for v in losses(tmp_path))
    if option.startswith("loss.gan"):
        assert "loss/disc" in read_metrics(tmp_path / "metrics.jsonl")[-1]


def test_resume_with_another_model_is_refused(tmp_path):
    train_autoencoder(cfg("train.total_steps=1"), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"model\.latent_channels differ"):
        train_autoencoder(cfg("model.latent_channels=3"), tmp_path, progress=False)


def test_a_run_recorded_before_a_config_field_existed_still_resumes(tmp_path):
    # a config.json written by an older dgae lacks fields added since (here the decoder's
    # architecture, trunk width): they mean their defaults, so the same model is not "changed"
    from dgae.autoencoder_training import check_resume_config

    unet = get_preset("dgae-unet-tiny")
    record = to_dict(unet)
    for old_field in ("architecture", "full_res_channels"):
        del record["model"]["decoder"][old_field]
    (tmp_path / "config.json").write_text(json.dumps(record))
    check_resume_config(tmp_path, unet)  # no error
    with pytest.raises(ValueError, match=r"model\.decoder differ"):
        check_resume_config(tmp_path, get_preset("dgae-trunk-tiny"))


def test_unreadable_training_files_are_counted_and_listed(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "empty.jpg").write_bytes(b"")
    c = cfg(f"data.spec={folder}", "train.total_steps=6", "train.sample_every=3",
            "train.checkpoint_every=3")  # several epochs of 8 files, resumed once  # fmt: skip
    train_autoencoder(apply_overrides(c, ["train.total_steps=3"]), tmp_path / "run", progress=False)
    train_autoencoder(c, tmp_path / "run", progress=False)
    listed = (tmp_path / "run" / "skipped_images.txt").read_text().splitlines()
    assert sorted(Path(p).name for p in listed) == ["broken.png", "empty.jpg"]  # once each
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]["skipped_images"] == 2
    assert "skipping unreadable training image" in capsys.readouterr().out


def test_disk_full_while_checkpointing_is_clear_and_leaves_no_tmp(tmp_path, monkeypatch):
    import errno

    import dgae.training.checkpoint as ckpt

    def full(state, f):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full)
    with pytest.raises(OSError, match="could not write checkpoint .* No space left"):
        train_autoencoder(cfg("train.checkpoint_every=2"), tmp_path, progress=False)
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_resume_on_other_data_needs_force_and_keeps_the_record(tmp_path, capsys):
    from dgae.cli.main import main

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (20, 20), (60 * i, 0, 0)).save(folder / f"{i}.png")
    train_autoencoder(cfg("train.total_steps=2"), tmp_path / "run", progress=False)
    args = ["train", "--preset", "dgae-tiny", "--data", str(folder), "--out", str(tmp_path / "run"),
            "--no-progress", *FAST[1:], "train.total_steps=3"]  # fmt: skip
    assert main(args) == 2
    assert "was trained on --data 'photos'" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    kept = json.loads((tmp_path / "run" / "config.until_step_2.json").read_text())
    assert kept["data"]["spec"] == "photos"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["spec"] == str(folder)


def test_fsdp_units_are_the_blocks_of_the_decoder_and_of_the_dit():
    from dgae.config import DiTConfig
    from dgae.generation.dit import DiT, DiTBlock
    from dgae.nn import AttentionBlock, ResBlock
    from dgae.training.fsdp import shard_units

    dit = DiT(DiTConfig(depth=3, hidden=32, heads=2), 2, 4, 3)
    units = shard_units(dit)
    assert len(units) == 3 and all(isinstance(u, DiTBlock) for u in units)
    ae = Autoencoder(get_preset("dgae-tiny").model)
    blocks = [m for m in ae.modules() if isinstance(m, (ResBlock, AttentionBlock))]
    assert shard_units(ae) == blocks and len(blocks) > 5


def test_distilled_student_at_one_nfe_approaches_the_teachers_multistep_decode(tmp_path):
    from dgae.cli.main import main
    from dgae.random import generators_from_seeds

    torch.manual_seed(0)
    teacher = Autoencoder(get_preset("dgae-tiny").model)
    with torch.no_grad():  # an untrained but not silent decoder: 1 and 4 NFE differ
        for p in teacher.decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    teacher.save_pretrained(tmp_path / "teacher")
    run = tmp_path / "student"
    args = ["distill", "--teacher", str(tmp_path / "teacher"), "--out", str(run),
            "--teacher-steps", "4", "--train-steps", "60", "--resolution", "16", "--no-progress",
            "--lr", "5e-4", "train.batch_size=8", "train.warmup_steps=0", "train.ema_decay=0",
            "loss.perceptual_weight=0", "train.sample_every=60", "train.checkpoint_every=60",
            "train.stats_images=16"]  # fmt: skip
    assert main(args) == 0
    student = Autoencoder.from_pretrained(run / "model")
    assert student.config.diffusion.num_steps == 1
    assert torch.equal(student.latent_stats.mean, teacher.latent_stats.mean)
    for a, b in zip(student.encoder.parameters(), teacher.encoder.parameters(), strict=True):
        assert torch.equal(a, b)  # frozen: the latents stay the teacher's
    unseen = build_dataset("photos", 16, "train", seed=9)  # crops the student never saw
    x = to_model_range(torch.stack([unseen[10_000 + i][0] for i in range(16)]))
    gens = lambda: generators_from_seeds(range(16))  # noqa: E731
    with torch.no_grad():
        z = teacher.encode(x).mode()
        target = teacher.decode(z, num_steps=4, generator=gens())
        before = (teacher.decode(z, num_steps=1, generator=gens()) - target).pow(2).mean()
        after = (student.decode(z, num_steps=1, generator=gens()) - target).pow(2).mean()
    assert after < 0.5 * before, (after, before)
    # another teacher in the same run folder is refused
    (tmp_path / "other").mkdir()
    teacher.save_pretrained(tmp_path / "other" / "m")
    args[2] = str(tmp_path / "other" / "m")
    assert main(args) == 2
