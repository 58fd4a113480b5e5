"""``dgae demo``: the paper's claim at laptop scale, measured honestly in about ten minutes.

Two parts, both on the built-in ``photos`` and scored with the evaluation protocol on held-out
validation photographs:

1. **The shipped models** (``models/``, :mod:`dgae.experiments.shipped`): DGAE f4c2 (trunk and
   U-Net) and the one-pass baselines f4c2 and f4c4, trained for a long budget on 64² crops —
   evaluated, and shown reconstructing 128² crops of the validation photos side by side.
2. **A quick fresh pair**, trained here at equal budget (DGAE c2 and the baseline c2 on 32²
   crops): training works on this machine.

``report.md`` holds the tables, which claims hold at this scale (computed from the tables),
the reconstructions, quality-vs-NFE and loss curves. Training resumes, so an interrupted demo
continues where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dgae.autoencoder import Autoencoder
from dgae.autoencoder_training import train_autoencoder
from dgae.config import apply_overrides, get_preset
from dgae.data.loader import build_dataset
from dgae.data.transforms import to_model_range, to_uint8
from dgae.evaluation.models import DgaeModel
from dgae.evaluation.protocol import EvalSettings, evaluate
from dgae.evaluation.report import write_eval
from dgae.experiments.common import protocol_networks, start_application
from dgae.experiments.demo_report import write_report
from dgae.experiments.shipped import RESOLUTION, SHIPPED
from dgae.losses import build_objective
from dgae.random import generators_from_seeds
from dgae.training.reporting import save_grid


@dataclass
class DemoModel:
    name: str
    preset: str
    overrides: tuple[str, ...] = ()


# the fresh DGAE names its decoder: a run folder of one architecture is never resumed as another
FRESH = (DemoModel("dgae-trunk-c2", "dgae-trunk-small"), DemoModel("baseline-c2", "baseline-small"))
FRESH_RESOLUTION = 32
FRESH_STEPS = 500  # x batch 32: the whole demo takes about 9 minutes on 2 idle cores
SHOWCASE = 128  # side of the validation crops the shipped models reconstruct for the report
SHOWCASE_IMAGES = 6


def _config(m: DemoModel, steps: int, seed: int):
    return apply_overrides(
        get_preset(m.preset),
        [*m.overrides, f"train.total_steps={steps}", f"train.seed={seed}",
         f"train.sample_every={max(1, steps // 4)}", f"train.checkpoint_every={max(1, steps // 4)}"],
    )  # fmt: skip


def _seconds_per_call(fn, *args, warmup: int = 1) -> float:
    """Wall time of one ``fn(*args)`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn(*args)
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def estimate_seconds(
    steps: int, evals: list[tuple[Autoencoder, int, int]], nfes: tuple[int, ...], inception,
    perceptual,
) -> float:  # fmt: skip
    """Time a training step of each fresh model and a batch of each evaluation — ``evals``
    lists (model, resolution, images): every NFE, Inception and the perceptual network — then
    extrapolate to ``steps`` and the image counts."""
    total, batch = 0.0, 8
    for m in FRESH:
        cfg = _config(m, steps, 0)
        model = Autoencoder(cfg.model)
        objective = build_objective(cfg.loss, cfg.model.kind)
        opt = torch.optim.AdamW(model.parameters())
        r = cfg.data.resolution
        x = torch.rand(cfg.train.batch_size, 3, r, r) * 2 - 1

        def step(model=model, objective=objective, opt=opt, x=x) -> None:
            objective(model, x)["loss"].backward()
            opt.step()
            opt.zero_grad()

        total += _seconds_per_call(step, warmup=2) * steps * 1.15  # + data, EMA, logging
    for model, r, n in evals:
        x = torch.rand(batch, 3, r, r) * 2 - 1
        images = torch.zeros(batch, 3, r, r, dtype=torch.uint8)
        with torch.no_grad():
            for nfe in nfes if model.is_diffusion else (1,):
                seconds = _seconds_per_call(model.reconstruct, x, nfe)
                seconds += _seconds_per_call(inception, images, warmup=0)
                seconds += _seconds_per_call(perceptual, x, x, warmup=0)
                total += seconds * n / batch * 1.3  # + data, SSIM, the originals' features
    return total


def run_demo(
    out: Path,
    steps: int = FRESH_STEPS,
    nfes: tuple[int, ...] = (1, 2, 4),
    seed: int = 0,
    models_dir: Path = Path("models"),
    eval_images: int = 0,
) -> Path:
    """Evaluate the shipped models, train and evaluate the fresh pair, and write the report;
    returns the path of ``report.md``. ``eval_images`` (0: all) limits the validation tiles."""
    start = time.perf_counter()
    dist = start_application(out)
    missing = [m.name for m in SHIPPED if not (models_dir / m.name / "config.json").exists()]
    if missing:
        print(f"dgae demo: {models_dir} lacks {', '.join(missing)}: the shipped part is skipped "
              "(run it from the repository root, or pass --models)", flush=True)  # fmt: skip
    shipped = [] if missing else [m.name for m in SHIPPED]
    val_fresh = build_dataset("photos", FRESH_RESOLUTION, split="val")
    val_shipped = build_dataset("photos", RESOLUTION, split="val")
    n_fresh = min(eval_images or len(val_fresh), len(val_fresh))
    n_shipped = min(eval_images or len(val_shipped), len(val_shipped))
    inception, perceptual = protocol_networks()
    loaded = {n: DgaeModel(models_dir / n, torch.device("cpu")) for n in shipped}
    plan = [(m.model, RESOLUTION, n_shipped) for m in loaded.values()] + [
        (Autoencoder(_config(m, steps, seed).model).eval(), FRESH_RESOLUTION, n_fresh)
        for m in FRESH
    ]
    eta = estimate_seconds(steps, plan, nfes, inception, perceptual) + time.perf_counter() - start
    print(f"dgae demo: {len(shipped)} shipped models evaluated on {n_shipped} held-out "
          f"{RESOLUTION}px tiles, then {len(FRESH)} models x {steps} steps trained and evaluated "
          f"on {n_fresh} {FRESH_RESOLUTION}px tiles; estimated {eta / 60:.0f} min on this "
          "machine.", flush=True)  # fmt: skip
    shipped_evals = []
    for name, model in loaded.items():
        print(f"\n== evaluating the shipped {name}", flush=True)
        model.name = name
        settings = EvalSettings(RESOLUTION, nfes, n_shipped, seed, batch_size=32)
        shipped_evals.append(evaluate(model, val_shipped, "photos", settings, dist, inception,
                                      perceptual))  # fmt: skip
        write_eval(shipped_evals[-1], out / "shipped" / name)
    if loaded:
        showcase = build_dataset("photos", SHOWCASE, split="val")
        _grid(out / "shipped_reconstructions.png", loaded, showcase, SHOWCASE_IMAGES, 2, 2)
    fresh_evals, fresh = [], {}
    for m in FRESH:
        run_dir = out / m.name
        print(f"\n== training {m.name} ({m.preset} {' '.join(m.overrides)})", flush=True)
        train_autoencoder(_config(m, steps, seed), run_dir, dist)
        print(f"== evaluating {m.name}", flush=True)
        model = DgaeModel(run_dir / "model", torch.device("cpu"))
        model.name = m.name
        settings = EvalSettings(FRESH_RESOLUTION, nfes, n_fresh, seed, batch_size=32)
        fresh_evals.append(evaluate(model, val_fresh, "photos", settings, dist, inception,
                                    perceptual))  # fmt: skip
        write_eval(fresh_evals[-1], run_dir / "eval")
        fresh[m.name] = model
    _grid(out / "reconstructions.png", fresh, val_fresh, 8, 2, 4)
    minutes = (time.perf_counter() - start) / 60
    write_report(out, shipped_evals, fresh_evals, steps, seed, minutes, eta / 60)
    print(f"\nreport: {out / 'report.md'} ({minutes:.1f} min; estimated {eta / 60:.0f})")
    return out / "report.md"


def _grid(path: Path, models: dict, val, count: int, nfe: int, upscale: int) -> None:
    """Rows: ``count`` validation images spread over ``val``, then each model's reconstruction
    of them (DGAE at ``nfe``)."""
    n = len(val)
    originals = torch.stack([val[i * n // count][0] for i in range(count)])
    x = to_model_range(originals)
    rows = [originals]
    for model in models.values():
        rows.append(to_uint8(model.reconstruct(x, nfe, generators_from_seeds(range(count)))))
    save_grid(torch.cat(rows), path, count, upscale=upscale)
