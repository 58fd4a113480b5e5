"""Train a small diffusers ``AutoencoderKL`` on the built-in photos: an "existing VAE" to put a
DGAE decoder behind (``model.encoder.frozen=PATH``) where no pretrained one is at hand offline.

Its recipe is the one-pass baseline's (``baseline-small``: L1 + ST-LPIPS + KL 1e-6, AdamW,
warm-up, gradient clipping, EMA; the same seeded data stream), only the architecture is
diffusers' (``block_out_channels`` 32/64/64 -> f4, one ResNet per block). Writes a diffusers
folder (``save_pretrained``) of the EMA weights to ``OUT/vae``; ``dgae eval --model OUT/vae``
evaluates its own decoder.

Usage: python benchmarks/train_kl_vae.py --out runs/kl-vae --steps 300 --latent-channels 2
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch import Tensor, nn

from dgae.bottleneck import DiagonalGaussian
from dgae.config import apply_overrides, get_preset
from dgae.data import to_model_range
from dgae.data.loader import ResumableSampler, build_dataset, build_loader
from dgae.losses import build_objective
from dgae.training.ema import EMA


class KLAdapter(nn.Module):
    """The AutoencoderKL seen through the baseline objective's interface."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def encode(self, x: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.vae.quant_conv(self.vae.encoder(x)))

    def decoder(self, z: Tensor) -> Tensor:
        return self.vae.decoder(self.vae.post_quant_conv(z))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--latent-channels", type=int, default=2)
    p.add_argument("--preset", default="baseline-small", help="recipe (loss, optimiser, data)")
    args = p.parse_args()
    cfg = apply_overrides(get_preset(args.preset), [f"train.total_steps={args.steps}"])
    t, d = cfg.train, cfg.data
    torch.manual_seed(t.seed)
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=args.latent_channels,
        norm_num_groups=16,
        sample_size=d.resolution,
    )
    model = KLAdapter(vae)
    objective = build_objective(cfg.loss, "baseline")
    ema = EMA(vae, t.ema_decay)
    opt = torch.optim.AdamW(vae.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / t.warmup_steps))
    data = build_dataset(d.spec, d.resolution, "train", t.seed, d.hflip, d.color_augment)
    loader = build_loader(data, t.batch_size, ResumableSampler(len(data), seed=t.seed))
    gen = torch.Generator().manual_seed(t.seed)
    t0 = time.perf_counter()
    for step, batch in zip(range(args.steps), itertools.cycle(loader), strict=False):
        terms = objective(model, to_model_range(batch.images), gen)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        nn.utils.clip_grad_norm_(vae.parameters(), t.grad_clip)
        opt.step()
        warmup.step()
        ema.update(vae)
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {terms['loss'].item():.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    out = Path(args.out) / "vae"
    ema.model.save_pretrained(out)
    print(f"wrote {out} ({args.steps} steps x {t.batch_size}, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
