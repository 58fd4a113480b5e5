#!/usr/bin/env bash
# GPU readiness check, under 10 minutes on one GPU: `dgae bench` on the B presets at 256² in
# bf16 (img/s, TFLOP/s, MFU, peak memory; the trunk decoder and the default U-Net decoder, each
# against the one-pass baseline; diffusers' AutoencoderKL decoder beside the baseline) and
# 256² bf16 training-throughput runs of dgae-trunk-B and baseline-B on the built-in photos.
#
# Usage: benchmarks/gpu_check.sh [OUT]   (needs dgae importable by $PYTHON, default `python`,
# with a CUDA build of torch, and the perceptual weights of `python -m dgae weights`)
# Writes OUT/gpu.txt, OUT/bench-B{,-unet}.md, OUT/train-{dgae-trunk,baseline}-B.jsonl, OUT/summary.md.
set -euo pipefail
out=${1:-gpu-check}
py=${PYTHON:-python}
work=$(mktemp -d)  # the training runs' checkpoints stay out of OUT
mkdir -p "$out"
$py -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this check needs a GPU')"
$py -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}')" | tee "$out/gpu.txt"

bench() {  # bench NAME [DGAE overrides...]
    local name=$1; shift
    timeout 150 $py -m dgae bench --size B --bf16 --resolution 256 --batch-size 32 --steps 1,2,4 \
        --repeats 3 --iters 3 --device cuda --out "$work/$name" "$@"
    cp "$work/$name/bench.md" "$out/$name.md"
}
bench bench-B --dgae dgae-trunk
bench bench-B-unet --dgae dgae-unet --no-peer --batch-size 16  # the U-Net step needs > 80 GB at 32

# the trainer on real data (each run's own wall clock and startup included; ~65 img/s for
# dgae-trunk-B on an H100, docs/benchmarks.md "GPU"); a run that does not finish is reported
for kind in dgae-trunk baseline; do
    if timeout 110 $py -m dgae train --preset "$kind-B" --data photos --out "$work/train-$kind" \
        --device cuda train.total_steps=60 train.batch_size=32 train.precision=bf16 \
        train.log_every=10 train.sample_every=60 train.checkpoint_every=60 train.stats_images=64
    then
        cp "$work/train-$kind/metrics.jsonl" "$out/train-$kind-B.jsonl"
    else
        echo "$kind-B: the 60-step training run did not finish in 110 s" | tee -a "$out/train-failed.txt"
    fi
done

$py - "$out" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])

def rate(kind):
    path = out / f"train-{kind}-B.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    rates = [r["images_per_s"] for r in rows if r.get("images_per_s")][1:]  # first window warms up
    return statistics.median(rates) if rates else None

d, b = rate("dgae-trunk"), rate("baseline")
train = (f"dgae-trunk-B {d:.1f} img/s, baseline-B {b:.1f} img/s, ratio {d / b:.3f}" if d and b
         else "did not finish (see train-failed.txt); the bench's train_step rows are the measure")
text = (f"# GPU check: {(out / 'gpu.txt').read_text().strip()}\n\n"
        + (out / "bench-B.md").read_text() + "\n" + (out / "bench-B-unet.md").read_text()
        + f"\n\nTrainer at 256², batch 32, bf16, on photos: {train}\n")
(out / "summary.md").write_text(text)
print(text)
PY
