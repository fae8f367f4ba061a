#!/usr/bin/env bash
# The fuzz targets of tests/fuzz/ (libFuzzer, with AddressSanitizer and UndefinedBehaviorSanitizer),
# built with clang from the few sources each needs, run for a bounded time each from the committed
# seed corpus (copied: the run's discoveries are not written into the repository), and every
# committed crash reproducer replayed. Any crash, leak, sanitizer report or timeout fails.
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS (default 60) each
#   scripts/fuzz.sh --replay-only   only the seeds and crash files, once each (the regression test)
# Prints each target's executions. Needs clang and compiler-rt (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
REPLAY_ONLY=0
[ "${1:-}" = "--replay-only" ] && REPLAY_ONLY=1
CXX=${FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
[ -n "$CXX" ] || { echo "fuzz.sh: clang++ not found (scripts/install-deps.sh installs it)" >&2; exit 2; }
OUT=${FUZZ_BUILD_DIR:-build-fuzz}
mkdir -p "$OUT"
FLAGS=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -Iinclude -Isrc -I/usr/include/stb -DSDGEN_SOURCE_DIR="\"$PWD\"")
COMMON=(src/core/error.cpp src/core/shape.cpp)
# The prompt-file reader and the manifest's job identity walk the settings table (src/cli/settings.cpp),
# which parses LoRA and embedding specs, sampler names and seeds, names the PNG hashes and reads
# --init-image pictures (PNG through stb_image, JPEG through libjpeg-turbo).
SETTINGS="src/cli/prompt_file.cpp src/cli/batch.cpp src/cli/settings.cpp src/cli/settings_control.cpp src/io/image_read.cpp src/io/image_blur.cpp src/io/jpeg_read.cpp src/io/png_writer.cpp src/io/file_write.cpp src/io/lora_spec.cpp src/io/model_hashes.cpp src/core/sha256.cpp src/core/interrupt.cpp src/text/embedding_spec.cpp src/sampler/registry.cpp src/core/rng.cpp src/core/cephes_math.cpp src/pipeline/hires_options.cpp"
declare -A SOURCES=(
  [safetensors]="src/io/safetensors.cpp src/io/file_write.cpp"
  [torch_checkpoint]="src/io/safetensors.cpp src/io/file_write.cpp src/io/torch_checkpoint.cpp"
  [model_config]="src/io/model_config_load.cpp src/io/model_family.cpp src/io/checkpoint_names.cpp"
  [prompt_file]="$SETTINGS"
  [manifest]="src/cli/manifest.cpp $SETTINGS"
  [png_parameters]="src/io/png_text.cpp src/cli/infotext.cpp $SETTINGS"
  [image_read]="src/io/image_read.cpp src/io/jpeg_read.cpp src/io/image_resize.cpp"
  [tokenizer]="src/text/tokenizer.cpp src/text/text_clean.cpp src/text/ftfy_encoding.cpp src/text/ftfy_badness.cpp src/text/prompt_weights.cpp src/text/prompt_chunks.cpp"
)
declare -A LIBS=([safetensors]="" [torch_checkpoint]="" [model_config]="" [prompt_file]="-lz -ljpeg" [manifest]="-lz -ljpeg" [png_parameters]="-lz -ljpeg" [image_read]="-ljpeg" [tokenizer]="-lz -lutf8proc")
# Inputs are cut to this length; the model_config seeds are the tiny model's whole name tables.
declare -A MAXLEN=([safetensors]=65536 [torch_checkpoint]=65536 [model_config]=131072 [prompt_file]=65536 [manifest]=65536 [png_parameters]=65536 [image_read]=65536 [tokenizer]=65536)
status=0
for t in safetensors torch_checkpoint model_config prompt_file manifest png_parameters image_read tokenizer; do
  bin="$OUT/fuzz_$t"
  # shellcheck disable=SC2086
  "$CXX" "${FLAGS[@]}" "tests/fuzz/fuzz_$t.cpp" ${SOURCES[$t]} "${COMMON[@]}" ${LIBS[$t]} -o "$bin"
  corpus="$OUT/corpus_$t"
  rm -rf "$corpus"
  mkdir -p "$corpus"
  cp tests/fuzz/corpus/$t/* "$corpus/" 2>/dev/null || true
  shopt -s nullglob
  crashes=(tests/fuzz/crashes/$t/*)
  shopt -u nullglob
  if [ ${#crashes[@]} -gt 0 ]; then
    "$bin" -runs=0 "${crashes[@]}" >"$OUT/replay_$t.log" 2>&1 || { echo "fuzz.sh: $t: a committed crash file fails again:"; tail -30 "$OUT/replay_$t.log"; status=1; }
  fi
  if [ $REPLAY_ONLY -eq 1 ]; then
    "$bin" -runs=0 "$corpus" >"$OUT/run_$t.log" 2>&1 || { echo "fuzz.sh: $t: a seed fails:"; tail -30 "$OUT/run_$t.log"; status=1; }
    echo "fuzz.sh: $t: replayed $(ls "$corpus" | wc -l) seeds and ${#crashes[@]} crash file(s)"
    continue
  fi
  if "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len="${MAXLEN[$t]}" \
      -artifact_prefix="$OUT/artifact_${t}_" -print_final_stats=1 "$corpus" >"$OUT/run_$t.log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/run_$t.log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz.sh: $t: ${SECONDS_EACH} s, $execs executions, no findings"
  else
    echo "fuzz.sh: $t: FINDING (artifact in $OUT/artifact_${t}_*):"
    grep -m1 -A25 "ERROR\|runtime error\|==ERROR\|deadly signal\|timeout" "$OUT/run_$t.log" || tail -30 "$OUT/run_$t.log"
    status=1
  fi
done
exit $status
