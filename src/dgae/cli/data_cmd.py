"""``dgae prepare-data``: pack a folder or list of images at one resolution for fast training."""

from __future__ import annotations

import argparse

from dgae.cli.common import AddCommand


def register(add_command: AddCommand) -> None:
    p = add_command("prepare-data", help="pack images into a memory-mapped uint8 dataset")
    p.add_argument("src", metavar="SRC", help="image folder (class sub-folders) or list file")
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--out", required=True, help="pack folder (resumes when interrupted)")
    p.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: all cores)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dgae.data.pack import write_pack

    meta = write_pack(args.src, args.resolution, args.out, args.workers)
    print(f"packed {meta['count']} images ({meta['skipped']} unreadable, listed in "
          f"{args.out}/skipped.txt) at {meta['resolution']}px into {args.out}")  # fmt: skip
    return 0
