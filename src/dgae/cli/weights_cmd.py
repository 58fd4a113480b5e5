"""``dgae weights``: fetch and verify the offline pretrained weights (and, with no names, the
extra training photographs of the built-in ``photos``) into $DGAE_HOME."""

from __future__ import annotations

import argparse

from dgae.cli.common import AddCommand
from dgae.weights import WEIGHTS, dgae_home, fetch_weights


def register(add_command: AddCommand) -> None:
    p = add_command(
        "weights", help="fetch and sha256-check the offline weights and training photographs"
    )
    p.add_argument(
        "names", nargs="*", metavar="NAME",
        help=f"weights to fetch, from {', '.join(WEIGHTS)} (default: all, and the photographs)",
    )  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.names) - set(WEIGHTS))
    if unknown:
        raise ValueError(f"unknown weight(s) {unknown}; expected some of {sorted(WEIGHTS)}")
    paths = fetch_weights(args.names or None)
    for name, path in paths.items():
        print(f"{name:16s} {path}")
    print(f"weights ready in {dgae_home()}")
    if not args.names:  # non-fatal: 'photos' falls back to the scikit-image photographs
        from dgae.data.debian_photos import fetch_photos

        fetch_photos()
    return 0
