"""``dgae study``: DGAE vs the one-pass baseline over spatial compression, latent width and
decoder width, at equal training budget (the paper's Fig. 1 at laptop scale).

A study is a grid of *cells* (arm, f, c, decoder width). Each cell trains one autoencoder in
``OUT/CELL/run`` (resumable like any run) and evaluates it with the reconstruction protocol on
the validation photos; its ``result.json`` records the resolved config it was computed from, so
a cell whose config changed is retrained or continued, never reported stale. Cells run one at a
time, in any order and in several sessions (``--cells``); ``report.md`` is rewritten from every
finished cell after each one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dgae.autoencoder_training import train_autoencoder
from dgae.config import ExperimentConfig, apply_overrides, get_preset, resolved, to_dict
from dgae.data.builtin import training_photos
from dgae.data.loader import build_dataset
from dgae.evaluation.models import DgaeModel
from dgae.evaluation.protocol import EvalSettings, evaluate
from dgae.evaluation.report import write_eval
from dgae.experiments.common import protocol_networks, start_application
from dgae.experiments.study_report import write_report
from dgae.folders import write_json
from dgae.training.distributed import DistInfo

# arm name -> (preset family, overrides): the recipes compared; the preset is FAMILY-SIZE and
# every other setting is the preset's. Families are pinned (dgae-unet, dgae-trunk, not the
# default's alias dgae), so a cell keeps its meaning when the default decoder changes.
# (``dgae-head-*`` arms are the ablations: one change each from ``dgae-head``)
HEAD = "model.decoder.prior_head=true"
ARMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "baseline": ("baseline", ()),
    "dgae": ("dgae-unet", ("model.decoder.prior_head=false",)),
    "dgae-head": ("dgae-unet", (HEAD,)),
    "dgae-head-v": ("dgae-unet", (HEAD, "model.diffusion.prediction=v")),
    "dgae-head-logitnormal": ("dgae-unet", (HEAD, "model.diffusion.uniform_fraction=0")),
    "dgae-head-1mt": ("dgae-unet", (HEAD, "loss.perceptual_time_weight=one_minus_t")),
    "dgae-head-postnorm": ("dgae-unet", (HEAD, "model.decoder.z_injection=post_norm")),
    "dgae-head-nocolour": ("dgae-unet", (HEAD, "data.color_augment=false")),
    # the U-Net on 2x2 patches: its levels at 1/2, 1/4 (no full-resolution convolutions)
    "dgae-head-p2": (
        "dgae-unet",
        (
            HEAD,
            "model.decoder.patch_size=2",
            "model.decoder.channel_mult=(2,2)",
            "model.decoder.attention_levels=(1,)",
        ),
    ),  # fmt: skip
    # the trunk decoder (dgae/trunk.py, the fast option): the head's features shared with
    # a light per-step network of 2 residual blocks at 1/2 resolution; 3 blocks; 2 blocks
    # wrapped in a narrow full-resolution level; the head kept whole (its full-resolution level)
    "dgae-trunk": ("dgae-trunk", ()),
    "dgae-trunk3": ("dgae-trunk", ("model.decoder.num_res_blocks=3",)),
    "dgae-trunk-full": ("dgae-trunk", ("model.decoder.full_res_channels=16",)),
    "dgae-trunk-wholehead": ("dgae-trunk", ("model.decoder.head_full_resolution=true",)),
    # the U-Net at half width over a head at 3/4 width: a 1-NFE decode within the baseline
    # decoder's FLOPs (0.301 vs 0.310 GFLOP at small), the paper's design scaled down
    "dgae-lite": (
        "dgae-unet",
        (HEAD, "model.decoder.base_channels=16", "model.baseline_decoder.base_channels=24"),
    ),
}


@dataclass(frozen=True)
class Cell:
    """One autoencoder of the grid; ``width`` 0 keeps the preset's decoder width."""

    arm: str
    factor: int
    channels: int
    width: int = 0

    @property
    def name(self) -> str:
        return f"{self.arm}-f{self.factor}c{self.channels}" + (
            f"-w{self.width}" if self.width else ""
        )

    @classmethod
    def parse(cls, name: str) -> Cell:
        """'dgae-head-f8c4' or 'baseline-f16c8-w64' -> Cell; unknown arms are an error."""
        arm, _, rest = name.rpartition("-f")
        geometry, _, width = rest.partition("-w")
        factor, _, channels = geometry.partition("c")
        if arm not in ARMS or not factor.isdigit() or not channels.isdigit():
            raise ValueError(
                f"cell {name!r}: expected ARM-fFcC[-wW] with ARM in {sorted(ARMS)}, e.g. dgae-f8c4"
            )
        return cls(arm, int(factor), int(channels), int(width or 0))


