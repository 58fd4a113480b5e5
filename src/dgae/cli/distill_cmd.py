"""``dgae distill``: train a 1-NFE student of a DGAE decoder (see :mod:`dgae.distill`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dgae.cli.common import AddCommand, report_training
from dgae.data.loader import SPEC_HELP


def register(add_command: AddCommand) -> None:
    p = add_command(
        "distill",
        help="distil a DGAE decoder into a 1-NFE student (same encoder, same latents)",
        description="The student starts as the teacher and learns to reproduce the teacher's "
        "--teacher-steps decode from the same noise in one network evaluation. Data and training "
        "settings default to the teacher's run (MODEL/../config.json); override any with "
        "key=value. Resumes from --out; run under torchrun for many GPUs.",
    )
    p.add_argument("--teacher", required=True, help="DGAE model folder to distil")
    p.add_argument("--out", required=True, help="run folder (created; resumed when it holds a run)")
    p.add_argument("--teacher-steps", type=int, default=4, help="the teacher's NFE to reproduce")
    p.add_argument("--train-steps", type=int, default=1000, help="distillation steps")
    p.add_argument("--lr", type=float, default=2e-4,
                   help="learning rate (fine-tuning: below a from-scratch run's)")  # fmt: skip
    p.add_argument(
        "--data", default=None, help=f"training data (default: the teacher's): {SPEC_HELP}"
    )
    p.add_argument("--resolution", type=int, default=None, help="default: the teacher's run's")
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(run=run)


def resolve(args: argparse.Namespace, teacher_config):
    """The distillation config: the teacher's run config when there is one (else defaults),
    the teacher's model, then the flags and overrides."""
    from dgae.config import ExperimentConfig, apply_overrides, load_json

    run_cfg = Path(args.teacher).parent / "config.json"
    cfg = load_json(ExperimentConfig, run_cfg) if run_cfg.exists() else ExperimentConfig()
    cfg.model = teacher_config
    extra = [f"train.total_steps={args.train_steps}", "train.total_images=0", f"train.lr={args.lr}"]
    extra += [f"data.spec={args.data}"] if args.data else []
    extra += [f"data.resolution={args.resolution}"] if args.resolution else []
    cfg = apply_overrides(cfg, extra + list(args.overrides))
    cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    from dgae.autoencoder import Autoencoder
    from dgae.distill import distill
    from dgae.training.distributed import distributed_session

    cfg = resolve(args, Autoencoder.read_config(args.teacher))  # distill() loads the weights
    with distributed_session(args.device) as dist:
        status = distill(args.teacher, args.out, cfg, args.teacher_steps, dist,
                         progress=not args.no_progress).status  # fmt: skip
    if dist.is_main:
        report_training(status, args.out, "1-NFE student")
    return 0
