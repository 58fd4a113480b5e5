import pytest
import torch

from conftest import weights_present
from dgae.losses.perceptual import build_perceptual, load_st_lpips, tiny_random_lpips
from dgae.weights import MissingWeightsError


def _pair():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(3, 3, 64, 64, generator=g)).clamp(-1, 1)
    return x, y


def test_tiny_trunk_distance_properties():
    lp = tiny_random_lpips()
    x, y = _pair()
    assert torch.equal(lp(x, x), torch.zeros(3))
    d = lp(x, y)
    assert d.shape == (3,) and (d > 0).all()
    assert torch.allclose(d, lp(y, x), rtol=1e-5)  # symmetric
    assert (lp(x, (x + y) / 2) < d).all()  # closer image, smaller distance
    y.requires_grad_(True)
    lp(x, y).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in lp.parameters())


# Values from the reference ST-LPIPS implementation (stlpips-pytorch 0.0.2) on the same inputs.
REFERENCE = {
    "vgg": [0.012468600645661354, 0.012223551981151104, 0.01284161489456892],
    "alex": [0.005202096421271563, 0.006322349887341261, 0.00622576242312789],
}


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_st_lpips_matches_reference(net):
    if not weights_present(f"st-lpips-{net}"):
        pytest.skip(f"st-lpips-{net} weights not cached; run `make weights`")
    lp = load_st_lpips(net)
    x, y = _pair()
    assert torch.allclose(lp(x, y), torch.tensor(REFERENCE[net]), rtol=1e-4)
    assert torch.equal(lp(x, x), torch.zeros(3))


def test_missing_weights_name_file_place_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DGAE_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        build_perceptual("st-lpips-vgg")
    assert "st-lpips-vgg" in str(err.value) and str(tmp_path) in str(err.value)
    assert "make weights" in str(err.value)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        build_perceptual("lpips-vgg")
    with pytest.raises(ValueError, match="loss.perceptual='squeeze' is not valid"):
        build_perceptual("squeeze")


def test_lpips_vgg_loads_a_torchvision_state_dict(tmp_path, monkeypatch):
    """The paper's LPIPS-VGG: torchvision's VGG16 key layout + the LPIPS heads (random values
    here; the real file is user-supplied)."""
    import shutil

    from dgae.losses.perceptual import load_lpips_vgg, vgg16_trunk
    from dgae.weights import weight_path

    if not weights_present("lpips-vgg-heads"):
        pytest.skip("lpips-vgg-heads not cached; run `make weights`")
    heads = weight_path("lpips-vgg-heads")
    features, _ = vgg16_trunk(shift_tolerant=False)
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored, as in the real file
    monkeypatch.setenv("DGAE_HOME", str(tmp_path))
    torch.save(state, tmp_path / "vgg16-397923af.pth")
    shutil.copy(heads, tmp_path / heads.name)
    lp = load_lpips_vgg()
    x, y = _pair()
    assert lp.name == "LPIPS-VGG" and (lp(x, y) > 0).all() and torch.equal(lp(x, x), torch.zeros(3))
    assert torch.equal(lp.features[0].weight, state["features.0.weight"])
