"""The generic training loop shared by DGAE, the baseline and the latent DiT.

It owns what every run needs (distribution, precision, accumulation, clipping, EMA, NaN guard,
checkpoints and resume, signals, logging) and nothing model-specific: a :class:`TrainTask`
supplies the modules, the loss computation and the sample/export callbacks.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from dgae.config import TrainConfig
from dgae.data.datasets import Batch
from dgae.random import item_generators, item_seed
from dgae.training.checkpoint import latest_checkpoint, load_latest_good, save_checkpoint
from dgae.training.distributed import DistInfo, all_reduce_sum
from dgae.training.ema import EMA
from dgae.training.fsdp import (
    load_model_state,
    load_optimizer_state,
    model_state,
    optimizer_state,
    shard,
)
from dgae.training.optim import build_optimizer, build_scheduler
from dgae.training.reporting import MetricsWriter, plot_losses, to_scalar

ComputeFn = Callable[[dict[str, nn.Module], Batch, list[torch.Generator], int], dict[str, Tensor]]


@dataclass
class TrainTask:
    """What the loop trains.

    ``modules``: optimised modules, updated in order, each with its own AdamW; ``"model"`` is the
    one averaged by EMA and exported. Each module's ``forward`` computes its loss, so DDP sees it.
    ``compute(wrapped, batch, generators, step)`` returns a dict whose keys named like a module
    are that module's loss; any other keys are scalars to log.
    ``on_sample(ema_model, step)`` / ``on_export(ema_model)`` run on the main process.
    """

    modules: dict[str, nn.Module]
    lrs: dict[str, float]
    compute: ComputeFn
    on_sample: Callable[[nn.Module, int], None] | None = None
    on_export: Callable[[nn.Module], None] | None = None


def ema_target(module: nn.Module) -> nn.Module:
    """The part of a loss module whose weights are averaged and exported (``module.ema_target``
    when it defines one, e.g. the autoencoder inside its loss wrapper)."""
    return getattr(module, "ema_target", module)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps produced a NaN/inf loss."""


def total_steps(cfg: TrainConfig) -> int:
    """Training length in optimiser steps (``total_images`` wins when set)."""
    if cfg.total_images > 0:
        return math.ceil(cfg.total_images / cfg.batch_size)
    return cfg.total_steps


def micro_batch_size(cfg: TrainConfig, world: int) -> int:
    """Per-rank micro-batch: the global ``batch_size`` split over ranks and accumulation steps."""
    parts = world * cfg.grad_accum
    if cfg.batch_size % parts:
        raise ValueError(
            f"train.batch_size={cfg.batch_size} is not divisible by world size {world} x "
            f"train.grad_accum={cfg.grad_accum}"
        )
    return cfg.batch_size // parts


def sample_generators(seed: int, keys: list[int], device: torch.device) -> list[torch.Generator]:
    """One generator per sample, seeded by (run seed, sample key): the training noise of a
    sample is the same whatever rank, batch or accumulation step it lands in."""
    return item_generators(seed, keys, "noise", device)


