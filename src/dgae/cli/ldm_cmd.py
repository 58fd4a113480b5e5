"""Latent diffusion verbs: cache-latents, ldm-train, ldm-sample, ldm-experiment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dgae.cli.common import AddCommand, pick_device
from dgae.data.loader import SPEC_HELP


def register(add_command: AddCommand) -> None:
    p = add_command("cache-latents", help="encode a dataset into sharded latents with statistics")
    p.add_argument("--model", required=True, help="autoencoder folder (DGAE or baseline)")
    p.add_argument("--data", required=True, help=f"images: {SPEC_HELP}")
    p.add_argument("--out", required=True, help="cache folder (resumes when interrupted)")
    p.add_argument(
        "--resolution", type=int, default=None, help="default: the training run's, else 256"
    )
    p.add_argument(
        "--sample", action="store_true", help="store seeded posterior samples (default: means)"
    )
    p.add_argument("--flip", action="store_true", help="also store latents of flipped images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-images", type=int, default=0, help="first N images (default: all)")
    p.add_argument("--shard-size", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None)
    p.set_defaults(run=run_cache)

    p = add_command("ldm-train", help="train a class-conditional DiT on cached latents")
    p.add_argument("--latents", required=True, help="folder written by dgae cache-latents")
    p.add_argument("--preset", required=True, help="dit-tiny, dit-S, dit-B, dit-L, dit-XL")
    p.add_argument("--out", required=True, help="run folder (resumes when it holds a run)")
    p.add_argument("--device", default=None)
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(run=run_train)

    p = add_command("ldm-sample", help="sample images from a trained DiT (PNG grid + .npz)")
    p.add_argument("--ldm", required=True, help="DiT folder (RUN/model of dgae ldm-train)")
    p.add_argument("--num", type=int, default=64)
    p.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the config's)")
    p.add_argument("--sampling-steps", type=int, default=None,
                   help="DiT ODE steps (default: the config's)")  # fmt: skip
    p.add_argument("--steps", type=int, default=None,
                   help="decoder NFE of a DGAE (default: the model's), as in reconstruct/eval")  # fmt: skip
    p.add_argument("--classes", default=None, help="comma-separated labels (default: round-robin)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--autoencoder", default=None, help="override the recorded autoencoder path")
    p.add_argument(
        "--fid-data", default=None, help="also score gFID/KID against this data's val split"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.set_defaults(run=run_sample)

    p = add_command("ldm-experiment", help="DiT convergence on DGAE (c) vs baseline (2c) latents")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--out", default="runs/ldm-experiment")
    p.add_argument("--ae-train-steps", type=int, default=400, help="autoencoder training steps")
    p.add_argument("--dit-preset", default="dit-tiny")
    p.add_argument("--dit-train-steps", type=int, default=2000, help="DiT training steps")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--fid-samples", type=int, default=500)
    p.add_argument("--cfg", type=float, default=1.5)
    p.add_argument("--ref-images", type=int, default=2000, help="held-out images for the reference")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--size", default="small", help="autoencoder preset size of both arms")
    p.add_argument("--cache-images", type=int, default=0, help="images to cache (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run_experiment)


def run_cache(args: argparse.Namespace) -> int:
    from dgae.cli.eval_cmd import default_resolution
    from dgae.generation.cache import cache_latents
    from dgae.training.distributed import distributed_session

    with distributed_session(args.device) as dist:
        resolution = args.resolution or default_resolution(Path(args.model))
        meta = cache_latents(args.model, args.data, resolution, args.out, dist, sample=args.sample,
                             flip=args.flip, seed=args.seed, shard_size=args.shard_size,
                             batch_size=args.batch_size, num_items=args.num_images)  # fmt: skip
    if dist.is_main:
        print(
            f"{meta['num_items']} latents {meta['latent_shape']} in {meta['num_shards']} shards -> {args.out}"
        )
    return 0


def run_train(args: argparse.Namespace) -> int:
    from dgae.config import LDMExperimentConfig, apply_overrides, get_preset, to_dict

    cfg = apply_overrides(get_preset(args.preset, LDMExperimentConfig), args.overrides)
    cfg.validate()
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    from dgae.generation.train import train_ldm
    from dgae.training.distributed import distributed_session

    with distributed_session(args.device) as dist:
        status = train_ldm(cfg, args.latents, args.out, dist, not args.no_progress).status
    if dist.is_main:
        print(
            f"{status}: {'DiT exported to ' + args.out + '/model' if status == 'done' else 'rerun to resume'}"
        )
    return 0


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from dgae.generation.ldm import LatentDiffusion, generate_images
    from dgae.training.reporting import save_grid

    device = pick_device(args.device)
    ldm = LatentDiffusion.from_pretrained(args.ldm, device)
    ae = ldm.load_autoencoder(args.autoencoder, device)
    labels = None
    if args.classes:
        given = [int(c) for c in args.classes.split(",")]
        labels = torch.tensor([given[i % len(given)] for i in range(args.num)])
    steps = args.sampling_steps or ldm.cfg.diffusion.num_steps
    scale = ldm.cfg.cfg_scale if args.cfg is None else args.cfg
    images = generate_images(ldm, ae, args.num, num_steps=steps, cfg_scale=scale, seed=args.seed,
                             labels=labels, ae_steps=args.steps, progress=True)  # fmt: skip
    used = labels if labels is not None else torch.arange(args.num) % ldm.num_classes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_grid(images[:64], out / "grid.png", 8, upscale=max(1, 128 // images.shape[-1]))
    np.savez(out / "samples.npz", images=images.permute(0, 2, 3, 1).numpy(), labels=used.numpy())
    print(f"{args.num} samples -> {out}/samples.npz, grid -> {out}/grid.png")
    if args.fid_data:
        from dgae.evaluation.inception import InceptionFeatures
        from dgae.generation.gfid import generation_scores, reference_features

        features = InceptionFeatures(device)
        ref = reference_features(args.fid_data, images.shape[-1], features, split="val")
        scores = generation_scores(images, ref, features, args.seed)
        scores.update(steps=steps, cfg=scale, seed=args.seed, reference=f"{args.fid_data}:val")
        (out / "scores.json").write_text(json.dumps(scores, indent=2))
        print(f"gFID {scores['gfid']:.2f}  KID {scores['kid'] * 1000:.2f}e-3 ({args.num} samples)")
    return 0


def run_experiment(args: argparse.Namespace) -> int:
    from dgae.experiments.ldm_convergence import ConvergenceSettings
    from dgae.experiments.ldm_convergence import run_experiment as run

    settings = ConvergenceSettings(
        data=args.data,
        resolution=args.resolution,
        ae_steps=args.ae_train_steps,
        dit_preset=args.dit_preset,
        dit_steps=args.dit_train_steps,
        eval_every=args.eval_every,
        fid_samples=args.fid_samples,
        cfg_scale=args.cfg,
        seed=args.seed,
        ref_images=args.ref_images,
        size=args.size,
        cache_images=args.cache_images,
    )
    report = run(Path(args.out), settings)
    print(f"report: {report}")
    return 0
