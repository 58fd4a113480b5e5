"""``dgae demo``: evaluate the shipped models, train a fresh pair, write a report."""

from __future__ import annotations

import argparse
from pathlib import Path

from dgae.cli.common import AddCommand


def register(add_command: AddCommand) -> None:
    p = add_command("demo", help="the shipped models and a fresh pair, DGAE vs baselines (~9 min)")
    p.add_argument("--out", default="runs/demo", help="output folder (resumes when interrupted)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="training steps per fresh model (default 500)")  # fmt: skip
    p.add_argument("--nfe", default="1,2,4", help="DGAE decoder NFEs to evaluate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="models", help="folder of the shipped models")
    p.add_argument("--eval-images", type=int, default=0,
                   help="first N validation tiles per evaluation (default: all)")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dgae.evaluation.protocol import parse_steps
    from dgae.experiments.demo import FRESH_STEPS, run_demo

    steps = FRESH_STEPS if args.train_steps is None else args.train_steps
    run_demo(Path(args.out), steps, parse_steps(args.nfe), args.seed, Path(args.models),
             args.eval_images)  # fmt: skip
    return 0
