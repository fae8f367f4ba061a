#!/usr/bin/env bash
# Installs the Debian packages sd-gen builds against, skipping those already present.
# Safe to run again. Uses sudo when not root. The CUDA toolkit is optional and not installed here:
# with nvcc on PATH (or at /usr/local/cuda/bin) the CUDA backend is built too, and then cuobjdump
# is installed as well (below), for the SASS check of tests/kernel_static.
set -euo pipefail
PKGS=(cmake g++ make pkg-config zlib1g-dev libjpeg-dev libcli11-dev nlohmann-json3-dev libstb-dev libgtest-dev
      libgmock-dev libopenblas-dev libutf8proc-dev libboost-context-dev
      libopencv-imgproc-dev   # cv::Canny, ControlNet's canny preprocessor (pulls libopencv-core-dev)
      libdnnl-dev   # oneDNN: the CPU's bf16 GEMMs (optional at build time; see docs/performance.md)
      ocl-icd-opencl-dev   # Debian's oneDNN CMake package requires OpenCL (only recommended by libdnnl-dev)
      clang-14 libclang-rt-14-dev   # clang and compiler-rt: the fuzz targets (scripts/fuzz.sh)
      munge slurmctld slurmd slurm-client   # a one-node Slurm cluster: the slurm_cluster test
      xz-utils)                             # the GPU kit's payload (scripts/gpu-kit.sh)
have_nvcc=0
{ command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; } && have_nvcc=1
# pip (for cuobjdump) where no Python with pip is there already.
[ $have_nvcc -eq 1 ] && ! python3 -m pip --version >/dev/null 2>&1 && PKGS+=(python3-pip)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# cuobjdump (SASS disassembly) and the nvdisasm it runs are not part of every CUDA toolkit install;
# NVIDIA publishes both on PyPI. Pinned, installed into a per-user cache folder (pip --target: no
# Python environment is touched) and linked into $CACHE/sd-gen/bin, where CMake looks for them
# (tests/kernel_static). 13.2 is the oldest CUDA 13 release there; it reads the 13.0 toolkit's
# cubins.
SASS_TOOLS_VERSION=13.2.86
if [ $have_nvcc -eq 1 ]; then
  tools="${XDG_CACHE_HOME:-$HOME/.cache}/sd-gen"
  target="$tools/sass-tools-$SASS_TOOLS_VERSION"
  if [ ! -x "$target/nvidia/cu13/bin/cuobjdump" ] || [ ! -x "$target/nvidia/cu13/bin/nvdisasm" ]; then
    echo "install-deps: installing nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm $SASS_TOOLS_VERSION into $target"
    rm -rf "$target.tmp"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
      --target "$target.tmp" "nvidia-cuda-cuobjdump==$SASS_TOOLS_VERSION" "nvidia-cuda-nvdisasm==$SASS_TOOLS_VERSION"
    rm -rf "$target" && mv "$target.tmp" "$target"
  fi
  mkdir -p "$tools/bin"
  for t in cuobjdump nvdisasm; do ln -sfn "$target/nvidia/cu13/bin/$t" "$tools/bin/$t"; done
  "$tools/bin/cuobjdump" --version >/dev/null
fi
