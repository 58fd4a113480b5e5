"""The plain-torch FID InceptionV3 (pytorch-fid layout) against the reference TorchScript network:
the same weights, renamed, must give the same pool3 features."""

import warnings

import pytest
import torch

from conftest import weights_present
from dgae.evaluation.inception import InceptionFeatures, is_torchscript
from dgae.evaluation.inception_net import FIDInceptionV3, load_pt_inception

BLOCKS = {
    "mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
    "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c",
}  # fmt: skip
STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
        "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}  # fmt: skip
A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
     "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
     "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}  # fmt: skip
B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
     "tower.conv_2": "branch3x3dbl_3"}  # fmt: skip
C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
     "tower.conv_2": "branch7x7_3", "tower_2.conv": "branch_pool",
     **{f"tower_1.conv{'_' + str(i) if i else ''}": f"branch7x7dbl_{i + 1}" for i in range(5)}}  # fmt: skip
D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
     **{f"tower_1.conv{'_' + str(i) if i else ''}": f"branch7x7x3_{i + 1}" for i in range(4)}}  # fmt: skip
E = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
     "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
     "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
     "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}  # fmt: skip
KIND = {
    "5b": A,
    "5c": A,
    "5d": A,
    "6a": B,
    "6b": C,
    "6c": C,
    "6d": C,
    "6e": C,
    "7a": D,
    "7b": E,
    "7c": E,
}
PARAM = {
    "weight": "conv.weight",
    "beta": "bn.bias",
    "mean": "bn.running_mean",
    "var": "bn.running_var",
}


def torchscript_to_pytorch_fid(state):
    """Rename the TF-graph TorchScript parameters to pytorch-fid's (BN gamma is 1 in TF)."""
    out = {}
    for key, value in state.items():
        module, param = key.rsplit(".", 1)
        head, _, rest = module.partition(".")
        if head in STEM:
            name = STEM[head]
        else:
            block = BLOCKS[head]
            name = f"{block}.{KIND[block.split('_')[1]][rest]}"
        out[f"{name}.{PARAM[param]}"] = value
        if param == "beta":
            out[f"{name}.bn.weight"] = torch.ones_like(value)
    return out


@pytest.mark.skipif(not weights_present("fid-inception"), reason="run `make weights`")
def test_plain_torch_inception_matches_the_reference_network(tmp_path):
    from dgae.weights import weight_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.jit.load(str(weight_path("fid-inception")), map_location="cpu").eval()
    state = {k.removeprefix("net.layers."): v for k, v in ref.state_dict().items()}
    converted = torchscript_to_pytorch_fid(state)
    assert set(converted) == {k for k in FIDInceptionV3().state_dict() if "num_batches" not in k}
    converted["fc.weight"] = torch.zeros(1008, 2048)  # pytorch-fid files carry the logits layer
    torch.save(converted, tmp_path / "pt_inception-2015-12-05.pth")
    assert is_torchscript(weight_path("fid-inception"))
    assert not is_torchscript(tmp_path / "pt_inception-2015-12-05.pth")
    net = load_pt_inception(tmp_path / "pt_inception-2015-12-05.pth")
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(net(x), ref(x), atol=1e-4)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    a = InceptionFeatures()(images)
    b = InceptionFeatures(weights=tmp_path / "pt_inception-2015-12-05.pth")(images)
    assert torch.allclose(a, b, atol=0.05)  # same net, inputs differ by (x-128)/128 vs x/127.5-1
    with pytest.raises(ValueError, match="not a pt_inception"):
        torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
        load_pt_inception(tmp_path / "bad.pth")


@pytest.mark.skipif(not weights_present("fid-inception"), reason="run `make weights`")
def test_eval_accepts_a_pt_inception_file(tmp_path):
    import json

    from dgae import build_autoencoder, get_preset
    from dgae.cli.main import main
    from dgae.weights import weight_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.jit.load(str(weight_path("fid-inception")), map_location="cpu")
    state = {k.removeprefix("net.layers."): v for k, v in ref.state_dict().items()}
    torch.save(torchscript_to_pytorch_fid(state), tmp_path / "pt_inception.pth")
    build_autoencoder(get_preset("baseline-tiny").model).save_pretrained(tmp_path / "model")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tmp_path / "model"), "--data", "photos", "--resolution", "16",
                 "--num-images", "4", "--perceptual", "none", "--no-progress", "--out", str(out),
                 "--fid-weights", str(tmp_path / "pt_inception.pth")]) == 0  # fmt: skip
    assert json.loads((out / "eval.json").read_text())["fid_network"] == "pt_inception-2015-12-05"
