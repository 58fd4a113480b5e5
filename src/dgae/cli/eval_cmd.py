"""``dgae eval``: the reconstruction protocol at several NFEs -> eval.json, eval.md, a plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dgae.cli.common import AddCommand
from dgae.config import PerceptualName, SamplerName, choices
from dgae.data.loader import SPEC_HELP

# every perceptual network but the test-only random one
EVAL_PERCEPTUAL = tuple(n for n in choices(PerceptualName) if n != "tiny-random")


def register(add_command: AddCommand) -> None:
    p = add_command(
        "eval",
        help="measure PSNR/SSIM/perceptual/rFID/KID of an autoencoder at each decoder NFE",
        description="Works on dgae DGAE and baseline folders and on diffusers AutoencoderKL "
        "folders, with one protocol (docs/evaluation.md). Run under torchrun to shard the images.",
    )
    p.add_argument(
        "--model", required=True, help="dgae model folder or diffusers AutoencoderKL folder"
    )
    p.add_argument("--data", required=True, help=f"images: {SPEC_HELP}")
    p.add_argument("--steps", default="1,2,4,8,25,50", help="comma-separated NFEs (DGAE only)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resolution", type=int, default=None,
                   help="evaluation size (default: the training run's, else 256)")  # fmt: skip
    p.add_argument("--num-images", type=int, default=0, help="first N images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the per-image decoder noise")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--sampler", choices=choices(SamplerName), default=None)
    p.add_argument("--perceptual", default="auto", choices=("auto", *EVAL_PERCEPTUAL),
                   help="auto: LPIPS-VGG when its VGG16 file is present, else ST-LPIPS-VGG")  # fmt: skip
    p.add_argument("--fid-weights", default=None,
                   help="FID network file: the cached TorchScript (default) or pytorch-fid's "
                   "pt_inception-2015-12-05-6726825d.pth state dict")  # fmt: skip
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def default_resolution(model_dir: Path) -> int:
    """The training resolution recorded in the run folder around an exported model, else 256."""
    run_cfg = model_dir.parent / "config.json"
    if run_cfg.exists():
        data = json.loads(run_cfg.read_text()).get("data", {})
        if "resolution" in data:
            return int(data["resolution"])
    return 256


def pick_perceptual(name: str):
    from dgae.losses.perceptual import build_perceptual
    from dgae.weights import MissingWeightsError

    if name != "auto":
        return build_perceptual(name)
    try:
        return build_perceptual("lpips-vgg")
    except MissingWeightsError:
        return build_perceptual("st-lpips-vgg")


def check_perceptual_runs(perceptual, resolution: int, device) -> None:
    """Run the perceptual network once at ``resolution`` before any work; a network whose
    pooling cannot shrink that small is a clear error naming it and what to use instead."""
    import torch

    if perceptual is None:
        return
    probe = torch.zeros(1, 3, resolution, resolution, device=device)
    try:
        with torch.no_grad():
            perceptual(probe, probe)
    except RuntimeError:
        raise ValueError(
            f"the perceptual network {getattr(perceptual, 'name', '')!r} cannot run at "
            f"{resolution}px (its pooling stages need larger images); evaluate at a larger "
            "--resolution or pass --perceptual none"
        ) from None


def run(args: argparse.Namespace) -> int:
    from dgae.data.loader import build_dataset
    from dgae.evaluation.inception import InceptionFeatures
    from dgae.evaluation.models import load_for_eval
    from dgae.evaluation.protocol import EvalSettings, evaluate, parse_steps
    from dgae.evaluation.report import clear_previous, write_eval
    from dgae.training.distributed import distributed_session

    steps = parse_steps(args.steps)
    resolution = args.resolution or default_resolution(Path(args.model))
    out = Path(args.out)
    with distributed_session(args.device) as dist:
        if dist.is_main:
            clear_previous(out)
        model = load_for_eval(args.model, dist.device, args.sampler)
        if resolution % model.downsample_factor:
            raise ValueError(
                f"--resolution {resolution} is not a multiple of the model's factor {model.downsample_factor}"
            )
        dataset = build_dataset(args.data, resolution, split="val")
        perceptual = pick_perceptual(args.perceptual)
        perceptual = perceptual.to(dist.device) if perceptual is not None else None
        check_perceptual_runs(perceptual, resolution, dist.device)
        settings = EvalSettings(resolution, steps, args.num_images, args.seed, args.batch_size)
        features = InceptionFeatures(dist.device, weights=args.fid_weights)
        result = evaluate(model, dataset, args.data, settings, dist, features, perceptual,
                          progress=not args.no_progress)  # fmt: skip
        if dist.is_main:
            write_eval(result, out)
            print((out / "eval.md").read_text())
    return 0
