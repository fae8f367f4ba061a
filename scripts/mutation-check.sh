#!/usr/bin/env bash
# Mutation check: does the test suite notice plausible one-line slips?
#
# Applies the mutations of scripts/mutations.txt one at a time to a copy of the tree, rebuilds
# incrementally, runs the fast tests and reports each mutation as caught (by which test) or
# survived. The repository itself is only read (git ls-files); everything is written under $MUT_DIR.
#
#   scripts/mutation-check.sh                 every mutation (--all)
#   scripts/mutation-check.sh --subset K      about K of them, rotating from run to run (CI)
#   scripts/mutation-check.sh --only ID[,ID]  just these
#   scripts/mutation-check.sh --list          validate the list and print it; builds nothing
# Options: -j N build jobs (default 2); --fail-fast stop each test run at its first failing test
# (faster, but names only that one test); --rev REV test commit REV instead of the working tree
# (the working tree includes uncommitted edits, which may be half done while someone works).
# Environment:
#   MUT_DIR           work folder (default /tmp/sdgen-mutation): tree/ (the copy), build/, logs/
#   MUT_TREE_DIR, MUT_BUILD_DIR   override tree/ and build/ separately
#   MUT_LIST          the mutation list (default scripts/mutations.txt)
#   MUT_ROTATE        rotation counter for --subset (default: the commit count of HEAD)
#   MUT_REV           as --rev
#   MUT_JOBS          build jobs when -j is not given (default 2)
#   MUT_TEST_TIMEOUT  seconds per test binary run (default 300); a timeout counts as caught
#   MUT_SDGEN_FILTER, MUT_SIMT_FILTER   gtest filters of the fast tests (defaults below)
# Exit: 0 every selected mutation caught, 1 some survived, 2 bad list or options, or the unmutated
# tree does not build or pass its fast tests.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIST=${MUT_LIST:-$ROOT/scripts/mutations.txt}
WORK=${MUT_DIR:-/tmp/sdgen-mutation}
TREE=${MUT_TREE_DIR:-$WORK/tree}
BUILD=${MUT_BUILD_DIR:-$WORK/build}
JOBS=${MUT_JOBS:-2}
REV=${MUT_REV:-}
TEST_TIMEOUT=${MUT_TEST_TIMEOUT:-300}
BUILD_TIMEOUT=${MUT_BUILD_TIMEOUT:-1800}
# The fast tests. sdgen_tests in full takes 17-25 s on 2 cores, so it runs whole except the CLI
# interrupt test (it times a signal against a running process, which is load-sensitive, and no
# mutation is about signals) and the golden runs on a real GPU (*_cuda: they skip without one,
# and on a GPU machine they would test nvcc objects this script does not rebuild).
SDGEN_FILTER=${MUT_SDGEN_FILTER:-'-Pipeline.CliInterruptExits130:*_cuda'}
# simt_tests: the op table on the emulated CUDA backend, the kernel chosen per architecture
# (CudaKernelChoice: bf16 attention's mma kernel from sm_80 only), the emulated fp32 pipeline, the SD 2 one
# (one pipeline replaying its step across prediction types and guidance rescale; 14 s), the SDXL one
# (added conditioning refilled on a replay; 14 s), the SDXL ControlNet one (its own added
# conditioning refilled on a replay; 18 s), the backend's
# start-up checks (CudaDevice) and the census of the loop without graphs (it drives the real
# pipeline host code: captures, warm-up, allocations; 8 s). Left out: the emulator's own tests
# (Simt*, the cuBLAS/cuDNN twins: they run no mutated code), the other census runs, the fp16
# pipeline run, and the three op-table rows with the biggest attention shapes, which alone took 85
# of the 137 s that simt_tests took whole (emulated flash attention, loaded machine); every kernel
# is still run by smaller rows and by the fp32 pipeline.
SIMT_FILTER=${MUT_SIMT_FILTER:-'CudaEmu/*:CudaKernelChoice.*:CudaEmulatedPipeline.Fp32*:CudaEmulatedPipeline.StepGraph*:CudaEmulatedPipeline.Sd2*:CudaEmulatedPipeline.Sdxl*:CudaEmulatedControlNet.Sdxl*:CudaDevice.*:Census.Fp16LoopWithoutGraphs-*/attn_self_1x4096_h8_d40:*/attn_self_2x1024_h8_d80:*/attn_vae_1x1024_h1_d512'}

# Like scripts/test.sh, so that CMake finds nvcc (and the emulator's headers) the same way.
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
export LC_ALL=C  # awk and sort work on bytes

