"""Peak memory and time of a decode against image size, untiled and tiled (CPU).

Each measurement runs in a fresh process: load the model, decode one random latent of the
size at ``--steps`` NFE, and report the wall time and the growth of the process's peak resident
memory (``ru_maxrss``) over its value after loading. Runs past ``--timeout`` seconds are
reported as such. Writes a markdown table and ``decode_memory.png``.

Usage: python benchmarks/decode_memory.py --model RUN/model --sizes 256,512,1024,2048 --tile 256
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys, time, torch
from dgae import Autoencoder
model = Autoencoder.from_pretrained(sys.argv[1]); size, tile, steps = map(int, sys.argv[2:5])
f, c = model.downsample_factor, model.config.latent_channels
z = torch.randn(1, c, size // f, size // f, generator=torch.Generator().manual_seed(0))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
with torch.no_grad():
    model.decode(z, num_steps=steps, tile=tile or None)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mib": peak / 1024}))
"""


def measure(model: str, size: int, tile: int, steps: int, timeout: int) -> dict:
    cmd = [sys.executable, "-c", CHILD, model, str(size), str(tile), str(steps)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "peak_mib": None, "note": f"over {timeout} s"}
    if res.returncode:
        return {"seconds": None, "peak_mib": None, "note": res.stderr.strip().splitlines()[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--sizes", default="256,512,1024,2048")
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--out", default=".", help="folder for decode_memory.png")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = {mode: [measure(args.model, s, tile, args.steps, args.timeout) for s in sizes]
            for mode, tile in (("untiled", 0), (f"tiled {args.tile}", args.tile))}  # fmt: skip
    print("| size | " + " | ".join(f"{m} s | {m} peak MiB" for m in rows) + " |")
    print("|---|" + "---|---|" * len(rows))
    for i, s in enumerate(sizes):
        cells = []
        for r in rows.values():
            m = r[i]
            cells += ([f"{m['seconds']:.1f}", f"{m['peak_mib']:.0f}"] if m["seconds"] is not None
                      else [m["note"], "–"])  # fmt: skip
        print(f"| {s}² | " + " | ".join(cells) + " |")
    from dgae.plotting import panels

    with panels(Path(args.out) / "decode_memory.png", ("peak memory (MiB)", "time (s)"),
                "image side (pixels)", (4.5, 3.6)) as axes:  # fmt: skip
        for mode, r in rows.items():
            pts = [(s, m) for s, m in zip(sizes, r, strict=True) if m["seconds"] is not None]
            for ax, key in zip(axes, ("peak_mib", "seconds"), strict=True):
                ax.plot([s for s, _ in pts], [m[key] for _, m in pts], marker="o", label=mode)
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")


if __name__ == "__main__":
    main()
