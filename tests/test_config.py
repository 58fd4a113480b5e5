import json

import pytest

from dgae.config import (
    PRESETS,
    ConfigError,
    DiffusionConfig,
    ExperimentConfig,
    apply_overrides,
    from_dict,
    get_preset,
    load_json,
    save_json,
    to_dict,
)


def test_every_preset_validates_and_round_trips(tmp_path):
    get_preset("dgae-tiny")  # registers presets
    assert {"dgae-tiny", "baseline-tiny", "dgae-B", "baseline-B", "dgae-XL"} <= set(PRESETS)
    for name, make in PRESETS.items():
        cfg = get_preset(name, type(make()))
        save_json(cfg, tmp_path / "c.json")
        assert load_json(type(cfg), tmp_path / "c.json") == cfg


def test_overrides_apply_with_types(tiny_cfg):
    cfg = apply_overrides(
        tiny_cfg,
        [
            "model.decoder.base_channels=24",
            "model.diffusion.logit_std=0.5",
            "model.decoder.inject_z_every_level=false",
            "model.decoder.channel_mult=1,2,2",
        ],
    )
    assert cfg.model.decoder.base_channels == 24
    assert cfg.model.diffusion.logit_std == 0.5
    assert cfg.model.decoder.inject_z_every_level is False
    assert cfg.model.decoder.channel_mult == (1, 2, 2)
    assert tiny_cfg.model.decoder.base_channels == 8  # the original is untouched


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.decoder.widht=3", "unknown override key 'model.decoder.widht'"),
        ("model.decoder.base_channels=abc", "expected int"),
        ("model.decoder.inject_z_every_level=maybe", "expected true or false"),
        ("model.decoder", "not of the form key=value"),
        ("model.decoder=3", "unknown override key"),
    ],
)
def test_bad_overrides_name_the_problem(tiny_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(tiny_cfg, [override])


def test_a_step_count_override_wins_over_a_preset_image_budget():
    # dgae-B measures its length in images (50 M); train.total_steps=60 must mean 60 steps
    # (it was silently ignored: a 60-step GPU check ran for 1.56 M steps)
    from dgae.training.loop import total_steps

    cfg = apply_overrides(get_preset("dgae-B"), ["train.total_steps=60"])
    assert total_steps(cfg.train) == 60 and cfg.train.total_images == 0
    cfg = apply_overrides(get_preset("dgae-B"), ["train.total_steps=60", "train.total_images=640"])
    assert total_steps(cfg.train) == 640 // cfg.train.batch_size  # the last override wins
    assert total_steps(get_preset("dgae-B").train) == 50_000_000 // 32


def test_unknown_keys_in_json_are_rejected(tiny_cfg):
    data = to_dict(tiny_cfg)
    data["model"]["encoder"]["bogus"] = 1
    with pytest.raises(ConfigError, match=r"model\.encoder\.bogus"):
        from_dict(ExperimentConfig, json.loads(json.dumps(data)))


def test_unknown_preset_and_bad_choice():
    with pytest.raises(ConfigError, match="known presets"):
        get_preset("dgae-huge")
    cfg = get_preset("dgae-tiny")
    with pytest.raises(ConfigError, match=r"model\.diffusion\.path='ve' is not valid"):
        apply_overrides(cfg, ["model.diffusion.path=ve"])  # a Literal field: refused on parsing
    with pytest.raises(ConfigError, match=r"diffusion\.path='ve'.*\['flow', 'vp'\]"):
        DiffusionConfig(path="ve").validate()  # and when built in Python
    bad = apply_overrides(cfg, ["model.downsample_factor=6"])
    with pytest.raises(ConfigError, match="downsample_factor=6"):
        bad.validate()


@pytest.mark.parametrize(
    "override, field",
    [("train.checkpoint_every=0", "checkpoint_every"), ("train.log_every=0", "log_every"),
     ("train.sample_every=-1", "sample_every"), ("data.resolution=0", "data.resolution"),
     ("train.total_steps=0", "total_steps"), ("train.lr=0", "train.lr"),
     ("train.ema_decay=1", "ema_decay"), ("train.keep_checkpoints=0", "keep_checkpoints")],
)  # fmt: skip
def test_bad_run_settings_are_rejected_at_config_time(override, field):
    from dgae.config import ConfigError, apply_overrides, get_preset

    with pytest.raises(ConfigError, match=field):
        apply_overrides(get_preset("dgae-tiny"), [override]).validate()


def test_devices_are_checked():
    import torch

    from dgae.cli.common import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    for bad, why in (("gpu7", "not a device"), ("meta", "expected cpu, cuda")):
        with pytest.raises(ValueError, match=why):
            pick_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
