"""The reconstruction protocol: one fixed procedure so numbers are reproducible to the digit.

1. Images: the dataset's evaluation split, shorter side resized to R (never upsampled: smaller
   images are an error) and centre-cropped to R x R, as uint8.
2. Reconstruction of x = uint8 / 127.5 - 1 from the posterior mean; the decoder noise of image i
   comes from its own generator, ``item_generators(seed, [i])`` (batch- and world-size-free).
3. Reconstructions are rounded to uint8 before any metric.
4. PSNR and SSIM per image on uint8; perceptual distance (LPIPS-VGG when its weights are
   present, else ST-LPIPS-VGG, always reported by name); rFID and KID from Inception pool3
   features of all reconstructions against all originals (the originals' features are cached).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from dgae.data.datasets import FileDataset, content_key
from dgae.data.transforms import to_model_range, to_uint8
from dgae.diffusion import network_evaluations
from dgae.evaluation.metrics import (
    feature_stats,
    frechet_distance,
    kernel_inception_distance,
    psnr,
    ssim,
)
from dgae.evaluation.models import EvalModel
from dgae.folders import atomic_path
from dgae.random import item_generators
from dgae.training.distributed import DistInfo
from dgae.weights import dgae_home

PROTOCOL_VERSION = 1
MIN_FID_IMAGES = 2048  # below the feature dimension the covariance is rank-deficient


@dataclass
class EvalSettings:
    resolution: int
    steps: tuple[int, ...] = (1, 2, 4, 8, 25, 50)
    num_images: int = 0  # 0 = the whole split
    seed: int = 0
    batch_size: int = 16


def parse_steps(text: str) -> tuple[int, ...]:
    """'0,1,2,4' -> (0, 1, 2, 4) (0: the prior head's image alone); negatives and non-numbers
    are errors naming the value."""
    steps = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit():
            raise ValueError(f"--steps: {part!r} is not an NFE; expected integers >= 0 like 1,2,4")
        steps.append(int(part))
    return tuple(dict.fromkeys(steps))


def check_image_sizes(dataset: Dataset, indices: list[int], resolution: int) -> None:
    """Refuse images smaller than the evaluation resolution (upsampling would flatter scores)."""
    if not isinstance(dataset, FileDataset):
        if getattr(dataset, "resolution", resolution) < resolution:
            raise ValueError(
                f"{dataset.source}: images are {dataset.resolution}px, smaller than the "
                f"evaluation resolution {resolution}"
            )
        return
    small = []
    for i in indices:
        try:
            with Image.open(dataset.paths[i]) as img:
                if min(img.size) < resolution:
                    small.append(f"{dataset.paths[i]} ({img.size[0]}x{img.size[1]})")
        except OSError:
            continue  # unreadable files are skipped and counted later
    if small:
        raise ValueError(
            f"{len(small)} image(s) are smaller than the evaluation resolution {resolution}, "
            f"e.g. {small[0]}; evaluate at a lower --resolution or remove them"
        )


def _gather(obj, dist: DistInfo) -> list:
    if not dist.enabled:
        return [obj]
    out = [None] * dist.world
    torch.distributed.all_gather_object(out, obj)
    return out


def feature_cache_path(dataset: Dataset, settings: EvalSettings, n: int, network: str) -> Path:
    """Where the reference features of the first ``n`` images of ``dataset`` are cached: keyed
    by their content (:func:`content_key`), never by a name that may point elsewhere."""
    key = json.dumps([PROTOCOL_VERSION, content_key(dataset, n), settings.resolution, n, network])
    return dgae_home() / "fid_stats" / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".pt")


def evaluate(
    model: EvalModel,
    dataset: Dataset,
    spec: str,
    settings: EvalSettings,
    dist: DistInfo,
    features,
    perceptual,
    progress: bool = True,
) -> dict:
    """Run the protocol; returns the results dict (identical for any world or batch size).

    ``features``: uint8 (N, 3, H, W) -> (N, D); ``perceptual``: an LPIPS-like module or None.
    """
    n = len(dataset) if settings.num_images <= 0 else min(settings.num_images, len(dataset))
    mine = list(range(dist.rank, n, dist.world))
    check_image_sizes(dataset, mine, settings.resolution)
    steps = settings.steps if model.is_diffusion else (1,)
    cache = feature_cache_path(dataset, settings, n, getattr(features, "name", "custom"))
    need_real = not cache.exists()
    rows: dict[int, dict] = {i: {} for i in mine}
    real_feats: dict[int, torch.Tensor] = {}
    skipped = 0
    bar = tqdm(total=len(mine) * len(steps), disable=not (progress and dist.is_main), unit="img")
    for start in range(0, len(mine), settings.batch_size):
        idx = mine[start : start + settings.batch_size]
        items = [dataset[i] for i in idx]
        skipped += sum(len(it[2]) for it in items)
        real = torch.stack([it[0] for it in items])  # (b, 3, R, R) uint8
        if need_real:
            real_feats.update(zip(idx, features(real), strict=True))
        x = to_model_range(real)
        for nfe in steps:
            device = _device(model)
            gens = item_generators(settings.seed, idx, "noise", device)
            t0 = time.perf_counter()
            rec = to_uint8(model.reconstruct(x.to(device), nfe, gens).cpu())
            dt = (time.perf_counter() - t0) / len(idx)
            p = psnr(real, rec)
            s = ssim(real, rec)
            d = perceptual(x, to_model_range(rec)) if perceptual is not None else None
            f = features(rec)
            for j, i in enumerate(idx):
                rows[i][nfe] = {
                    "psnr": float(p[j]),
                    "ssim": float(s[j]),
                    "perceptual": float(d[j]) if d is not None else None,
                    "features": f[j].float(),
                    "seconds": dt,
                }
            bar.update(len(idx))
    bar.close()
    all_rows, all_real, skipped_total = {}, {}, 0
    for part_rows, part_real, part_skipped in _gather((rows, real_feats, skipped), dist):
        all_rows.update(part_rows)
        all_real.update(part_real)
        skipped_total += part_skipped
    if not dist.is_main:
        return {}
    if need_real:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            torch.save(torch.stack([all_real[i] for i in range(n)]).float(), tmp)
    real = torch.load(cache, weights_only=True).double()
    mu_r, sig_r = feature_stats(real)
    order = range(n)
    results = []
    for nfe in steps:
        fake = torch.stack([all_rows[i][nfe]["features"] for i in order]).double()
        mu_f, sig_f = feature_stats(fake)
        kid, kid_std = kernel_inception_distance(real, fake, seed=settings.seed)

        def col(key: str, nfe: int = nfe) -> list:
            return [all_rows[i][nfe][key] for i in order]

        perc = col("perceptual")
        results.append({
            "steps": nfe,
            "nfe": network_evaluations(getattr(model, "sampler", None) or "euler", nfe)
            if model.is_diffusion
            else 1,
            "psnr": _mean(col("psnr")),
            "ssim": _mean(col("ssim")),
            "perceptual": _mean(perc) if perc[0] is not None else None,
            "rfid": frechet_distance(mu_r, sig_r, mu_f, sig_f),
            "kid": kid,
            "kid_std": kid_std,
            "seconds_per_image": _mean(col("seconds")),
        })  # fmt: skip
    warnings = []
    if n < MIN_FID_IMAGES:
        warnings.append(
            f"rFID on {n} images (< {MIN_FID_IMAGES}) is strongly biased and only comparable "
            "between models evaluated on the same images; KID is reported beside it"
        )
    if skipped_total:
        warnings.append(
            f"{skipped_total} unreadable image(s) were skipped (the next readable one stood in)"
        )
    return {
        "protocol_version": PROTOCOL_VERSION,
        "model": model.name,
        "data": spec,
        "settings": asdict(settings),
        "num_images": n,
        "perceptual_metric": getattr(perceptual, "name", None),
        "fid_network": getattr(features, "name", "custom"),
        "sampler": getattr(model, "sampler", None) if model.is_diffusion else None,
        "results": results,
        "warnings": warnings,
        "complete": True,
    }


def _mean(values: list[float]) -> float:
    return float(torch.tensor(values, dtype=torch.float64).mean())


def _device(model: EvalModel) -> torch.device:
    inner = getattr(model, "model", None) or getattr(model, "vae", None)
    return next(inner.parameters()).device
