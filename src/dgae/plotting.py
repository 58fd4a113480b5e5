"""One way to draw a report figure: a row of panels with titles, a shared x label, grid and
legend, saved as a PNG (matplotlib's Agg backend, so no display is needed)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def panels(
    path: str | Path,
    titles: Sequence[str],
    xlabel: str,
    panel_size: tuple[float, float] = (4.3, 3.6),
    legend_size: float | None = None,
    legend_outside: bool = False,
) -> Iterator[list[Any]]:
    """Yield one matplotlib axis per title; on exit label them, add the first panel's legend
    (``legend_outside``: right of the last panel, for many lines) and save the figure to
    ``path`` (the figure is closed either way)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w, h = panel_size
    fig, grid = plt.subplots(1, len(titles), figsize=(w * len(titles), h), squeeze=False)
    axes = list(grid[0])
    try:
        yield axes
        for ax, title in zip(axes, titles, strict=True):
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        if axes[0].get_legend_handles_labels()[0]:
            where = dict(loc="center left", bbox_to_anchor=(1.02, 0.5)) if legend_outside else {}
            (axes[-1] if legend_outside else axes[0]).legend(
                *axes[0].get_legend_handles_labels(), fontsize=legend_size, **where
            )
        fig.tight_layout()
        fig.savefig(path, dpi=100, bbox_inches="tight" if legend_outside else None)
    finally:
        plt.close(fig)
