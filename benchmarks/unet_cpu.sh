#!/usr/bin/env bash
# CPU UNet benchmark (issue: sd-gen no slower than PyTorch on the same machine): one full-size SD
# v1.5 UNet evaluation, batch 2, 64x64 latent, 77-token context, sd-gen's CPU backend vs PyTorch
# (diffusers UNet2DConditionModel), same machine, same run, same thread count.
#   benchmarks/unet_cpu.sh [PYTHON]      PYTHON: an interpreter with torch + diffusers
#                                        (tests/reference/requirements.txt), default python3
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
BUILD_DIR=${BUILD_DIR:-build}
THREADS=${THREADS:-$(nproc)}
cmake --build "$BUILD_DIR" --target bench_unet_cpu -j "$THREADS" >/dev/null
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, threads $THREADS"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} (forces an OpenBLAS kernel set; unset: OpenBLAS picks by CPU)"
ours=$(OMP_NUM_THREADS=$THREADS "$BUILD_DIR/benchmarks/bench_unet_cpu" --repeats ${REPEATS:-3})
echo "$ours"
theirs=$(OMP_NUM_THREADS=$THREADS "$PY" benchmarks/unet_cpu_torch.py --threads "$THREADS" --repeats ${REPEATS:-3})
echo "$theirs"
"$PY" - "$ours" "$theirs" <<'PYEOF'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"ratio sd-gen / pytorch = {a['seconds'] / b['seconds']:.3f}  (<= 1.0: sd-gen is no slower)")
PYEOF