die() { echo "mutation-check: $*" >&2; exit 2; }
note() { echo "mutation-check: $*"; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------------------------
# The list: parallel arrays, one index per mutation.
M_ID=() M_FILE=() M_FROM=() M_TO=() M_WHY=() M_TESTS=() M_LINE=()

trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  s=${s%"${s##*[![:space:]]}"}
  printf '%s' "$s"
}

parse_list() {
  [ -f "$LIST" ] || die "no mutation list at $LIST"
  local line n=0 i=-1 key val errors=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    case $(trim "$line") in
      '' | '#'*) continue ;;
    esac
    if [[ $line =~ ^\[([^]]*)\][[:space:]]*$ ]]; then
      i=$((i + 1))
      M_ID[i]=${BASH_REMATCH[1]} M_LINE[i]=$n
      M_FILE[i]='' M_FROM[i]='' M_TO[i]='' M_WHY[i]='' M_TESTS[i]=''
      continue
    fi
    if [[ $i -lt 0 || ! $line =~ ^([a-z]+):(.*)$ ]]; then
      echo "$LIST:$n: expected '[id]' or 'key: value', got: $line" >&2
      errors=$((errors + 1))
      continue
    fi
    key=${BASH_REMATCH[1]}
    val=$(trim "${BASH_REMATCH[2]}")
    case $key in
      file) M_FILE[i]=$val ;;
      from) M_FROM[i]=$val ;;
      to) M_TO[i]=$val ;;
      why) M_WHY[i]=$val ;;
      tests) M_TESTS[i]=$val ;;
      *) echo "$LIST:$n: unknown key '$key'" >&2; errors=$((errors + 1)) ;;
    esac
  done <"$LIST"
  [ $errors -eq 0 ] || die "$errors syntax error(s) in $LIST"
  [ ${#M_ID[@]} -gt 0 ] || die "$LIST lists no mutation"
}

# How often the literal text $2 occurs in file $1 (non-overlapping). awk's index() is a literal
# search, and the text travels through the environment, so nothing in it needs escaping.
count_occurrences() {
  MUT_TEXT=$2 awk 'BEGIN { s = ENVIRON["MUT_TEXT"]; n = 0 }
    { line = $0; while ((k = index(line, s)) > 0) { n++; line = substr(line, k + length(s)) } }
    END { print n }' "$1"
}

# Checks every entry (not only the selected ones) against the files under $1, so that a list
# that no longer matches the code fails loudly instead of testing nothing.
validate_list() {
  local base=$1 i j errors=0 where count
  for i in "${!M_ID[@]}"; do
    where="$LIST:${M_LINE[i]}: [${M_ID[i]}]"
    if [[ ! ${M_ID[i]} =~ ^[a-z0-9][a-z0-9-]*$ ]]; then
      echo "$where: bad id (use [a-z0-9-])" >&2; errors=$((errors + 1))
    fi
    for ((j = 0; j < i; j++)); do
      if [ "${M_ID[j]}" = "${M_ID[i]}" ]; then
        echo "$where: duplicate id (also at line ${M_LINE[j]})" >&2; errors=$((errors + 1))
      fi
    done
    if [ -z "${M_FILE[i]}" ] || [ -z "${M_FROM[i]}" ] || [ -z "${M_TO[i]}" ] || [ -z "${M_WHY[i]}" ]; then
      echo "$where: needs file, from, to and why" >&2; errors=$((errors + 1)); continue
    fi
    case ${M_TESTS[i]} in
      '' | sdgen | simt | both) ;;
      *) echo "$where: tests must be sdgen, simt or both" >&2; errors=$((errors + 1)) ;;
    esac
    if [ "${M_FROM[i]}" = "${M_TO[i]}" ]; then
      echo "$where: from and to are the same" >&2; errors=$((errors + 1))
    fi
    if [ ! -f "$base/${M_FILE[i]}" ]; then
      echo "$where: no file ${M_FILE[i]}" >&2; errors=$((errors + 1)); continue
    fi
    count=$(count_occurrences "$base/${M_FILE[i]}" "${M_FROM[i]}")
    if [ "$count" -ne 1 ]; then
      echo "$where: 'from' occurs $count times in ${M_FILE[i]} (must be exactly once): ${M_FROM[i]}" >&2
      errors=$((errors + 1))
    fi
  done
  [ $errors -eq 0 ] || die "$errors problem(s) in $LIST; fix the list to match the code"
}

