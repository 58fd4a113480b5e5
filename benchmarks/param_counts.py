"""Print the parameter counts of every preset as a markdown table (used in the README).

Usage: python benchmarks/param_counts.py
"""

from dgae import build_autoencoder, get_preset
from dgae.config import PRESETS, ExperimentConfig


def millions(module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f}"


def main() -> None:
    get_preset("dgae-tiny")  # registers the presets
    print("| preset | kind | f | c | resolution | encoder (M) | decoder (M) |")
    print("|---|---|---|---|---|---|---|")
    for name, make in PRESETS.items():
        if not isinstance(make(), ExperimentConfig):  # DiT presets have their own table
            continue
        cfg = get_preset(name)
        m = build_autoencoder(cfg.model)
        mc = cfg.model
        print(f"| `{name}` | {mc.kind} | {mc.downsample_factor} | {mc.latent_channels} | "
              f"{cfg.data.resolution} | {millions(m.encoder)} | {millions(m.decoder)} |")  # fmt: skip


if __name__ == "__main__":
    main()