@dataclass
class StudySettings:
    """What is equal across cells: data, resolution, steps x batch, seed, evaluation."""

    size: str = "small"  # the preset size: KIND-SIZE
    resolution: int = 64
    steps: int = 600
    batch_size: int = 16
    nfes: tuple[int, ...] = (1, 2, 4)
    seed: int = 0
    eval_images: int = 0  # 0 = every validation tile
    overrides: tuple[str, ...] = ()  # applied to every cell, after the cell's own


def grid(
    arms: list[str],
    factors: list[int],
    channels: list[int],
    widths: tuple[int, ...] = (),
    width_factor: int = 0,
) -> list[Cell]:
    """Every (arm, f, c) at the preset width, plus the decoder-width ladder ``widths`` at
    f = ``width_factor`` (the encoder stays fixed)."""
    bad = sorted(set(arms) - set(ARMS))
    if bad:
        raise ValueError(f"unknown arm(s) {bad}; expected some of {sorted(ARMS)}")
    return [
        Cell(a, f, c, w)
        for f in factors
        for c in channels
        for a in arms
        for w in [0, *(widths if f == width_factor else ())]
    ]


def cell_config(cell: Cell, settings: StudySettings) -> ExperimentConfig:
    """The resolved training config of ``cell``."""
    family, arm_overrides = ARMS[cell.arm]
    preset = f"{family}-{settings.size}"
    checkpoint = max(50, settings.steps // 4)
    overrides = [
        *arm_overrides,
        f"model.downsample_factor={cell.factor}",
        f"model.latent_channels={cell.channels}",
        f"data.resolution={settings.resolution}",
        f"train.total_steps={settings.steps}",
        f"train.batch_size={settings.batch_size}",
        f"train.seed={settings.seed}",
        f"train.checkpoint_every={checkpoint}",
        f"train.sample_every={checkpoint}",
    ]
    if cell.width:
        which = "decoder" if family.startswith("dgae") else "baseline_decoder"
        overrides.append(f"model.{which}.base_channels={cell.width}")
    return apply_overrides(get_preset(preset), [*overrides, *settings.overrides])


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_cell(
    cell: Cell, settings: StudySettings, out: Path, metrics: tuple, dist: DistInfo
) -> dict:
    """Train (or resume) and evaluate one cell; returns its result (cached in result.json)."""
    cfg = cell_config(cell, settings)
    folder = out / cell.name
    record = {
        "config": to_dict(cfg),
        "nfes": list(settings.nfes),
        "eval_images": settings.eval_images,
        "train_photos": [Path(n).name for n in training_photos()],  # the data, not just its name
    }
    done = folder / "result.json"
    if done.exists():
        result = json.loads(done.read_text())
        result["config"] = resolved(ExperimentConfig, result["config"])
        if {k: result[k] for k in record} == record:
            return result
    folder.mkdir(parents=True, exist_ok=True)
    clock = folder / "train_seconds.json"  # wall clock summed over interrupted sessions
    seconds = json.loads(clock.read_text()) if clock.exists() else 0.0
    t0 = time.perf_counter()
    trainer = train_autoencoder(cfg, folder / "run", dist)
    clock.write_text(json.dumps(seconds + time.perf_counter() - t0))
    if trainer.status != "done":
        raise RuntimeError(f"{cell.name}: training was interrupted; rerun the same command")
    val = build_dataset("photos", settings.resolution, split="val")
    model = DgaeModel(folder / "run" / "model", torch.device("cpu"))
    model.name = cell.name
    inception, perceptual = metrics
    evaluation = evaluate(
        model, val, "photos", EvalSettings(settings.resolution, settings.nfes, settings.eval_images,
                                           settings.seed, batch_size=32), dist, inception, perceptual,
    )  # fmt: skip
    write_eval(evaluation, folder / "eval")
    ae = model.model
    result = {
        **record,
        "cell": asdict(cell),
        "latent_elements": cell.channels * (settings.resolution // cell.factor) ** 2,
        "parameters": {"encoder": _count(ae.encoder), "decoder": _count(ae.decoder)},
        "train_seconds": json.loads(clock.read_text()),
        "train_images": settings.steps * settings.batch_size,
        "eval": evaluation,
    }
    write_json(done, result)
    return result


def run_study(cells: list[Cell], settings: StudySettings, out: Path, metrics: tuple = ()) -> Path:
    """Run ``cells`` in order (finished ones are read back), rewriting the report after each.
    ``metrics``: (features, perceptual) for the protocol; default Inception and ST-LPIPS-VGG."""
    dist = start_application(out)
    metrics = metrics or protocol_networks()
    for k, cell in enumerate(cells):
        print(f"\n== study cell {k + 1}/{len(cells)}: {cell.name}", flush=True)
        run_cell(cell, settings, out, metrics, dist)
        write_report(out, settings)
    return write_report(out, settings)
