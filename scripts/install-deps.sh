#!/usr/bin/env bash
# Installs the Debian packages sd-gen builds against, skipping those already present.
# Safe to run again. Uses sudo when not root. The CUDA toolkit is optional and not installed here:
# with nvcc on PATH (or at /usr/local/cuda/bin) the CUDA backend is built too.
set -euo pipefail
PKGS=(cmake g++ make pkg-config zlib1g-dev libcli11-dev nlohmann-json3-dev libstb-dev libgtest-dev
      libgmock-dev libopenblas-dev libutf8proc-dev libboost-context-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
