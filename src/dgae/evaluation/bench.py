"""Throughput of DGAE against the same-size one-pass baseline, measured in the same run.

Reports images/s for encoding, decoding at each NFE and a full training step (forward, loss with
the perceptual term, backward, optimiser step), the median over ``repeats`` timed windows, and
ratios DGAE / baseline. On a GPU it also reports achieved TFLOP/s and MFU (model FLOPs counted
with ``torch.utils.flop_counter``; peak from ``--peak-tflops`` or the card's bf16 dense peak).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from dgae.autoencoder import Autoencoder
from dgae.config import ExperimentConfig
from dgae.losses import build_objective

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}


@dataclass
class Timing:
    images_per_s: float
    flops_per_image: float | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    fn: Callable[[], None], batch: int, device: torch.device, repeats: int, iters: int
) -> float:
    """Median images/s over ``repeats`` windows of ``iters`` calls (after one warm-up window)."""
    fn()
    _sync(device)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        _sync(device)
        rates.append(batch * iters / (time.perf_counter() - t0))
    return statistics.median(rates)


def count_flops(fn: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def bench_model(
    cfg: ExperimentConfig,
    resolution: int,
    batch: int,
    device: torch.device,
    steps: tuple[int, ...],
    repeats: int,
    iters: int,
    bf16: bool,
) -> dict[str, Timing]:
    """Timings of one autoencoder: 'encode', 'decode@NFE' (or 'decode') and 'train_step'."""
    torch.manual_seed(0)
    model = Autoencoder(cfg.model).to(device)
    objective = build_objective(cfg.loss, cfg.model.kind).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=bf16)
    with torch.no_grad(), autocast:
        z = model.encode(x).mode()
    out: dict[str, Timing] = {}

    def encode() -> None:
        with torch.no_grad(), autocast:
            model.encode(x).mode()

    def train_step() -> None:
        with autocast:
            loss = objective(model, x)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def flops(fn):
        return count_flops(fn) / batch if device.type == "cuda" else None

    out["encode"] = Timing(measure(encode, batch, device, repeats, iters), flops(encode))
    for nfe in steps if model.is_diffusion else (1,):

        def decode(nfe: int = nfe) -> None:
            with torch.no_grad(), autocast:
                model.decode(z, num_steps=nfe)

        key = f"decode@{nfe}" if model.is_diffusion else "decode"
        out[key] = Timing(measure(decode, batch, device, repeats, iters), flops(decode))
    out["train_step"] = Timing(
        measure(train_step, batch, device, repeats, iters), flops(train_step)
    )
    if device.type == "cuda":
        out["peak_memory_gib"] = Timing(torch.cuda.max_memory_allocated(device) / 2**30)
    return out


def format_report(dgae: dict[str, Timing], baseline: dict[str, Timing], peak: float | None) -> str:
    """Markdown table: images/s of both models, the ratio, and TFLOP/s / MFU when known."""
    lines = ["| measurement | DGAE img/s | baseline img/s | DGAE / baseline | DGAE TFLOP/s | DGAE MFU |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for key, t in dgae.items():
        if key == "peak_memory_gib":
            continue
        ref = baseline.get(key) or baseline.get("decode" if key.startswith("decode") else key)
        ratio = f"{t.images_per_s / ref.images_per_s:.3f}" if ref else "–"
        tflops = t.flops_per_image * t.images_per_s / 1e12 if t.flops_per_image else None
        mfu = f"{tflops / peak:.1%}" if tflops and peak else "–"
        lines.append(
            f"| {key} | {t.images_per_s:.1f} | {ref.images_per_s:.1f} | {ratio} | "
            f"{f'{tflops:.1f}' if tflops else '–'} | {mfu} |"
            if ref else f"| {key} | {t.images_per_s:.1f} | – | – | – | – |"
        )  # fmt: skip
    if "peak_memory_gib" in dgae:
        lines.append(f"\nPeak GPU memory: DGAE {dgae['peak_memory_gib'].images_per_s:.1f} GiB, "
                     f"baseline {baseline['peak_memory_gib'].images_per_s:.1f} GiB")  # fmt: skip
    return "\n".join(lines) + "\n"
