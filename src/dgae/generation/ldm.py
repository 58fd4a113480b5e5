"""Latent diffusion: the DiT inference artifact, its flow-matching loss, training task, sampling.

The DiT folder records the autoencoder that made its latents (path + fingerprint) and the
statistics used to normalise them, so sampling decodes with the right model and statistics or
fails naming both sides.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

from dgae.autoencoder import Autoencoder
from dgae.bottleneck import LatentStats
from dgae.config import LDMExperimentConfig, from_dict, to_dict
from dgae.data.datasets import Batch
from dgae.data.transforms import to_uint8
from dgae.diffusion import as_denoiser, denoising_loss, get_path, sample
from dgae.folders import atomic_path, check_header, header
from dgae.generation.cache import LatentDataset, fingerprint
from dgae.generation.dit import DiT
from dgae.random import Generator, item_generators, rand, randn
from dgae.training.loop import TrainTask
from dgae.training.reporting import save_grid


class LatentDiffusion(nn.Module):
    """A DiT plus everything needed to turn its samples into images."""

    def __init__(self, cfg: LDMExperimentConfig, latent_shape: list[int], num_classes: int,
                 autoencoder: dict, stats: dict) -> None:  # fmt: skip
        super().__init__()
        c, h, w = latent_shape
        if h != w:
            raise ValueError(f"the DiT needs square latents, got {h}x{w}")
        self.cfg, self.latent_shape, self.num_classes = cfg, list(latent_shape), num_classes
        self.autoencoder_record = autoencoder
        # the cache's statistics, stored in this folder's config.json (not in the weights)
        self.latent_stats = LatentStats.from_dict(stats, c, "latent_stats", persistent=False)
        self.dit = DiT(cfg.dit, c, h, num_classes)
        self.path = get_path(cfg.diffusion.path)

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            **header("dgae-ldm"),
            "config": to_dict(self.cfg),
            "latent_shape": self.latent_shape,
            "num_classes": self.num_classes,
            "autoencoder": self.autoencoder_record,
            "latent_stats": self.latent_stats.to_dict(),
        }
        state = {k: v.detach().cpu().contiguous() for k, v in self.dit.state_dict().items()}
        with atomic_path(directory / "config.json") as tmp_c:
            with atomic_path(directory / "model.safetensors") as tmp_w:  # renamed first
                save_file(state, str(tmp_w))
            tmp_c.write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu"
    ) -> LatentDiffusion:
        directory = Path(directory)
        cfg_path = directory / "config.json"
        if not cfg_path.exists() or not (directory / "model.safetensors").exists():
            raise FileNotFoundError(
                f"{directory} is not a DiT folder (config.json + model.safetensors)"
            )
        meta = json.loads(cfg_path.read_text())
        check_header(meta, "dgae-ldm", cfg_path)
        cfg = from_dict(LDMExperimentConfig, meta["config"])
        model = cls(
            cfg,
            meta["latent_shape"],
            meta["num_classes"],
            meta["autoencoder"],
            meta["latent_stats"],
        )
        model.dit.load_state_dict(load_file(str(directory / "model.safetensors")))
        return model.to(device).eval()

    def load_autoencoder(
        self, path: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> Autoencoder:
        """The autoencoder recorded at training time; another folder is refused unless identical."""
        path = Path(path or self.autoencoder_record["path"])
        got = fingerprint(path)
        if got != self.autoencoder_record["fingerprint"]:
            raise ValueError(
                f"autoencoder {path} (fingerprint {got[:12]}) is not the one these latents came from: "
                f"{self.autoencoder_record['path']} (fingerprint {self.autoencoder_record['fingerprint'][:12]})"
            )
        return Autoencoder.from_pretrained(path, device=device)

    def denormalize(self, z: Tensor) -> Tensor:
        """DiT samples (B, c, h, w) -> autoencoder latents, undoing the cache's normalisation."""
        return self.latent_stats.denormalize(z)

    @torch.no_grad()
    def sample_latents(self, labels: Tensor, num_steps: int, cfg_scale: float, generator: Generator,
                       sampler: str | None = None) -> Tensor:  # fmt: skip
        """Normalised latents (N, c, h, w) for class ``labels`` (N,) by integrating the ODE with
        ``sampler`` (default: the config's), the decoder's sampler and parameterisation code."""
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if len(bad):
            raise ValueError(f"class label {int(bad[0])} is out of range [0, {self.num_classes})")
        device = next(self.parameters()).device
        interval = tuple(self.cfg.guidance_interval)
        noise = randn((len(labels), *self.latent_shape), generator, device)

        def network(x_t: Tensor, t: Tensor) -> Tensor:
            if cfg_scale == 1.0:
                return self.dit(x_t, t, labels)
            return self.dit.forward_with_guidance(x_t, t, labels, cfg_scale, interval)

        dcfg = self.cfg.diffusion
        denoise = as_denoiser(network, dcfg, self.path)
        return sample(denoise, noise, self.path, num_steps, sampler or dcfg.sampler,
                      spacing=dcfg.spacing, shift=dcfg.sample_shift, t_max=dcfg.t_max)  # fmt: skip


