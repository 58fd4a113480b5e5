"""FSDP2 (``fully_shard``) for decoders that do not fit one GPU: sharding and full state dicts.

Every block that declares ``fsdp_unit = True`` (the U-Net's residual and attention blocks, the
DiT's transformer blocks) becomes its own FSDP unit, then the root. Checkpoints hold full
(unsharded) state gathered to CPU, so a run can resume with or without FSDP and any world size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard_units(module: nn.Module) -> list[nn.Module]:
    """The sub-modules of ``module`` that become FSDP units: trainable blocks whose class sets
    ``fsdp_unit = True``."""
    return [
        sub
        for sub in list(module.modules())[1:]
        if getattr(sub, "fsdp_unit", False) and any(p.requires_grad for p in sub.parameters())
    ]


def shard(module: nn.Module) -> nn.Module:
    """Apply ``fully_shard`` to each of :func:`shard_units` and to ``module`` itself (in place)."""
    for sub in shard_units(module):
        fully_shard(sub)
    fully_shard(module)
    return module


def is_sharded(module: nn.Module) -> bool:
    return any(type(p).__name__ == "DTensor" for p in module.parameters())


def model_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Full state dict (collective under FSDP; complete on rank 0)."""
    return get_model_state_dict(module, options=FULL) if is_sharded(module) else module.state_dict()


def optimizer_state(module: nn.Module, opt: torch.optim.Optimizer) -> dict:
    if is_sharded(module):
        return get_optimizer_state_dict(module, opt, options=FULL)
    return opt.state_dict()


def load_model_state(module: nn.Module, state: dict) -> None:
    if is_sharded(module):
        set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True))
    else:
        module.load_state_dict(state)


def load_optimizer_state(module: nn.Module, opt: torch.optim.Optimizer, state: dict) -> None:
    if is_sharded(module):
        set_optimizer_state_dict(module, opt, state, options=StateDictOptions(full_state_dict=True))
    else:
        opt.load_state_dict(state)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind a (possibly sharded) parameter (collective for DTensors)."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t
