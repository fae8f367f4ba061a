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
#   env: BUILD_DIR (build), SOURCES ("file random"), STEPS (2), SIZE (512), REPEATS (1: runs per
#        configuration; the table shows the highest peak and the best wall and CPU times)
# Needs /usr/bin/time (Debian package `time`) and python3. Runs one sd-gen at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/sdgen-cpu-memory}
BUILD_DIR=${BUILD_DIR:-build}
STEPS=${STEPS:-2}
SIZE=${SIZE:-512}
SOURCES=${SOURCES:-file random}
REPEATS=${REPEATS:-1}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time: apt-get install time" >&2; exit 2; }
cmake --build "$BUILD_DIR" --target sd-gen -j "$(nproc)" >/dev/null
mkdir -p "$WORK"
for dt in F32 F16; do
  [ -f "$WORK/sd15_$dt.safetensors" ] ||
    python3 benchmarks/make_sd15_file.py "$WORK/sd15_$dt.safetensors" "$dt" >/dev/null
done

# Parameters sd-gen loads: every tensor of the full model but the VAE encoder's (and quant_conv).
params=$(python3 - <<'PYEOF'
import json, math
doc = json.load(open("tests/data/checkpoint_name_map.json"))
model = next(m for m in doc["models"] if m["name"] == "sd_v1_full")
kept = [t for t in model["tensors"] if not t[1].startswith(("vae.encoder.", "vae.quant_conv."))]
print(sum(math.prod(t[2]) for t in kept))
PYEOF
)

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
     "$(free -g | awk '/^Mem:/ {print $2}') GiB; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset};" \
     "$(date -u +%Y-%m-%d)"
echo "sd-gen --device cpu, batch 1, ${SIZE}x${SIZE}, $STEPS steps; GB = 10^9 bytes"
# Each round runs every configuration once, so a burst of load from elsewhere hits all alike.
configs=()
rm -f "$WORK"/time-*.txt
for precision in fp32 fp16; do
  for source in $SOURCES; do configs+=("$precision $source"); done
done
for round in $(seq "$REPEATS"); do
  for config in "${configs[@]}"; do
    set -- $config
    dt=$([ "$1" = fp32 ] && echo F32 || echo F16)
    model=$([ "$2" = file ] && echo "$WORK/sd15_$dt.safetensors" || echo random:sd15)
    OMP_WAIT_POLICY=PASSIVE /usr/bin/time -v -o "$WORK/time-$1-$2-$round.txt" "$BUILD_DIR/sd-gen" \
      --device cpu --model "$model" --precision "$1" --prompt "a lighthouse at dusk" --seed 1 \
      --steps "$STEPS" -W "$SIZE" -H "$SIZE" --out "$WORK/out" -q
  done
done

printf '| %-9s | %-6s | %-12s | %-13s | %-15s | %-11s | %-11s |\n' \
  precision model weights "peak RSS" "peak - weights" "wall, best" "CPU, best"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' \
  ----------- -------- -------------- --------------- ----------------- ------------- -------------
for config in "${configs[@]}"; do
  set -- $config
  python3 - "$params" "$1" "$2" "$WORK"/time-"$1"-"$2"-*.txt <<'PYEOF'
import re, sys
params, precision, source, logs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
def field(text, name):
    return re.search(re.escape(name) + r": (.*)", text).group(1).strip()
peaks, walls, cpus = [], [], []
for log in logs:
    text = open(log).read()
    peaks.append(int(field(text, "Maximum resident set size (kbytes)")) * 1024)
    wall = 0.0
    for part in field(text, "Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    walls.append(wall)
    cpus.append(float(field(text, "User time (seconds)")) +
                float(field(text, "System time (seconds)")))
weights = params * (4 if precision == "fp32" else 2)
peak = max(peaks)
print("| %-9s | %-6s | %9.2f GB | %10.2f GB | %12.2f GB | %9.1f s | %9.1f s |"
      % (precision, source, weights / 1e9, peak / 1e9, (peak - weights) / 1e9, min(walls),
         min(cpus)))
PYEOF
done
rm -f "$WORK"/time-*.txt
rm -rf "$WORK/out"
