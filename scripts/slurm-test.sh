#!/usr/bin/env bash
# A real single-node Slurm cluster (issue 12): munged, slurmctld and slurmd from Debian's packages,
# started on localhost with a private config, key, ports and spool under a temp folder, stopped
# again at the end. It submits a 4-task array job of `sd-gen --shard` over an 8-line prompt file
# (tiny model, CPU), cancels one task mid-run (SIGTERM: the task stops after a step), resubmits that
# task with the same script (--skip-existing), and checks that the parts' images and the union of
# their manifests equal a single-process run, image for image and byte for byte.
#
#   scripts/slurm-test.sh [--install] [BUILD_DIR]     (BUILD_DIR default: build)
#
# --install: apt-get install the packages when missing (needs root). Exit: 0 passed, 1 failed,
# 77 skipped (packages missing and not installable; the reason is printed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
INSTALL=0
if [ "${1:-}" = "--install" ]; then INSTALL=1; shift; fi
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
SDGEN=$BUILD/sd-gen
MODEL=$ROOT/tests/data/tiny_sd/tiny_sd.safetensors
[ -x "$SDGEN" ] || { echo "slurm-test: no $SDGEN: build first" >&2; exit 1; }

have_all() { command -v munged && command -v slurmctld && command -v slurmd && command -v sbatch; } >/dev/null 2>&1
if ! have_all && [ $INSTALL = 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends munge slurmctld slurmd slurm-client \
      >/dev/null 2>&1 || true
  fi
fi
if ! have_all; then
  echo "slurm-test: SKIPPED: munged, slurmctld, slurmd and sbatch are needed (Debian: apt-get install munge" \
       "slurmctld slurmd slurm-client, or run this script as root with --install)"
  exit 77
fi
if [ "$(id -u)" != 0 ]; then
  echo "slurm-test: SKIPPED: slurmd must run as root to start jobs as the submitting user"
  exit 77
fi

WORK=$(mktemp -d /tmp/sdgen-slurm.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "slurm-test: FAILED: $*" >&2
  for f in "$WORK"/slurmctld.log "$WORK"/slurmd.log "$WORK"/logs/*; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

# munge: a key of its own and a socket in WORK.
mkdir -p "$WORK"/munge "$WORK"/state "$WORK"/spool "$WORK"/logs "$WORK"/manifests "$WORK"/images
chmod 700 "$WORK"/munge
dd if=/dev/urandom of="$WORK"/munge/munge.key bs=1024 count=1 status=none
chmod 400 "$WORK"/munge/munge.key
SOCK=$WORK/munge/munge.socket
munged --force -F --key-file="$WORK"/munge/munge.key --socket="$SOCK" --pid-file="$WORK"/munge/munged.pid \
  --log-file="$WORK"/munge/munged.log --seed-file="$WORK"/munge/munged.seed 2>"$WORK"/munge/stderr &
PIDS+=($!)
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || fail "munged did not start: $(cat "$WORK"/munge/stderr "$WORK"/munge/munged.log 2>/dev/null)"

# Slurm: this host as its only node, ports from the process id so that parallel runs do not meet.
HOST=$(hostname -s)
PORT=$((20000 + ($$ % 20000) * 2))
NODE=$(slurmd -C | head -n 1 | sed 's/ UpTime.*//')
export SLURM_CONF=$WORK/slurm.conf
cat > "$SLURM_CONF" <<EOF
ClusterName=sdgentest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=30
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" >"$WORK"/slurmctld.out 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" >"$WORK"/slurmd.out 2>&1 &
PIDS+=($!)
for _ in $(seq 150); do
  sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)' && break
  sleep 0.2
done
sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)' || fail "the node did not come up: $(sinfo 2>&1 | tail -n 3)"
echo "slurm-test: cluster up ($(sinfo -h -o '%P %D %T %c')), slurm $(sbatch --version)"

# 8 lines, 2 per part; part 2's lines are slow (256x256 with 6 steps, then 512x512 with 20: seconds even
# on a quiet machine) so that it is still running when it is cancelled after its first image.
cat > "$WORK"/prompts.txt <<'EOF'
a lighthouse at dusk
{"prompt": "a red fox in snow", "batch": 2}
{"prompt": "a bowl of fruit", "seed_mode": "per-image", "batch": 2}
a sailing boat
{"prompt": "a castle on a hill", "width": 256, "height": 256, "steps": 6}
{"prompt": "a forest path", "width": 512, "height": 512, "steps": 20}
a cup of coffee
{"prompt": "a city at night", "negative_prompt": "blurry"}
EOF
COMMON=(--device cpu -m "$MODEL" --prompt-file "$WORK"/prompts.txt -W 64 -H 64 --steps 2 --seed 7)
cat > "$WORK"/gen.sh <<EOF
#!/bin/bash
#SBATCH --job-name=sdgen
#SBATCH --array=0-3
#SBATCH --cpus-per-task=1
#SBATCH --output=$WORK/logs/%A_%a.log
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# SHARDS: the size of the split when some tasks are resubmitted alone (--array=2 makes
# SLURM_ARRAY_TASK_COUNT 1).
exec "$SDGEN" ${COMMON[*]@Q} --out "$WORK/images" \\
  --shard "\$SLURM_ARRAY_TASK_ID/\${SHARDS:-\$SLURM_ARRAY_TASK_COUNT}" \\
  --manifest "$WORK/manifests/part-\$SLURM_ARRAY_TASK_ID.jsonl" --skip-existing
