"""``dgae convert``: a dgae model folder <-> a diffusers ``AutoencoderDGAE`` folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dgae.cli.common import AddCommand, output_folder


def register(add_command: AddCommand) -> None:
    p = add_command(
        "convert",
        help="convert a dgae model folder to a diffusers AutoencoderDGAE folder, or back",
        description="The direction follows the input: a dgae folder becomes a diffusers folder "
        "(config.json + diffusion_pytorch_model.safetensors, loadable with "
        "AutoencoderDGAE.from_pretrained and usable as a pipeline's vae=), a diffusers "
        "AutoencoderDGAE folder becomes a dgae folder. Weights are copied bit for bit.",
    )
    p.add_argument("--model", required=True, help="dgae model folder or AutoencoderDGAE folder")
    p.add_argument("--out", required=True, help="output folder (must not exist yet)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dgae.diffusers_model import AutoencoderDGAE

    src, out = Path(args.model), output_folder(args.out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} is not empty; choose a new folder")
    cfg_path = src / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} is missing; expected a dgae or AutoencoderDGAE folder")
    if json.loads(cfg_path.read_text()).get("_class_name") == "AutoencoderDGAE":
        AutoencoderDGAE.from_pretrained(src).to_dgae().save_pretrained(out)
        print(f"dgae model folder -> {out}")
    else:
        AutoencoderDGAE.from_dgae(src).save_pretrained(out)
        print(f"diffusers AutoencoderDGAE folder -> {out}")
    return 0
