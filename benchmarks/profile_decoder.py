"""Where a DGAE decode spends its time: FLOPs and wall time per stage of the decoder.

Stages are the one-pass prior head, the denoiser's input conv, each down/up level and the
middle of a U-Net or the blocks of a trunk denoiser (grouped by the resolution they run at), and
the output convs. FLOPs come from
``torch.utils.flop_counter``; times from forward hooks around each stage, summed over ``--iters``
single-NFE decodes after a warm-up (on a GPU each hook synchronises, so stages are timed
exactly at the cost of some overlap).

Usage: python benchmarks/profile_decoder.py --size small [--family dgae-unet] [--resolution R]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dgae import build_autoencoder, get_preset
from dgae.decoder import DiffusionDecoder
from dgae.trunk import TrunkDenoiser


def stages(decoder: DiffusionDecoder) -> list[tuple[str, nn.Module]]:
    """(part, module) for every module the decode calls directly, in execution order: the
    head, the denoiser's convolutions, residual blocks, attention blocks and resamplers."""
    unet = decoder.unet
    parts = [("head", decoder.head)] if decoder.head is not None else []
    parts.append(("in", unet.conv_in))
    if isinstance(unet, TrunkDenoiser):
        groups = [("blocks", unet.blocks)]
    else:
        groups = [("down", unet.down), ("mid", unet.mid), ("up", unet.up)]
    for part, items in groups:
        for item in items:
            pieces = list(item) if isinstance(item, nn.ModuleList) else [item]
            parts += [(part, m) for m in pieces if not isinstance(m, nn.Identity)]
    parts += [("out", unet.norm_out), ("out", unet.conv_out)]
    return parts + ([("tail", unet.tail)] if getattr(unet, "tail", None) is not None else [])


def profile(
    preset: str, resolution: int | None, batch: int, iters: int, device: str
) -> str:  # fmt: skip
    """A markdown table: stage, resolution, GFLOP per image, ms per image, share of the time."""
    cfg = get_preset(preset)
    res = resolution or cfg.data.resolution
    side = res // cfg.model.downsample_factor
    torch.manual_seed(0)
    model = build_autoencoder(cfg.model).to(device).eval()
    z = torch.randn(batch, cfg.model.latent_channels, side, side, device=device)
    part_of = {m: part for part, m in stages(model.decoder)}
    shape: dict[nn.Module, str] = {}
    seconds: dict[nn.Module, float] = defaultdict(float)
    started: dict[nn.Module, float] = {}

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def before(module: nn.Module, _args: object) -> None:
        sync()
        started[module] = time.perf_counter()

    def after(module: nn.Module, _args: object, out: torch.Tensor) -> None:
        sync()
        shape[module] = f"{out.shape[-2]}x{out.shape[-1]}"
        seconds[module] += time.perf_counter() - started[module]

    hooks = [m.register_forward_pre_hook(before) for m in part_of]
    hooks += [m.register_forward_hook(after) for m in part_of]
    with torch.no_grad():
        model.decode(z, num_steps=1)  # warm-up
        seconds.clear()
        t0 = time.perf_counter()
        for _ in range(iters):
            model.decode(z, num_steps=1)
        sync()
        total = time.perf_counter() - t0
        for h in hooks:
            h.remove()
        with FlopCounterMode(display=False) as counter:
            model.decode(z, num_steps=1)
    by_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    # the counter names modules from the outermost module called: the head and the U-Net
    roots = [r for r in (model.decoder.head, model.decoder.unet) if r is not None]
    name_of = {m: ".".join(filter(None, (type(r).__name__, k))) for r in roots
               for k, m in r.named_modules()}  # fmt: skip
    flops: dict[tuple[str, str], float] = defaultdict(float)
    secs: dict[tuple[str, str], float] = defaultdict(float)
    for module, part in part_of.items():
        key = (part, shape[module])
        flops[key] += by_module.get(name_of[module], 0.0) / batch
        secs[key] += seconds[module] / iters / batch
    staged = sum(secs.values())
    rows = ["| stage | resolution | GFLOP/img | ms/img | share of stage time |",
            "|---|---|---|---|---|"]  # fmt: skip
    rows += [f"| {part} | {hw} | {flops[(part, hw)] / 1e9:.3f} | {1e3 * t:.3f} | {t / staged:.1%} |"
             for (part, hw), t in secs.items()]  # fmt: skip
    per_image = total / iters / batch
    rows.append(f"| **decode, 1 NFE** | {res}x{res} | {sum(flops.values()) / 1e9:.3f} | "
                f"{1e3 * per_image:.3f} | stages: {staged / per_image:.0%} of it |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="small", help="preset size: tiny, small, S, B, L, XL")
    p.add_argument("--family", default="dgae", help="dgae (the default U-Net) or dgae-trunk")
    p.add_argument("--resolution", type=int, default=None, help="default: the preset's")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iters", type=int, default=5, help="timed decodes (after one warm-up)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(
        profile(
            f"{args.family}-{args.size}", args.resolution, args.batch_size, args.iters, args.device
        )
    )


if __name__ == "__main__":
    main()