class _StopFlag:
    """Records SIGTERM/SIGINT so the loop can save and exit at the end of the current step."""

    def __init__(self) -> None:
        self.raised = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class Trainer:
    """Runs a :class:`TrainTask` in ``run_dir``; resumes from the latest checkpoint there."""

    def __init__(
        self,
        task: TrainTask,
        cfg: TrainConfig,
        run_dir: Path,
        dist: DistInfo,
        progress: bool = True,
    ) -> None:
        self.task, self.cfg, self.run_dir, self.dist = task, cfg, Path(run_dir), dist
        self.total = total_steps(cfg)
        self.micro = micro_batch_size(cfg, dist.world)
        self.progress = progress and dist.is_main
        for module in task.modules.values():
            module.to(dist.device)
            if cfg.channels_last:
                module.to(memory_format=torch.channels_last)
        self.ema = EMA(ema_target(task.modules["model"]), cfg.ema_decay)  # before sharding
        self.wrapped = {n: self._wrap(m) for n, m in task.modules.items()}
        # after wrapping: FSDP2 replaces the parameters with sharded ones
        self.optimizers = {n: build_optimizer(m, cfg, task.lrs[n]) for n, m in task.modules.items()}
        self.schedulers = {
            n: build_scheduler(o, cfg, self.total) for n, o in self.optimizers.items()
        }
        self.step = 0
        self.counters = {"bad_steps": 0, "skipped_images": 0}
        self.skipped: list[str] = []  # unreadable files first seen since the last checkpoint
        self.skipped_seen: set[str] = set()  # every unreadable file seen (each counted once)
        self.status = "new"

    def _wrap(self, module: nn.Module) -> nn.Module:
        if self.cfg.fsdp:
            module = shard(module)
        elif self.dist.enabled:
            ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
            module = DDP(module, device_ids=ids)
        if self.cfg.compile:
            module = torch.compile(module)
        return module

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "modules": {n: model_state(m) for n, m in self.task.modules.items()},
            "optimizers": {
                n: optimizer_state(self.task.modules[n], o) for n, o in self.optimizers.items()
            },
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "ema": self.ema.state_dict(),
            "counters": dict(self.counters),
            "skipped_files": sorted(self.skipped_seen),
            "rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        for n, m in self.task.modules.items():
            load_model_state(m, state["modules"][n])
        for n, o in self.optimizers.items():
            load_optimizer_state(self.task.modules[n], o, state["optimizers"][n])
        for n, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][n])
        self.ema.load_state_dict(state["ema"])
        self.counters.update(state["counters"])
        self.skipped_seen = set(state.get("skipped_files", []))
        torch.set_rng_state(state["rng"])

    def save(self) -> None:
        """Checkpoint (collective: call on every rank) and list the skipped files of all ranks."""
        state = self.state_dict()  # gathering sharded state is collective
        skipped = [self.skipped]
        if self.dist.enabled:
            skipped = [None] * self.dist.world
            torch.distributed.all_gather_object(skipped, self.skipped)
        self.skipped = []
        if self.dist.is_main:
            save_checkpoint(self.run_dir, self.step, state, self.cfg.keep_checkpoints)
            paths = [p for part in skipped for p in part]
            if paths:
                with open(self.run_dir / "skipped_images.txt", "a") as fh:
                    fh.write("".join(p + "\n" for p in paths))

    def _last_good(self) -> str:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            return "No checkpoint had been written yet, so the run starts over when rerun."
        return f"The last good checkpoint is {path}; rerunning resumes from it."

    def resume(self) -> bool:
        """Load the latest checkpoint in the run folder, if any; True when resumed."""
        found = load_latest_good(self.run_dir)
        if found is None:
            return False
        self.load_state_dict(found[1])
        return True

    # ------------------------------------------------------------------ the loop

    def _micro_step(self, batch: Batch, accumulate: bool, micro: int = 0) -> dict[str, Tensor]:
        gens = sample_generators(self.cfg.seed, batch.keys, self.dist.device)
        syncs = contextlib.ExitStack()
        if accumulate:  # no gradient all-reduce on non-final micro-steps
            for m in self.wrapped.values():
                if hasattr(m, "no_sync"):
                    syncs.enter_context(m.no_sync())
                elif hasattr(m, "set_requires_gradient_sync"):
                    m.set_requires_gradient_sync(False)
                    syncs.callback(m.set_requires_gradient_sync, True)
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float32
        # the global RNG (dropout) is seeded from (seed, step, micro-step, rank), not carried
        # from the process's history: a resumed run draws the same masks as an uninterrupted one
        devices = [self.dist.device] if self.dist.device.type == "cuda" else []
        seed = item_seed(self.cfg.seed, (self.step, micro, self.dist.rank), "dropout")
        with syncs, torch.random.fork_rng(devices=devices, device_type=self.dist.device.type):
            torch.manual_seed(seed)
            with torch.autocast(self.dist.device.type, dtype, enabled=dtype != torch.float32):
                out = self.task.compute(self.wrapped, batch, gens, self.step)
            losses = [out[n] / self.cfg.grad_accum for n in self.task.modules]
            torch.autograd.backward(losses)
        return out

    def _apply_update(self, finite: bool) -> None:
        for name, opt in self.optimizers.items():
            if finite:
                module = self.task.modules[name]
                if self.cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), self.cfg.grad_clip)
                opt.step()
            opt.zero_grad(set_to_none=True)
            self.schedulers[name].step()
        if finite:
            self.ema.update(ema_target(self.task.modules["model"]))

    def fit(self, batches: Iterator[Batch], metrics: MetricsWriter | None = None) -> str:
        """Train until ``total`` steps; returns 'done' or 'interrupted' (checkpoint saved)."""
        if metrics is not None:
            metrics.truncate_after(self.step)
        bar = tqdm(total=self.total, initial=self.step, disable=not self.progress, unit="step")
        logs: dict[str, float] = {}
        n_logged, t0, images_since, consecutive_bad = 0, time.perf_counter(), 0, 0
        with _StopFlag() as stop:
            while self.step < self.total:
                out, skipped = {}, 0
                for micro in range(self.cfg.grad_accum):
                    batch = next(batches)
                    new = sorted(set(batch.skipped) - self.skipped_seen)
                    for path in new:  # each unreadable file is announced and counted once
                        tqdm.write(f"skipping unreadable training image {path}")
                    self.skipped_seen.update(new)
                    skipped += len(new)
                    self.skipped += new
                    out = self._micro_step(batch, micro < self.cfg.grad_accum - 1, micro)
                    for k, v in out.items():
                        if k in self.task.modules:
                            continue  # logged under "loss" / "loss/<term>"
                        logs[k] = logs.get(k, 0.0) + to_scalar(v) / self.cfg.grad_accum
                local_bad = sum(
                    not torch.isfinite(out[n].detach()).all() for n in self.task.modules
                )
                # one collective per step: non-finite flags, skipped files, stop requests
                bad, skipped, stop_now = all_reduce_sum(
                    torch.tensor([float(local_bad), float(skipped), float(stop.raised)]), self.dist
                ).tolist()
                self.counters["skipped_images"] += int(skipped)
                self._apply_update(finite=bad == 0)
                self.step += 1
                n_logged += 1
                images_since += self.cfg.batch_size
                if bad:
                    self.counters["bad_steps"] += 1
                    consecutive_bad += 1
                    if consecutive_bad > self.cfg.max_bad_steps:
                        bar.close()
                        raise NonFiniteLossError(
                            f"{consecutive_bad} consecutive steps had a non-finite loss (last at "
                            f"step {self.step}); stopped. {self._last_good()} Lower train.lr or "
                            "raise train.max_bad_steps."
                        )
                else:
                    consecutive_bad = 0
                if self.step % self.cfg.log_every == 0 or self.step == self.total:
                    elapsed = time.perf_counter() - t0
                    row = {"step": self.step, **{k: v / n_logged for k, v in logs.items()}}
                    row.update(
                        lr=self.schedulers["model"].get_last_lr()[0],
                        images_per_s=images_since / max(elapsed, 1e-9),
                        **self.counters,
                    )
                    if metrics is not None and self.dist.is_main:
                        metrics.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.4g}" if "loss" in row else "",
                                    img_s=f"{row['images_per_s']:.1f}")  # fmt: skip
                    logs, n_logged, t0, images_since = {}, 0, time.perf_counter(), 0
                bar.update(1)
                periodic = self.step % self.cfg.checkpoint_every == 0 or self.step == self.total
                if periodic and not consecutive_bad:  # never checkpoint inside a NaN streak
                    self.save()
                if (
                    self.dist.is_main
                    and self.task.on_sample
                    and (self.step % self.cfg.sample_every == 0 or self.step == self.total)
                ):
                    self.task.on_sample(self.ema.model, self.step)
                    if metrics is not None:
                        plot_losses(metrics.path, self.run_dir / "loss_curve.png")
                if stop_now and self.step < self.total:
                    self.save()
                    bar.close()
                    self.status = "interrupted"
                    return self.status
        bar.close()
        self.status = "done"
        return self.status
