"""One-step distillation of a DGAE decoder: a student that reproduces in one network evaluation
what its teacher decodes in K.

The student starts as a copy of the teacher. For a training image x, both see the teacher's
latent z = E(x) (the encoder is frozen, so latents, their statistics and any latent diffusion
model trained on them stay valid) and the same starting noise; the teacher decodes with K NFE
(no gradients), the student with one, and the student is trained on
    || D_student(z, noise) - D_teacher^K(z, noise) ||^2 + lambda_P * P(D_student, D_teacher^K),
the regression to the teacher's multi-step output used by consistency/progressive distillation,
with the perceptual term of the training objective (``loss.perceptual``). The same trainer as
``dgae train`` runs it (resume, EMA, DDP); the exported student decodes with 1 NFE by default.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from dgae.autoencoder import Autoencoder
from dgae.autoencoder_training import training_data
from dgae.config import ExperimentConfig, save_json, to_dict
from dgae.data.transforms import to_model_range, to_uint8
from dgae.folders import write_json
from dgae.generation.cache import fingerprint
from dgae.losses.perceptual import build_perceptual
from dgae.random import Generator, item_generators
from dgae.training.distributed import DistInfo, barrier, init_distributed
from dgae.training.lock import run_lock
from dgae.training.loop import Trainer, TrainTask
from dgae.training.reporting import save_grid
from dgae.training.run import run_task


def _copies(generator: Generator) -> Generator:
    """Generators in the same state as ``generator``: the student draws the teacher's noise."""
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        return torch.Generator(generator.device).set_state(generator.get_state())
    return [_copies(g) for g in generator]


class DistillLoss(nn.Module):
    """forward(x, generators) -> {"loss", "mse", "perceptual"}; its parameters are the
    student's. The teacher and the perceptual network sit outside the module tree, so DDP, EMA
    and checkpoints see only the student."""

    def __init__(self, student: Autoencoder, teacher: Autoencoder, teacher_steps: int,
                 perceptual: nn.Module | None, perceptual_weight: float) -> None:  # fmt: skip
        super().__init__()
        self.student = student
        self._aux = (teacher, perceptual)
        self.teacher_steps, self.perceptual_weight = teacher_steps, perceptual_weight

    @property
    def ema_target(self) -> Autoencoder:
        return self.student

    def forward(self, x: Tensor, generators: Generator) -> dict[str, Tensor]:
        teacher, perceptual = self._aux
        with torch.no_grad():
            z = teacher.encode(x).mode()  # (B, c, h, w)
            twin = _copies(generators)
            target = teacher.decode(z, num_steps=self.teacher_steps, generator=generators)
        out = self.student.decoder.decode(z, num_steps=1, generator=twin)  # (B, 3, H, W)
        mse = (out - target).pow(2).mean()
        perc = out.new_zeros(())
        if perceptual is not None and self.perceptual_weight > 0:
            perc = perceptual(out.float(), target.float()).mean()
        return {"loss": mse + self.perceptual_weight * perc, "mse": mse, "perceptual": perc}


def student_from(teacher: Autoencoder) -> Autoencoder:
    """A copy of ``teacher`` that decodes with one NFE by default, its encoder frozen."""
    if not teacher.is_diffusion:
        raise ValueError("distillation needs a DGAE teacher (a diffusion decoder), not a baseline")
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    student.config.diffusion.num_steps = 1
    student.encoder.requires_grad_(False)
    return student


def check_teacher(run_dir: Path, record: dict) -> None:
    """A distillation run folder keeps its teacher and K: another one is refused, naming both."""
    path = run_dir / "distill.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = [f"{k}: {old.get(k)!r} vs {v!r}" for k, v in record.items() if old.get(k) != v]
        if diff:
            raise ValueError(f"{run_dir} distils another teacher ({'; '.join(diff)}); "
                             "use a new --out folder")  # fmt: skip
    write_json(path, record)


def distill(
    teacher_dir: str | Path,
    run_dir: str | Path,
    cfg: ExperimentConfig,
    teacher_steps: int,
    dist: DistInfo | None = None,
    progress: bool = True,
) -> Trainer:
    """Train (or resume) a 1-NFE student of the DGAE in ``teacher_dir`` with the data and
    training settings of ``cfg`` (its model must be the teacher's); exports ``RUN/model``."""
    cfg.validate()
    dist = dist or init_distributed()
    run_dir, teacher_dir = Path(run_dir), Path(teacher_dir)
    teacher = Autoencoder.from_pretrained(teacher_dir, device=dist.device).requires_grad_(False)
    if to_dict(cfg.model) != to_dict(teacher.config):
        raise ValueError(
            f"the distillation config's model differs from the teacher's in {teacher_dir}"
        )
    if not 2 <= teacher_steps <= 1000:
        raise ValueError(f"--teacher-steps {teacher_steps}: expected an NFE in [2, 1000]")
    with run_lock(run_dir, dist.is_main):
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            record = {"teacher": str(teacher_dir.resolve()), "fingerprint": fingerprint(teacher_dir),
                      "teacher_steps": teacher_steps}  # fmt: skip
            check_teacher(run_dir, record)
            save_json(cfg, run_dir / "config.json")
        barrier(dist)
        torch.manual_seed(cfg.train.seed)
        data, val_images = training_data(cfg)
        n = len(val_images)
        student = student_from(teacher)
        perceptual = (
            build_perceptual(cfg.loss.perceptual) if cfg.loss.perceptual_weight > 0 else None
        )
        perceptual = perceptual.to(dist.device) if perceptual is not None else None
        loss = DistillLoss(student, teacher, teacher_steps, perceptual, cfg.loss.perceptual_weight)
        device = dist.device

        def compute(wrapped: dict[str, nn.Module], batch, gens: list, step: int) -> dict:
            out = wrapped["model"](to_model_range(batch.images.to(device)), gens)
            return {"model": out["loss"], "loss": out["loss"], "loss/mse": out["mse"],
                    "loss/perceptual": out["perceptual"]}  # fmt: skip

        def on_sample(ema: nn.Module, step: int) -> None:
            x = to_model_range(val_images.to(device))
            with torch.no_grad():
                z = teacher.encode(x).mode()
                gens = lambda: item_generators(0, range(len(x)), device=device)  # noqa: E731
                rows = [val_images, to_uint8(teacher.decode(z, teacher_steps, gens())).cpu(),
                        to_uint8(ema.decode(z, 1, gens())).cpu()]  # fmt: skip
            save_grid(torch.cat(rows), run_dir / "samples" / f"step_{step:08d}.png", n,
                      max(1, 128 // val_images.shape[-1]))  # fmt: skip

        def on_export(ema: nn.Module) -> None:
            ema.latent_stats.set_from(teacher.latent_stats.mean, teacher.latent_stats.std)
            ema.save_pretrained(run_dir / "model")

        task = TrainTask({"model": loss}, {"model": cfg.train.lr}, compute, on_sample, on_export)
        return run_task(task, cfg.train, data, run_dir, dist, progress, cfg.data.num_workers)
