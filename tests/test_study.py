"""The compression study: cell names, the grid, resumable cells, stale results, the report."""

import json

import pytest
import torch

from dgae.config import ConfigError
from dgae.experiments.study import ARMS, Cell, StudySettings, cell_config, grid, run_study


def test_cell_names_round_trip_and_bad_names_are_errors():
    for cell in (Cell("dgae-head", 8, 4), Cell("baseline", 16, 16, 64), Cell("dgae", 4, 2)):
        assert Cell.parse(cell.name) == cell
    for bad in ("gan-f8c4", "dgae-f8", "dgae-fxc4"):
        with pytest.raises(ValueError, match="ARM-fFcC"):
            Cell.parse(bad)


def test_grid_and_width_ladder():
    cells = grid(["baseline", "dgae-head"], [4, 8], [2], widths=(16, 64), width_factor=8)
    assert [c.name for c in cells] == [
        "baseline-f4c2", "dgae-head-f4c2",
        "baseline-f8c2", "baseline-f8c2-w16", "baseline-f8c2-w64",
        "dgae-head-f8c2", "dgae-head-f8c2-w16", "dgae-head-f8c2-w64",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown arm"):
        grid(["vqgan"], [8], [4])


def test_every_arm_builds_a_valid_config_at_f4_and_f8():
    # arms are recorded experiments: each must stay a valid config of its pinned family
    # (cell_config validates), and an arm's own overrides (widths, options) reach the config
    s = StudySettings()
    for arm in ARMS:
        for f, c in ((4, 2), (8, 4)):
            m = cell_config(Cell(arm, f, c), s).model
            assert (m.downsample_factor, m.latent_channels) == (f, c), arm
    lite = cell_config(Cell("dgae-lite", 8, 4), s).model
    assert (lite.decoder.base_channels, lite.baseline_decoder.base_channels) == (16, 24)
    assert cell_config(Cell("dgae-trunk-wholehead", 8, 4), s).model.decoder.head_full_resolution


def test_cell_config_sets_geometry_budget_and_width():
    s = StudySettings(resolution=64, steps=100, batch_size=8)
    cfg = cell_config(Cell("dgae-head", 16, 8, 48), s)
    m = cfg.model
    assert (m.downsample_factor, m.latent_channels, m.decoder.base_channels) == (16, 8, 48)
    assert m.decoder.prior_head and (cfg.train.total_steps, cfg.train.batch_size) == (100, 8)
    assert cell_config(Cell("baseline", 8, 4, 48), s).model.baseline_decoder.base_channels == 48
    with pytest.raises(ConfigError, match="unknown override key"):
        cell_config(Cell("dgae", 8, 4), StudySettings(overrides=("model.nope=1",)))


def fake_features(images):  # uint8 (N, 3, H, W) -> (N, 4): cheap stand-in for Inception
    x = images.float() / 255
    return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x[:, 0].mean((1, 2)),
                        x[:, 2].mean((1, 2))], 1)  # fmt: skip


def test_study_runs_resumes_and_never_reports_stale_cells(tmp_path):
    s = StudySettings(size="tiny", resolution=16, steps=3, batch_size=2, nfes=(1, 2),
                      eval_images=6, overrides=("train.stats_images=4",))  # fmt: skip
    cells = [Cell("dgae-head", 4, 2), Cell("baseline", 4, 2), Cell("dgae-head-v", 4, 2)]
    report = run_study(cells, s, tmp_path, metrics=(fake_features, None))
    text = report.read_text()
    assert "| dgae-head | 4 | 2 | 32 |" in text and "| baseline | 4 | 2 | 32 |" in text
    # the ablation table names each arm's one change and its effect at the same NFE
    assert "## Ablations" in text and "| dgae-head-v | `model.diffusion.prediction=v` | 1 |" in text
    assert (tmp_path / "quality_vs_latent.png").exists()
    result = tmp_path / "dgae-head-f4c2" / "result.json"
    first = json.loads(result.read_text())
    assert [r["nfe"] for r in first["eval"]["results"]] == [1, 2]
    assert first["train_images"] == 6 and first["latent_elements"] == 32
    stamp = result.stat().st_mtime_ns
    run_study(cells, s, tmp_path, metrics=(fake_features, None))  # finished: read back
    assert result.stat().st_mtime_ns == stamp
    s.steps = 5  # a longer budget continues the run and replaces the stale result
    run_study(cells[:1], s, tmp_path, metrics=(fake_features, None))
    again = json.loads(result.read_text())
    assert again["config"]["train"]["total_steps"] == 5 and again["train_images"] == 10
