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

step "sd-gen --device cuda on the tiny model (CUDA graphs on and off must give the same images)"
for prec in fp32 fp16; do
  for graphs in on off; do
    d="$OUT/img-$prec-$graphs"
    rm -rf "$d"
    "$BUILD_DIR/sd-gen" --device cuda --precision $prec --cuda-graphs $graphs \
      --model tests/data/tiny_sd/tiny_sd.safetensors --prompt "a photo of a cat" --seed 42 --batch 2 \
      --steps 5 -W 64 -H 64 --out "$d" --name "img-{i}" --json >"$d.json" 2>"$d.log" || { status=1; cat "$d.log"; }
    echo "$prec graphs $graphs: $(wc -l <"$d.json") images"
  done
  cmp -s "$OUT/img-$prec-on/img-0.png" "$OUT/img-$prec-off/img-0.png" || { echo "$prec: graphs on/off differ"; status=1; }
done

step "full-size SD v1.5 shapes (random weights), batch 3 x 25 steps x 512^2: time and peak memory"
for prec in fp16 fp32; do
  "$BUILD_DIR/sd-gen" --device cuda --precision $prec --model random:sd15 --prompt "a lighthouse" --seed 1 \
    --batch 3 --steps 25 --out "$OUT/full-$prec" --json >"$OUT/full-$prec.json" 2>"$OUT/full-$prec.log" || status=1
  echo "$prec: $(grep -o '"total_s":[0-9.]*' "$OUT/full-$prec.json" | head -1), $(grep -o '"peak_device_bytes":[0-9]*' "$OUT/full-$prec.json" | head -1)"
done
echo "== overall: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
