#!/usr/bin/env bash
# Peak memory and time of `sd-gen --device cpu` (issue 7, "Weights on the CPU path"): fp32 and
# fp16, batch 1, 512x512, 2 DDIM steps, full-size SD v1.5 shapes, next to the size of the weights
# sd-gen keeps (UNet, CLIP text encoder, VAE decoder). Two model sources per precision:
#   file:   a full-size LDM single file with random weights (make_sd15_file.py; F32 for the fp32
#           run, F16 for the fp16 run, as one would download them). It is mmapped as a real
#           checkpoint is, so this is the figure a user sees.
#   random: random:sd15, weights generated in memory (no file pages at all).
#   benchmarks/cpu_memory.sh [WORKDIR]   WORKDIR: where the model files go (6.4 GB; default
#                                        /tmp/sdgen-cpu-memory, kept for the next run)
# Needs /usr/bin/time (Debian package `time`) and python3. Runs one sd-gen at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/sdgen-cpu-memory}
BUILD_DIR=${BUILD_DIR:-build}
STEPS=${STEPS:-2}
SIZE=${SIZE:-512}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time: apt-get install time" >&2; exit 2; }
cmake --build "$BUILD_DIR" --target sd-gen -j "$(nproc)" >/dev/null
mkdir -p "$WORK"
for dt in F32 F16; do
  [ -f "$WORK/sd15_$dt.safetensors" ] || python3 benchmarks/make_sd15_file.py "$WORK/sd15_$dt.safetensors" "$dt" >/dev/null
done

# Parameters sd-gen loads: every tensor of the full model but the VAE encoder's.
params=$(python3 - <<'PYEOF'
import json, math
doc = json.load(open("tests/data/checkpoint_name_map.json"))
model = next(m for m in doc["models"] if m["name"] == "sd_v1_full")
print(sum(math.prod(t[2]) for t in model["tensors"] if not t[1].startswith(("vae.encoder.", "vae.quant_conv."))))
PYEOF
)

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB;" \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $(date -u +%Y-%m-%d)"
echo "sd-gen --device cpu, batch 1, ${SIZE}x${SIZE}, $STEPS steps; GB = 10^9 bytes"
printf '| %-9s | %-6s | %-12s | %-13s | %-15s | %-8s | %-8s |\n' precision model weights "peak RSS" "peak - weights" wall "CPU"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ----------- -------- -------------- --------------- ----------------- ---------- ----------
for precision in fp32 fp16; do
  bytes=$([ $precision = fp32 ] && echo 4 || echo 2)
  file="$WORK/sd15_$([ $precision = fp32 ] && echo F32 || echo F16).safetensors"
  for source in file random; do
    model=$([ $source = file ] && echo "$file" || echo random:sd15)
    log="$WORK/time-$precision-$source.txt"
    OMP_WAIT_POLICY=PASSIVE /usr/bin/time -v -o "$log" "$BUILD_DIR/sd-gen" --device cpu --model "$model" \
      --precision $precision --prompt "a lighthouse at dusk" --seed 1 --steps "$STEPS" -W "$SIZE" -H "$SIZE" \
      --out "$WORK/out" -q
    python3 - "$log" "$params" "$bytes" $precision $source <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
def field(name):
    return re.search(re.escape(name) + r": (.*)", text).group(1).strip()
peak = int(field("Maximum resident set size (kbytes)")) * 1024
weights = int(sys.argv[2]) * int(sys.argv[3])
wall = 0.0
for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
    wall = wall * 60 + float(part)
cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
print("| %-9s | %-6s | %9.2f GB | %10.2f GB | %12.2f GB | %6.1f s | %6.1f s |"
      % (sys.argv[4], sys.argv[5], weights / 1e9, peak / 1e9, (peak - weights) / 1e9, wall, cpu))
PYEOF
  done
done
