"""Run outputs: metrics.jsonl (+ optional TensorBoard), image grids and the loss-curve plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dgae.plotting import panels


class MetricsWriter:
    """Appends one JSON object per logged step to ``metrics.jsonl`` (main process only)."""

    def __init__(self, run_dir: Path, tensorboard: bool = False) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError(
                    "train.tensorboard=true needs the tensorboard package: pip install tensorboard"
                ) from err
            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, row: dict) -> None:
        """Append ``row``; non-finite numbers become null (the file stays strict JSON)."""
        row = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()
        }
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row, allow_nan=False) + "\n")
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and value is not None:
                    self.tb.add_scalar(key, value, row["step"])

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run rewrites them)."""
        if self.path.exists():
            rows = [r for r in read_metrics(self.path) if r["step"] <= step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics file; a torn last line (a crash mid-write) is dropped, a damaged
    line elsewhere is an error naming the file and line."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for k, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if k == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {k + 1} is not JSON: {line[:80]!r}") from None
    return rows


def image_grid(images: Tensor, nrow: int) -> np.ndarray:
    """uint8 images (N, 3, H, W) -> one (rows*(H+2), nrow*(W+2), 3) array with 2-px gutters."""
    n, _, h, w = images.shape
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + 2), nrow * (w + 2), 3), 255, np.uint8)
    for i, img in enumerate(images.permute(0, 2, 3, 1).cpu().numpy()):
        r, c = divmod(i, nrow)
        grid[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = img
    return grid


def save_grid(images: Tensor, path: Path, nrow: int, upscale: int = 1) -> None:
    """Write uint8 images (N, 3, H, W) as a PNG grid (nearest upscaling for tiny images)."""
    grid = Image.fromarray(image_grid(images, nrow))
    if upscale > 1:
        grid = grid.resize((grid.width * upscale, grid.height * upscale), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def plot_losses(metrics_path: Path, out: Path, keys: list[str] | None = None) -> None:
    """Plot every loss column of ``metrics.jsonl`` against step (log scale) into ``out``."""
    rows = read_metrics(metrics_path)
    if not rows:
        return
    keys = keys or [k for k in rows[-1] if k.startswith("loss")]
    with panels(out, ["training losses"], "step", (6.0, 4.0)) as (ax,):
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if key in r and r[key] > 0]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key)
        ax.set_yscale("log")


def to_scalar(value: Tensor | float) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
