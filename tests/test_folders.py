"""The one folder convention: format/version headers and atomic writes."""

from __future__ import annotations

import json

import pytest
import torch

from dgae import Autoencoder, build_autoencoder, get_preset
from dgae.folders import FORMATS, atomic_path, check_header, header, write_json


def test_atomic_write_replaces_on_success_and_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"v": 1})
    with pytest.raises(RuntimeError, match="disk"):
        with atomic_path(path) as tmp:
            tmp.write_text('{"v": 2, "half')
            raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary left
    write_json(path, {"v": 3})
    assert json.loads(path.read_text()) == {"v": 3}


def test_headers_name_the_format_and_version():
    for kind in FORMATS:
        check_header(header(kind), kind, "x")
    with pytest.raises(ValueError, match=r"x is not a dgae-ldm record \(format='dgae-pack'\)"):
        check_header(header("dgae-pack"), "dgae-ldm", "x")
    with pytest.raises(ValueError, match="dgae-pack version 7; this release of dgae reads"):
        check_header({"format": "dgae-pack", "version": 7}, "dgae-pack", "x")


def test_model_folders_carry_the_header_and_legacy_folders_still_load(tmp_path):
    torch.manual_seed(0)
    model = build_autoencoder(get_preset("dgae-tiny").model)
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert {k: meta[k] for k in ("format", "version")} == header("dgae-autoencoder")
    # a folder written before the shared header (format_version only)
    legacy = {
        "format_version": 1,
        **{k: v for k, v in meta.items() if k not in ("format", "version")},
    }
    (tmp_path / "m" / "config.json").write_text(json.dumps(legacy))
    again = Autoencoder.from_pretrained(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values(), strict=True))  # fmt: skip


def test_hub_names_download_and_offline_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="'org/no-model'.*HF_HUB_OFFLINE is set"):
        Autoencoder.from_pretrained("org/no-model")
    torch.manual_seed(0)
    build_autoencoder(get_preset("dgae-tiny").model).save_pretrained(tmp_path / "snap")
    asked = []

    def fake_download(repo_id, allow_patterns):
        asked.append((repo_id, sorted(allow_patterns)))
        return str(tmp_path / "snap")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    assert Autoencoder.from_pretrained("org/tiny-dgae").config.latent_channels == 2
    assert asked == [("org/tiny-dgae", ["config.json", "model.safetensors"])]
    with pytest.raises(FileNotFoundError, match="model folder missing does not exist"):
        Autoencoder.from_pretrained("missing/")  # not a Hub id: the local-folder error
