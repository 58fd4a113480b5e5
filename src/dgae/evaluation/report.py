"""Evaluation outputs: eval.json (written atomically), a markdown table and a quality-vs-NFE plot."""

from __future__ import annotations

from pathlib import Path

from dgae.folders import write_json
from dgae.plotting import panels

COLUMNS = [
    ("steps", "steps", "{}"),
    ("nfe", "NFE", "{}"),  # real decoder evaluations (Heun: 2 steps - 1)
    ("psnr", "PSNR ↑", "{:.2f}"),
    ("ssim", "SSIM ↑", "{:.4f}"),
    ("perceptual", "{perc} ↓", "{:.4f}"),
    ("rfid", "rFID ↓", "{:.2f}"),
    ("kid", "KID×1000 ↓", "{:.2f}"),
    ("seconds_per_image", "s/img", "{:.4f}"),
]


def _cell(key: str, fmt: str, value) -> str:
    if value is None:
        return "–"
    return fmt.format(value * 1000 if key == "kid" else value)


def markdown_table(evals: list[dict]) -> str:
    """One row per (model, NFE) for a list of eval results."""
    perc = next((e["perceptual_metric"] for e in evals if e.get("perceptual_metric")), "perceptual")
    head = ["model"] + [title.format(perc=perc) for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in evals:
        for r in e["results"]:
            cells = [e["model"]] + [_cell(k, fmt, r.get(k)) for k, _, fmt in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_quality_vs_nfe(evals: list[dict], out: Path) -> None:
    """PSNR, perceptual distance and rFID against NFE (one line per model; one-pass models
    are drawn as horizontal references)."""
    keys = [
        ("psnr", "PSNR (dB)"),
        ("perceptual", evals[0].get("perceptual_metric") or ""),
        ("rfid", "rFID"),
    ]
    nfes = sorted({r["nfe"] for e in evals for r in e["results"]})
    with panels(out, [label for _, label in keys], "decoder NFE", legend_size=7) as axes:
        for ax, (key, _) in zip(axes, keys, strict=True):
            for k, e in enumerate(evals):
                pts = [(r["nfe"], r[key]) for r in e["results"] if r[key] is not None]
                if not pts:
                    continue
                style = dict(color=f"C{k}", label=e["model"])
                if len(pts) == 1 and len(nfes) > 1:  # a one-pass decoder: a horizontal line
                    ax.axhline(pts[0][1], ls="--", lw=1.2, **style)
                else:
                    ax.plot(*zip(*pts, strict=True), marker="o", **style)
            ax.set_xscale("symlog", linthresh=1)  # log from 1 NFE on; 0 (head alone) fits
            ax.set_xticks(nfes, [str(n) for n in nfes])
            ax.minorticks_off()


def write_eval(result: dict, out_dir: Path) -> None:
    """eval.json (atomic: a crash never leaves a partial file that looks complete), eval.md and
    quality_vs_nfe.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.md").write_text(
        f"# Reconstruction: {result['model']} on {result['data']} ({result['num_images']} images, "
        f"{result['settings']['resolution']}px)\n\n" + markdown_table([result])
        + "".join(f"\n> warning: {w}\n" for w in result["warnings"])
    )  # fmt: skip
    plot_quality_vs_nfe([result], out_dir / "quality_vs_nfe.png")
    write_json(out_dir / "eval.json", result)


def clear_previous(out_dir: Path) -> None:
    """Remove an older eval.json first so a failed run cannot be mistaken for a finished one."""
    for name in ("eval.json", "eval.json.tmp"):
        (out_dir / name).unlink(missing_ok=True)
