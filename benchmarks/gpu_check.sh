#!/usr/bin/env bash
# GPU readiness check, under 10 minutes on one GPU: `dgae bench` on the B presets at 256² in
# bf16 (img/s, TFLOP/s, MFU, peak memory; DGAE vs the baseline vs diffusers' AutoencoderKL
# decoder) and a 256² bf16 training-throughput run of dgae-B on the built-in photos.
#
# Usage: benchmarks/gpu_check.sh [OUT]   (needs dgae installed with a CUDA build of torch)
# Writes OUT/gpu.txt, OUT/bench-B/bench.{md,json}, OUT/train-B/metrics.jsonl, OUT/summary.md.
set -euo pipefail
out=${1:-gpu-check}
mkdir -p "$out"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this check needs a GPU')"
python -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}')" | tee "$out/gpu.txt"

timeout 300 dgae bench --size B --bf16 --resolution 256 --batch-size 32 --steps 1,2,4 \
    --repeats 3 --iters 3 --device cuda --out "$out/bench-B"

rm -rf "$out/train-B"
timeout 240 dgae train --preset dgae-B --data photos --out "$out/train-B" --device cuda --no-progress \
    train.total_steps=60 train.batch_size=32 train.precision=bf16 train.log_every=10 \
    train.sample_every=60 train.checkpoint_every=60 train.stats_images=64

python - "$out" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [json.loads(l) for l in (out / "train-B" / "metrics.jsonl").read_text().splitlines() if l.strip()]
rates = [r["images_per_s"] for r in rows if r.get("images_per_s")][1:]  # the first window compiles/warms up
text = (f"# GPU check: {(out / 'gpu.txt').read_text().strip()}\n\n" + (out / "bench-B" / "bench.md").read_text()
        + f"\n\ndgae-B training at 256², batch 32, bf16: {statistics.median(rates):.1f} img/s (median of {len(rates)} logged windows)\n")
(out / "summary.md").write_text(text)
print(text)
PY
