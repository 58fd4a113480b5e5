"""The compression study's report: a table per (cell, NFE), the width ladder, and the plot
"quality vs latent size" with one line per model (DGAE arms at their smallest and largest NFE)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dgae.config import ExperimentConfig, resolved
from dgae.plotting import panels

METRICS = (("psnr", "PSNR ↑", "{:.2f}"), ("ssim", "SSIM ↑", "{:.4f}"),
           ("perceptual", "ST-LPIPS-vgg ↓", "{:.4f}"), ("rfid", "rFID ↓", "{:.1f}"),
           ("kid", "KID×1000 ↓", "{:.1f}"))  # fmt: skip


def latent_size_label(result: dict) -> str:
    """'f8 (8x8x4)': the factor and the latent grid of a cell."""
    cell = result["cell"]
    side = math.isqrt(result["latent_elements"] // cell["channels"])
    return f"f{cell['factor']} ({side}x{side}x{cell['channels']})"


def load_results(out: Path) -> list[dict]:
    """Every finished cell under ``out``, sorted by (f, c, arm, width); each recorded config
    as the current schema reads it."""
    results = [json.loads(p.read_text()) for p in out.glob("*/result.json")]
    for r in results:
        r["config"] = resolved(ExperimentConfig, r["config"])
    return sorted(results, key=lambda r: (r["cell"]["factor"], r["cell"]["channels"],
                                          r["cell"]["arm"], r["cell"]["width"]))  # fmt: skip


def _row(r: dict, e: dict) -> str:
    c = r["cell"]
    width = c["width"] or "preset"
    metrics = [fmt.format(e[k] * 1000 if k == "kid" else e[k]) if e[k] is not None else "–"
               for k, _, fmt in METRICS]  # fmt: skip
    return (f"| {c['arm']} | {c['factor']} | {c['channels']} | {r['latent_elements']} | {width} | "
            f"{r['parameters']['decoder'] / 1e6:.2f} | {e['nfe']} | " + " | ".join(metrics)
            + f" | {r['train_seconds'] / 60:.1f} | {e['seconds_per_image'] * 1000:.1f} |")  # fmt: skip


def table(results: list[dict]) -> str:
    head = ["arm", "f", "c", "latent elements", "decoder width", "decoder M params", "NFE",
            *[t for _, t, _ in METRICS], "train min", "decode ms/img"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [_row(r, e) for r in results for e in r["eval"]["results"]]
    return "\n".join(lines) + "\n"


def _flat(config: dict, prefix: str = "") -> dict[str, object]:
    """A nested config dict as {"model.decoder.patch_size": 2, ...}."""
    out: dict[str, object] = {}
    for k, v in config.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _change(config: dict, reference: dict) -> list[str]:
    """The settings of ``config`` that differ from ``reference``'s, as key=value."""
    a, b = _flat(config), _flat(reference)
    show = lambda v: v if isinstance(v, str) else json.dumps(v)  # noqa: E731
    return [f"{k}={show(a[k])}" for k in sorted(a) if a[k] != b.get(k)]


