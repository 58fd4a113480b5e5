"""Process-group set-up for single-process and ``torchrun`` runs (NCCL on GPU, gloo on CPU)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1); pick the device.

    ``device``: 'cpu', 'cuda' or None (CUDA when available). Never called implicitly by models.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, dev)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of ``value`` over ranks (returns a new tensor; identity in one process)."""
    if not info.enabled:
        return value.clone()
    value = value.to(info.device)  # NCCL reduces device tensors only
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value.cpu()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_session(device: str | None = None) -> Iterator[DistInfo]:
    """``init_distributed`` for a command's lifetime; the process group is destroyed on exit."""
    info = init_distributed(device)
    try:
        yield info
    finally:
        cleanup(info)
