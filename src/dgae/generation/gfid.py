"""gFID and KID of generated images against a reference split, with the evaluation protocol's
feature network and cached reference features."""

from __future__ import annotations

import torch
from torch import Tensor

from dgae.data.loader import build_dataset
from dgae.evaluation.metrics import feature_stats, frechet_distance, kernel_inception_distance
from dgae.evaluation.protocol import EvalSettings, feature_cache_path
from dgae.folders import atomic_path


def reference_features(
    spec: str, resolution: int, features, split: str = "val", num: int = 0
) -> Tensor:
    """Features (N, D) of the reference images (``split`` of ``spec``), cached in $DGAE_HOME."""
    data = build_dataset(spec, resolution, split=split)
    n = len(data) if num <= 0 else min(num, len(data))
    path = feature_cache_path(data, EvalSettings(resolution), n, features.name)
    if path.exists():
        return torch.load(path, weights_only=True).double()
    feats = []
    for start in range(0, n, 64):
        feats.append(features(torch.stack([data[i][0] for i in range(start, min(start + 64, n))])))
    out = torch.cat(feats).float()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(out, tmp)
    return out.double()


def generation_scores(images: Tensor, reference: Tensor, features, seed: int = 0) -> dict:
    """{"gfid", "kid", "kid_std", "num_samples"} of uint8 ``images`` against reference features."""
    fake = features(images)
    mu_r, s_r = feature_stats(reference)
    mu_f, s_f = feature_stats(fake)
    kid, kid_std = kernel_inception_distance(reference, fake, seed=seed)
    return {"gfid": frechet_distance(mu_r, s_r, mu_f, s_f), "kid": kid, "kid_std": kid_std,
            "num_samples": len(images)}  # fmt: skip