# Which test binaries a mutation needs: its `tests` field, else by path. CUDA-backend code runs
# only in simt_tests (the emulated backend); everything else is the library that sdgen_tests
# covers (simt_tests links it too, but its tests add nothing for CPU code and cost twice as long).
tests_of() {
  local i=$1
  if [ -n "${M_TESTS[i]}" ]; then echo "${M_TESTS[i]}"; return; fi
  case ${M_FILE[i]} in
    kernels/* | src/backend/cuda/*) echo simt ;;
    *) echo sdgen ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# The source of the copy, SRC, and its file list in $WORK/tree-files.new. Default: the working
# tree, i.e. tracked files as they are now (uncommitted edits included) plus untracked, non-ignored
# files under the source folders (new tests and goldens not yet added). With --rev: that commit's
# files, exported by git archive.
SRC=$ROOT
prepare_source() {
  git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git checkout"
  mkdir -p "$WORK"
  local list=$WORK/tree-files.$$
  if [ -z "$REV" ]; then
    SRC=$ROOT
    {
      git -C "$ROOT" ls-files -z
      git -C "$ROOT" ls-files -z --others --exclude-standard -- src include kernels tests scripts benchmarks
    } | tr '\0' '\n' | sort -u >"$list"
    return
  fi
  git -C "$ROOT" rev-parse --verify -q "$REV^{commit}" >/dev/null || die "no commit '$REV'"
  SRC=$WORK/export.$$
  rm -rf "$SRC"
  mkdir -p "$SRC"
  git -C "$ROOT" archive --format=tar "$REV" | tar -x -C "$SRC"
  git -C "$ROOT" ls-tree -r -z --name-only "$REV" | tr '\0' '\n' | sort -u >"$list"
  note "source: commit $(git -C "$ROOT" rev-parse --short "$REV^{commit}") ($REV)"
}

# The copy of the tree. Only files whose content differs from SRC are copied, so unchanged files
# keep their mtimes and the rebuild stays incremental; a copied file gets a fresh mtime, so it is
# rebuilt even where an interrupted run left a mutated file behind.
sync_tree() {
  mkdir -p "$TREE"
  local f copied=0 manifest=$WORK/tree-files.txt
  mv "$WORK/tree-files.$$" "$manifest.new"
  while IFS= read -r f; do
    [ -f "$SRC/$f" ] || continue  # deleted in the working tree
    if ! cmp -s "$SRC/$f" "$TREE/$f"; then
      mkdir -p "$(dirname "$TREE/$f")"
      cp "$SRC/$f" "$TREE/$f"
      copied=$((copied + 1))
    fi
  done <"$manifest.new"
  # Files an earlier sync copied that are gone now (a deleted test file would still be globbed).
  if [ -f "$manifest" ]; then
    comm -23 "$manifest" "$manifest.new" | while IFS= read -r f; do rm -f "$TREE/$f"; done
  fi
  mv "$manifest.new" "$manifest"
  note "tree copy $TREE: $copied file(s) updated from $SRC"
}

configure() {
  if [ -f "$BUILD/CMakeCache.txt" ]; then
    grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$TREE" "$BUILD/CMakeCache.txt" ||
      die "$BUILD was configured for another source folder; remove it or set MUT_BUILD_DIR"
    return
  fi
  local args=(-S "$TREE" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release)
  command -v ninja >/dev/null && args+=(-G Ninja)  # faster no-op checks between mutations
  grep -q SDGEN_BUILD_BENCHMARKS "$TREE/CMakeLists.txt" && args+=(-DSDGEN_BUILD_BENCHMARKS=OFF)
  # No nvcc: the kernel mutations are tested by the emulated backend (simt_tests), which is built
  # wherever the CUDA headers are; compiling every kernel for five GPU architectures after each
  # mutation would cost minutes and test nothing more without a GPU.
  args+=(-DSDGEN_CUDA=OFF)
  note "configuring $BUILD"
  cmake "${args[@]}" >"$WORK/logs/configure.log" 2>&1 || { cat "$WORK/logs/configure.log" >&2; die "configure failed"; }
}

HAS_SIMT=0
detect_simt() {
  if cmake --build "$BUILD" --target help 2>/dev/null | grep -qw simt_tests; then HAS_SIMT=1; fi
}

# build LOG TARGET...: incremental build of the given targets, output appended to LOG.
build() {
  local log=$1
  shift
  timeout -k 10 "$BUILD_TIMEOUT" nice -n 10 cmake --build "$BUILD" -j "$JOBS" --target "$@" >>"$log" 2>&1
}

targets_for() {  # sdgen|simt|both -> build targets
  case $1 in
    sdgen) echo sdgen_tests sd-gen ;;
    simt) echo simt_tests ;;
    both) echo sdgen_tests sd-gen simt_tests ;;
  esac
}

FAIL_FAST=0
# run_tests LOG sdgen|simt: one test binary with its filter and timeout; returns its exit code.
run_tests() {
  local log=$1 bin filter rc=0
  case $2 in
    sdgen) bin=$BUILD/tests/sdgen_tests filter=$SDGEN_FILTER ;;
    simt) bin=$BUILD/tests/simt/simt_tests filter=$SIMT_FILTER ;;
  esac
  local args=("--gtest_filter=$filter" --gtest_color=no)
  if [ $FAIL_FAST -eq 1 ]; then args+=(--gtest_fail_fast); fi
  echo "### $bin ${args[*]}" >>"$log"
  # Passive OpenMP waiting, as ctest runs the suite (tests/CMakeLists.txt): spinning threads
  # starve everything else on 2 shared cores.
  (cd "$WORK/run" && OMP_WAIT_POLICY=PASSIVE timeout -k 10 "$TEST_TIMEOUT" nice -n 10 "$bin" "${args[@]}") >>"$log" 2>&1 || rc=$?
  echo "### exit $rc" >>"$log"
  return $rc
}

# The failing tests gtest named in LOG: the first failing test of each suite (up to four suites,
# so that a table row shows which kinds of test caught it), then the total count.
failed_tests() {
  awk '
    /^\[  FAILED  \] / {
      name = substr($0, 14)
      if (name ~ /^[0-9]+ tests?, listed below/) next
      sub(/ \([0-9]+ ms\)$/, "", name)
      sub(/, where GetParam\(\) = .*/, "", name)
      if (name in seen) next
      seen[name] = 1; n++
      suite = name; sub(/\..*/, "", suite)
      if (!(suite in suites) && shown < 4) { suites[suite] = 1; out = out (shown++ ? " " : "") name }
    }
    END { if (n) printf "%s%s", out, (n > shown ? " (" n " failed)" : "") }' "$1"
}

