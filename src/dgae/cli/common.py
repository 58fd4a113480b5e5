"""Helpers shared by the subcommands: image I/O at any size, model loading, seeds."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from dgae.autoencoder import Autoencoder
from dgae.config import SamplerName, choices
from dgae.data.images import load_image
from dgae.data.transforms import to_model_range, to_uint8

# what a command module's register() receives: argparse's add_parser of the dgae subcommands
AddCommand = Callable[..., argparse.ArgumentParser]


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def pick_device(name: str | None) -> torch.device:
    """``--device`` (default: cuda when available); unknown or unavailable ones are errors."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"--device {name!r} is not a device; expected cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device {name}: CUDA is not available on this machine; use --device cpu"
        )
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name}: expected cpu, cuda or cuda:N")
    return device


def add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None,
                   help="decoder NFE (default: the model's; 0: the prior head's image alone)")  # fmt: skip
    p.add_argument("--sampler", choices=choices(SamplerName), default=None)
    p.add_argument("--seed", type=int, default=0, help="seed of the decoder noise (per image)")
    p.add_argument("--tile", type=int, default=None,
                   help="decode in overlapping tiles of this many pixels (a multiple of f), "
                   "blended seam-free at every step: memory bounded by the tile")  # fmt: skip
    p.add_argument("--overlap", type=int, default=None, help="tile overlap (default: tile / 4)")


MAX_DECODER_STEPS = 1000  # far past where quality stops changing; larger is a typo


def sampling_kwargs(args: argparse.Namespace) -> dict:
    if args.steps is not None and not 0 <= args.steps <= MAX_DECODER_STEPS:
        raise ValueError(
            f"--steps {args.steps}: expected a decoder NFE in [0, {MAX_DECODER_STEPS}]"
        )
    kw = {"num_steps": args.steps}
    if args.sampler:
        kw["sampler"] = args.sampler
    if args.tile is not None:
        kw.update(tile=args.tile, overlap=args.overlap)
    elif args.overlap is not None:
        raise ValueError("--overlap needs --tile")
    return kw


def report_training(status: str, out: str, exported: str) -> None:
    """The last line of a training command: where its checkpoint or its export is."""
    if status == "interrupted":
        print(f"interrupted: checkpoint saved in {out}/checkpoints; rerun to resume")
    else:
        print(f"done: {exported} exported to {out}/model")


def load_model(path: str, device: torch.device) -> Autoencoder:
    return Autoencoder.from_pretrained(path, device=device)


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's free memory, else the OS's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: do not refuse


def check_fits(
    model: Autoencoder,
    height: int,
    width: int,
    device: torch.device,
    what: str,
    tile: int | None = None,
) -> None:
    """Refuse, before any work, an image whose full-resolution activations cannot fit: a
    conservative estimate of float32 maps (the widest full-resolution layer, times the maps a
    U-Net keeps for its skips; on one ``tile`` when tiling) against the free
    memory of ``device``."""
    cfg = model.config
    widths = [cfg.baseline_decoder.base_channels]
    if model.is_diffusion:
        widths.append(cfg.decoder.base_channels * (2 * cfg.decoder.num_res_blocks + 4))
    area = min(height, tile) * min(width, tile) if tile else height * width
    maps = max([cfg.encoder.base_channels, *widths]) * area  # tiling bounds encoder and decoder
    need = 4 * (maps + 16 * height * width)
    free = available_bytes(device)
    if need > 0.8 * free:
        raise ValueError(
            f"{what}: a {height}x{width} image needs about {need / 2**30:.1f} GiB of activations "
            f"at full resolution, more than the {free / 2**30:.1f} GiB free on {device}; "
            "use a smaller image or --tile"
        )


def check_images_fit(
    model: Autoencoder, paths: list[str], device: torch.device, tile: int | None = None
) -> None:
    """:func:`check_fits` for every image file, from its header, before any is processed."""
    f = model.downsample_factor
    for path in paths:
        try:
            with Image.open(path) as img:
                w, h = img.size
        except OSError:
            continue  # unreadable files are reported when they are read
        check_fits(model, h + (-h) % f, w + (-w) % f, device, str(path), tile)


def read_padded(path: str | Path, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Image file -> (1, 3, H', W') in [-1, 1], reflect-padded to a multiple of ``multiple``,
    and the original (H, W) to crop back to."""
    image = torch.from_numpy(load_image(path).transpose(2, 0, 1).copy())[None]  # (1, 3, H, W)
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    x = to_model_range(image)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def write_png(image: torch.Tensor, path: Path) -> None:
    """(3, H, W) in [-1, 1] -> PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image).permute(1, 2, 0).cpu().numpy()).save(path)


def side_by_side(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two (3, H, W) images next to each other with a 4-px white gutter."""
    gutter = torch.ones(3, a.shape[1], 4, dtype=a.dtype)
    return torch.cat([a.cpu(), gutter, b.cpu()], dim=2)


def add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (inputs never are)"
    )


def safe_stem(name: str) -> str:
    """A file stem that cannot leave its folder: the last path component, with anything but
    letters, digits, '.', '-' and '_' replaced (names come from shared latent files)."""
    stem = Path(str(name).replace("\\", "/")).name
    stem = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in stem).lstrip(".")
    return stem or "image"


def plan_outputs(
    outputs: list[Path], inputs: list[str | Path], overwrite: bool, where: str = "--out"
) -> list[Path]:
    """Check every planned output before the first is written: none may be an input (never,
    even with ``overwrite``), appear twice, or exist already unless ``overwrite``; a folder
    where a file is needed is an error too. Returns the outputs."""
    taken = {Path(p).resolve() for p in inputs}
    seen: set[Path] = set()
    for path in outputs:
        real = path.resolve()
        if real in taken:
            raise ValueError(f"{where}: {path} is one of the inputs; refusing to overwrite it")
        if real in seen:
            raise ValueError(f"{where}: two outputs would both be written to {path}")
        if path.is_dir():
            raise ValueError(f"{where}: {path} is a folder, but a file is to be written there")
        if path.exists() and not overwrite:
            raise ValueError(f"{where}: {path} exists; pass --overwrite to replace it")
        seen.add(real)
    return outputs


def output_folder(out: str | Path) -> Path:
    """``--out`` as a folder: an existing file there is an error naming it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder for the outputs")
    return out


def unique_names(paths: list[str]) -> list[str]:
    """File stems, made unique with a numeric suffix where two inputs share one."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = safe_stem(Path(p).stem)
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names
