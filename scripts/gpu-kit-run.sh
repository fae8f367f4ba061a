#!/usr/bin/env bash
# The GPU kit's runner (scripts/gpu-kit.sh copies it to gpu-kit/run.sh). On a GPU machine that has
# the CUDA libraries (toolkit, or NVIDIA's wheels in a Python environment) but none of our build
# dependencies, from the repository root:
#   bash gpu-kit/run.sh          every step below, each time-boxed, ≤ 8 minutes on an H100
#   bash gpu-kit/run.sh --dry    the same steps without a device: what needs one is replaced by a
#                                check that its program starts and its data is there; the CPU
#                                parts and the census run in full. Fails if anything is missing.
# Steps: a) device, driver and CUDA library versions (stops here if a library is missing or older
# than we need); b) the op table on the real CUDA backend against the CPU reference, fp32 and fp16;
# c) the whole pipeline against diffusers' images (every sampler, fp32 and fp16, graphs on/off
# bit-identical), the model goldens, and through the binary every sampler with graphs on and off
# byte-identical and --rng philox against the CPU; d) sd-gen bench, random SD v1.5, batch 3 × 25
# steps × 512², fp32/fp16 × graphs on/off; e) the op table's perf mode (op_perf_gpu); f) the census's estimate per
# phase beside the measured stages of d); g) torch.randn on this GPU recorded (philox golden) and
# compared bit for bit; h) compute-sanitizer memcheck, racecheck and synccheck on a reduced op
# table; i) PyTorch/diffusers on the same workload where a diffusers wheel was carried in .whl/.
# Environment: OUT (results; default gpu-kit-out), KIT_STEPS (step letters to run, default all),
# KIT_BUDGET_S (default 470: later steps are cut to what is left), SDGEN_CUDA_LIBS (folders with
# the CUDA libraries, searched first).
# Results, written after every step so that a run cut short still returns what it did (at most 5
# files): summary.md, summary.json, logs.tar.gz (every step's log), philox.safetensors (step g).
set -uo pipefail
DRY=0
[ "${1:-}" = "--dry" ] && DRY=1
KIT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$KIT_DIR/.." && pwd)
OUT=${OUT:-$REPO/gpu-kit-out}
STEPS=${KIT_STEPS:-abcdefghi}
BUDGET=${KIT_BUDGET_S:-470}
START=$(date +%s)
WORK=$(mktemp -d /tmp/sdgen-kit.XXXXXX)
LOG=$WORK/logs
mkdir -p "$OUT" "$LOG"
# shellcheck source=/dev/null
. "$KIT_DIR/kit.env"
export DRY REPO OUT WORK LOG KIT_DIR BIN="$WORK/bin" DATA="$REPO/tests/data"
export OMP_WAIT_POLICY=PASSIVE SDGEN_MODEL=

RESULTS=$WORK/results.tsv  # letter, name, status, seconds, detail
: >"$RESULTS"

say() { echo "[kit $(($(date +%s) - START))s] $*"; }

write_summary() {
  local device
  device=$(head -1 "$LOG/device.txt" 2>/dev/null || echo "unknown")
  {
    echo "# GPU kit run ($([ $DRY = 1 ] && echo dry || echo full))"
    echo
    echo "- device: $device"
    echo "- kit: commit $KIT_COMMIT, built $KIT_BUILT; run $(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - START)) s so far"
    echo
    echo "| step | status | s | detail |"
    echo "|---|---|---|---|"
    awk -F'\t' '{ printf "| %s %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$RESULTS"
  } >"$OUT/summary.md"
  awk -F'\t' -v dev="$device" -v commit="$KIT_COMMIT" -v dry="$DRY" '
    function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, " ", s); return s }
    BEGIN { printf "{\"device\": \"%s\", \"commit\": \"%s\", \"dry\": %s, \"steps\": [", esc(dev), esc(commit), (dry ? "true" : "false") }
    { printf "%s{\"step\": \"%s\", \"name\": \"%s\", \"status\": \"%s\", \"seconds\": %s, \"detail\": \"%s\"}", (NR > 1 ? ", " : ""), $1, $2, $3, $4, esc($5) }
    END { print "]}" }' "$RESULTS" >"$OUT/summary.json"
  tar -C "$WORK" -czf "$OUT/logs.tar.gz" logs 2>/dev/null
}

