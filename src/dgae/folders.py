"""The one on-disk convention of every folder dgae writes (autoencoder, DiT, latent cache,
pack): a JSON record whose ``format`` names what the folder is and whose ``version`` names its
schema, and files that are written to a temporary beside them, fsynced and renamed, so a
crash or a full disk never leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# format name -> the schema version this release writes and reads
FORMATS = {
    "dgae-autoencoder": 1,  # model folder: config.json + model.safetensors
    "dgae-ldm": 1,  # DiT folder: config.json + model.safetensors
    "dgae-latent-cache": 1,  # meta.json + shard_*.safetensors
    "dgae-pack": 1,  # meta.json + uint8 arrays
}
# records written before the shared header, still read: format -> how to recognise one
_LEGACY: dict[str, Callable[[dict], bool]] = {
    "dgae-autoencoder": lambda m: m.get("format_version") == 1 and "model" in m,
    "dgae-pack": lambda m: "format" not in m and "resolution" in m and "total" in m,
}


def header(kind: str) -> dict[str, Any]:
    """``{"format": kind, "version": N}``: the first entries of a record of that kind."""
    return {"format": kind, "version": FORMATS[kind]}


def is_format(meta: object, kind: str) -> bool:
    """Whether the JSON record ``meta`` is of format ``kind`` (any version, or legacy)."""
    if not isinstance(meta, dict):
        return False
    return meta.get("format") == kind or (kind in _LEGACY and _LEGACY[kind](meta))


def check_header(meta: object, kind: str, where: str | Path) -> None:
    """A ValueError naming ``where`` unless ``meta`` is a record of ``kind`` this release reads."""
    if not is_format(meta, kind):
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{where} is not a {kind} record (format={found!r})")
    version = meta.get("version") if "format" in meta else FORMATS[kind]
    if version != FORMATS[kind]:
        raise ValueError(
            f"{where}: {kind} version {version!r}; this release of dgae reads version "
            f"{FORMATS[kind]} (upgrade dgae, or rewrite the folder with this one)"
        )


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it is fsynced and renamed
    to ``path``, on any error removed (the previous ``path``, if any, stays intact)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")
