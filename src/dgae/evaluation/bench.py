"""Throughput of DGAE against the same-size one-pass baseline, measured in the same run.

Reports images/s for encoding, decoding at each NFE and a full training step (forward, loss with
the perceptual term, backward, optimiser step), the median over ``repeats`` timed windows, and
ratios DGAE / baseline. On a GPU it also reports achieved TFLOP/s and MFU (model FLOPs counted
with ``torch.utils.flop_counter``; peak from ``--peak-tflops`` or the card's bf16 dense peak).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from dgae.autoencoder import Autoencoder
from dgae.config import ExperimentConfig, level_channels
from dgae.losses import build_objective

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}


@dataclass
class Timing:
    images_per_s: float
    flops_per_image: float | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_interleaved(
    fns: list[Callable[[], None]], batch: int, device: torch.device, repeats: int, iters: int
) -> list[float]:
    """Median images/s of each function, timed in alternating windows (A B A B ...) after one
    warm-up window each, so both models see the same machine state (clocks, caches, load)."""
    for fn in fns:
        fn()
    _sync(device)
    rates: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            _sync(device)
            rates[k].append(batch * iters / (time.perf_counter() - t0))
    return [statistics.median(r) for r in rates]


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


@dataclass(frozen=True)
class Engineering:
    """Inference engineering applied to both models alike: bf16 autocast, channels-last
    memory format, ``torch.compile`` of every network (encoder, decoder, head, U-Net)."""

    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


def prepare(
    model: torch.nn.Module, networks: list[torch.nn.Module], x: torch.Tensor, eng: Engineering
) -> torch.Tensor:
    """Apply ``eng`` in place: ``model``'s memory format, compiled ``networks`` (their forward;
    a sampler loop stays in Python); returns ``x`` in the matching memory format."""
    if eng.channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if eng.compile:
        for net in networks:
            net.compile()
    return x


def networks(model: Autoencoder) -> list[torch.nn.Module]:
    """The networks a forward pass of ``model`` calls: encoder, then the one-pass decoder or
    the diffusion decoder's head and U-Net."""
    dec = model.decoder
    nets = [model.encoder, *([dec.head, dec.unet] if model.is_diffusion else [dec])]
    return [n for n in nets if n is not None]


def workloads(
    cfg: ExperimentConfig, resolution: int, batch: int, device: torch.device,
    steps: tuple[int, ...], eng: Engineering,
) -> dict[str, Callable[[], None]]:  # fmt: skip
    """Named closures for one autoencoder: 'encode', 'decode@NFE' (or 'decode'), 'train_step'."""
    torch.manual_seed(0)
    model = Autoencoder(cfg.model).to(device)
    objective = build_objective(cfg.loss, cfg.model.kind).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1
    x = prepare(model, networks(model), x, eng)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=eng.bf16)
    with torch.no_grad(), autocast:
        z = model.encode(x).mode()

    def encode() -> None:
        with torch.no_grad(), autocast:
            model.encode(x).mode()

    def decoder(nfe: int) -> Callable[[], None]:
        def decode() -> None:
            with torch.no_grad(), autocast:
                model.decode(z, num_steps=nfe)

        return decode

    def train_step() -> None:
        with autocast:
            loss = objective(model, x)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out = {"encode": encode}
    if model.is_diffusion:
        out.update({f"decode@{n}": decoder(n) for n in steps})
    else:
        out["decode"] = decoder(1)
    out["train_step"] = train_step
    return out


def peer_decoder(
    cfg: ExperimentConfig, resolution: int, batch: int, device: torch.device, eng: Engineering
) -> Callable[[], None]:
    """A decode with diffusers' ``AutoencoderKL`` built with the baseline decoder's widths, depth
    and latent size (random weights: for speed only), the decoder people use today."""
    from diffusers import AutoencoderKL

    m, b = cfg.model, cfg.model.baseline_decoder
    levels = int(math.log2(m.downsample_factor)) + 1
    chans = level_channels(b.base_channels, b.channel_mult, levels)
    torch.manual_seed(0)
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(chans),
        layers_per_block=b.num_res_blocks,
        latent_channels=m.latent_channels,
        norm_num_groups=min(32, math.gcd(*chans)),
    ).to(device)
    vae.eval()
    side = resolution // m.downsample_factor
    z = torch.randn(batch, m.latent_channels, side, side, device=device)
    z = prepare(vae, [vae.decoder], z, eng)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=eng.bf16)

    def decode() -> None:
        with torch.no_grad(), autocast:
            vae.decode(z)

    return decode