# run_step LETTER NAME LIMIT_S FUNCTION: the function runs in its own bash under `timeout`, its
# output in logs/LETTER-NAME.log; it may write one line of figures to $LOG/LETTER.detail.
run_step() {
  local letter=$1 name=$2 limit=$3 fn=$4 left status t0 detail
  [[ $STEPS == *$letter* ]] || return 0
  left=$((BUDGET - ($(date +%s) - START)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 10 ]; then
    printf '%s\t%s\t%s\t0\t%s\n' "$letter" "$name" "not run" "no time left in the ${BUDGET} s budget" >>"$RESULTS"
    write_summary
    return 0
  fi
  say "step $letter ($name), at most $limit s"
  t0=$(date +%s)
  timeout -k 5 "$limit" bash -c "$fn" >"$LOG/$letter-$name.log" 2>&1
  status=$?
  detail=$(head -c 600 "$LOG/$letter.detail" 2>/dev/null | tr '\n\t' '  ')
  case $status in
    0) st=ok ;;
    124|137) st="TIMED OUT"; detail="over $limit s; $detail" ;;
    *) st=FAILED; FAILURES=$((FAILURES + 1)); detail="exit $status; $detail; $(tail -3 "$LOG/$letter-$name.log" | tr '\n\t' '  ' | head -c 300)" ;;
  esac
  [ "$st" = "TIMED OUT" ] && FAILURES=$((FAILURES + 1))
  printf '%s\t%s\t%s\t%s\t%s\n' "$letter" "$name" "$st" "$(($(date +%s) - t0))" "$detail" >>"$RESULTS"
  say "step $letter: $st ${detail:0:200}"
  write_summary
  return $status
}
FAILURES=0

# --- set-up: unpack, find the CUDA libraries, make the compiled-in paths resolve ---------------
say "unpacking the kit into $WORK"
if command -v xz >/dev/null; then
  tar -C "$WORK" -xJf "$KIT_DIR/payload.tar.xz" || { echo "kit: cannot unpack payload.tar.xz" >&2; exit 1; }
else
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$KIT_DIR/payload.tar.xz" "$WORK" ||
    { echo "kit: cannot unpack payload.tar.xz (no xz, no python3)" >&2; exit 1; }
fi

