#!/usr/bin/env bash
# Rehearses the GPU kit (scripts/gpu-kit.sh) without a GPU, in a clean root that holds none of our
# build dependencies: only the C runtime packages every Linux has (Debian's libc6, libgcc-s1,
# libstdc++6, whole) and the command-line tools run.sh calls, each with the libraries it loads.
#   scripts/gpu-kit-rehearse.sh     (as root: chroot, a private /proc; CI runs it after the kit is built)
# 1. In that root, the dynamic loader lists every kit program's libraries with the kit's own lib/
#    and nothing else: the only ones unresolved must be CUDA libraries (the GPU machine's own).
#    sd-gen, which opens its CUDA backend as a plugin, then runs there on the CPU, refuses
#    --device cuda with one line naming the missing library, and falls back from --device auto.
# 2. The CUDA libraries of this machine's toolkit are then put in the root, as the GPU machine has
#    its own, and `run.sh --dry` runs there from a copy of the tracked tree at another path than
#    the one the programs were built in: every step that needs no device runs (CPU goldens, the
#    census, bench on the CPU), and the others check that their programs start and their data is
#    there. Any failure fails the rehearsal.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${KIT_DIR:-gpu-kit}
[ -f "$KIT/run.sh" ] && [ -f "$KIT/payload.tar.xz" ] || { echo "rehearse: no kit in $KIT (scripts/gpu-kit.sh first)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "rehearse: needs root (chroot)" >&2; exit 1; }

root=$(mktemp -d /tmp/sdgen-cleanroot.XXXXXX)
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  [ -n "${KEEP_ROOT:-}" ] && { echo "rehearse: kept $root"; return; }
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

# Debian 12 has the merged /usr layout: /lib, /lib64, /bin and /sbin are links into /usr.
mkdir -p "$root/usr/lib" "$root/usr/lib64" "$root/usr/bin" "$root/usr/sbin" "$root/tmp" "$root/proc" "$root/dev" \
  "$root/opt/cuda-libs"
for d in lib lib64 bin sbin; do ln -s "usr/$d" "$root/$d"; done
chmod 1777 "$root/tmp"
mknod -m 666 "$root/dev/null" c 1 3
mount -t proc proc "$root/proc"  # the GPU machine has one too; sd-gen reads its memory figures there

# A path and the links that lead to it, one step at a time (alternatives, library sonames).
with_links() {
  local p=$1 t
  while [ -L "$p" ]; do
    echo "$p"
    t=$(readlink "$p")
    case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
  done
  echo "$p"
}
list=$(mktemp)
for pkg in libc6 libgcc-s1 libstdc++6; do
  dpkg-query -L "$pkg" | while read -r f; do [ -f "$f" ] || [ -L "$f" ] && echo "$f"; done
done >"$list"
TOOLS="bash sh env timeout mktemp tar xz gzip awk grep sed head tail tr cut wc ls ln mkdir rm cp mv cat tee date
       nproc uname dirname basename sleep cmp stat chmod id true false"
for t in $TOOLS; do
  p=$(type -P "$t") || { echo "rehearse: no $t here" >&2; exit 1; }
  with_links "$p"
  ldd "$(readlink -f "$p")" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
    while read -r l; do with_links "$l"; done
done >>"$list"
sort -u "$list" | tar --no-recursion -cf - -T - 2>/dev/null | tar -C "$root" --keep-directory-symlink -xf -
rm -f "$list"
echo "rehearse: clean root $root: $(du -shx "$root" | cut -f1), packages libc6 libgcc-s1 libstdc++6 and the tools $(echo $TOOLS | wc -w)"

# 1. What the kit's programs load, in the root, with only the kit's lib/.
mkdir -p "$root/kitcheck"
tar -C "$root/kitcheck" -xJf "$KIT/payload.tar.xz"
bad=0
for p in "$root"/kitcheck/bin/*; do
  name=$(basename "$p")
  # (ldd's own way: the loader lists every library, found or not, and runs nothing)
  unresolved=$(chroot "$root" /usr/bin/env -i LD_LIBRARY_PATH=/kitcheck/lib LD_TRACE_LOADED_OBJECTS=1 \
    /lib64/ld-linux-x86-64.so.2 "/kitcheck/bin/$name" 2>&1 | awk '/not found/ { print $1 }' | sort -u | tr '\n' ' ' || true)
  other=$(tr ' ' '\n' <<<"$unresolved" | grep -v -E '^(libcudart|libcublas|libcublasLt|libcudnn[a-z_]*)\.so\.[0-9]+$' | grep . || true)
  echo "rehearse: ldd $name in the clean root: unresolved: ${unresolved:-nothing}"
  if [ -n "$other" ]; then echo "rehearse: $name needs more than the CUDA libraries: $other" >&2; bad=1; fi
done
[ $bad -eq 0 ] || exit 1

# sd-gen itself loads no CUDA library: on this machine without any, it runs on the CPU; --device
# cuda is one line naming the missing library (exit 5); --device auto says so once and uses the CPU.
mkdir -p "$root/repo"
git ls-files -z | tar --null -T - -cf - | tar -C "$root/repo" -xf -
# The tiny model's single files are not in the tree: the kit's derive_test_models writes them (and
# run.sh does below, after they are removed again).
chroot "$root" /usr/bin/env -i PATH=/usr/bin LD_LIBRARY_PATH=/kitcheck/lib /kitcheck/bin/derive_test_models /repo/tests/data ||
  { echo "rehearse: derive_test_models failed in the clean root" >&2; exit 1; }
# (from the tree's root: sd-gen finds the CLIP vocabulary in ./weights or in the source folder it
# was built in, which this root does not have)
cli() {
  chroot "$root" /usr/bin/env -i PATH=/usr/bin HOME=/tmp LD_LIBRARY_PATH=/kitcheck/lib OMP_NUM_THREADS=2 \
    /bin/sh -c 'cd /repo && exec /kitcheck/bin/sd-gen "$@"' sd-gen \
    -m tests/data/tiny_sd/tiny_sd.safetensors -p "a photo of a cat" -W 64 -H 64 --steps 2 --seed 1 "$@"
}
set +e
cli --device cpu -o /tmp/cpu -q; rc_cpu=$?
cli --device cuda -o /tmp/cuda -q 2>"$root/tmp/cuda.err"; rc_cuda=$?
cli --device auto -o /tmp/auto 2>"$root/tmp/auto.err"; rc_auto=$?
set -e
echo "rehearse: no CUDA library: --device cpu exit $rc_cpu ($(ls "$root/tmp/cpu" 2>/dev/null | wc -l) image);" \
  "--device cuda exit $rc_cuda: $(cat "$root/tmp/cuda.err"); --device auto exit $rc_auto: $(grep -- "no GPU to use" "$root/tmp/auto.err")"
[ $rc_cpu -eq 0 ] && [ -n "$(ls "$root/tmp/cpu"/*.png 2>/dev/null)" ] || { echo "rehearse: --device cpu failed without CUDA libraries" >&2; exit 1; }
[ $rc_cuda -eq 5 ] && [ "$(wc -l <"$root/tmp/cuda.err")" -eq 1 ] && grep -q "libcudart.so.13\|libcublas\|libcudnn" "$root/tmp/cuda.err" ||
  { echo "rehearse: --device cuda without CUDA libraries is not one line naming the missing library (exit 5)" >&2; exit 1; }
[ $rc_auto -eq 0 ] && [ "$(grep -c -- "no GPU to use" "$root/tmp/auto.err")" -eq 1 ] && [ -n "$(ls "$root/tmp/auto"/*.png 2>/dev/null)" ] ||
  { echo "rehearse: --device auto without CUDA libraries did not fall back to the CPU with one line" >&2; exit 1; }
rm -rf "$root/kitcheck"

# 2. The dry run, from a copy of the tracked tree at /repo, with this machine's CUDA libraries.
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
  src=$(ldd "${BUILD_DIR:-build}/libsdgen_cuda.so" 2>/dev/null | awk -v l="$lib" '$1 == l { print $3 }')
  [ -n "$src" ] || { echo "rehearse: $lib not found on this machine" >&2; exit 1; }
  ln "$(readlink -f "$src")" "$root/opt/cuda-libs/$lib" 2>/dev/null || cp -L "$src" "$root/opt/cuda-libs/$lib"
  # libcudnn.so.9 is a loader: its functions live in the sub-libraries beside it, opened on use.
  if [ "$lib" = libcudnn.so.9 ]; then
    for sub in "$(dirname "$(readlink -f "$src")")"/libcudnn_*.so.9; do
      ln "$(readlink -f "$sub")" "$root/opt/cuda-libs/$(basename "$sub")" 2>/dev/null || cp -L "$sub" "$root/opt/cuda-libs/"
    done
  fi
done
cp -a "$KIT" "$root/repo/gpu-kit"
rm -f "$root"/repo/tests/data/tiny_sd/tiny_sd.safetensors "$root"/repo/tests/data/tiny_sd/tiny_sd_fp16.safetensors
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/bin HOME=/tmp SDGEN_CUDA_LIBS=/opt/cuda-libs OUT=/tmp/kit-out \
  KIT_BUDGET_S=600 bash /repo/gpu-kit/run.sh --dry
rc=$?
set -e
echo "rehearse: run.sh --dry in the clean root: exit $rc"
[ -f "$root/tmp/kit-out/summary.md" ] && cat "$root/tmp/kit-out/summary.md"
exit $rc
