"""``prepare-data``: pack images at a fixed resolution into memory-mappable uint8 arrays.

Layout of a pack folder: ``images.npy`` (N, R, R, 3) uint8, ``labels.npy`` (N,) int64,
``meta.json`` (resolution, classes, progress), ``skipped.txt`` (unreadable files). Work is
written in chunks and ``meta.json`` is updated atomically after each, so an interrupted run
resumes where it stopped. Decoding uses every core.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from tqdm import tqdm

from dgae.data.datasets import FileDataset
from dgae.data.images import UnreadableImage, load_image
from dgae.data.loader import build_dataset
from dgae.data.transforms import prepare
from dgae.folders import header, write_json

CHUNK = 256


def _load(args: tuple[str, int]) -> np.ndarray | None:
    path, resolution = args
    try:
        return prepare(load_image(path), resolution)
    except UnreadableImage:
        return None


def _write_meta(out: Path, meta: dict) -> None:
    write_json(out / "meta.json", meta)


def write_pack(src: str, resolution: int, out: str | Path, workers: int | None = None) -> dict:
    """Pack the images of ``src`` (a folder or a list file) at ``resolution`` into ``out``.

    Returns the final ``meta`` dict (``count`` written, ``skipped`` count).
    """
    ds = build_dataset(src, resolution, split="val")
    if not isinstance(ds, FileDataset):
        raise ValueError(f"prepare-data packs image folders or list files; {src!r} is neither")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = len(ds.paths)
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    fresh = {"source": str(src), "resolution": resolution, "total": total}
    if meta is None or any(meta.get(k) != v for k, v in fresh.items()):
        meta = {
            **header("dgae-pack"),
            **fresh,
            "classes": ds.classes,
            "done": 0,
            "count": 0,
            "skipped": 0,
            "complete": False,
        }
        open_memmap(out / "images.npy", "w+", np.uint8, (total, resolution, resolution, 3)).flush()
        open_memmap(out / "labels.npy", "w+", np.int64, (total,)).flush()
        (out / "skipped.txt").write_text("")
        _write_meta(out, meta)
    if meta["complete"]:
        return meta
    images = open_memmap(out / "images.npy", "r+")
    labels = open_memmap(out / "labels.npy", "r+")
    workers = workers or os.cpu_count() or 1
    with (
        mp.get_context("spawn").Pool(workers) as pool,
        tqdm(total=total, initial=meta["done"], desc="prepare-data", unit="img") as bar,
    ):
        for start in range(meta["done"], total, CHUNK):
            idx = range(start, min(start + CHUNK, total))
            results = pool.map(_load, [(str(ds.paths[i]), resolution) for i in idx], chunksize=8)
            count, skipped = meta["count"], []
            for i, image in zip(idx, results, strict=True):
                if image is None:
                    skipped.append(str(ds.paths[i]))
                    continue
                images[count], labels[count] = image, ds.labels[i]
                count += 1
            images.flush()
            labels.flush()
            if skipped:
                with open(out / "skipped.txt", "a") as fh:
                    fh.write("".join(p + "\n" for p in skipped))
            meta.update(done=idx.stop, count=count, skipped=meta["skipped"] + len(skipped))
            _write_meta(out, meta)
            bar.update(len(idx))
    if meta["count"] == 0:
        raise ValueError(f"{src}: none of its {total} image files could be read")
    meta["complete"] = True
    _write_meta(out, meta)
    return meta