NEEDED_CUDA_LIBS="libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9"
candidates=()
IFS=: read -r -a extra <<<"${SDGEN_CUDA_LIBS:-}"
candidates+=("${extra[@]}" /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib)
for py in python3 /opt/torch/.venv/bin/python3; do
  command -v "$py" >/dev/null || continue
  for site in $("$py" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
    for d in "$site"/nvidia/*/lib; do [ -d "$d" ] && candidates+=("$d"); done
  done
done
candidates+=(/usr/lib/x86_64-linux-gnu /usr/lib64)
CUDA_DIRS=""
MISSING_CUDA=""
for lib in $NEEDED_CUDA_LIBS; do
  found=""
  for d in "${candidates[@]}"; do
    [ -n "$d" ] && [ -e "$d/$lib" ] && { found=$d; break; }
  done
  if [ -z "$found" ]; then MISSING_CUDA="$MISSING_CUDA $lib"; continue; fi
  case ":$CUDA_DIRS:" in *":$found:"*) ;; *) CUDA_DIRS="${CUDA_DIRS:+$CUDA_DIRS:}$found" ;; esac
done
export CUDA_DIRS MISSING_CUDA
export LD_LIBRARY_PATH="$BIN/../lib${CUDA_DIRS:+:$CUDA_DIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$BIN:$PATH"

# The test programs read their data from the source folder they were built in, and sdgen_tests
# runs sd-gen from the build folder: point both at this checkout and at the kit's programs.
if [ "$REPO" != "$KIT_SOURCE_DIR" ] && [ ! -d "$KIT_SOURCE_DIR/tests/data" ]; then
  if [ -e "$KIT_SOURCE_DIR" ] || [ -L "$KIT_SOURCE_DIR" ]; then
    echo "kit: $KIT_SOURCE_DIR (where the programs were built) exists here and is not this checkout" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$KIT_SOURCE_DIR")" && ln -s "$REPO" "$KIT_SOURCE_DIR" ||
    { echo "kit: cannot link $KIT_SOURCE_DIR to $REPO" >&2; exit 1; }
fi
mkdir -p "$KIT_BUILD_DIR/benchmarks" || { echo "kit: cannot make $KIT_BUILD_DIR" >&2; exit 1; }
ln -sf "$BIN/sd-gen" "$KIT_BUILD_DIR/sd-gen"
ln -sf "$BIN/cuda_census" "$KIT_BUILD_DIR/benchmarks/cuda_census"
# The tiny model's single files are not in the tree (the build writes them from its folders).
derive_test_models "$REPO/tests/data" >"$LOG/derive_test_models.log" 2>&1 ||
  { echo "kit: cannot write the tiny model's single files: $(tail -1 "$LOG/derive_test_models.log")" >&2; exit 1; }

# --- the steps ---------------------------------------------------------------------------------
# The libraries a program or a plugin loads, as ldd lists them (the loader runs nothing).
libs_of() { LD_TRACE_LOADED_OBJECTS=1 /lib64/ld-linux-x86-64.so.2 "$1" 2>&1; }

step_a() {
  echo "kit: commit $KIT_COMMIT, built $KIT_BUILT; programs: $KIT_PROGRAMS; bundled: $KIT_LIBS"
  uname -a
  echo "CPUs: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | tee "$LOG/device.txt"
  else
    echo "no nvidia-smi: no device" | tee "$LOG/device.txt"
    [ "$DRY" = 1 ] || exit 1
  fi
  echo "CUDA library folders: ${CUDA_DIRS:-none}"
  for lib in $NEEDED_CUDA_LIBS; do echo "  $lib: $(ldconfig -p 2>/dev/null | grep -m1 "$lib" | awk '{print $NF}')"; done
  if [ -n "$MISSING_CUDA" ]; then
    echo "missing CUDA libraries:$MISSING_CUDA (set SDGEN_CUDA_LIBS to their folder)" | tee "$LOG/a.detail"
    exit 1
  fi
  # Every program loads with what is here: nothing unresolved.
  for p in "$BIN"/*; do
    if libs_of "$p" | grep -q "not found"; then
      echo "$(basename "$p") cannot load: $(libs_of "$p" | grep 'not found' | tr '\n' ' ')" | tee "$LOG/a.detail"
      exit 1
    fi
  done
  if command -v python3 >/dev/null; then
    python3 - <<'EOF' | tee "$LOG/a.detail"
import ctypes, sys
rt = ctypes.CDLL("libcudart.so.13")
v, d = ctypes.c_int(), ctypes.c_int()
rt.cudaRuntimeGetVersion(ctypes.byref(v)); rt.cudaDriverGetVersion(ctypes.byref(d))
lt = ctypes.CDLL("libcublasLt.so.13"); lt.cublasLtGetVersion.restype = ctypes.c_size_t
dn = ctypes.CDLL("libcudnn.so.9"); dn.cudnnGetVersion.restype = ctypes.c_size_t
cl, cd = lt.cublasLtGetVersion(), dn.cudnnGetVersion()
f = lambda x, a, b: "%d.%d.%d" % (x // a, x % a // b, x % b)
print("CUDA runtime %d.%d, driver supports %d.%d, cuBLASLt %s, cuDNN %s" % (v.value // 1000, v.value % 1000 // 10,
      d.value // 1000, d.value % 1000 // 10, f(cl, 10000, 100), f(cd, 10000, 100)), end="")
bad = []
if cd < 90800: bad.append("cuDNN older than 9.8")
if cl < 130000: bad.append("cuBLASLt older than 13.0")
if d.value and d.value < v.value: bad.append("the driver is older than the runtime")
print("; " + ", ".join(bad) if bad else "")
sys.exit(1 if bad else 0)
EOF
  else
    echo "no python3: versions not read" | tee "$LOG/a.detail"
    [ "$DRY" = 1 ] || exit 1
  fi
}

gtest_counts() {  # the closing counts of a gtest log
  local passed failed skipped
  passed=$(grep -o '\[  PASSED  \] [0-9][0-9]* test' "$1" | tail -1 | grep -o '[0-9][0-9]*')
  failed=$(grep -o '\[  FAILED  \] [0-9][0-9]* test' "$1" | tail -1 | grep -o '[0-9][0-9]*')
  skipped=$(grep -o '\[  SKIPPED \] [0-9][0-9]* test' "$1" | tail -1 | grep -o '[0-9][0-9]*')
  echo "${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
}

step_b() {
  if [ "$DRY" = 1 ]; then
    n=$("$BIN/cuda_ops_tests" --gtest_list_tests | grep -c '^  ')
    echo "cuda_ops_tests starts; $n cases listed" | tee "$LOG/b.detail"
    [ "$n" -gt 0 ]
    return
  fi
  "$BIN/cuda_ops_tests" --gtest_output=json:"$LOG/ops.json" 2>&1 | tee "$LOG/ops.txt"
  rc=${PIPESTATUS[0]}
  echo "op table: $(gtest_counts "$LOG/ops.txt")" >"$LOG/b.detail"
  exit "$rc"
}

# Every sampler, one prompt-file line each, run with graphs on and off: the PNGs must be the same
# bytes. fp32 and fp16; on a dry run the CPU alone (the graphs option does not apply there).
samplers_file() {
  local f=$WORK/samplers.jsonl s
  : >"$f"
  for s in ddim pndm lms euler euler_a heun dpm2 dpmpp_2m dpmpp_2m_sde unipc; do
    echo "{\"prompt\": \"a photo of a cat\", \"sampler\": \"$s\", \"name\": \"$s\"}" >>"$f"
  done
  echo "$f"
}
step_c() {
  local model="$DATA/tiny_sd/tiny_sd.safetensors" f rc=0
  f=$(samplers_file)
  if [ "$DRY" = 1 ]; then
    "$BIN/cuda_pipeline_tests" --gtest_list_tests >/dev/null || exit 1
    "$BIN/sdgen_tests" --gtest_filter='*ModelsGolden*' 2>&1 | tee "$LOG/models.txt"
    rc=${PIPESTATUS[0]}
    sd-gen -m "$model" --prompt-file "$f" --device cpu --precision fp32 --steps 3 -W 64 -H 64 --seed 42 \
      -o "$WORK/img-cpu" -q || rc=1
    echo "model goldens (CPU; CUDA skipped): $(gtest_counts "$LOG/models.txt"); $(ls "$WORK/img-cpu" | wc -l) sampler images on the CPU" >"$LOG/c.detail"
    exit $rc
  fi
  "$BIN/cuda_pipeline_tests" --gtest_filter='CudaEmulatedPipeline.*' 2>&1 | tee "$LOG/pipeline.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  "$BIN/sdgen_tests" --gtest_filter='*ModelsGolden*' 2>&1 | tee "$LOG/models.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || rc=1
  local same=0 differ=""
  for prec in fp32 fp16; do
    for g in on off; do
      sd-gen -m "$model" --prompt-file "$f" --device cuda --precision $prec --cuda-graphs $g --steps 3 -W 64 -H 64 \
        --seed 42 -o "$WORK/img-$prec-$g" -q || rc=1
    done
    for s in "$WORK/img-$prec-on"/*.png; do
      if cmp -s "$s" "$WORK/img-$prec-off/$(basename "$s")"; then same=$((same + 1)); else differ="$differ $prec/$(basename "$s")"; rc=1; fi
    done
  done
  sd-gen -m "$model" -p "a photo of a cat" --rng philox --device cuda --steps 5 -W 64 -H 64 --seed 42 -b 2 \
    -o "$WORK/philox-cuda" --name "img-{i}" -q || rc=1
  sd-gen -m "$model" -p "a photo of a cat" --rng philox --device cpu --steps 5 -W 64 -H 64 --seed 42 -b 2 \
    -o "$WORK/philox-cpu" --name "img-{i}" -q || rc=1
  philox=$(python3 - "$WORK" <<'EOF'
import sys, numpy as np
from PIL import Image
w = sys.argv[1]
out = []
for i in range(2):
    a = np.asarray(Image.open(f"{w}/philox-cuda/img-{i}.png"), dtype=int)
    b = np.asarray(Image.open(f"{w}/philox-cpu/img-{i}.png"), dtype=int)
    d = np.abs(a - b)
    out.append("%.2f%% exact, %.3f%% within 1, worst %d" % (100 * (d == 0).mean(), 100 * (d <= 1).mean(), d.max()))
print("; ".join(out))
sys.exit(0 if all(float(o.split("%, ")[1].split("%")[0]) >= 99.9 for o in out) else 1)
EOF
  ) || rc=1
  echo "pipeline goldens: $(gtest_counts "$LOG/pipeline.txt"); model goldens: $(gtest_counts "$LOG/models.txt"); graphs on/off byte-identical: $same of 20${differ:+ (differ:$differ)}; philox cuda vs cpu fp32: $philox" >"$LOG/c.detail"
  # Then the rest of the emulated suite on the real backend (pictures in, the hires fix, previews,
  # TAESD, the VAE encoder, ControlNets), bounded, so that a slow run leaves the lines above.
  timeout -k 5 45 "$BIN/cuda_pipeline_tests" --gtest_filter='-CudaEmulatedPipeline.*' >"$LOG/pipeline-more.txt" 2>&1 || rc=1
  sed -i "s|\$|; more goldens (pictures in, hires, previews, TAESD, ControlNets): $(gtest_counts "$LOG/pipeline-more.txt")|" "$LOG/c.detail"
  exit $rc
}

step_d() {
  if [ "$DRY" = 1 ]; then
    sd-gen bench --device cpu -m "$DATA/tiny_sd/tiny_sd.safetensors" -b 1 --steps 1 -W 64 -H 64 --precision fp32 --json \
      >"$LOG/bench.jsonl" || exit 1
    echo "bench runs (CPU, tiny model): $(wc -l <"$LOG/bench.jsonl") configuration" >"$LOG/d.detail"
    return
  fi
  sd-gen bench --model random:sd15 --device cuda --precision fp16,fp32 --cuda-graphs on,off -b 3 --steps 25 \
    -W 512 -H 512 --json | tee "$LOG/bench.jsonl"
  rc=${PIPESTATUS[0]}
  python3 - "$LOG/bench.jsonl" <<'EOF' >"$LOG/d.detail"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("; ".join("%s graphs %s: %.3f s (unet/step %.4f s, vae %.3f s), peak %.0f MiB, MFU %.0f%%" % (
    r["precision"], "on" if r.get("cuda_graphs") else "off", r["total_s"]["median"], r["unet_per_step_s"]["median"],
    r["vae_s"]["median"], (r.get("peak_device_bytes") or 0) / 2**20, 100 * r["mfu"]["median"]) for r in rows))
EOF
  exit "$rc"
}

# The op table's perf mode on the real CUDA backend (benchmarks/op_perf.cpp): every case and its
# benchmark-only SD rows timed with CUDA events, fp32 and fp16 (and attention in bf16), one JSON line each (FLOPs, bytes,
# GFLOP/s, GB/s, fractions of peak); then the benchmark-only rows the suites do not run checked
# against the plain CPU backend (all but the 2 × 4096-token attention, whose plain reference alone
# takes about a minute).
step_e() {
  local rc=0 b="$BIN/op_perf_gpu"
  if [ "$DRY" = 1 ]; then
    libs_of "$b" | grep -q "not found" && rc=1
    echo "op_perf_gpu loads: $([ $rc = 0 ] && echo yes || echo no)" >"$LOG/e.detail"
    exit $rc
  fi
  timeout 45 "$b" --warmup 2 --repeats 10 --json >"$LOG/e-op-perf.jsonl" || rc=1
  # bf16 attention (the tensor-core kernel on sm_80+) beside the fp16 rows above.
  timeout 15 "$b" --dtype bf16 --filter attn_ --warmup 2 --repeats 10 --json >>"$LOG/e-op-perf.jsonl" || rc=1
  timeout 35 "$b" --check --warmup 0 --repeats 1 \
    --filter attn_unaligned,gn_6x32x32x960,gn_silu_1x512,gn_silu_unaligned,geglu_unaligned,add_unaligned,ln_unaligned || rc=1
  python3 - "$LOG/e-op-perf.jsonl" >"$LOG/e.detail" <<'EOF' || rc=1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
timed = [r for r in rows if "median_ms" in r]
def best(key):
    r = max(timed, key=lambda r: r.get(key, 0), default=None)
    return "%.0f%% (%s %s)" % (100 * r.get(key, 0), r["case"], r["dtype"]) if r else "-"
print("%d of %d runs timed; best of flop peak %s; best of bandwidth peak %s"
      % (len(timed), len(rows), best("flop_peak_fraction"), best("bandwidth_peak_fraction")))
EOF
  exit $rc
}

# The census (a dry emulator run on the CPU) of the same workloads as step d: its estimate per
# phase, for calibration against the measured stages.
step_f() {
  local prec g rc=0
  for prec in fp16 fp32; do
    for g in on off; do
      "$BIN/cuda_census" --model random:sd15 --batch 3 --steps 25 --width 512 --height 512 --precision $prec \
        --cuda-graphs $g --json >"$LOG/census-$prec-$g.json" || rc=1
    done
  done
  if command -v python3 >/dev/null; then
    python3 - "$LOG" <<'EOF' >"$LOG/f.detail"
import json, os, sys
log = sys.argv[1]
bench = {}
if os.path.exists(f"{log}/bench.jsonl"):
    for l in open(f"{log}/bench.jsonl"):
        if l.startswith("{"):
            r = json.loads(l)
            bench[(r["precision"], "on" if r.get("cuda_graphs") else "off")] = r
out = []
for prec in ("fp16", "fp32"):
    for g in ("on", "off"):
        c = json.load(open(f"{log}/census-{prec}-{g}.json"))
        ph, gpu = c["phases"], "H100 SXM"
        est = lambda p: ph[p]["estimate_s"][gpu] if isinstance(ph[p].get("estimate_s"), dict) else None
        s = "%s graphs %s: estimate run %.3f s" % (prec, g, c["estimate_s"][gpu])
        b = bench.get((prec, g))
        if b and b.get("device") == "cuda":
            s += " vs measured %.3f s (unet/step %.4f vs %s, vae %.3f vs %s)" % (b["total_s"]["median"],
                 b["unet_per_step_s"]["median"], est("unet_step"), b["vae_s"]["median"], est("vae_decode"))
        out.append(s)
print("; ".join(out))
EOF
  else
    # (no Python here: the run's estimate is the first H100 figure after the top-level "estimate_s")
    for f in "$LOG"/census-*.json; do
      echo "$(basename "$f" .json) H100 estimate $(awk '/^ "estimate_s"/ { on = 1 } on && /"H100 SXM"/ { sub(/,$/, "", $3); print $3; exit }' "$f") s"
    done | tr '\n' ';' >"$LOG/f.detail"
  fi
  exit $rc
}

step_g() {
  [ -f "$REPO/tests/reference/make_philox_golden.py" ] || { echo "make_philox_golden.py missing" >"$LOG/g.detail"; exit 1; }
  if [ "$DRY" = 1 ]; then
    "$BIN/sdgen_tests" --gtest_filter='Rng.Philox*' || exit 1
    echo "philox test program starts (the golden is recorded on a GPU)" >"$LOG/g.detail"
    return
  fi
  python3 "$REPO/tests/reference/make_philox_golden.py" --out "$OUT/philox.safetensors" || exit 1
  cp "$OUT/philox.safetensors" "$DATA/golden/philox.safetensors"
  "$BIN/sdgen_tests" --gtest_filter='Rng.Philox*' 2>&1 | tee "$LOG/philox.txt"
  rc=${PIPESTATUS[0]}
  echo "philox golden recorded on this GPU (in the results); test: $(gtest_counts "$LOG/philox.txt")" >"$LOG/g.detail"
  exit "$rc"
}

# One small case per kernel family and both precisions: the sanitizers slow kernels 10-100x.
SANITIZE_FILTER='*conv3x3_odd_3x7x5x9_to_13*:*conv3x3_residual_odd*:*linear_odd_3x5x13_to_7*:*linear_residual_odd*:*gn_silu_odd_3x7x5x9_g3*:*ln_offset100_3x13*:*attn_odd_3x5x3_h3_d7*:*attn_causal_multiblock_1x1100_h2_d8*:*softmax_odd_3x7*:*silu_special*'
export SANITIZE_FILTER
step_h() {
  local tool rc=0 out=""
  n=$("$BIN/cuda_ops_tests" --gtest_list_tests --gtest_filter="$SANITIZE_FILTER" | grep -c '^  ')
  if [ "$DRY" = 1 ]; then
    echo "reduced op table for the sanitizers: $n cases" >"$LOG/h.detail"
    [ "$n" -gt 0 ]
    return
  fi
  command -v compute-sanitizer >/dev/null || { echo "no compute-sanitizer" >"$LOG/h.detail"; exit 1; }
  for tool in memcheck racecheck synccheck; do
    echo "== $tool"
    timeout 80 compute-sanitizer --tool $tool --error-exitcode 9 "$BIN/cuda_ops_tests" --gtest_filter="$SANITIZE_FILTER" \
      >"$LOG/sanitizer-$tool.txt" 2>&1
    r=$?
    [ $r = 0 ] || rc=1
    out="$out $tool: $([ $r = 0 ] && echo clean || echo "exit $r, $(grep -m1 'ERROR SUMMARY' "$LOG/sanitizer-$tool.txt")");"
  done
  echo "$n cases;$out" >"$LOG/h.detail"
  exit $rc
}

step_i() {
  [ -f "$REPO/benchmarks/torch_pipeline.py" ] || { echo "benchmarks/torch_pipeline.py missing" >"$LOG/i.detail"; exit 1; }
  if ! ls "$REPO"/.whl/diffusers-*.whl >/dev/null 2>&1; then
    echo "skipped: no diffusers wheel carried in .whl/" >"$LOG/i.detail"
    return 0
  fi
  [ "$DRY" = 1 ] && { echo "diffusers wheel present" >"$LOG/i.detail"; return 0; }
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$REPO"/.whl/*.whl || exit 1
  for c in off on; do
    PYTHONPATH="$WORK/site" python3 "$REPO/benchmarks/torch_pipeline.py" --device cuda --batch 3 --steps 25 \
      --precision fp16 --compile $c --json | tee -a "$LOG/torch.jsonl" || exit 1
  done
  grep -o '"total_s": {[^}]*}' "$LOG/torch.jsonl" | tr '\n' ';' >"$LOG/i.detail"
}
export -f libs_of step_a step_b step_c step_d step_e step_f step_g step_h step_i gtest_counts samplers_file
export NEEDED_CUDA_LIBS

if [ -n "$MISSING_CUDA" ] && [ "$DRY" = 0 ]; then say "missing CUDA libraries:$MISSING_CUDA"; fi
run_step a versions 30 step_a || { say "stopping: the device or its libraries are not usable"; write_summary; exit 1; }
run_step b ops 150 step_b
run_step c pipeline 165 step_c
run_step d bench 240 step_d
run_step e op-perf 90 step_e
run_step f census 90 step_f
run_step g philox 60 step_g
run_step h sanitizers 250 step_h
run_step i torch 150 step_i
write_summary
say "done: $FAILURES step(s) failed; results in $OUT"
[ "$FAILURES" -eq 0 ]
