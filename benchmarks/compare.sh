#!/usr/bin/env bash
# sd-gen bench against the same workload in PyTorch/diffusers (benchmarks/torch_pipeline.py), in
# one run on one machine, printed as one table with ratios (sd-gen time / PyTorch time: below 1,
# sd-gen is faster). Both use random weights of the full SD v1.5 architecture: no download, no
# network. Works on a CPU machine and on a GPU machine (with a CUDA build of sd-gen there).
#
# Install beforehand (nothing is fetched here):
#   - sd-gen built: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target sd-gen
#     (on a GPU machine with nvcc the build includes the CUDA backend)
#   - a Python with torch, diffusers and transformers at the versions pinned in
#     tests/reference/requirements.txt, e.g.
#       python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install -r tests/reference/requirements.txt
#     (on a GPU machine, a CUDA build of torch; PyPI's default Linux wheel is one)
#
#   PY=/tmp/benchenv/bin/python benchmarks/compare.sh [options for both]
#   e.g. benchmarks/compare.sh --device cpu --batch 1 --steps 2 --precision fp32
#        benchmarks/compare.sh --device cuda            (batch 3 x 25 steps x 512², fp32 and fp16)
#        benchmarks/compare.sh --device cpu --batch 1 --steps 2 --precision fp32,bf16 --threads 1,2
# Options given are passed to both programs: --device, --precision (fp32, fp16, bf16; PyTorch runs
# fp16 on a GPU only), --batch, --steps, --width, --height, --guidance, --repeats. --threads N[,M...]
# (CPU): both run once per count, with that many threads (sd-gen through OMP_NUM_THREADS and
# OPENBLAS_NUM_THREADS, PyTorch through torch.set_num_threads); default: every CPU of this process.
# SDGEN_ARGS (e.g. "--cuda-graphs on,off") and TORCH_ARGS (e.g. "--compile off,on") go to one side
# only. BUILD_DIR: the build folder (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
BUILD_DIR=${BUILD_DIR:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB," \
     "$(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo 'no GPU')" >&2
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%d)" >&2

# --threads is this script's: taken out of the options both programs get.
threads_list=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) [ $# -ge 2 ] || { echo "compare.sh: --threads needs a list, e.g. 1,2" >&2; exit 2; }
               threads_list=$2; shift 2 ;;
    --threads=*) threads_list=${1#--threads=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -n "$threads_list" ] || threads_list=$(nproc)
: > "$tmp/sdgen.jsonl"
: > "$tmp/torch.jsonl"
for n in ${threads_list//,/ }; do
  case "$n" in
    ''|*[!0-9]*|0) echo "compare.sh: --threads: '$n' is not a positive count" >&2; exit 2 ;;
  esac
  echo "threads: $n" >&2
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$n OPENBLAS_NUM_THREADS=$n \
    "$BUILD_DIR/sd-gen" bench --model random:sd15 --json "${args[@]}" ${SDGEN_ARGS:-} >> "$tmp/sdgen.jsonl"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$n "$PY" benchmarks/torch_pipeline.py --json --threads "$n" "${args[@]}" ${TORCH_ARGS:-} \
    >> "$tmp/torch.jsonl"
done

"$PY" - "$tmp/sdgen.jsonl" "$tmp/torch.jsonl" <<'PYEOF'
import json, sys

ours = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
theirs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]

sweep = len({r.get("threads") for r in ours + theirs}) > 1

def label(r):
    s = f"{r['tool']} {r['precision']}"
    if sweep:
        s += f", {r.get('threads')} thread" + ("s" if r.get("threads") != 1 else "")
    if r.get("cuda_graphs") is not None:
        s += ", graphs " + ("on" if r["cuda_graphs"] else "off")
    if r.get("compile") is not None:
        s += ", compile " + ("on" if r["compile"] else "off")
    return s

# PyTorch's MFU from sd-gen's analytic count of the same workload and the same peak.
by_prec = {(r["precision"], r.get("threads")): r for r in ours}
for r in theirs:
    o = by_prec.get((r["precision"], r.get("threads")))
    if o and o.get("peak_flop_per_s"):
        r["mfu"] = {"median": o["total_flop"] / r["total_s"]["median"] / o["peak_flop_per_s"]}

f = ours[0] if ours else theirs[0]
print(f"workload: batch {f['batch']} x {f['steps']} steps, {f['width']}x{f['height']}, guidance {f['guidance']}, "
      f"{f['device']} ({f['device_name']}); medians of {f['repeats']} timed run(s) after a warm-up"
      + ("" if sweep else f"; {f.get('threads')} thread(s)"))
if ours:
    print(f"sd-gen on {ours[0].get('cpu')} ({ours[0].get('cpu_extensions')}): "
          f"GEMM {ours[0].get('gemm_kernels')}; bf16 GEMM {ours[0].get('bf16_gemm_kernels')}")
if theirs:
    print(f"PyTorch {theirs[0].get('torch')}")
print()
print("| configuration | total s | text s | UNet s/step | VAE s | images/s | peak memory GB | MFU |")
print("|---|---|---|---|---|---|---|---|")
for r in ours + theirs:
    mfu = f"{r['mfu']['median']:.3f}" if r.get("mfu") else "n/a"
    print(f"| {label(r)} | {r['total_s']['median']:.3f} | {r['text_s']['median']:.3f} | "
          f"{r['unet_per_step_s']['median']:.3f} | {r['vae_s']['median']:.3f} | {r['images_per_s']['median']:.4f} | "
          f"{r['peak_memory_bytes'] / 1e9:.2f} ({r['peak_memory_kind'].replace('_', ' ')}) | {mfu} |")
print()
print("| sd-gen / PyTorch (time ratio, < 1: sd-gen faster) | total | text | UNet per step | VAE |")
print("|---|---|---|---|---|")
for o in ours:
    for t in theirs:
        if t["precision"] != o["precision"] or t.get("threads") != o.get("threads"):
            continue
        ratio = lambda k: o[k]["median"] / t[k]["median"]
        print(f"| {label(o)} / {label(t)} | **{ratio('total_s'):.2f}** | {ratio('text_s'):.2f} | "
              f"{ratio('unet_per_step_s'):.2f} | {ratio('vae_s'):.2f} |")
PYEOF
