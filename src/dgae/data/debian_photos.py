"""More real photographs for the built-in ``photos``: the nature set of Debian's
``mate-backgrounds`` package, fetched once into ``$DGAE_HOME/photos`` and sha256-checked.

The scikit-image photographs have almost no saturated green, so decoders trained on them alone
shift colours. These twelve photographs (leaves, grass, flowers, sky, wood, water; GPL-2+, holders
below from the package's ``debian/copyright``) widen the training set; illustrations in the same
package are left out. Fetching uses ``apt-get download`` and ``dpkg -x`` (no root, no install).
Where the package cannot be had, ``photos`` falls back to the scikit-image photographs alone
and says so; the validation photos are never among these.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dgae.weights import dgae_home, sha256_of

PACKAGE = "mate-backgrounds"
MEMBER_DIR = "usr/share/backgrounds/mate/nature"
COPYRIGHT = f"usr/share/doc/{PACKAGE}/copyright"


@dataclass(frozen=True)
class Photo:
    """A photograph of the package: its file, sha256 and copyright holders (licence GPL-2+)."""

    filename: str
    sha256: str
    holders: str


LICENSE = "GPL-2+"
PHOTOS = (
    Photo("Aqua.jpg", "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce", "2008 Charles Barbin"),
    Photo("Blinds.jpg", "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600", "2008 Lennart Poettering, Andrea Cimitan"),
    Photo("Dune.jpg", "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91", "2007 Marco Cogoni, 2008 Hylke Bons"),
    Photo("FreshFlower.jpg", "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e", "2005 Jens Ansorg"),
    Photo("Garden.jpg", "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78", "2008 Charles Barbin"),
    Photo("GreenMeadow.jpg", "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832", "2005 Timothy Schellhase, 2008 Lapo Calamandrei"),
    Photo("LadyBird.jpg", "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d", "2008 Charles Barbin"),
    Photo("RainDrops.jpg", "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16", "2008 blackcombwhistler07"),
    Photo("Storm.jpg", "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957", "2008 Sergey Nazarov"),
    Photo("TwoWings.jpg", "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb", "2008 Charles Barbin, Hylke Bons"),
    Photo("Wood.jpg", "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07", "2008 Jean-François Fortin Tam"),
    Photo("YellowFlower.jpg", "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306", "2008 Charles Barbin"),
)  # fmt: skip


def photo_dir() -> Path:
    return dgae_home() / "photos" / PACKAGE


def cached_photos(folder: Path | None = None) -> list[Path] | None:
    """The verified photographs in ``folder`` (default: the cache), or None unless all are there
    with the expected sha256 (a partial or altered set is not used: training data must be the
    same on every machine)."""
    folder = folder or photo_dir()
    paths = [folder / p.filename for p in PHOTOS]
    if all(p.exists() for p in paths) and all(
        sha256_of(path) == photo.sha256 for path, photo in zip(paths, PHOTOS, strict=True)
    ):
        return paths
    return None


def fetch_photos(verbose: bool = True) -> Path | None:
    """Fetch the photographs into the cache once; returns the folder, or None (with the reason
    printed) when the package cannot be downloaded or does not match the recorded files."""
    folder = photo_dir()
    if cached_photos(folder) is not None:
        return folder
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return _unavailable("apt-get/dpkg are not available on this machine", verbose)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["apt-get", "download", "-q", PACKAGE]
        res = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if res.returncode != 0 or not debs:
            why = (res.stderr.strip().splitlines() or ["no .deb was written"])[-1]
            return _unavailable(f"`apt-get download {PACKAGE}` failed: {why}", verbose)
        subprocess.run(["dpkg", "-x", str(debs[0]), str(Path(tmp) / "x")], check=True)
        source = Path(tmp) / "x" / MEMBER_DIR
        part = folder.with_name(folder.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        for photo in PHOTOS:
            if (source / photo.filename).exists():
                shutil.copy2(source / photo.filename, part / photo.filename)
        shutil.copy2(Path(tmp) / "x" / COPYRIGHT, part / "copyright")
        if cached_photos(part) is None:
            shutil.rmtree(part)
            return _unavailable(f"{debs[0].name} does not hold the recorded photographs", verbose)
        shutil.rmtree(folder, ignore_errors=True)
        part.replace(folder)
    if verbose:
        print(f"photos: {len(PHOTOS)} photographs of {PACKAGE} ({LICENSE}) in {folder}")
    return folder


def _unavailable(reason: str, verbose: bool) -> None:
    if verbose:
        print(f"photos: {reason}; the built-in 'photos' use the scikit-image photographs only")
    return None
