"""Exponential moving average of a model's weights (the exported inference weights)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from dgae.training.fsdp import full_tensor


class EMA(nn.Module):
    """A shadow copy updated as p_ema <- d p_ema + (1 - d) p after each optimiser step.

    The decay warms up as min(decay, (1 + n) / (10 + n)) so early averages are not dominated by
    the random initialisation. Buffers (latent statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        n = int(self.num_updates)
        d = min(self.decay, (1 + n) / (10 + n))
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(full_tensor(p.detach()).to(ema_p.dtype), 1.0 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(full_tensor(b))
        self.num_updates += 1
