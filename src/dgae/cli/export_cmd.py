"""``dgae export``: write the EMA model of a run's latest checkpoint as an inference folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from dgae.cli.common import AddCommand, add_device, pick_device


def register(add_command: AddCommand) -> None:
    p = add_command("export", help="export a run's latest EMA weights (with latent statistics)")
    p.add_argument("--run", dest="run_dir", required=True, help="run folder written by dgae train")
    p.add_argument("--out", default=None, help="output folder (default: RUN/model)")
    add_device(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dgae.autoencoder_training import export_run

    out = export_run(
        Path(args.run_dir), Path(args.out) if args.out else None, pick_device(args.device)
    )
    print(f"exported {out}")
    return 0
