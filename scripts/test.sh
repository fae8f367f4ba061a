#!/usr/bin/env bash
# Installs what is missing, builds sd-gen and runs every test (the README's test command; CI runs it).
#   scripts/test.sh            Release build in build/, all tests
# Environment: BUILD_DIR (default build; the sanitized build goes to BUILD_DIR-asan), JOBS (default:
# number of cores), SDGEN_SKIP_SANITIZE=1 (leave out the sanitized pass), SDGEN_MUTATION_SUBSET
# (run that many mutations of scripts/mutation-check.sh, rotating; CI (CI set) runs 8 by default).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
bash scripts/install-deps.sh
# install-deps.sh installs cuobjdump wherever nvcc is: the SASS check (tests/kernel_static) must
# then run, not skip.
export SDGEN_REQUIRE_CUOBJDUMP=1
# This build is also the GPU kit's (below), which has no room for oneDNN (38 MB): it runs the CPU's
# bf16 GEMMs on the widening path; the sanitized build below runs them through oneDNN.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSDGEN_ONEDNN=OFF
cmake --build "$BUILD_DIR" -j "$JOBS"
# The emulator (and the emulated CUDA backend) is part of the build where the CUDA toolkit's headers
# are.
has_simt=0
[ -x "$BUILD_DIR/tests/simt/simt_tests" ] && has_simt=1
[ $has_simt -eq 1 ] || echo "test.sh: SIMT emulator not in this build (no CUDA toolkit headers); its tests are skipped"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"

# The GPU kit (scripts/gpu-kit.sh: what a lent GPU machine without our dependencies needs), packed
# from this build and rehearsed without a GPU in a clean root (scripts/gpu-kit-rehearse.sh: only
# CUDA libraries unresolved, then run.sh --dry). Needs the CUDA build and root (chroot).
if [ -x "$BUILD_DIR/tests/simt/cuda_ops_tests" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    BUILD_DIR="$BUILD_DIR" bash scripts/gpu-kit.sh
    BUILD_DIR="$BUILD_DIR" bash scripts/gpu-kit-rehearse.sh
  else
    echo "test.sh: not root: the GPU kit's clean-root rehearsal is skipped"
  fi
fi

# The whole suite once more under AddressSanitizer + UndefinedBehaviorSanitizer (SDGEN_SANITIZE): a
# Debug build (assertions on) at -O1 of the library, the CLI, the CPU backend, the emulator and the
# emulated CUDA backend; any report fails its test. The Slurm test is left to the Release pass (it
# runs the same binaries through daemons, and only once per machine), and so is the refusal matrix
# (the op table again per refused library call: the same code under other branches).
if [ "${SDGEN_SKIP_SANITIZE:-0}" != 1 ]; then
  cmake -S . -B "$BUILD_DIR-asan" -DCMAKE_BUILD_TYPE=Debug -DSDGEN_CUDA=OFF -DSDGEN_SANITIZE=ON \
    -DSDGEN_BUILD_BENCHMARKS=OFF -DSDGEN_ONEDNN=ON
  cmake --build "$BUILD_DIR-asan" -j "$JOBS"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:check_initialization_order=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$BUILD_DIR-asan" --output-on-failure -j "$JOBS" -LE "slurm|refusal"
fi

# The fuzz targets (scripts/fuzz.sh: the safetensors and PyTorch checkpoint readers, the tokenizer
# and prompt parser, under ASan + UBSan): every committed crash file replayed, then FUZZ_SECONDS
# (default 60) of fuzzing each from the committed seeds; any finding fails.
bash scripts/fuzz.sh

# The mutation check (scripts/mutation-check.sh): do the tests notice plausible one-line slips? CI
# runs a rotating slice of the list (the slice follows the commit count, so successive commits
# cover the whole list); about 4 minutes to build the copy and 40-60 s per mutation on 2 cores. CI
# stops each caught mutation's test run at its first failing test (--fail-fast): the verdict is the
# same, the run names one catching test, and CI stays within its time.
# The whole list: scripts/mutation-check.sh --all.
if [ -n "${SDGEN_MUTATION_SUBSET:-}" ] || [ -n "${CI:-}" ]; then
  bash scripts/mutation-check.sh --fail-fast --subset "${SDGEN_MUTATION_SUBSET:-8}"
fi
