#!/usr/bin/env bash
# How fast sd-gen answers a stop: N runs of the tiny model (a prompt file of several images, with a
# manifest: hashing, loading, sampling, decoding and writing all take part), each sent SIGTERM at a
# random moment, plus one full-size run (random SD v1.5 weights, CPU, 512²) stopped while it samples.
# Each must exit with 130 (or 0 when it finished first) within LIMIT seconds of the signal, leave
# no temporary file and no empty output folder it made.
#   scripts/stop-latency.sh [N] [LIMIT]      (defaults 200 and 1.0; BUILD_DIR, default build)
# Prints the latencies' distribution and fails on any run that was slower or left debris.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
N=${1:-200}
LIMIT=${2:-1.0}
BIN=${BUILD_DIR:-build}/sd-gen
MODEL=tests/data/tiny_sd/tiny_sd.safetensors
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in 1 2 3 4; do echo "{\"prompt\": \"a cat number $i\", \"seed\": $i}"; done >"$work/prompts.jsonl"
lat=()
bad=0

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

check_debris() {
  local out=$1
  if [ -d "$out" ] && [ -z "$(ls -A "$out")" ]; then echo "empty output folder left: $out"; return 1; fi
  local t
  for t in "$out"/.sdgen-*; do
    [ -e "$t" ] || [ -L "$t" ] || continue
    echo "temporary left: $t"
    return 1
  done
  return 0
}

for ((k = 0; k < N; ++k)); do
  out="$work/out$k"
  delay=$(awk -v s="$k" 'BEGIN { srand(s + 1); printf "%.3f", rand() * 1.5 }')
  OMP_WAIT_POLICY=PASSIVE SDGEN_MODEL='' "$BIN" -m "$MODEL" --prompt-file "$work/prompts.jsonl" -W 128 -H 128 \
    --steps 8 --device cpu --manifest "$work/m$k.jsonl" -o "$out" -q 2>"$work/err" &
  pid=$!
  sleep "$delay"
  t0=$(date +%s.%N)
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  code=$?
  t1=$(date +%s.%N)
  l=$(elapsed "$t0" "$t1")
  lat+=("$l")
  if [ "$code" != 130 ] && [ "$code" != 0 ]; then echo "run $k: exit $code after ${delay}s: $(cat "$work/err")"; bad=1; fi
  if awk -v l="$l" -v m="$LIMIT" 'BEGIN { exit !(l > m) }'; then echo "run $k: stopped after $l s (signal at ${delay}s)"; bad=1; fi
  check_debris "$out" || bad=1
done

# The full-size run: random SD v1.5 on the CPU, stopped 20 s in (inside sampling on 2 cores).
out="$work/full"
OMP_WAIT_POLICY=PASSIVE SDGEN_MODEL='' "$BIN" -m random:sd15 -p "a lighthouse" --steps 5 --device cpu -o "$out" -q \
  2>"$work/err" &
pid=$!
sleep "${FULL_DELAY:-20}"
t0=$(date +%s.%N)
kill -TERM "$pid" 2>/dev/null
wait "$pid"
code=$?
full=$(elapsed "$t0" "$(date +%s.%N)")
echo "full-size SD v1.5 (CPU, 512², stopped ${FULL_DELAY:-20} s in): exit $code after $full s"
[ "$code" = 130 ] || { echo "full-size run: exit $code: $(cat "$work/err")"; bad=1; }
awk -v l="$full" -v m="$LIMIT" 'BEGIN { exit !(l > m) }' && bad=1
check_debris "$out" || bad=1

printf '%s\n' "${lat[@]}" | sort -n | awk -v n="$N" '{ a[NR] = $1 } END {
  printf "tiny model, %d runs: stop latency median %.3f s, p90 %.3f s, max %.3f s\n", n, a[int(NR * 0.5 + 0.5)], a[int(NR * 0.9 + 0.5)], a[NR] }'
[ $bad -eq 0 ] && echo "stop-latency: all within ${LIMIT} s, nothing left behind" || { echo "stop-latency: FAILED"; exit 1; }
