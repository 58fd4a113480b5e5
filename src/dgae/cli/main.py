"""dgae: train, evaluate and use Diffusion-Guided Autoencoders (arXiv 2506.09644)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dgae.cli import (
    bench_cmd,
    data_cmd,
    demo_cmd,
    encode_cmd,
    eval_cmd,
    export_cmd,
    ldm_cmd,
    reconstruct_cmd,
    study_cmd,
    train_cmd,
    weights_cmd,
)

COMMANDS = [
    train_cmd,
    reconstruct_cmd,
    encode_cmd,
    export_cmd,
    eval_cmd,
    bench_cmd,
    data_cmd,
    demo_cmd,
    ldm_cmd,
    study_cmd,
    weights_cmd,
]


# help of the options many verbs share, stated once (a verb's own help text wins)
COMMON_HELP = {
    "--model": "model folder (config.json + model.safetensors)",
    "images": "image files of any size and common format",
    "latents": "a .safetensors file written by dgae encode",
    "--sampler": "decoder ODE sampler (default: the model's)",
    "--seed": "base seed; every item gets its own seed from it",
    "--device": "cpu, cuda or cuda:N (default: cuda when available)",
    "--batch-size": "items per forward pass (results do not depend on it)",
    "--no-progress": "no progress bar",
    "--resolution": "image size in pixels",
    "--num": "number of samples",
    "--out": "output folder",
    "--data": "dataset: 'photos', 'fashion-mnist', an image folder, a list file or a pack",
    "--shard-size": "latents per shard file",
    "--dit-preset": "DiT preset of both arms",
    "--eval-every": "DiT steps between gFID measurements",
    "--fid-samples": "samples per gFID measurement",
    "--cfg": "classifier-free guidance scale",
}


def _fill_help(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        key = action.option_strings[0] if action.option_strings else action.dest
        if action.help is None:
            action.help = COMMON_HELP.get(key)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("dgae")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        release = "unknown"
    parser = argparse.ArgumentParser(prog="dgae", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dgae {release}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    for command in sub.choices.values():
        _fill_help(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the command's own valid flags, not just the top-level usage
        sub = next(a for a in parser._subparsers._group_actions if a.dest == "command")
        cmd = sub.choices[args.command]
        flags = sorted(o for a in cmd._actions for o in a.option_strings if o.startswith("--"))
        cmd.error(f"unrecognized arguments: {' '.join(unknown)}; valid options: {', '.join(flags)}")
    try:
        return int(args.run(args) or 0)
    except (ValueError, TypeError, OSError, KeyError) as err:
        print(f"dgae {args.command}: error: {err}", file=sys.stderr)
        return 2
