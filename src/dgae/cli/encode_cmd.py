"""``dgae encode`` / ``dgae decode``: images <-> a safetensors file of latents."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dgae.cli.common import (
    AddCommand,
    add_device,
    add_overwrite,
    add_sampling,
    check_fits,
    check_images_fit,
    load_model,
    output_folder,
    pick_device,
    plan_outputs,
    read_padded,
    safe_stem,
    sampling_kwargs,
    unique_names,
    write_png,
)
from dgae.random import item_generators


def register(add_command: AddCommand) -> None:
    p = add_command("encode", help="encode images into a .safetensors file of latents")
    p.add_argument("--model", required=True)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.add_argument("--sample", action="store_true", help="sample the posterior (default: mean)")
    p.add_argument("--seed", type=int, default=0)
    add_device(p)
    add_overwrite(p)
    p.set_defaults(run=run_encode)
    p = add_command("decode", help="decode a latent file written by dgae encode")
    p.add_argument("--model", required=True)
    p.add_argument("latents", metavar="LATENTS.safetensors")
    p.add_argument("--out", required=True, help="output folder")
    add_sampling(p)
    add_device(p)
    add_overwrite(p)
    p.set_defaults(run=run_decode)


@torch.no_grad()
def run_encode(args: argparse.Namespace) -> int:
    out = Path(args.out)
    plan_outputs([out], args.images, args.overwrite)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: expected a .safetensors file name")
    device = pick_device(args.device)
    model = load_model(args.model, device)
    check_images_fit(model, args.images, device)
    tensors, entries = {}, []
    for i, (path, name) in enumerate(zip(args.images, unique_names(args.images), strict=True)):
        x, (h, w) = read_padded(path, model.downsample_factor)
        post = model.encode(x.to(device))
        z = (
            post.sample(item_generators(args.seed, [i], device=device)[0])
            if args.sample
            else post.mode()
        )
        key = f"{i:06d}"
        tensors[key] = z[0].cpu().contiguous()
        entries.append({"key": key, "name": name, "height": h, "width": w})
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"images": json.dumps(entries), "model": str(Path(args.model).resolve())}
    save_file(tensors, str(out), metadata=meta)
    print(f"{len(entries)} latents of shape {tuple(tensors['000000'].shape)} -> {out}")
    return 0


def read_latents(path: str) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The entries and tensors of a file written by ``dgae encode``; anything else (empty,
    truncated, not safetensors, missing metadata or keys) is a ValueError naming the problem."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"latents file {path} does not exist")
    try:
        with safe_open(path, "pt") as fh:
            meta = fh.metadata() or {}
            if "images" not in meta:
                raise ValueError(f"{path}: no 'images' metadata; write it with dgae encode")
            entries = json.loads(meta["images"])
            keys = set(fh.keys())
            missing = [e.get("key") for e in entries if e.get("key") not in keys]
            if missing:
                raise ValueError(f"{path}: entries {missing[:5]} have no tensor in the file")
            latents = {e["key"]: fh.get_tensor(e["key"]) for e in entries}
    except ValueError:
        raise
    except Exception as err:  # safetensors' own errors for damaged files
        raise ValueError(f"{path} is not a readable safetensors latents file: {err}") from None
    if not entries:
        raise ValueError(f"{path} holds no latents")
    return entries, latents


@torch.no_grad()
def run_decode(args: argparse.Namespace) -> int:
    sampling = sampling_kwargs(args)
    out = output_folder(args.out)
    entries, latents = read_latents(args.latents)
    # names come from a file people share: confined to --out, checked before any write
    names = unique_names([safe_stem(e["name"]) for e in entries])
    paths = plan_outputs([out / f"{n}.png" for n in names], [args.latents], args.overwrite)
    for e in entries:
        z = latents[e["key"]]
        if not torch.isfinite(z).all():
            raise ValueError(f"{args.latents}: latent {e['key']!r} ({e['name']}) holds NaN or Inf")
    device = pick_device(args.device)
    model = load_model(args.model, device)
    f = model.downsample_factor
    for e in entries:
        check_fits(model, e["height"] + f, e["width"] + f, device,
                   f"{args.latents}[{e['key']}]", args.tile)  # fmt: skip
    for i, (e, path) in enumerate(zip(entries, paths, strict=True)):
        z = latents[e["key"]][None].to(device)
        model.check_latents(z, f"{args.latents}[{e['key']}]")
        img = model.decode(
            z, generator=item_generators(args.seed, [i], device=device)[0], **sampling
        )
        write_png(img[0, :, : e["height"], : e["width"]], path)
    print(f"{len(entries)} images -> {out}")
    return 0
