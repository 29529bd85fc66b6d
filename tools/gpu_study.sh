#!/usr/bin/env bash
# The protection study (configs/study/radius.py + configs/study/budget.py + configs/study/photos.py) and the CIFAR-10
# bench on one GPU: what docs/study.md and docs/performance.md report. Resumable: run it again
# to continue the study.
#   bash tools/gpu_study.sh   # env: WORK (study workdir), OUT (copies of the results), WORKERS
#                            # (experiments at once), TOTAL_S (stop the study this many seconds
#                            # after the start, leaving 60 s to checkpoint and pack), BENCH=0
#                            # (skip the bench), STUDIES (default: radius budget photos)
set -u
WORK=${WORK:-runs/gpu-study}
OUT=${OUT:-gpu_out}
WORKERS=${WORKERS:-12}
TOTAL_S=${TOTAL_S:-36000}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import jax, flax, optax, orbax.checkpoint, chex; print('jax', jax.__version__, 'flax', \
flax.__version__, 'optax', optax.__version__, jax.devices())"
if [ ! -e "$OUT/bench_cifar10_sem.json" ] && [ "${BENCH:-1}" = 1 ]; then
  # ResNet-18 at the paper's batch of 128 on synthetic CIFAR-10-shaped data, the GPU to itself.
  timeout -k 10 240 $PY run.py bench --config configs/cifar10/sem.py --steps 5 \
    --json "$OUT/bench_cifar10_sem.json" 2>&1 | tee "$OUT/bench.log" | grep -v "^W0000"
fi
STUDY_S=$((TOTAL_S - SECONDS - 60))
# Stopped by SIGTERM after STUDY_S seconds: every worker checkpoints, the tables are written.
STUDIES=${STUDIES:-radius budget photos}
timeout -k 40 "$STUDY_S" $PY run.py study $(for s in $STUDIES; do echo --config configs/study/$s.py; done) \
  --workdir "$WORK" --workers "$WORKERS" > "$OUT/study.log" 2>&1
echo "study exit $?"
grep -E "^\[|FAILED|error" "$OUT/study.log" | tail -60
tar czf "$OUT/study.tgz" --exclude=checkpoints --exclude='*.npy' -C "$(dirname "$WORK")" \
  "$(basename "$WORK")"
ls -la "$OUT"