last_started_test() { sed -n 's/^\[ RUN      \] //p' "$1" | tail -1; }

# ---------------------------------------------------------------------------------------------
# Applying and undoing one mutation. The original is kept in $WORK/backup; a trap puts it back if
# the run is interrupted, and the next sync would repair the copy in any case.
CUR_FILE='' CUR_BACKUP=''

apply_mutation() {
  local i=$1 f=$TREE/${M_FILE[$1]}
  CUR_FILE=$f CUR_BACKUP=$WORK/backup/$(basename "$f")
  mkdir -p "$WORK/backup"
  cp -p "$f" "$CUR_BACKUP"
  MUT_FROM=${M_FROM[i]} MUT_TO=${M_TO[i]} awk '
    BEGIN { from = ENVIRON["MUT_FROM"]; to = ENVIRON["MUT_TO"] }
    !done && (k = index($0, from)) > 0 { $0 = substr($0, 1, k - 1) to substr($0, k + length(from)); done = 1 }
    { print }' "$CUR_BACKUP" >"$f.mutated"
  cat "$f.mutated" >"$f"  # in place: keeps the file's mode
  rm -f "$f.mutated"
  ! cmp -s "$f" "$CUR_BACKUP" || die "[${M_ID[i]}] applying it changed nothing"
}

restore_mutation() {
  [ -n "$CUR_FILE" ] || return 0
  cat "$CUR_BACKUP" >"$CUR_FILE"
  touch "$CUR_FILE"  # newer than anything built from the mutant, so the next build recompiles it
  rm -f "$CUR_BACKUP"
  CUR_FILE='' CUR_BACKUP=''
}
# This run's own temporary files (the export of --rev, the file list before it is synced).
# shellcheck disable=SC2317  # called from the traps
cleanup() { rm -rf "$WORK/export.$$" "$WORK/tree-files.$$"; }
trap 'restore_mutation; cleanup' EXIT
trap 'restore_mutation; cleanup; exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Selection.
SELECTED=()
select_all() { SELECTED=("${!M_ID[@]}"); }

