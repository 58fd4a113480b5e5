"""``cache-latents``: encode a dataset once into sharded safetensors with labels and statistics.

Folder layout: ``meta.json`` (autoencoder path and fingerprint, data, mode, shapes, classes and,
once complete, per-channel statistics) and ``shard_XXXXX.safetensors`` holding ``latents``
(n, c, h, w) float32, ``labels`` (n,) int64 and, with flips, ``latents_flipped``. Shards cover
fixed index ranges and are written atomically, so an interrupted run (one process or torchrun,
shards dealt round-robin to ranks) resumes by skipping finished shards and produces identical
files. Posterior samples use one generator per image (seed and index), never a shared stream.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from dgae.autoencoder import CONFIG_NAME, WEIGHTS_NAME, Autoencoder
from dgae.bottleneck import LatentStats, RunningMoments
from dgae.data.datasets import collate
from dgae.data.loader import build_dataset
from dgae.data.transforms import to_model_range
from dgae.folders import atomic_path, check_header, header, write_json
from dgae.random import item_generators
from dgae.training.distributed import DistInfo, barrier


def fingerprint(model_dir: str | Path) -> str:
    """sha256 over an autoencoder folder's config and weights: identifies exactly one model."""
    digest = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        digest.update((Path(model_dir) / name).read_bytes())
    return digest.hexdigest()


def _shard_path(out: Path, i: int) -> Path:
    return out / f"shard_{i:05d}.safetensors"


def _check_meta(out: Path, meta: dict) -> None:
    old = json.loads((out / "meta.json").read_text())
    keys = ("autoencoder", "data", "resolution", "mode", "seed", "flip", "num_items", "shard_size")
    diff = [f"{k}: {old.get(k)!r} vs {meta[k]!r}" for k in keys if old.get(k) != meta[k]]
    if diff:
        raise ValueError(f"{out} holds a cache made with other settings ({'; '.join(diff)})")


@torch.no_grad()
def cache_latents(
    model_dir: str | Path,
    spec: str,
    resolution: int,
    out: str | Path,
    dist: DistInfo,
    *,
    sample: bool = False,
    flip: bool = False,
    seed: int = 0,
    shard_size: int = 4096,
    batch_size: int = 64,
    num_items: int = 0,
    progress: bool = True,
) -> dict:
    """Encode ``spec`` (centre-cropped, no augmentation) into ``out``; returns meta.json's dict."""
    out = Path(out)
    model = Autoencoder.from_pretrained(model_dir, device=dist.device)
    data: Dataset = build_dataset(spec, resolution, "train", seed, augment=False)
    n = len(data) if num_items <= 0 else min(num_items, len(data))
    c, f = model.config.latent_channels, model.downsample_factor
    meta = {
        **header("dgae-latent-cache"),
        "autoencoder": {
            "path": str(Path(model_dir).resolve()),
            "fingerprint": fingerprint(model_dir),
        },
        "data": spec,
        "resolution": resolution,
        "mode": "sample" if sample else "mean",
        "seed": seed,
        "flip": flip,
        "num_items": n,
        "shard_size": shard_size,
        "num_shards": -(-n // shard_size),
        "latent_shape": [c, resolution // f, resolution // f],
        "classes": list(getattr(data, "classes", [])),
        "complete": False,
    }
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if (out / "meta.json").exists():
            _check_meta(out, meta)
        else:
            write_json(out / "meta.json", meta)
    barrier(dist)
    mine = [i for i in range(meta["num_shards"]) if i % dist.world == dist.rank]
    todo = [i for i in mine if not _shard_path(out, i).exists()]
    size = lambda i: min(shard_size, n - i * shard_size)  # noqa: E731
    bar = tqdm(total=sum(map(size, mine)), initial=sum(size(i) for i in mine if i not in todo),
               disable=not (progress and dist.is_main), unit="img", desc="cache-latents")  # fmt: skip
    for shard in todo:
        idx = range(shard * shard_size, min((shard + 1) * shard_size, n))
        parts: dict[str, list[torch.Tensor]] = {"latents": [], "labels": [], "latents_flipped": []}
        loader = DataLoader(Subset(data, list(idx)), batch_size=batch_size, collate_fn=collate)
        for batch in loader:
            x = to_model_range(batch.images.to(dist.device))
            views = [("latents", x)] + ([("latents_flipped", x.flip(-1))] if flip else [])
            for key, view in views:
                post = model.encode(view)
                stream = "posterior" if key == "latents" else "posterior_flipped"
                gens = item_generators(seed, batch.keys, stream, dist.device)
                parts[key].append((post.sample(gens) if sample else post.mode()).float().cpu())
            parts["labels"].append(batch.labels)
            bar.update(len(batch.keys))
        tensors = {k: torch.cat(v).contiguous() for k, v in parts.items() if v}
        with atomic_path(_shard_path(out, shard)) as tmp:
            save_file(tensors, str(tmp))
    bar.close()
    barrier(dist)
    if dist.is_main:
        moments = RunningMoments()
        for i in range(meta["num_shards"]):
            shard = load_file(str(_shard_path(out, i)))
            for key in ("latents", "latents_flipped"):
                if key in shard:
                    moments.update(shard[key])
        stats = LatentStats(c)
        stats.set_from(*moments.result())
        meta.update(stats=stats.to_dict(), complete=True)
        write_json(out / "meta.json", meta)
    barrier(dist)
    return json.loads((out / "meta.json").read_text())


class LatentDataset(Dataset):
    """The cached latents, normalised with the cache's per-channel statistics.

    Items follow the datasets' convention: (latent (c, h, w), label, (), key); with flips the key
    picks the original or the flipped latent, so resumed training sees the same stream.
    """

    def __init__(self, cache_dir: str | Path) -> None:
        cache_dir = Path(cache_dir)
        meta_path = cache_dir / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(
                f"{meta_path} is missing; write a cache with dgae cache-latents"
            )
        self.meta = json.loads(meta_path.read_text())
        check_header(self.meta, "dgae-latent-cache", meta_path)
        if not self.meta.get("complete") or "stats" not in self.meta:
            raise ValueError(f"{cache_dir}: the cache is incomplete or has no statistics; rerun "
                             "dgae cache-latents with the same arguments to finish it")  # fmt: skip
        shards = [load_file(str(_shard_path(cache_dir, i))) for i in range(self.meta["num_shards"])]
        channels = self.meta["latent_shape"][0]
        self.stats = LatentStats.from_dict(self.meta["stats"], channels, str(meta_path))
        views = [torch.cat([s["latents"] for s in shards])]
        if self.meta["flip"]:
            views.append(torch.cat([s["latents_flipped"] for s in shards]))
        self.views = [self.stats.normalize(v) for v in views]
        self.labels = torch.cat([s["labels"] for s in shards])
        self.classes = self.meta["classes"]
        self.num_classes = max(len(self.classes), int(self.labels.max()) + 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int):
        idx = key % len(self.labels)
        view = self.views[(key // len(self.labels)) % len(self.views)]
        return view[idx], int(self.labels[idx]), (), key
