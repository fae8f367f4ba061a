#!/usr/bin/env bash
# Installs what is missing, builds sd-gen and runs every test (the README's test command; CI runs it).
#   scripts/test.sh            Release build in build/, all tests
# Environment: BUILD_DIR (default build), JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
bash scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
# The emulator and the emulated CUDA backend once more in a Debug build (assertions on, no
# optimisation). Only where the emulator is part of the build (it needs the CUDA toolkit's headers).
if cmake --build "$BUILD_DIR" --target help | grep -q "simt_tests"; then
  cmake -S . -B "$BUILD_DIR-debug" -DCMAKE_BUILD_TYPE=Debug -DSDGEN_CUDA=OFF -DSDGEN_BUILD_BENCHMARKS=OFF
  cmake --build "$BUILD_DIR-debug" -j "$JOBS" --target simt_tests
  (cd "$BUILD_DIR-debug/tests/simt" && ./simt_tests --gtest_brief=1)
else
  echo "test.sh: SIMT emulator not in this build (no CUDA toolkit headers): Debug emulator run skipped"
fi