# --subset K: the list is cut into R = ceil(M/K) interleaved slices (every R-th entry), and run
# number `rot` takes slice rot mod R. Interleaving spreads each run over all areas of the list;
# R consecutive values of the counter (the commit count by default) cover the whole list.
select_subset() {
  local k=$1 m=${#M_ID[@]} rot r slices i
  [[ $k =~ ^[1-9][0-9]*$ ]] || die "--subset needs a positive number"
  rot=${MUT_ROTATE:-$(git -C "$ROOT" rev-list --count HEAD 2>/dev/null || echo $(($(date +%s) / 86400)))}
  [[ $rot =~ ^[0-9]+$ ]] || die "MUT_ROTATE must be a non-negative number"
  slices=$(((m + k - 1) / k))
  r=$((rot % slices))
  for i in "${!M_ID[@]}"; do
    if [ $((i % slices)) -eq $r ]; then SELECTED+=("$i"); fi
  done
  note "subset: slice $((r + 1)) of $slices (rotation counter $rot; set MUT_ROTATE to choose)"
}

select_only() {
  local id i found ids
  IFS=',' read -r -a ids <<<"$1"
  for id in "${ids[@]}"; do
    found=-1
    for i in "${!M_ID[@]}"; do
      if [ "${M_ID[i]}" = "$id" ]; then found=$i; fi
    done
    [ "$found" -ge 0 ] || die "no mutation with id '$id' (see --list)"
    SELECTED+=("$found")
  done
}

print_list() {
  local i
  printf '%-32s %-8s %-38s %s\n' ID TESTS FILE WHY
  for i in "${!M_ID[@]}"; do
    printf '%-32s %-8s %-38s %s\n' "${M_ID[i]}" "$(tests_of "$i")" "${M_FILE[i]}" "${M_WHY[i]}"
  done
  note "${#M_ID[@]} mutations, all valid against $SRC${REV:+ (commit $REV)}"
}

# ---------------------------------------------------------------------------------------------
main() {
  local mode=all arg=''
  while [ $# -gt 0 ]; do
    case $1 in
      --all) mode=all ;;
      --subset) [ $# -ge 2 ] || die "--subset needs K"; mode=subset arg=$2; shift ;;
      --subset=*) mode=subset arg=${1#*=} ;;
      --only) [ $# -ge 2 ] || die "--only needs ids"; mode=only arg=$2; shift ;;
      --only=*) mode=only arg=${1#*=} ;;
      --list) mode=list ;;
      -j) [ $# -ge 2 ] || die "-j needs N"; JOBS=$2; shift ;;
      -j*) JOBS=${1#-j} ;;
      --fail-fast) FAIL_FAST=1 ;;
      --rev) [ $# -ge 2 ] || die "--rev needs a commit"; REV=$2; shift ;;
      --rev=*) REV=${1#*=} ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
  done
  [[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "-j needs a positive number"

  parse_list
  case $mode in
    all | list) select_all ;;
    subset) select_subset "$arg" ;;
    only) select_only "$arg" ;;
  esac
  prepare_source
  if [ $mode = list ]; then
    validate_list "$SRC"
    print_list
    exit 0
  fi

  mkdir -p "$WORK/logs" "$WORK/run"
  # One run per work folder: two would mutate and rebuild the same copy under each other.
  exec 9>"$WORK/lock"
  flock -n 9 || die "another mutation check is running in $WORK; wait for it or set MUT_DIR"
  sync_tree
  validate_list "$TREE"

  configure
  detect_simt
  local i kind
  if [ $HAS_SIMT -eq 0 ]; then
    # Without the CUDA headers there is no emulator to run kernel mutations in.
    local kept=()
    for i in "${SELECTED[@]}"; do
      kind=$(tests_of "$i")
      if [ "$kind" = sdgen ]; then kept+=("$i"); else note "skipping ${M_ID[i]}: no SIMT emulator in this build"; fi
    done
    SELECTED=("${kept[@]}")
  fi
  [ ${#SELECTED[@]} -gt 0 ] || die "no mutation selected"
  # Library mutations first, CUDA ones last: the latter rebuild only simt_tests, and the touched
  # kernel files would otherwise make every later sdgen_tests build recompile them with nvcc.
  local ordered=()
  for i in "${SELECTED[@]}"; do
    if [ "$(tests_of "$i")" = sdgen ]; then ordered+=("$i"); fi
  done
  for i in "${SELECTED[@]}"; do
    if [ "$(tests_of "$i")" != sdgen ]; then ordered+=("$i"); fi
  done
  SELECTED=("${ordered[@]}")

  # The unmutated tree must build and pass the fast tests, or no verdict would mean anything.
  local base_log=$WORK/logs/unmutated.log t0
  : >"$base_log"
  t0=$(date +%s)
  note "building the unmutated tree (-j $JOBS)"
  local all_targets=(sdgen_tests sd-gen)
  [ $HAS_SIMT -eq 1 ] && all_targets+=(simt_tests)
  build "$base_log" "${all_targets[@]}" || { tail -30 "$base_log" >&2; die "the unmutated tree does not build (log: $base_log)"; }
  local build_s=$(($(date +%s) - t0))
  t0=$(date +%s)
  run_tests "$base_log" sdgen || { tail -30 "$base_log" >&2; die "the unmutated tree fails sdgen_tests (log: $base_log)"; }
  local sdgen_s=$(($(date +%s) - t0))
  local simt_s=-
  if [ $HAS_SIMT -eq 1 ]; then
    t0=$(date +%s)
    run_tests "$base_log" simt || { tail -30 "$base_log" >&2; die "the unmutated tree fails simt_tests (log: $base_log)"; }
    simt_s=$(($(date +%s) - t0))
  fi
  note "unmutated tree: build ${build_s}s, fast tests pass (sdgen_tests ${sdgen_s}s, simt_tests ${simt_s}s)"

  local n=${#SELECTED[@]} k=0 caught=0 by_build=0 survivors=() rows=() t_start
  t_start=$(date +%s)
  for i in "${SELECTED[@]}"; do
    k=$((k + 1))
    local id=${M_ID[i]} log=$WORK/logs/${M_ID[i]}.log verdict by kind tb tt rc
    kind=$(tests_of "$i")
    : >"$log"
    printf '[%2d/%d] %-32s ' "$k" "$n" "$id"
    t0=$(date +%s)
    apply_mutation "$i"
    # shellcheck disable=SC2046  # word splitting of the target list is intended
    if ! build "$log" $(targets_for "$kind"); then
      tb=$(($(date +%s) - t0))
      verdict=caught by='build (does not compile: prefer a mutation that does)'
      caught=$((caught + 1)) by_build=$((by_build + 1))
      tt=0
    else
      tb=$(($(date +%s) - t0))
      t0=$(date +%s)
      by='' rc=0
      local which
      for which in sdgen simt; do
        [ "$kind" = both ] || [ "$kind" = "$which" ] || continue
        run_tests "$log" "$which" || rc=$?
        if [ $rc -ne 0 ] && [ $FAIL_FAST -eq 1 ]; then break; fi
      done
      tt=$(($(date +%s) - t0))
      if [ $rc -eq 0 ]; then
        verdict=SURVIVED by='-'
        survivors+=("$id")
      else
        verdict=caught
        caught=$((caught + 1))
        by=$(failed_tests "$log")
        if [ -z "$by" ]; then
          local last
          last=$(last_started_test "$log")
          case $rc in
            124 | 137) by="timeout after ${TEST_TIMEOUT}s in ${last:-?}" ;;
            *) [ "$rc" -gt 128 ] && by="crash (signal $((rc - 128))) in ${last:-?}" || by="exit $rc in ${last:-?}" ;;
          esac
        fi
      fi
    fi
    restore_mutation
    echo "$verdict  (build ${tb}s, tests ${tt}s)  $by"
    rows+=("$id"$'\t'"${M_FILE[i]}"$'\t'"$verdict"$'\t'"$by"$'\t'"$((tb + tt))")
  done
  local total_s=$(($(date +%s) - t_start))

  # The report: a table on stdout and in $WORK/report.txt (tab-separated in report.tsv).
  local report=$WORK/report.txt
  {
    printf '%s\n' "${rows[@]}" | awk -F'\t' '
      BEGIN { printf "%-32s %-38s %-8s %5s  %s\n", "ID", "FILE", "VERDICT", "SECS", "CAUGHT BY" }
      { printf "%-32s %-38s %-8s %5s  %s\n", $1, $2, $3, $5, $4 }'
    echo
    local extra=''
    if [ $by_build -gt 0 ]; then extra=" ($by_build only by failing to build)"; fi
    echo "mutation-check: $caught/$n caught$extra; ${total_s}s for the mutations, $((total_s / n))s each on average"
    [ ${#survivors[@]} -eq 0 ] || echo "mutation-check: survived: ${survivors[*]}"
  } | tee "$report"
  printf '%s\n' "${rows[@]}" >"$WORK/report.tsv"
  note "logs: $WORK/logs/<id>.log, report: $report"
  [ ${#survivors[@]} -eq 0 ]
}

main "$@"; exit  # nothing after this line is read, even if the file is edited meanwhile
