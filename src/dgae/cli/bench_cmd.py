"""``dgae bench``: DGAE vs the same-size baseline throughput, as ratios from one run."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from dgae.cli.common import AddCommand, pick_device


def register(add_command: AddCommand) -> None:
    p = add_command("bench", help="encode/decode/train throughput of DGAE vs its baseline")
    p.add_argument("--size", default="small", help="preset size: tiny, small, S, B, L, XL")
    p.add_argument("--dgae", default="dgae", metavar="FAMILY",
                   help="the DGAE presets to time: dgae (the default U-Net decoder) or "
                   "dgae-trunk (the fast trunk decoder)")  # fmt: skip
    p.add_argument("--resolution", type=int, default=None, help="default: the preset's")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", default="1,2,4,8", help="decoder NFEs to time")
    p.add_argument("--repeats", type=int, default=5, help="timed windows; the median is reported")
    p.add_argument("--iters", type=int, default=3, help="calls per timed window")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile every network of both models (slow first call)")  # fmt: skip
    p.add_argument("--no-peer", action="store_true",
                   help="skip the diffusers AutoencoderKL decoder timed beside the baseline's")  # fmt: skip
    p.add_argument("--peak-tflops", type=float, default=None, help="for MFU on unknown GPUs")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="also write bench.json and bench.md here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="overrides of the DGAE preset (e.g. model.decoder.patch_size=2); the "
                   "baseline stays the preset's")  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dgae.config import apply_overrides, get_preset
    from dgae.evaluation.bench import Engineering, bench_pair, format_report, peak_tflops
    from dgae.evaluation.protocol import parse_steps

    device = pick_device(args.device)
    steps = parse_steps(args.steps)
    cfgs = {"dgae": get_preset(f"{args.dgae}-{args.size}"),
            "baseline": get_preset(f"baseline-{args.size}")}  # fmt: skip
    cfgs["dgae"] = apply_overrides(cfgs["dgae"], args.overrides)
    cfgs["dgae"].validate()
    res = args.resolution or cfgs["dgae"].data.resolution
    results, peak_gib = bench_pair(cfgs["dgae"], cfgs["baseline"], res, args.batch_size, device,
                                   steps=steps, repeats=args.repeats, iters=args.iters,
                                   eng=Engineering(args.bf16, args.channels_last, args.compile),
                                   peer=not args.no_peer)  # fmt: skip
    peak = peak_tflops(device, args.peak_tflops)
    card = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    changed = f" (DGAE with {' '.join(args.overrides)})" if args.overrides else ""
    head = (f"dgae bench: {args.dgae}-{args.size} vs baseline-{args.size}{changed} at {res}px, "
            f"batch {args.batch_size}, "
            f"{'bf16' if args.bf16 else 'fp32'}"
            f"{', channels-last' if args.channels_last else ''}"
            f"{', torch.compile' if args.compile else ''}, {card}, median of {args.repeats}\n\n")  # fmt: skip
    report = head + format_report(results["dgae"], results["baseline"], peak, results["peer"])
    if peak_gib is not None:
        report += f"\nPeak GPU memory of the run: {peak_gib:.1f} GiB\n"
    print(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.md").write_text(report)
        data = {k: {m: asdict(t) for m, t in v.items()} for k, v in results.items()}
        record = {"device": card, "peak_memory_gib": peak_gib, "results": data}
        (out / "bench.json").write_text(json.dumps(record, indent=2))
    return 0
