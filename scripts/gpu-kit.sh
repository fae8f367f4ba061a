#!/usr/bin/env bash
# The GPU kit: everything a run on a lent GPU machine needs that its image lacks, built here without
# a GPU, in the git-ignored folder gpu-kit/ (or $KIT_DIR). That machine has the CUDA toolkit,
# compute-sanitizer and a Python with PyTorch and NVIDIA's wheels, but none of our Debian build
# dependencies, no network and no apt; the working tree plus carried paths may be 64 MiB at most.
#   scripts/gpu-kit.sh             build (the Release CUDA build in $BUILD_DIR if it is missing) and pack
# What the kit holds:
#   run.sh          the runner (scripts/gpu-kit-run.sh): see its header for the steps; --dry runs the
#                   steps that need no device
#   payload.tar.xz  bin/: sd-gen and its CUDA backend plugin (libsdgen_cuda.so, beside it), the golden and op-table test programs on the real backend, the
#                   census and the op table's perf mode (op_perf_gpu), stripped; lib/: every shared library they
#                   load that is neither the C runtime (libc, libm, libstdc++, libgcc_s: any Linux
#                   has them) nor a CUDA library (found on the GPU machine by run.sh)
#   kit.env         the source and build paths compiled into the programs, the commit, the contents
# The kit is checked: every program has sm_80 and sm_90 machine code and PTX for later GPUs, and
# tree (tracked files) plus kit stay under $KIT_MAX_MIB (default 60) MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build}
KIT=${KIT_DIR:-gpu-kit}
KIT_MAX_MIB=${KIT_MAX_MIB:-60}
JOBS=${JOBS:-$(nproc)}
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"

# Programs in the kit: path in the build folder.
PROGRAMS=(sd-gen libsdgen_cuda.so tests/sdgen_tests tests/simt/cuda_ops_tests tests/simt/cuda_pipeline_tests
          benchmarks/cuda_census benchmarks/op_perf_gpu tests/derive_test_models)

missing=0
for p in "${PROGRAMS[@]}"; do [ -f "$BUILD_DIR/$p" ] || missing=1; done
if [ $missing -eq 1 ]; then
  command -v nvcc >/dev/null || { echo "gpu-kit: needs the CUDA toolkit (nvcc) to build the CUDA backend" >&2; exit 1; }
  echo "gpu-kit: building the Release CUDA build in $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSDGEN_CUDA=ON -DSDGEN_ONEDNN=OFF >/dev/null
  cmake --build "$BUILD_DIR" -j "$JOBS" >/dev/null
fi

# Machine code for the GPUs the lent machine has (H100/H200: sm_90) and for Ampere, PTX for later.
if command -v cuobjdump >/dev/null || [ -x "${XDG_CACHE_HOME:-$HOME/.cache}/sd-gen/bin/cuobjdump" ]; then
  CUOBJDUMP=$(command -v cuobjdump || echo "${XDG_CACHE_HOME:-$HOME/.cache}/sd-gen/bin/cuobjdump")
  elf=$("$CUOBJDUMP" --list-elf "$BUILD_DIR/libsdgen_cuda.so" 2>/dev/null || true)
  ptx=$("$CUOBJDUMP" --list-ptx "$BUILD_DIR/libsdgen_cuda.so" 2>/dev/null || true)
  for arch in sm_80 sm_90; do
    grep -q "$arch" <<<"$elf" || { echo "gpu-kit: $BUILD_DIR/libsdgen_cuda.so has no $arch machine code" >&2; exit 1; }
  done
  grep -q "sm_90" <<<"$ptx" || { echo "gpu-kit: $BUILD_DIR/libsdgen_cuda.so has no PTX for sm_90" >&2; exit 1; }
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for p in "${PROGRAMS[@]}"; do
  install -m 755 "$BUILD_DIR/$p" "$stage/bin/"
  strip --strip-unneeded "$stage/bin/$(basename "$p")"  # the dynamic symbols stay: the plugin binds to sd-gen's
done

# Shared libraries: everything ldd resolves that the GPU machine's image cannot be relied on for.
# Kept out: the C runtime every Linux has, and the CUDA libraries (the machine's own, matching its
# driver; run.sh finds them).
is_system_or_cuda() {
  case "$1" in
    linux-vdso.so*|ld-linux*|libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|libstdc++.so*) return 0 ;;
    libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*|libcudnn*.so*|libnvrtc*.so*|libnvJitLink*.so*) return 0 ;;
  esac
  return 1
}
# oneDNN (the CPU's bf16 GEMMs) is 38 MB (7 MB packed), more than the kit's budget has left, and the
# GPU machine's runs do not need it: kit builds leave it out.
for p in "${PROGRAMS[@]}"; do
  if ldd "$BUILD_DIR/$p" | grep -q libdnnl; then
    echo "gpu-kit: $BUILD_DIR/$p links oneDNN (libdnnl, 38 MB); configure $BUILD_DIR with -DSDGEN_ONEDNN=OFF" >&2
    exit 1
  fi
done
for p in "${PROGRAMS[@]}"; do
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    is_system_or_cuda "$name" && continue
    [ -f "$path" ] || { echo "gpu-kit: $p needs $name, which is not found here" >&2; exit 1; }
    [ -f "$stage/lib/$name" ] || cp -L "$path" "$stage/lib/$name"
  done < <(ldd "$BUILD_DIR/$p")
done
chmod 644 "$stage/lib/"*

rm -rf "$KIT"
mkdir -p "$KIT"
# xz's largest window (-9: 64 MiB) sees the CUDA backend's machine code, linked into several of the
# programs, as repeats: the payload is some 3 MiB smaller than with the default window (8 MiB).
tar -C "$stage" -cf - bin lib | xz -9e -T1 >"$KIT/payload.tar.xz"
install -m 755 scripts/gpu-kit-run.sh "$KIT/run.sh"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+changes" || true)
{
  echo "KIT_SOURCE_DIR='$ROOT'"
  echo "KIT_BUILD_DIR='$(cd "$BUILD_DIR" && pwd)'"
  echo "KIT_COMMIT='$commit$dirty'"
  echo "KIT_BUILT='$(date -u +%Y-%m-%dT%H:%M:%SZ)'"
  echo "KIT_PROGRAMS='${PROGRAMS[*]}'"
  echo "KIT_LIBS='$(cd "$stage/lib" && ls | tr '\n' ' ')'"
} >"$KIT/kit.env"

tree_bytes=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
kit_bytes=$(du -cb "$KIT" | tail -1 | cut -f1)
total_mib=$(( (tree_bytes + kit_bytes + 1048575) / 1048576 ))
stage_bytes=$(du -cb "$stage" | tail -1 | cut -f1)
awk -v k="$kit_bytes" -v s="$stage_bytes" -v t="$tree_bytes" -v all="$total_mib" -v max="$KIT_MAX_MIB" -v dir="$KIT" \
  'BEGIN { printf "gpu-kit: kit in %s/: %.1f MiB (%.1f MiB unpacked); tree %.1f MiB; together %d MiB of %d allowed\n", dir, k / 1048576, s / 1048576, t / 1048576, all, max }'
if [ "$total_mib" -gt "$KIT_MAX_MIB" ]; then
  echo "gpu-kit: tree plus kit is $total_mib MiB, over $KIT_MAX_MIB MiB (the lent machine takes 64 MiB in all)" >&2
  exit 1
fi
