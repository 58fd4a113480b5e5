"""Shared building blocks: embeddings, normalisation, residual and attention blocks."""

from dgae.nn.blocks import (
    AttentionBlock,
    Downsample,
    ResBlock,
    Upsample,
    checkpointed,
    group_norm,
    resize_map,
    timestep_embedding,
)

__all__ = [
    "AttentionBlock",
    "Downsample",
    "ResBlock",
    "Upsample",
    "checkpointed",
    "group_norm",
    "resize_map",
    "timestep_embedding",
]
