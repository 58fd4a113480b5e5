import gzip
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dgae.data.builtin import TRAIN_PHOTOS, VAL_PHOTOS, PhotoCrops, fashion_mnist, photo_tiles
from dgae.data.datasets import collate
from dgae.data.images import UnreadableImage, load_image
from dgae.data.loader import ResumableSampler, build_dataset
from dgae.data.pack import write_pack
from dgae.data.transforms import to_model_range, to_uint8


def _rgb(h=20, w=24, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.fixture
def odd_folder(tmp_path):
    """An ImageNet-style folder with odd modes, a truncated file and a non-image."""
    root = tmp_path / "imgs"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    Image.fromarray(_rgb()).save(root / "cats" / "rgb.png")
    Image.fromarray(_rgb()[..., 0]).save(root / "cats" / "grey.png")
    Image.fromarray(np.dstack([_rgb(), np.full((20, 24), 128, np.uint8)])).save(
        root / "cats" / "rgba.png"
    )
    Image.fromarray(_rgb()).convert("P").save(root / "dogs" / "palette.png")
    Image.fromarray(_rgb()).convert("CMYK").save(root / "dogs" / "cmyk.jpg")
    Image.fromarray((np.arange(480).reshape(20, 24) * 100).astype(np.uint16)).save(
        root / "dogs" / "deep.png"
    )
    full = (root / "cats" / "rgb.png").read_bytes()
    (root / "dogs" / "truncated.png").write_bytes(full[: len(full) // 2])
    (root / "dogs" / "notes.jpg").write_text("not an image")
    return root


def test_every_mode_becomes_rgb_uint8(odd_folder):
    for name in [
        "cats/grey.png",
        "cats/rgba.png",
        "dogs/palette.png",
        "dogs/cmyk.jpg",
        "dogs/deep.png",
    ]:
        img = load_image(odd_folder / name)
        assert img.dtype == np.uint8 and img.shape == (20, 24, 3), name
    deep = load_image(odd_folder / "dogs/deep.png")
    assert deep.max() == round(47900 / 65535 * 255)  # 16-bit scaled to 8-bit, not clipped
    for bad in ["dogs/truncated.png", "dogs/notes.jpg"]:
        with pytest.raises(UnreadableImage, match=bad.split("/")[1]):
            load_image(odd_folder / bad)


def test_folder_labels_and_skips_are_reported(odd_folder):
    ds = build_dataset(str(odd_folder), 16, split="val")
    assert ds.classes == ["cats", "dogs"] and len(ds) == 8
    items = [ds[i] for i in range(len(ds))]
    batch = collate(items)
    assert batch.images.shape == (8, 3, 16, 16) and batch.images.dtype == torch.uint8
    skipped = {p.split("/")[-1] for p in batch.skipped}
    assert skipped == {"truncated.png", "notes.jpg"}
    assert set(batch.labels.tolist()) == {0, 1}


def test_no_readable_image_is_an_error_naming_the_path(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_text("nope")
    ds = build_dataset(str(tmp_path / "bad"), 16)
    with pytest.raises(ValueError, match=r"bad: none of its 1 image files could be read"):
        ds[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no image files found"):
        build_dataset(str(tmp_path / "empty"), 16)
    with pytest.raises(ValueError, match="'nowhere' is not 'photos'"):
        build_dataset("nowhere", 16)


def test_list_file(tmp_path, odd_folder):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# comment\n{odd_folder}/cats/rgb.png 3\nimgs/dogs/palette.png 1\n")
    ds = build_dataset(str(lst), 16, split="val")
    assert len(ds) == 2 and ds[0][1] == 3 and ds[1][1] == 1


def test_pack_resumes_and_matches(tmp_path, odd_folder, monkeypatch):
    import dgae.data.pack as pack

    monkeypatch.setattr(pack, "CHUNK", 3)
    calls = {"n": 0}
    real = pack._write_meta

    def crash_after_two(out, meta):  # simulate a kill after the second chunk
        real(out, meta)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(pack, "_write_meta", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        write_pack(str(odd_folder), 16, tmp_path / "pack", workers=1)
    assert json.loads((tmp_path / "pack" / "meta.json").read_text())["done"] == 6
    with pytest.raises(ValueError, match="pack is incomplete"):
        build_dataset(str(tmp_path / "pack"), 16)
    monkeypatch.setattr(pack, "_write_meta", real)
    meta = write_pack(str(odd_folder), 16, tmp_path / "pack", workers=1)
    assert meta["count"] == 6 and meta["skipped"] == 2 and meta["complete"]
    assert len((tmp_path / "pack" / "skipped.txt").read_text().splitlines()) == 2
    packed = build_dataset(str(tmp_path / "pack"), 16, split="val")
    direct = build_dataset(str(odd_folder), 16, split="val")
    readable = [i for i in range(8) if not direct[i][2]]
    assert len(packed) == 6
    for j, i in enumerate(readable):
        assert torch.equal(packed[j][0], direct[i][0]) and packed[j][1] == direct[i][1]
    with pytest.raises(ValueError, match="packed at resolution 16, but 32"):
        build_dataset(str(tmp_path / "pack"), 32)


def test_photos_split_by_source_and_deterministic():
    assert not set(TRAIN_PHOTOS) & set(VAL_PHOTOS)
    crops = PhotoCrops(32, seed=1)
    assert torch.equal(crops[5][0], PhotoCrops(32, seed=1)[5][0])
    assert not torch.equal(crops[5][0], crops[6][0])
    val = photo_tiles(32)
    assert len(val) > 100 and val[0][0].shape == (3, 32, 32)
    assert torch.equal(val[3][0], photo_tiles(32)[3][0])


def test_fashion_mnist_from_idx_files(tmp_path, monkeypatch):
    def idx(path, arr):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(s.to_bytes(4, "big") for s in arr.shape)
        with gzip.open(path, "wb") as fh:
            fh.write(header + arr.astype(np.uint8).tobytes())

    images = np.random.default_rng(0).integers(0, 255, (5, 28, 28))
    idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(5))
    monkeypatch.setenv("DGAE_FASHION_MNIST_DIR", str(tmp_path))
    ds = fashion_mnist("train", hflip=False)
    img, label, _, _ = ds[3]
    assert img.shape == (3, 32, 32) and label == 3
    assert torch.equal(img[0, 2:30, 2:30], torch.from_numpy(images[3].astype(np.uint8)))
    assert torch.equal(img[0], img[2]) and img[0, 0].sum() == 0
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        fashion_mnist("val")


def test_sampler_resumes_and_shards_disjointly():
    full = ResumableSampler(10, seed=3)
    stream = iter(full)
    first = [next(stream) for _ in range(25)]
    resumed = iter(ResumableSampler(10, seed=3, start=7))
    assert [next(resumed) for _ in range(18)] == first[7:]
    shares = [iter(ResumableSampler(10, rank=r, world=2, seed=3)) for r in range(2)]
    r0, r1 = ([next(s) for _ in range(5)] for s in shares)
    assert sorted(r0 + r1) == sorted(first[:10]) and not set(r0) & set(r1)
    assert sorted(k % 10 for k in first[10:20]) == list(range(10))  # epoch 2 covers everything


def test_uint8_round_trip():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.equal(to_uint8(to_model_range(x)), x)
    with pytest.raises(TypeError, match="expected uint8"):
        to_model_range(torch.zeros(3))


def test_photos_fall_back_to_scikit_image_when_the_debian_set_is_missing(tmp_path, monkeypatch):
    import dgae.data.debian_photos as deb

    monkeypatch.setenv("DGAE_HOME", str(tmp_path))  # an empty cache
    with pytest.warns(UserWarning, match="scikit-image photographs only"):
        crops = PhotoCrops(32)
    assert crops.names == list(TRAIN_PHOTOS)
    monkeypatch.setattr(deb.shutil, "which", lambda name: None)  # no apt-get: a clear notice
    assert deb.fetch_photos(verbose=False) is None
    # a partial or altered set is never used: the training data must be the same everywhere
    folder = deb.photo_dir()
    folder.mkdir(parents=True)
    for photo in deb.PHOTOS:
        Image.new("RGB", (600, 520), (0, 200, 0)).save(folder / photo.filename)
    assert deb.cached_photos() is None


def test_photos_include_the_verified_debian_set(tmp_path, monkeypatch):
    import dgae.data.builtin as builtin
    import dgae.data.debian_photos as deb

    paths = []
    for k, photo in enumerate(deb.PHOTOS):  # stand-ins, accepted as if their hashes matched
        paths.append(tmp_path / photo.filename)
        Image.new("RGB", (700 + k, 600), (10 * k, 200, 30)).save(paths[-1])
    monkeypatch.setattr(builtin, "cached_photos", lambda: paths)
    crops = PhotoCrops(32, length=2000)
    assert len(crops.photos) == len(TRAIN_PHOTOS) + len(deb.PHOTOS)
    assert min(crops.photos[-1].shape[:2]) == builtin.EXTRA_PHOTO_SIDE
    assert not set(crops.names) & set(VAL_PHOTOS)
    green = [crops[i][0].float().mean((1, 2)) for i in range(200)]
    assert any(c[1] > 150 and c[0] < 100 for c in green)  # the new photos are drawn from


def test_exif_orientation_is_honoured(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # stored landscape, to be shown rotated 90 degrees clockwise (a phone photo)
    img.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "phone.jpg")
    assert upright.shape == (20, 10, 3) and upright[:8].mean() > 200 and upright[12:].mean() < 50


@pytest.mark.parametrize("packed", [False, True])
def test_color_augment_applies_to_folders_and_packs_too(tmp_path, odd_folder, packed):
    src = odd_folder
    if packed:
        write_pack(str(odd_folder), 16, tmp_path / "pack", workers=1)
        src = tmp_path / "pack"
    plain = build_dataset(str(src), 16, "train", seed=3, color_augment=False)
    color = build_dataset(str(src), 16, "train", seed=3, color_augment=True)
    keys = range(12)
    changed = [not torch.equal(plain[k][0], color[k][0]) for k in keys]
    assert 0 < sum(changed) < len(changed)  # about half the items, chosen per key
    again = build_dataset(str(src), 16, "train", seed=3, color_augment=True)
    assert all(torch.equal(color[k][0], again[k][0]) for k in keys)  # reproducible per key
    val = build_dataset(str(src), 16, "val", color_augment=True)
    val_plain = build_dataset(str(src), 16, "val", color_augment=False)
    assert all(torch.equal(val[k][0], val_plain[k][0]) for k in range(len(val)))


def test_configs_of_earlier_releases_with_removed_keys_still_load():
    from dgae.config import ExperimentConfig, from_dict, get_preset, to_dict

    data = to_dict(get_preset("dgae-tiny"))
    data["data"]["random_crop"] = True  # a key runs written before it was removed hold
    assert from_dict(ExperimentConfig, data).data == get_preset("dgae-tiny").data