def ablation(results: list[dict], reference: str = "dgae-head") -> str:
    """One table per (f, c) holding ``reference`` and other DGAE arms: each arm's change (the
    settings of its resolved config that differ from the reference's) and its effect at the
    same NFE."""
    out = []
    groups: dict[tuple[int, int], dict[str, dict]] = {}
    for r in results:
        c = r["cell"]
        if not c["width"] and r["config"]["model"]["kind"] == "dgae":
            groups.setdefault((c["factor"], c["channels"]), {})[c["arm"]] = r
    for (f, ch), arms in sorted(groups.items()):
        if reference not in arms or len(arms) < 2:
            continue
        ref = {e["nfe"]: e for e in arms[reference]["eval"]["results"]}
        out += [f"\n**f{f} c{ch}**, one change from `{reference}` per row (Δ: this row minus "
                f"`{reference}` at the same NFE; lower is better for rFID/KID):\n",
                "| arm | change | NFE | PSNR | ST-LPIPS | rFID | KID×1000 | ΔPSNR | ΔrFID | ΔKID×1000 |",
                "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for arm, r in sorted(arms.items(), key=lambda kv: kv[0] != reference):
            change = _change(r["config"], arms[reference]["config"]) if arm != reference else []
            for e in r["eval"]["results"]:
                b = ref.get(e["nfe"])
                delta = (f"{e['psnr'] - b['psnr']:+.2f} | {e['rfid'] - b['rfid']:+.1f} | "
                         f"{(e['kid'] - b['kid']) * 1000:+.1f}") if b and arm != reference else "– | – | –"  # fmt: skip
                out.append(f"| {arm} | {', '.join(f'`{o}`' for o in change) or 'reference'} | "
                           f"{e['nfe']} | {e['psnr']:.2f} | {e['perceptual'] or float('nan'):.4f} | "
                           f"{e['rfid']:.1f} | {e['kid'] * 1000:.1f} | {delta} |")  # fmt: skip
    return "\n".join(out) + "\n" if out else ""


def plot(results: list[dict], path: Path) -> None:
    """Quality vs latent elements per image: one line per (arm, f, NFE), preset widths only
    (f8c4 and f16c16 have the same latent size, so each factor is its own line)."""
    lines: dict[str, list[tuple[int, dict]]] = {}
    for r in results:
        if r["cell"]["width"]:
            continue
        evals = r["eval"]["results"]
        for e in {id(x): x for x in (evals[0], evals[-1])}.values():
            label = f"{r['cell']['arm']} f{r['cell']['factor']}" + (
                f" @{e['nfe']} NFE" if len(evals) > 1 else ""
            )  # one line per model and compression factor
            lines.setdefault(label, []).append((r["latent_elements"], e))
    shown = (METRICS[0], METRICS[2], METRICS[3], METRICS[4])
    titles = [title for _, title, _ in shown]
    with panels(path, titles, "latent elements per image", (4.25, 3.8), legend_size=7,
                legend_outside=True) as axes:  # fmt: skip
        for ax, (key, _, _) in zip(axes, shown, strict=True):
            for k, (label, pts) in enumerate(sorted(lines.items())):
                pts = sorted((p for p in pts if p[1][key] is not None), key=lambda p: p[0])
                ax.plot([p[0] for p in pts],
                        [p[1][key] * (1000 if key == "kid" else 1) for p in pts],
                        marker="osD^v"[k // 10 % 5], color=f"C{k % 10}",  # distinct past 10
                        ls="-" if "baseline" in label else "--", label=label)  # fmt: skip
            ax.set_xscale("log", base=2)


def write_report(out: Path, settings: Any) -> Path:
    """Rewrite ``report.md`` and ``quality_vs_latent.png`` from every finished cell
    (``settings``: the study's :class:`~dgae.experiments.study.StudySettings`)."""
    results = load_results(out)
    if not results:
        return out / "report.md"
    plot(results, out / "quality_vs_latent.png")
    r0 = results[0]
    sizes = ", ".join(sorted({latent_size_label(r) for r in results}))
    text = f"""# Compression study: DGAE vs the one-pass baseline at equal budget

Every cell: the same encoder preset, {r0["train_images"]} training images
({settings.steps} steps x batch {settings.batch_size}) of {settings.resolution}px crops of the
built-in `photos`, seed {settings.seed}; evaluated with the reconstruction protocol on
{r0["eval"]["num_images"]} held-out {settings.resolution}px tiles of the validation photos
(rFID on so few images is biased: compare cells with each other, and read KID beside it).
Equal means equal steps x batch; the wall clock of each cell is in the table (train min).
Latent sizes: {sizes}.

{table(results)}
![quality vs latent size](quality_vs_latent.png)
{chr(10) + "## Ablations" + chr(10) + ablation(results) if ablation(results) else ""}"""
    (out / "report.md").write_text(text)
    return out / "report.md"
