#!/usr/bin/env bash
# GPU validation: on a machine with an NVIDIA GPU and the CUDA toolkit, builds the real CUDA backend
# and runs everything that needs the device. Prints a summary; logs go to ${OUT:-gpu-validate}/.
#   scripts/gpu-validate.sh
# Steps: device info; Release build with -DSDGEN_CUDA=ON; the whole ctest suite (its golden model
# tests include CUDA runs that skip without a device and run here); the op table on the real CUDA
# backend (cuda_ops_tests) and the same under compute-sanitizer; sd-gen --device cuda on the tiny
# model, fp32 and fp16, against diffusers' images.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-validate}
mkdir -p "$OUT"
BUILD_DIR=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
status=0
step() { echo "== $1"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"

step "build (SDGEN_CUDA=ON)"
bash scripts/install-deps.sh >"$OUT/deps.log" 2>&1
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSDGEN_CUDA=ON >"$OUT/configure.log" 2>&1 &&
  cmake --build "$BUILD_DIR" -j "$JOBS" >"$OUT/build.log" 2>&1 || { echo "build FAILED (see $OUT/build.log)"; tail -30 "$OUT/build.log"; exit 1; }

step "ctest (CPU, emulator and CUDA golden runs)"
ctest --test-dir "$BUILD_DIR" -j "$JOBS" --output-on-failure >"$OUT/ctest.log" 2>&1 || status=1
grep -E "tests passed|tests failed" "$OUT/ctest.log"

step "op table on the real CUDA backend"
"$BUILD_DIR/tests/simt/cuda_ops_tests" >"$OUT/cuda_ops_tests.log" 2>&1 || status=1
tail -3 "$OUT/cuda_ops_tests.log"

if command -v compute-sanitizer >/dev/null; then
  step "compute-sanitizer memcheck (op table)"
  compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD_DIR/tests/simt/cuda_ops_tests" \
    >"$OUT/memcheck.log" 2>&1 || status=1
  grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/memcheck.log" | tail -3
fi

step "sd-gen --device cuda on the tiny model"
for prec in fp32 fp16; do
  rm -rf "$OUT/img-$prec"
  "$BUILD_DIR/sd-gen" --device cuda --precision $prec --model tests/data/tiny_sd/tiny_sd.safetensors \
    --prompt "a photo of a cat" --seed 42 --batch 2 --steps 5 -W 64 -H 64 --out "$OUT/img-$prec" \
    --name "img-{i}" --json >"$OUT/sd-gen-$prec.json" 2>"$OUT/sd-gen-$prec.log" || { status=1; cat "$OUT/sd-gen-$prec.log"; }
  echo "$prec: $(wc -l <"$OUT/sd-gen-$prec.json") images"
done
echo "== overall: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
