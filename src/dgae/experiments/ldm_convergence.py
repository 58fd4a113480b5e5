"""The convergence experiment: does a compact DGAE latent make the latent DiT converge faster?

Trains two autoencoders with equal budgets (DGAE with c channels, the baseline with 2c), caches
their latents, trains the same DiT on each with equal budgets, and measures gFID/KID of samples
against the held-out split at regular steps; writes fid.jsonl per run, fid_vs_steps.png and
report.md. Each arm also reports the rFID/KID of its autoencoder's own reconstructions of as
many held-out images, against the same reference: the floor its decoder sets under the gFID.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from dgae.autoencoder import Autoencoder
from dgae.autoencoder_training import train_autoencoder
from dgae.config import LDMExperimentConfig, apply_overrides, get_preset
from dgae.data.loader import build_dataset
from dgae.data.transforms import to_model_range, to_uint8
from dgae.evaluation.inception import InceptionFeatures
from dgae.experiments.common import start_application
from dgae.generation.cache import cache_latents, fingerprint
from dgae.generation.gfid import generation_scores, reference_features
from dgae.generation.ldm import generate_images
from dgae.generation.train import train_ldm
from dgae.plotting import panels
from dgae.random import item_generators
from dgae.training.reporting import read_metrics, save_grid


def arms(size: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, preset, overrides): DGAE with its preset's c channels, the baseline with 2c. The
    DGAE name carries its decoder architecture, so a run of one is never resumed as another."""
    model = get_preset(f"dgae-{size}").model
    c, arch = model.latent_channels, model.decoder.architecture
    return [
        (f"dgae-{arch}-c{c}", f"dgae-{size}", ()),
        (f"baseline-c{2 * c}", f"baseline-{size}", (f"model.latent_channels={2 * c}",)),
    ]


@torch.no_grad()
def reconstruction_floor(ae_dir: Path, data: str, resolution: int, num: int, reference,
                         features, seed: int = 0) -> dict:  # fmt: skip
    """{"gfid", "kid", ...} of the autoencoder's reconstructions (its default NFE, per-image
    seeds) of the first ``num`` held-out images; cached in ``ae_dir/recon_fid.json`` with the
    model's fingerprint, so a retrained model is measured again."""
    model_dir = ae_dir / "model"
    path, key = ae_dir / "recon_fid.json", {"fingerprint": fingerprint(model_dir), "num": num}
    if path.exists() and {k: json.loads(path.read_text()).get(k) for k in key} == key:
        return json.loads(path.read_text())
    model = Autoencoder.from_pretrained(model_dir)
    val = build_dataset(data, resolution, split="val")
    recs = []
    for start in range(0, num, 64):
        idx = range(start, min(start + 64, num))
        x = to_model_range(torch.stack([val[i][0] for i in idx]))
        gens = item_generators(seed, idx)
        recs.append(to_uint8(model.reconstruct(x, generator=gens)))
    row = {**key, **generation_scores(torch.cat(recs), reference, features, seed)}
    path.write_text(json.dumps(row) + "\n")
    return row


@dataclass(frozen=True)
class ConvergenceSettings:
    """What the experiment trains and measures (the CLI's flags; defaults = the README run)."""

    data: str = "fashion-mnist"
    resolution: int = 32
    ae_steps: int = 400
    dit_preset: str = "dit-tiny"
    dit_steps: int = 2000
    eval_every: int = 500
    fid_samples: int = 500
    cfg_scale: float = 1.5
    seed: int = 0
    ref_images: int = 2000
    size: str = "small"
    cache_images: int = 0