def bench_pair(
    dgae: ExperimentConfig,
    baseline: ExperimentConfig,
    resolution: int,
    batch: int,
    device: torch.device,
    *,
    steps: tuple[int, ...],
    repeats: int,
    iters: int,
    eng: Engineering = Engineering(),
    peer: bool = True,
) -> tuple[dict[str, dict[str, Timing]], float | None]:
    """Timings of DGAE, the baseline and (``peer``) diffusers' AutoencoderKL decoder of the same
    widths, and the peak GPU memory in GiB (None on CPU). Every DGAE workload is interleaved
    with its baseline counterpart (the one-pass decode for every NFE), the peer's decode with
    the baseline's."""
    fa = workloads(dgae, resolution, batch, device, steps, eng)
    fb = workloads(baseline, resolution, batch, device, steps, eng)
    res: dict[str, dict[str, Timing]] = {"dgae": {}, "baseline": {}, "peer": {}}
    if peer:
        fp = peer_decoder(baseline, resolution, batch, device, eng)
        rp, rb = measure_interleaved([fp, fb["decode"]], batch, device, repeats, iters)
        res["peer"]["decode"] = Timing(rp)
        res["baseline"]["decode (vs peer)"] = Timing(rb)
    for key, fn in fa.items():
        ref_key = "decode" if key.startswith("decode") else key
        ra, rb = measure_interleaved([fn, fb[ref_key]], batch, device, repeats, iters)
        flops = count_flops(fn) / batch if device.type == "cuda" else None
        res["dgae"][key] = Timing(ra, flops)
        if ref_key not in res["baseline"]:
            res["baseline"][ref_key] = Timing(rb)
        res["baseline"][f"{ref_key} (vs {key})"] = Timing(rb)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return res, peak


def format_report(
    dgae: dict[str, Timing],
    baseline: dict[str, Timing],
    peak: float | None,
    peer: dict[str, Timing] | None = None,
) -> str:
    """Markdown table: images/s of both models, the ratio, and TFLOP/s / MFU when known; then
    the peer decoder against the baseline decoder, timed in its own interleaved windows."""
    lines = ["| measurement | DGAE img/s | baseline img/s | DGAE / baseline | DGAE TFLOP/s | DGAE MFU |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for key, t in dgae.items():
        ref_key = "decode" if key.startswith("decode") else key
        ref = baseline.get(f"{ref_key} (vs {key})") or baseline.get(ref_key)
        ratio = f"{t.images_per_s / ref.images_per_s:.3f}" if ref else "–"
        tflops = t.flops_per_image * t.images_per_s / 1e12 if t.flops_per_image else None
        mfu = f"{tflops / peak:.1%}" if tflops and peak else "–"
        lines.append(
            f"| {key} | {t.images_per_s:.1f} | {ref.images_per_s:.1f} | {ratio} | "
            f"{f'{tflops:.1f}' if tflops else '–'} | {mfu} |"
            if ref else f"| {key} | {t.images_per_s:.1f} | – | – | – | – |"
        )  # fmt: skip
    if peer and "decode" in peer:
        ref = baseline["decode (vs peer)"].images_per_s
        rate = peer["decode"].images_per_s
        lines += ["", "| peer (same widths, random weights) | img/s | baseline decoder img/s | "
                  "baseline / peer |", "|---|---|---|---|",
                  f"| diffusers AutoencoderKL decode | {rate:.1f} | {ref:.1f} | "
                  f"{ref / rate:.3f} |"]  # fmt: skip
    return "\n".join(lines) + "\n"
