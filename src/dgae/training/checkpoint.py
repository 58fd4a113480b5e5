"""Training-state checkpoints: written atomically, found automatically, pruned to the last K.

A checkpoint is ``checkpoints/step_XXXXXXXX.pt`` holding tensors and plain containers only, so
it loads with ``torch.load(weights_only=True)`` (no code is unpickled). It is written to a
``.tmp`` file, fsynced, then renamed: a crash mid-write leaves the previous one as the latest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from dgae.folders import atomic_path

PATTERN = re.compile(r"step_(\d{8})\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints in ``run_dir``, oldest first (temporaries are ignored)."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Atomically write ``state`` as the checkpoint of ``step``; keep the newest ``keep``."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.pt"
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as err:  # disk full, quota, I/O error
        raise OSError(
            f"could not write checkpoint {path} ({err}); no partial file was left and the "
            "previous checkpoint is intact: free disk space and rerun to resume"
        ) from None
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load one checkpoint; a damaged file is a ValueError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ValueError(f"checkpoint {path} is damaged or truncated: {err}") from None


def load_latest_good(run_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, falling back (and saying so) past damaged ones."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path)
        except ValueError as err:
            print(f"warning: {err}; trying the previous checkpoint", flush=True)
    return None