class DiTLoss(nn.Module):
    """forward(z, y, generators) -> {"loss"}: the decoder's denoising loss (the config's path,
    time distribution, prediction and loss space) with label dropout (to the null class) for
    classifier-free guidance."""

    def __init__(self, ldm: LatentDiffusion) -> None:
        super().__init__()
        self.ldm = ldm

    @property
    def ema_target(self) -> LatentDiffusion:
        return self.ldm

    def forward(self, z: Tensor, y: Tensor, generators: list) -> dict[str, Tensor]:
        ldm = self.ldm

        def network(z_t: Tensor, t: Tensor) -> Tensor:
            # drawn after (t, eps), as before the loss was shared: same streams, same runs
            drop = rand((len(z),), generators, z.device) < ldm.cfg.dit.class_dropout
            return ldm.dit(z_t, t, torch.where(drop, torch.full_like(y, ldm.num_classes), y))

        return {"loss": denoising_loss(network, z, ldm.cfg.diffusion, ldm.path, generators).loss}


def build_ldm(cfg: LDMExperimentConfig, data: LatentDataset) -> LatentDiffusion:
    meta = data.meta
    return LatentDiffusion(
        cfg, meta["latent_shape"], data.num_classes, meta["autoencoder"], meta["stats"]
    )


def build_ldm_task(cfg: LDMExperimentConfig, ldm: LatentDiffusion, run_dir: Path, device: torch.device,
                   extra_eval=None) -> TrainTask:  # fmt: skip
    """The loop's task: DiT loss; samples decode a fixed class grid; export writes RUN/model.
    ``extra_eval(ema_ldm, step)`` runs at every sample point (the convergence experiment's FID)."""
    autoencoder = ldm.load_autoencoder(device=device)

    def compute(wrapped: dict[str, nn.Module], batch: Batch, gens: list, step: int) -> dict:
        out = wrapped["model"](batch.images.to(device).float(), batch.labels.to(device), gens)
        return {"model": out["loss"], "loss": out["loss"]}

    def on_sample(ema: nn.Module, step: int) -> None:
        images = generate_images(ema, autoencoder, num=16, num_steps=cfg.diffusion.num_steps,
                                 cfg_scale=cfg.cfg_scale, seed=0)  # fmt: skip
        save_grid(images, run_dir / "samples" / f"step_{step:08d}.png", 8, upscale=2)
        if extra_eval is not None:
            extra_eval(ema, step)

    def on_export(ema: nn.Module) -> None:
        ema.save_pretrained(run_dir / "model")

    return TrainTask(
        {"model": DiTLoss(ldm)}, {"model": cfg.train.lr}, compute, on_sample, on_export
    )


@torch.no_grad()
def generate_images(
    ldm: LatentDiffusion,
    autoencoder: Autoencoder,
    num: int,
    *,
    num_steps: int,
    cfg_scale: float,
    seed: int = 0,
    labels: Tensor | None = None,
    ae_steps: int | None = None,
    batch_size: int = 64,
    start: int = 0,
    progress: bool = False,
) -> Tensor:
    """uint8 images (num, 3, H, W): sample i uses class i % K (unless ``labels``) and its own
    seeds for the DiT noise and the decoder noise, so it is the same in any batch."""
    ldm.eval()
    device = next(ldm.parameters()).device
    index = torch.arange(start, start + num)
    labels = index % ldm.num_classes if labels is None else labels
    out = []
    bar = tqdm(total=num, disable=not progress, unit="img", desc="sampling")
    for chunk in range(0, num, batch_size):
        idx = index[chunk : chunk + batch_size].tolist()
        y = labels[chunk : chunk + batch_size].to(device)
        z = ldm.sample_latents(
            y,
            num_steps,
            cfg_scale,
            item_generators(seed, idx, "noise", device),
        )
        z = ldm.denormalize(z)
        gens = item_generators(seed, idx, "decoder", device)
        out.append(to_uint8(autoencoder.decode(z, num_steps=ae_steps, generator=gens)).cpu())
        bar.update(len(idx))
    bar.close()
    return torch.cat(out)
