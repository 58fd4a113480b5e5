"""Each set of named choices is stated once (a Literal in dgae.config); the registries that
implement the choices and the CLI's ``choices`` must agree with it."""

from __future__ import annotations

import pytest

from dgae.cli.main import build_parser
from dgae.config import (
    ConfigError,
    PathName,
    PerceptualName,
    PredictionName,
    SamplerName,
    choices,
    get_preset,
)
from dgae.diffusion import PATHS, from_x0_eps
from dgae.diffusion.samplers import SAMPLERS
from dgae.losses.perceptual import build_perceptual
from dgae.weights import MissingWeightsError


def test_registries_implement_exactly_the_config_choices():
    assert sorted(SAMPLERS) == sorted(choices(SamplerName))
    assert sorted(PATHS) == sorted(choices(PathName))


def test_every_prediction_and_perceptual_name_is_implemented():
    import torch

    x = torch.zeros(1, 1)
    for kind in choices(PredictionName):
        from_x0_eps(x, x, kind, torch.full((1,), 0.5), PATHS["flow"]())
    for name in choices(PerceptualName):
        try:
            build_perceptual(name)
        except MissingWeightsError:
            pass  # implemented; its weight file is optional (lpips-vgg's VGG16)
    with pytest.raises(ConfigError, match="is not valid"):
        build_perceptual("alexnet")


def test_cli_choices_come_from_the_config_types():
    with_sampler = 0
    for name, cmd in build_parser()[1].items():
        for action in cmd.options.values():
            if "--sampler" in action.option_strings:
                assert tuple(action.choices) == choices(SamplerName), name
                with_sampler += 1
            if "--perceptual" in action.option_strings:
                assert set(action.choices) - {"auto"} <= set(choices(PerceptualName)), name
    assert with_sampler >= 3  # reconstruct, decode, eval


def test_presets_use_only_declared_choices():
    for name in ("dgae-tiny", "baseline-small", "dgae-B"):
        get_preset(name).validate()
