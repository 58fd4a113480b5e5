"""Run under torchrun (or alone): train a tiny DGAE, check ranks agree, save rank 0's weights.

Usage: python dist_worker.py OUT [overrides...]
"""

import json
import sys

import torch
import torch.distributed as tdist

from dgae.autoencoder_training import train_autoencoder
from dgae.config import apply_overrides, get_preset
from dgae.training.distributed import cleanup, init_distributed
from dgae.training.fsdp import full_tensor

out, overrides = sys.argv[1], sys.argv[2:]
cfg = apply_overrides(
    get_preset("dgae-tiny"), ["train.total_steps=4", "train.batch_size=8", *overrides]
)
dist = init_distributed("cpu")
trainer = train_autoencoder(cfg, out, dist, progress=False)
params = trainer.task.modules["model"].parameters()
flat = torch.cat([full_tensor(p.detach()).flatten() for p in params])
spread = 0.0
if dist.enabled:
    gathered = [torch.empty_like(flat) for _ in range(dist.world)]
    tdist.all_gather(gathered, flat)
    spread = max((g - gathered[0]).abs().max().item() for g in gathered)
if dist.is_main:
    torch.save(flat, f"{out}/params.pt")
    with open(f"{out}/ranks.json", "w") as fh:
        json.dump({"world": dist.world, "max_rank_spread": spread}, fh)
cleanup(dist)
