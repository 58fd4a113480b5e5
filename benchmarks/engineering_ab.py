"""Eager vs channels-last vs ``torch.compile`` decode throughput of the small presets, each
workload timed in alternating windows in one process (the table in docs/benchmarks.md).

Usage: python benchmarks/engineering_ab.py
"""

import torch

from dgae.config import get_preset
from dgae.evaluation.bench import Engineering, measure_interleaved, workloads


def main() -> None:
    device = torch.device("cpu")
    print("| decode | eager img/s | channels-last | torch.compile |")
    print("|---|---|---|---|")
    for kind in ("dgae", "baseline"):
        cfg = get_preset(f"{kind}-small")
        key = "decode@1" if kind == "dgae" else "decode"
        fns = [workloads(cfg, 32, 16, device, (1,), eng)[key]
               for eng in (Engineering(), Engineering(channels_last=True), Engineering(compile=True))]  # fmt: skip
        eager, last, compiled = measure_interleaved(fns, 16, device, repeats=5, iters=3)
        print(f"| {kind}-small {key} | {eager:.1f} | {last:.1f} ({last / eager:.2f}x) | "
              f"{compiled:.1f} ({compiled / eager:.2f}x) |")  # fmt: skip


if __name__ == "__main__":
    main()
