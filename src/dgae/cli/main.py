"""dgae: train, evaluate and use Diffusion-Guided Autoencoders (arXiv 2506.09644)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from dgae.cli import (
    bench_cmd,
    convert_cmd,
    data_cmd,
    demo_cmd,
    distill_cmd,
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
    distill_cmd,
    reconstruct_cmd,
    encode_cmd,
    export_cmd,
    convert_cmd,
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
    "--model": "model folder (config.json + model.safetensors), or a Hub repo id org/name",
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


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: options without help get the shared text of ``COMMON_HELP``, and
    the options are recorded (``options``) so errors and tests can name them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.options: dict[str, argparse.Action] = {}  # before super() adds -h
        super().__init__(*args, **kwargs)

    def add_argument(self, *names: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("help") is None and names:
            kwargs["help"] = COMMON_HELP.get(names[0])
        action = super().add_argument(*names, **kwargs)
        self.options[names[0]] = action
        return action


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, CommandParser]]:
    """The ``dgae`` parser and its subcommands by name."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("dgae")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        release = "unknown"
    parser = argparse.ArgumentParser(prog="dgae", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dgae {release}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
    )
    for module in COMMANDS:
        module.register(sub.add_parser)
    return parser, dict(sub.choices)


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the command's own valid flags, not just the top-level usage
        cmd = commands[args.command]
        flags = sorted(o for a in cmd.options.values() for o in a.option_strings if o[:2] == "--")
        cmd.error(f"unrecognized arguments: {' '.join(unknown)}; valid options: {', '.join(flags)}")
    try:
        return int(args.run(args) or 0)
    except (ValueError, TypeError, OSError, KeyError) as err:
        print(f"dgae {args.command}: error: {err}", file=sys.stderr)
        return 2
