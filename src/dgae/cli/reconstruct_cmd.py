"""``dgae reconstruct``: encode and decode images of any size; writes NAME.png + NAME_compare.png."""

from __future__ import annotations

import argparse

import torch

from dgae.cli.common import (
    AddCommand,
    add_device,
    add_overwrite,
    add_sampling,
    check_images_fit,
    load_model,
    output_folder,
    pick_device,
    plan_outputs,
    read_padded,
    sampling_kwargs,
    side_by_side,
    unique_names,
    write_png,
)
from dgae.random import item_generators


def register(add_command: AddCommand) -> None:
    p = add_command("reconstruct", help="reconstruct images with a trained model")
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="output folder")
    add_sampling(p)
    add_device(p)
    add_overwrite(p)
    p.set_defaults(run=run)


@torch.no_grad()
def run(args: argparse.Namespace) -> int:
    sampling = sampling_kwargs(args)
    out = output_folder(args.out)
    names = unique_names(args.images)
    plan_outputs([out / f"{n}{suffix}.png" for n in names for suffix in ("", "_compare")],
                 args.images, args.overwrite)  # fmt: skip
    device = pick_device(args.device)
    model = load_model(args.model, device)
    check_images_fit(model, args.images, device, args.tile)
    for i, (path, name) in enumerate(zip(args.images, names, strict=True)):
        x, (h, w) = read_padded(path, model.downsample_factor)
        rec = model.reconstruct(
            x.to(device), generator=item_generators(args.seed, [i], device=device)[0], **sampling
        )
        rec = rec[0, :, :h, :w]
        write_png(rec, out / f"{name}.png")
        write_png(side_by_side(x[0, :, :h, :w], rec), out / f"{name}_compare.png")
        print(f"[{i + 1}/{len(names)}] {path} -> {out / (name + '.png')}", flush=True)
    return 0
