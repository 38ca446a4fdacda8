#!/usr/bin/env bash
# The device checks of a lent GPU machine as one prepared run (docs/benchmarks.md "GPU").
#
# Here, once the default corpus's features exist (`dvc repro stats`):
#   python benchmarks/gpu_pack.py pack        # .gpu/: train+val frames, stats, wheels
# Then, with the device tool, from the repository root there (carry: [".gpu"]):
#   bash benchmarks/gpu.sh                     # about 5 minutes on an H100
# It writes to $OUT: the step benchmark (vs the reference implementation and the GPU's matmul
# rate), the training benchmark (steps/s, s of audio/s, bf16 share of peak, data path share;
# not the WaveNet decoder, whose audio does not travel),
# the default training's log and metrics/train.json, and docs/benchmarks.md with the two
# benchmarks' cuda sections, to copy back. DEVICE=cpu QUICK=1 rehearses it on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

site=/tmp/vqspeech-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" .gpu/wheels/*.whl
export PYTHONPATH="$site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python3 benchmarks/gpu_pack.py unpack

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/machine.txt"

rounds=5 steps=40 epochs=30
if [ "$QUICK" = 1 ]; then rounds=1 steps=4 epochs=1; fi

python3 benchmarks/step.py --device "$DEVICE" --rounds "$rounds" 2>&1 | tee "$OUT/step.log"
python3 benchmarks/train.py --device "$DEVICE" --steps "$steps" --no-audio 2>&1 | tee "$OUT/train-bench.log"

# the default training (params.yaml as committed; train.device auto takes the GPU)
python3 - "$epochs" <<'EOF'
import sys, yaml
params = yaml.safe_load(open("params.yaml"))
params["train"]["epochs"] = int(sys.argv[1])
yaml.safe_dump(params, open("/tmp/gpu-params.yaml", "w"))
EOF
start=$(date +%s)
python3 stages/train.py run --params /tmp/gpu-params.yaml 2>&1 | tee "$OUT/train-default.log"
echo "default training: $(( $(date +%s) - start )) s wall, $epochs epochs" | tee -a "$OUT/train-default.log"
cp metrics/train.json "$OUT/train.json"
cp docs/benchmarks.md "$OUT/benchmarks.md"
