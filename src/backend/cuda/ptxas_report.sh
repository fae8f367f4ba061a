#!/usr/bin/env bash
# Compiles one kernel file to a cubin for one architecture with `ptxas -v` and keeps what ptxas
# says (registers, spills, stack, shared memory per function) with C++ names demangled, so that the
# static checks (tests/kernel_static) can read it. Used by the build (cuda_backend.cmake:
# sdgen_add_ptxas_reports); the normal compile of sdgen_cuda prints no such report, and its output
# could not be captured per file and architecture anyway.
#   ptxas_report.sh OUT_PREFIX ARCH CXXFILT NVCC [nvcc arguments...]
# writes OUT_PREFIX.cubin and OUT_PREFIX.txt; on a compile error prints it and fails.
set -euo pipefail
out=$1 arch=$2 cxxfilt=$3 nvcc=$4
shift 4
raw="$out.raw"
if ! "$nvcc" -cubin -arch="sm_$arch" -Xptxas -v "$@" -o "$out.cubin" 2>"$raw"; then
  cat "$raw" >&2
  exit 1
fi
# Written under a temporary name so an interrupted build never leaves half a report behind.
"$cxxfilt" <"$raw" >"$out.txt.tmp"
mv "$out.txt.tmp" "$out.txt"
rm -f "$raw"