EOF

wait_job() {  # until job $1 has left the queue (at most 300 s)
  for _ in $(seq 1500); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  fail "job $1 still queued after 300 s: $(squeue 2>&1)"
}

JOB=$(sbatch --parsable "$WORK"/gen.sh) || fail "sbatch failed"
echo "slurm-test: array job $JOB submitted"
# Cancel task 2 once it has recorded its first image (SIGTERM: it stops after the current step).
for _ in $(seq 1500); do
  [ "$(cat "$WORK"/manifests/part-2.jsonl 2>/dev/null | wc -l)" -ge 1 ] && break
  sleep 0.2
done
[ "$(cat "$WORK"/manifests/part-2.jsonl 2>/dev/null | wc -l)" -ge 1 ] || fail "task 2 recorded no image"
scancel "${JOB}_2"
wait_job "$JOB"
killed=$(wc -l < "$WORK"/manifests/part-2.jsonl)
[ "$killed" -lt 2 ] || fail "task 2 finished before it was cancelled: nothing to resume"
grep -q "interrupted by SIGTERM" "$WORK"/logs/"${JOB}"_2.log || fail "task 2 was not stopped by SIGTERM"
echo "slurm-test: task 2 cancelled after $killed of its 2 images"

# Resubmitted alone without SHARDS, task 2 would be part 2/1: refused, nothing written.
JOB1=$(sbatch --parsable --array=2 "$WORK"/gen.sh) || fail "resubmission failed"
wait_job "$JOB1"
grep -q -- "--shard '2/1' must be K/N" "$WORK"/logs/"${JOB1}"_2.log || fail "a resubmission as part 2/1 was not refused"
[ "$(wc -l < "$WORK"/manifests/part-2.jsonl)" = "$killed" ] || fail "the refused resubmission wrote to the manifest"
# Resubmit the same script for the cancelled task, with the split's size: it skips what its
# manifest records and makes the rest.
JOB2=$(SHARDS=4 sbatch --parsable --array=2 "$WORK"/gen.sh) || fail "resubmission failed"
wait_job "$JOB2"
grep -q "skipping $killed of 2 images" "$WORK"/logs/"${JOB2}"_2.log || fail "the resubmitted task did not resume"

# The single-process run, and the comparison. With the tasks' thread count: on the CPU the number
# of threads changes how sums are split, hence the last bits (a GPU has no such setting).
OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE "$SDGEN" "${COMMON[@]}" --out "$WORK"/single --manifest "$WORK"/single.jsonl --skip-existing -q \
  || fail "the single-process run failed"
n_single=$(ls "$WORK"/single | wc -l)
n_parts=$(ls "$WORK"/images | wc -l)
[ "$n_single" = 10 ] || fail "the single process made $n_single images, not 10"
[ "$n_parts" = "$n_single" ] || fail "the parts made $n_parts images, the single process $n_single"
for f in "$WORK"/single/*; do
  cmp -s "$f" "$WORK/images/$(basename "$f")" || fail "$(basename "$f") differs from the single-process image"
done
records() {  # identity, index, file name and PNG SHA-256 of each record, sorted
  python3 -c '
import json, os, sys
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        print(json.dumps(r["job"], sort_keys=True), r["index"], os.path.basename(r["path"]), r["png_sha256"])
' "$@" | LC_ALL=C sort
}
records "$WORK"/manifests/part-*.jsonl > "$WORK"/parts.rec
records "$WORK"/single.jsonl > "$WORK"/single.rec
cmp -s "$WORK"/parts.rec "$WORK"/single.rec || fail "the manifests differ: $(diff "$WORK"/parts.rec "$WORK"/single.rec | head -n 5)"
[ "$(wc -l < "$WORK"/parts.rec)" = 10 ] || fail "the parts' manifests hold $(wc -l < "$WORK"/parts.rec) records, not 10"
echo "slurm-test: passed: 4 tasks (one cancelled and resubmitted) = one process, 10 images byte for byte, 10 manifest records"
