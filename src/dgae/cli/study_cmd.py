"""``dgae study``: the compression study (DGAE vs baseline over f, c and decoder width)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dgae.cli.common import AddCommand


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: expected comma-separated integers like 4,8,16") from None


def register(add_command: AddCommand) -> None:
    from dgae.experiments.study import ARMS

    p = add_command(
        "study",
        help="compression study: DGAE vs baseline over f, c and decoder width (resumable)",
        description="Trains and evaluates one autoencoder per cell at equal steps x batch; "
        "finished cells are reused, interrupted ones resume; report.md is rewritten after "
        "every cell. Extra key=value arguments override every cell's config.",
    )
    p.add_argument("--out", default="runs/study", help="study folder (one sub-folder per cell)")
    p.add_argument("--arms", default="baseline,dgae-head",
                   help=f"recipes to compare, from {sorted(ARMS)}")  # fmt: skip
    p.add_argument("--factors", default="4,8,16", help="spatial compression factors f")
    p.add_argument("--channels", default="4,8", help="latent channels c")
    p.add_argument("--widths", default="", help="decoder widths of the ladder (at --width-factor)")
    p.add_argument("--width-factor", type=int, default=8, help="the f of the width ladder")
    p.add_argument("--cells", default="",
                   help="run only these cells, e.g. dgae-head-f8c4,baseline-f8c8 (default: grid)")  # fmt: skip
    p.add_argument("--size", default="small", help="preset size of every cell (KIND-SIZE)")
    p.add_argument("--resolution", type=int, default=64, help="training and evaluation crops")
    p.add_argument("--train-steps", type=int, default=600, help="training steps per cell")
    p.add_argument("--batch-size", type=int, default=16, help="training batch per step")
    p.add_argument("--nfe", default="1,2,4", help="DGAE decoder steps to evaluate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-images", type=int, default=0, help="validation tiles (0 = all)")
    p.add_argument("--report-only", action="store_true", help="rewrite report.md and stop")
    p.add_argument("overrides", nargs="*", help="key=value config overrides for every cell")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dgae.evaluation.protocol import parse_steps
    from dgae.experiments.study import Cell, StudySettings, cell_config, grid, run_study
    from dgae.experiments.study_report import write_report

    settings = StudySettings(
        size=args.size,
        resolution=args.resolution,
        steps=args.train_steps,
        batch_size=args.batch_size,
        nfes=parse_steps(args.nfe),
        seed=args.seed,
        eval_images=args.eval_images,
        overrides=tuple(args.overrides),
    )
    out = Path(args.out)
    if args.report_only:
        print(write_report(out, settings))
        return 0
    if args.cells:
        cells = [Cell.parse(name.strip()) for name in args.cells.split(",") if name.strip()]
    else:
        cells = grid(args.arms.split(","), _ints(args.factors), _ints(args.channels),
                     tuple(_ints(args.widths)), args.width_factor)  # fmt: skip
    for cell in cells:  # every config is valid before the first cell trains
        cell_config(cell, settings).validate()
    print(f"report: {run_study(cells, settings, out)}")
    return 0