def run_experiment(out: Path, settings: ConvergenceSettings = ConvergenceSettings()) -> Path:
    """Run both arms (each stage resumes) and write ``out/report.md``."""
    s = settings
    data, resolution, seed, fid_samples = s.data, s.resolution, s.seed, s.fid_samples
    dist = start_application(out)
    features = InceptionFeatures()
    reference = reference_features(data, resolution, features, split="val", num=s.ref_images)
    for name, preset, overrides in arms(s.size):
        ae_dir, cache_dir, ldm_dir = (
            out / f"ae-{name}",
            out / f"latents-{name}",
            out / f"dit-{name}",
        )
        print(f"\n== {name}: autoencoder ({preset} {' '.join(overrides)})", flush=True)
        ae_cfg = apply_overrides(get_preset(preset), [*overrides, f"data.spec={data}",
                                 f"data.resolution={resolution}", f"train.total_steps={s.ae_steps}",
                                 f"train.seed={seed}", "data.color_augment=false"])  # fmt: skip
        train_autoencoder(ae_cfg, ae_dir, dist)
        floor = reconstruction_floor(
            ae_dir, data, resolution, fid_samples, reference, features, seed
        )
        print(f"== {name}: reconstruction rFID {floor['gfid']:.2f} (the decoder's floor)")
        print(f"== {name}: caching latents", flush=True)
        cache_latents(ae_dir / "model", data, resolution, cache_dir, dist, seed=seed,
                      num_items=s.cache_images)  # fmt: skip
        print(f"== {name}: DiT ({s.dit_preset}), gFID every {s.eval_every} steps", flush=True)
        ldm_cfg = apply_overrides(get_preset(s.dit_preset, LDMExperimentConfig),
                                  [f"train.total_steps={s.dit_steps}", f"train.sample_every={s.eval_every}",
                                   f"train.checkpoint_every={s.eval_every}", f"train.seed={seed}",
                                   f"cfg_scale={s.cfg_scale}"])  # fmt: skip
        fid_log = ldm_dir / "fid.jsonl"

        def measure(ema, step, fid_log=fid_log, ae_dir=ae_dir, cfg=ldm_cfg) -> None:
            done = {r["step"] for r in read_metrics(fid_log)}
            if step in done:
                return
            ae = ema.load_autoencoder(ae_dir / "model")
            images = generate_images(ema, ae, fid_samples, num_steps=cfg.diffusion.num_steps,
                                     cfg_scale=cfg.cfg_scale, seed=seed)  # fmt: skip
            row = {"step": step, **generation_scores(images, reference, features, seed)}
            with open(fid_log, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(
                f"   step {step}: gFID {row['gfid']:.2f}, KID {row['kid'] * 1000:.2f}e-3",
                flush=True,
            )

        ldm_dir.mkdir(parents=True, exist_ok=True)
        trainer = train_ldm(ldm_cfg, cache_dir, ldm_dir, dist, extra_eval=measure)
        ema = trainer.ema.model
        images = generate_images(ema, ema.load_autoencoder(), 64, seed=seed,
                                 num_steps=ldm_cfg.diffusion.num_steps, cfg_scale=s.cfg_scale)  # fmt: skip
        save_grid(images, out / f"samples-{name}.png", 8, upscale=2)
    return write_report(out, settings)


def write_report(out: Path, settings: ConvergenceSettings) -> Path:
    """``out/report.md`` and ``out/fid_vs_steps.png`` from the arms' logs."""
    s, arms_ = settings, arms(settings.size)
    rows = []
    with panels(out / "fid_vs_steps.png", ("gFID", "KID"), "DiT training step", (5.0, 3.6)) as axes:
        for name, _, _ in arms_:
            log = read_metrics(out / f"dit-{name}" / "fid.jsonl")
            floor = json.loads((out / f"ae-{name}" / "recon_fid.json").read_text())
            for ax, key in zip(axes, ("gfid", "kid"), strict=True):
                ax.plot([r["step"] for r in log], [r[key] for r in log], marker="o", label=name)
            rows += [f"| {name} | {r['step']} | {r['gfid']:.2f} | {r['kid'] * 1000:.2f} | "
                     f"{floor['gfid']:.2f} | {floor['kid'] * 1000:.2f} |" for r in log]  # fmt: skip
    (a, a_preset, _), (b, b_preset, _) = arms_
    text = f"""# Latent DiT convergence on {s.data}

Autoencoders: {a} ({a_preset}) and {b} ({b_preset}, twice the channels),
{s.ae_steps} steps each. DiT: `{s.dit_preset}`, {s.dit_steps} steps on each cache, equal budget.
gFID/KID: {s.fid_samples} samples (classes round-robin, guidance {s.cfg_scale}) against the
Inception features of the first {s.ref_images} held-out images; so few samples make gFID biased upward:
compare the two curves, not absolute values with other papers. "recon" columns: the same scores
for the autoencoder's own reconstructions of {s.fid_samples} held-out images (the floor its decoder
sets under the gFID).

| latents | step | gFID | KID×1000 | recon rFID | recon KID×1000 |
|---|---|---|---|---|---|
{chr(10).join(rows)}

![gFID vs steps](fid_vs_steps.png)

Samples: ![{a}](samples-{a}.png) ![{b}](samples-{b}.png)
"""
    (out / "report.md").write_text(text)
    return out / "report.md"
