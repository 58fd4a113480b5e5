"""Shared fixtures: tiny configs that build and run in milliseconds on CPU, no network."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_cfg():
    """A tiny DGAE experiment config (f4, c2, 16 px)."""
    from dgae.config import get_preset

    return get_preset("dgae-tiny")


@pytest.fixture
def tiny_baseline_cfg():
    from dgae.config import get_preset

    return get_preset("baseline-tiny")


@pytest.fixture
def images():
    """Four smooth-ish random images (4, 3, 16, 16) in [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 4, 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(x, size=16, mode="bilinear", align_corners=False)


def weights_present(name: str) -> bool:
    from dgae.weights import MissingWeightsError, weight_path

    try:
        weight_path(name)
    except MissingWeightsError:
        return False
    return True


def needs_weights(name: str):
    return pytest.mark.skipif(
        not weights_present(name), reason=f"weight '{name}' not cached; run `make weights`"
    )
