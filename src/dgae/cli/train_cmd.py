"""``dgae train``: train DGAE or the baseline from a preset plus key=value overrides."""

from __future__ import annotations

import argparse
import json

from dgae.cli.common import AddCommand, report_training
from dgae.config import ConfigError, apply_overrides, get_preset, to_dict, valid_keys
from dgae.data.loader import SPEC_HELP


def register(add_command: AddCommand) -> None:
    p = add_command(
        "train",
        help="train an autoencoder (DGAE or baseline); resumes from --out when it holds a run",
        description="Train from a preset; override any config key with key=value "
        "(e.g. train.total_steps=2000 model.latent_channels=8). Run under torchrun for many GPUs.",
    )
    from dgae.config import PRESETS, ExperimentConfig

    get_preset("dgae-tiny")  # registers the presets
    names = sorted(n for n, fn in PRESETS.items() if isinstance(fn(), ExperimentConfig))
    p.add_argument("--preset", required=True, help=f"one of: {', '.join(names)}")
    p.add_argument("--data", default=None, help=f"training data: {SPEC_HELP}")
    p.add_argument("--out", required=True, help="run folder (created; resumed when it holds a run)")
    p.add_argument("--resolution", type=int, default=None, help="training crop size in pixels")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true",
                   help="resume a run on other --data (the earlier config.json is kept)")  # fmt: skip
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    p.set_defaults(run=run)


def resolve(args: argparse.Namespace):
    cfg = get_preset(args.preset)
    extra = []
    if args.data is not None:
        extra.append(f"data.spec={args.data}")
    if args.resolution is not None:
        extra.append(f"data.resolution={args.resolution}")
    try:
        cfg = apply_overrides(cfg, extra + list(args.overrides))
    except ConfigError as err:
        if "unknown override key" in str(err):
            raise
        raise ConfigError(f"{err}. Valid keys: {valid_keys(cfg)}") from None
    cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = resolve(args)
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        return 0
    from dgae.autoencoder_training import train_autoencoder
    from dgae.training.distributed import distributed_session

    with distributed_session(args.device) as dist:
        status = train_autoencoder(
            cfg, args.out, dist, progress=not args.no_progress, force=args.force
        ).status
    if dist.is_main:
        report_training(status, args.out, "model")
    return 0
